"""Drop the per-step and per-problem full-text indexes of 0009 (PostgreSQL): the data browser
searches one document per trace instead (review/migrations/0003_trace_search.py), and every
import paid for maintaining a GIN index over a million steps."""

from __future__ import annotations

from django.db import migrations


def drop(apps, schema_editor):  # noqa: ARG001
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS annotate_step_text_fts")
        schema_editor.execute("DROP INDEX IF EXISTS annotate_problem_text_fts")


def create(apps, schema_editor):  # noqa: ARG001
    if schema_editor.connection.vendor == "postgresql":
        for name, table in (
            ("annotate_step_text_fts", "annotate_step"),
            ("annotate_problem_text_fts", "annotate_problem"),
        ):
            schema_editor.execute(
                f"CREATE INDEX IF NOT EXISTS {name} ON {table} "
                "USING gin (to_tsvector('english', text))"
            )


class Migration(migrations.Migration):
    dependencies = [("annotate", "0012_problem_content_sha256")]
    operations = [migrations.RunPython(drop, create)]
