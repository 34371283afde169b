"""Full-text search indexes of the data browser (PostgreSQL only; SQLite searches with LIKE).

Expression GIN indexes over to_tsvector('english', text) of steps and problems: the browser's
query (review.browser) uses exactly this expression, so that the planner can use the index.
"""

from __future__ import annotations

from django.db import migrations

INDEXES = {
    "annotate_step_text_fts": "annotate_step",
    "annotate_problem_text_fts": "annotate_problem",
}


def create(apps, schema_editor):  # noqa: ARG001
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, table in INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin (to_tsvector('english', text))"
        )


def drop(apps, schema_editor):  # noqa: ARG001
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("annotate", "0008_hash_existing_tokens")]
    operations = [migrations.RunPython(create, drop)]
