"""A database from before the apps were split (annotate 0004, scoring 0001) migrates forward with
every row of every table kept, column for column, and nothing dropped or re-created."""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, models
from django.db.migrations.executor import MigrationExecutor

# The last migrations before the split, and the apps that did not exist then.
BEFORE = [("annotate", "0004_review_and_queues"), ("scoring", "0001_initial")]
NEW_APPS = ["review", "snapshots"]
FILLED_APPS = ["annotate", "scoring", "authtoken", "auth"]


def _value(field: models.Field, n: int) -> Any:
    if field.choices:
        return field.choices[min(n, len(field.choices) - 1)][0]
    kind = field.get_internal_type()
    if kind in ("CharField", "SlugField", "TextField"):
        return f"{field.name}-{n}"[: field.max_length or 100]
    if kind in ("BooleanField",):
        return bool(n % 2)
    if kind in ("FloatField",):
        return 0.25 + n / 4  # scores: within [0, 1] (a check constraint)
    if kind == "SmallIntegerField":
        return n % 2  # labels: -1..1 (a check constraint)
    if "Integer" in kind:
        return n + 1
    if kind == "DateTimeField":
        return datetime.datetime(2026, 1, 1, 12, n, tzinfo=datetime.UTC)
    if kind == "JSONField":
        return {"field": field.name, "n": n, "nested": [n, {"x": "y"}]}
    raise AssertionError(f"no test value for {field.model.__name__}.{field.name} ({kind})")


def _fill(apps: Any, rows_per_model: int = 2) -> None:
    """Create rows in every table of these apps through the historical models, parents first."""
    todo = [
        m
        for label in FILLED_APPS
        for m in apps.get_app_config(label).get_models()
        if not m._meta.proxy
    ]
    content_type = apps.get_model("contenttypes", "ContentType")  # rows made by migrate itself
    made: dict[Any, list[Any]] = {content_type: list(content_type.objects.order_by("pk")[:2])}
    while todo:
        progress = False
        for model in list(todo):
            parents = [
                f.related_model
                for f in model._meta.concrete_fields
                if f.is_relation and f.related_model is not model
            ]
            if any(p not in made for p in parents):
                continue
            for n in range(rows_per_model):
                values: dict[str, Any] = {}
                for field in model._meta.concrete_fields:
                    if field.primary_key and field.get_internal_type() in (
                        "AutoField",
                        "BigAutoField",
                    ):
                        continue
                    if field.is_relation:
                        # One-to-one and unique pairs: each row points at its own parent.
                        values[field.name] = made[field.related_model][n]
                    else:
                        values[field.name] = _value(field, n)
                made.setdefault(model, []).append(model.objects.create(**values))
            todo.remove(model)
            progress = True
        assert progress, f"cannot order {todo}"
    scorer = apps.get_model("scoring", "Scorer")
    for s in scorer.objects.all():  # the automatic many-to-many table too
        s.projects.set(apps.get_model("annotate", "Project").objects.all())


def _snapshot() -> dict[tuple[str, str], tuple[int, str]]:
    """(table, column) -> row count and a sha256 of the column's values, in primary-key order."""
    out = {}
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names()):
            if table.startswith(("django_migrations", "sqlite_")):
                continue
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)} ORDER BY 1")
            columns = [c[0] for c in cursor.description]
            rows = cursor.fetchall()
            for i, column in enumerate(columns):
                digest = hashlib.sha256(repr([row[i] for row in rows]).encode()).hexdigest()
                out[(table, column)] = (len(rows), digest)
    return out


@pytest.mark.django_db(transaction=True)
def test_a_database_from_before_the_split_migrates_with_every_row_kept() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([*BEFORE, *((app, None) for app in NEW_APPS)])
    executor.loader.build_graph()
    others = [
        node
        for node in executor.loader.graph.leaf_nodes()
        if node[0] not in {"annotate", "scoring", *NEW_APPS}
    ]
    old_apps = executor.loader.project_state([*BEFORE, *others]).apps
    assert not old_apps.all_models.get("review"), "review did not exist before the split"
    _fill(old_apps)
    before = _snapshot()
    moved = ["annotate_assignment", "annotate_tracepriority", "annotate_queuesettings"]
    moved += ["annotate_goldlabelchange", "annotate_exportsnapshot", "scoring_scorer_projects"]
    rows = {table: count for (table, _), (count, _) in before.items()}
    for table in moved:
        assert rows[table] == 2 or table == "scoring_scorer_projects", table

    call_command("migrate", verbosity=0)  # to today's head

    after = _snapshot()
    # Every column of every table that existed is still there with the same values (later
    # migrations may add tables and columns). django_content_type.app_label changed for the moved
    # models: that is the point.
    changed = {key for key in before if after.get(key) != before[key]}
    # authtoken_token: plain-text API tokens became hashed ApiTokens (annotate 0008), by design.
    changed = {key for key in changed if key[0] != "authtoken_token"}
    # A problem's key became the sha256 of its text, images and table (annotate 0012): the
    # column was renamed, and the key of a problem with images or a table computed again.
    changed.discard(("annotate_problem", "text_sha256"))
    assert changed == {("django_content_type", "app_label")}
    from annotate.imports import problem_content_sha256
    from annotate.models import Problem

    assert [p.content_sha256 for p in Problem.objects.order_by("pk")] == [
        problem_content_sha256(text=p.text, images=p.images, table=p.table)
        for p in Problem.objects.order_by("pk")
    ]
    from annotate.models import ApiToken

    assert ApiToken.objects.count() == rows["authtoken_token"] == 2
    from django.contrib.contenttypes.models import ContentType

    from review.models import Assignment, GoldLabelChange, QueueSettings, TracePriority
    from snapshots.models import ExportSnapshot

    for model in (Assignment, GoldLabelChange, QueueSettings, TracePriority, ExportSnapshot):
        assert model.objects.count() == 2, model  # the rows are read through the new apps
    assert ExportSnapshot.objects.order_by("pk").first().filters["field"] == "filters"
    assert ContentType.objects.filter(app_label="snapshots", model="exportsnapshot").exists()
    assert not ContentType.objects.filter(app_label="annotate", model="assignment").exists()


@pytest.mark.django_db(transaction=True)
def test_annotators_progress_is_counted_from_the_passes_already_submitted() -> None:
    """annotate 0018 counts each annotator's kept progress (AnnotatorProgress) from the data it
    finds: submitted passes per project, and those on traces filled to the project's overlap."""
    executor = MigrationExecutor(connection)
    executor.migrate([("annotate", "0017_project_filled_count")])
    old = executor.loader.project_state([("annotate", "0017_project_filled_count")]).apps
    User = old.get_model("auth", "User")
    Project, Problem = old.get_model("annotate", "Project"), old.get_model("annotate", "Problem")
    Trace, Annotation = old.get_model("annotate", "Trace"), old.get_model("annotate", "Annotation")
    ann, bob = User.objects.create(username="ann"), User.objects.create(username="bob")
    pair, solo = Project.objects.create(slug="pair", overlap=2), Project.objects.create(slug="solo")
    problem = Problem.objects.create(project=pair, text="1+1?", content_sha256="x" * 64)
    both, ann_only, started = (
        Trace.objects.create(project=pair, problem=problem, external_id=name) for name in "abc"
    )
    problem = Problem.objects.create(project=solo, text="1+1?", content_sha256="x" * 64)
    other = Trace.objects.create(project=solo, problem=problem)
    for user, trace in ((ann, both), (bob, both), (ann, ann_only), (bob, other)):
        Annotation.objects.create(annotator=user, trace=trace, status="submitted")
    Annotation.objects.create(annotator=bob, trace=started)  # in progress: not counted

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    from annotate.models import AnnotatorProgress

    counted = {
        (row.project.slug, row.annotator.username): (row.done, row.done_filled)
        for row in AnnotatorProgress.objects.select_related("project", "annotator")
    }
    assert counted == {("pair", "ann"): (2, 1), ("pair", "bob"): (1, 1), ("solo", "bob"): (1, 1)}
