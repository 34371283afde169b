"""The project's kept trace count under imports running at once (issue 16): each import adds its
traces and its count in one transaction, so the count always equals the rows."""

from __future__ import annotations

import io
import json
import threading

import pytest
from django.db import connection, connections

from annotate.imports import traces_import
from annotate.models import Project, Trace
from tests.factories import make_project

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL (the CI runs it)"
)
def test_imports_at_once_into_one_project_keep_its_trace_count_exact() -> None:
    project = make_project("concurrent-count")
    files = [
        "\n".join(
            json.dumps({"id": f"w{w}-{i}", "problem": f"P{w}-{i % 3}", "steps": ["a", "b"]})
            # Two writers send the same file: the second adds nothing and counts nothing.
            for i in range(40)
        ).encode()
        for w in (0, 1, 2, 3, 3)
    ]
    start = threading.Barrier(len(files))
    errors: list[BaseException] = []

    def run(data: bytes) -> None:
        try:
            start.wait()
            traces_import(
                project=Project.objects.get(pk=project.pk),
                stream=io.BytesIO(data),
                filename="f.jsonl",
                format="jsonl",
            )
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(data,)) for data in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    project.refresh_from_db()
    assert Trace.objects.filter(project=project).count() == 160
    assert project.trace_count == 160


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL (the CI runs it)"
)
def test_a_submission_during_a_long_import_into_its_project_does_not_wait_for_it() -> None:
    """An import writes in one transaction (all or nothing), minutes for a big file; annotators
    go on labelling and submitting the project's other traces meanwhile. A submission used to
    wait for the import's end (the import held the project's row from its start; the submission
    counts filled traces on that row): a submit click that hangs for minutes, or times out. Now
    it is saved at once, and once the import commits every count is the count by hand."""
    from annotate import selectors, services
    from annotate.models import AnnotatorProgress
    from tests.factories import make_trace, make_user

    annotator = make_user()
    project = make_project("import-while-labelling", members={annotator: "annotator"})
    trace = make_trace(project)
    services.label_set(user=annotator, step=trace.steps.first(), value=1)
    writing, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "write" and not writing.is_set():
            writing.set()  # inside the import's transaction, its first records written
            release.wait(timeout=60)

    def run() -> None:
        record = {"id": "late", "problem": "P", "steps": ["a", "b"]}
        lines = [json.dumps({**record, "id": f"late-{i}"}) for i in range(3)]
        try:
            traces_import(
                project=Project.objects.get(pk=project.pk),
                stream=io.BytesIO("\n".join(lines).encode()),
                filename="late.jsonl",
                format="jsonl",
                progress=progress,
            )
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    importer = threading.Thread(target=run)
    importer.start()
    try:
        assert writing.wait(timeout=30), "the import never started writing"
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '3s'")  # waiting for the import: an error here
        try:
            services.annotation_submit(user=annotator, trace=trace, finish_reason="give_up")
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = 0")
        assert importer.is_alive()  # the import is still writing: the submission did not wait
    finally:
        release.set()
        importer.join(timeout=60)
    assert not errors, errors
    fresh = Project.objects.get(pk=project.pk)
    assert (fresh.trace_count, fresh.filled_count) == (4, 1)
    progress_row = AnnotatorProgress.objects.get(project=project, annotator=annotator)
    assert (progress_row.done, progress_row.done_filled) == (1, 1)
    shown = selectors.labelling_progress(user=annotator, project=fresh)
    assert (shown.done, shown.assigned) == (1, 4)
