from django.db import migrations, models
from django.db.models import Count


def count_filled(apps, schema_editor):
    """The kept count starts as each project's traces with at least `overlap` submissions."""
    Project = apps.get_model("annotate", "Project")
    Annotation = apps.get_model("annotate", "Annotation")
    for project in Project.objects.all():
        filled = (
            Annotation.objects.filter(trace__project=project, status="submitted")
            .order_by()
            .values("trace_id")
            .annotate(n=Count("pk"))
            .filter(n__gte=project.overlap)
            .count()
        )
        Project.objects.filter(pk=project.pk).update(filled_count=filled)


class Migration(migrations.Migration):
    dependencies = [
        ("annotate", "0016_project_trace_count"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="filled_count",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.RunPython(count_filled, migrations.RunPython.noop),
    ]
