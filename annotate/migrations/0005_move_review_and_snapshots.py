# Models moved to review and snapshots (issue: one app per concern); tables kept as they were.

from django.db import migrations

MOVED = {
    "queuesettings": "review",
    "tracepriority": "review",
    "assignment": "review",
    "goldlabelchange": "review",
    "exportsnapshot": "snapshots",
}


def move_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model, app_label in MOVED.items():
        if not ContentType.objects.filter(app_label=app_label, model=model).exists():
            ContentType.objects.filter(app_label="annotate", model=model).update(app_label=app_label)


def unmove_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model, app_label in MOVED.items():
        ContentType.objects.filter(app_label=app_label, model=model).update(app_label="annotate")


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('annotate', '0004_review_and_queues'),
        ('review', '0001_initial'),
        ('snapshots', '0001_initial'),
    ]

    operations = [
        # review and snapshots now own these models (their 0001 migrations, same tables): drop them
        # from annotate's state only; nothing in the database is dropped or re-created.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='exportsnapshot',
                    name='created_by',
                ),
                migrations.RemoveField(
                    model_name='exportsnapshot',
                    name='project',
                ),
                migrations.RemoveField(
                    model_name='goldlabelchange',
                    name='changed_by',
                ),
                migrations.RemoveField(
                    model_name='goldlabelchange',
                    name='step',
                ),
                migrations.RemoveField(
                    model_name='queuesettings',
                    name='project',
                ),
                migrations.RemoveField(
                    model_name='tracepriority',
                    name='project',
                ),
                migrations.RemoveField(
                    model_name='tracepriority',
                    name='trace',
                ),
                migrations.DeleteModel(
                    name='Assignment',
                ),
                migrations.DeleteModel(
                    name='ExportSnapshot',
                ),
                migrations.DeleteModel(
                    name='GoldLabelChange',
                ),
                migrations.DeleteModel(
                    name='QueueSettings',
                ),
                migrations.DeleteModel(
                    name='TracePriority',
                ),
            ],
            database_operations=[],
        ),
        # Permissions granted on the moved models follow them to their new app.
        migrations.RunPython(move_content_types, unmove_content_types),
    ]
