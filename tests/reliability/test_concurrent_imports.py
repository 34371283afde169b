"""Two imports of the same file at once into one project (item 17 of "Hardening"): the docs promise
that importing a file again adds nothing, and that must hold when the two run at the same time
(one got a 500, a unique violation). On PostgreSQL the threads really run at once."""

from __future__ import annotations

import io

import pytest

from annotate.imports import project_for_import, traces_import
from annotate.models import Step, Trace
from tests.conftest import REPO_ROOT
from tests.reliability.test_concurrent_labels import _run_at_once

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_same_file_imported_twice_at_once_adds_it_once() -> None:
    content = (REPO_ROOT / "data" / "processbench_sample.jsonl").read_bytes()
    project, _ = project_for_import(slug="twice")

    def job() -> int:
        result = traces_import(
            project=project, stream=io.BytesIO(content), filename="pb.jsonl", format="processbench"
        )
        return result.traces_created

    created = _run_at_once([job, job, job])
    assert sorted(created) == [0, 0, 80]  # one import wrote it; the others found it there
    assert Trace.objects.filter(project=project).count() == 80
    assert Step.objects.filter(trace__project=project).count() == 581


def test_two_tabs_taking_next_at_once_keep_the_slots_counted() -> None:
    """Item 17: one annotator's tabs (or a double click) asking for "next" together must not take
    two slots of one trace, nor leave the trace short of its overlap."""
    from django.test import Client

    from annotate import services
    from review.models import Assignment, AssignmentStatus, TracePriority
    from tests.factories import make_project, make_trace, make_user

    me, other = make_user(), make_user()
    project = make_project(members={me: "annotator", other: "annotator"}, overlap=2)
    traces = [make_trace(project) for _ in range(2)]
    tabs = []
    for _ in range(6):
        tab = Client(raise_request_exception=False)
        tab.force_login(me)
        tabs.append(tab)
    statuses = _run_at_once(
        [lambda tab=tab: tab.get(f"/p/{project.slug}/next/").status_code for tab in tabs]
    )
    assert set(statuses) == {302}
    live = (AssignmentStatus.LEASED, AssignmentStatus.SUBMITTED)
    for trace in traces:
        mine = Assignment.objects.filter(trace=trace, annotator=me, status__in=live).count()
        assert mine <= 1
        held = Assignment.objects.filter(trace=trace, status__in=live).count()
        assert TracePriority.objects.get(trace=trace).open_slots == 2 - held
    # The other annotator still gets a slot of every trace.
    for trace in traces:
        services.label_all_correct(user=other, trace=trace)
    client = Client()
    client.force_login(other)
    assert client.get(f"/p/{project.slug}/next/").status_code == 302
    assert Assignment.objects.filter(annotator=other).exists()
