"""A problem is identified by its text, images' content and table, no longer by its text alone.

Text-only problems keep their key (problem_content_sha256 of a text alone is the sha256 of the
text); the key of a problem with images or a table is computed again.
"""

from django.db import migrations, models


def rekey_problems_with_figures_or_tables(apps, schema_editor):  # type: ignore[no-untyped-def]
    from annotate.imports import problem_content_sha256

    Problem = apps.get_model("annotate", "Problem")
    changed = []
    for problem in (
        Problem.objects.exclude(images=[], table__isnull=True).only("id", "text", "images", "table")
    ).iterator(chunk_size=2000):
        problem.content_sha256 = problem_content_sha256(
            text=problem.text, images=problem.images or [], table=problem.table
        )
        changed.append(problem)
    Problem.objects.bulk_update(changed, ["content_sha256"], batch_size=2000)


class Migration(migrations.Migration):
    dependencies = [
        ("annotate", "0011_import_jobs"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="problem", name="problem_unique_text"),
        migrations.RenameField(
            model_name="problem", old_name="text_sha256", new_name="content_sha256"
        ),
        migrations.RunPython(rekey_problems_with_figures_or_tables, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="problem",
            constraint=models.UniqueConstraint(
                fields=("project", "content_sha256"), name="problem_unique_content"
            ),
        ),
    ]
