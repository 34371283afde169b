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
