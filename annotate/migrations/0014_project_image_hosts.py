from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotate", "0013_drop_step_problem_fts"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="image_hosts",
            field=models.JSONField(blank=True, default=list),
        ),
    ]
