"""50 threads saving labels on the same annotation at once, through the real views: nothing lost, no 500.

Each thread is a browser tab of the same annotator (its own session and database connection).
The annotation does not exist when they start, so they also race to create it. On PostgreSQL
the threads really run at once; on SQLite writes are serialised, which must also hold.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client

from annotate.models import Annotation, StepLabel
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 50


def _run_at_once(jobs: list[Callable[[], int]]) -> list[int]:
    """Run the jobs on THREADS threads, released together by a barrier; their statuses."""
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[], int]) -> int:
        try:
            barrier.wait(timeout=30)
            return job()
        finally:
            connection.close()  # each thread's own connection

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(run, jobs))


def _tabs(user, n: int) -> list[Client]:  # type: ignore[no-untyped-def]
    tabs = []
    for _ in range(n):
        client = Client(raise_request_exception=False)
        client.force_login(user)
        tabs.append(client)
    return tabs


def test_fifty_tabs_labelling_different_steps_lose_nothing():
    user = make_user()
    project = make_project(members={user: "annotator"})
    trace = make_trace(project, steps=[f"Step {i}." for i in range(THREADS)])
    tabs = _tabs(user, THREADS)
    values = [(-1, 1)[i % 2] for i in range(THREADS)]

    def save(i: int) -> Callable[[], int]:
        return lambda: (
            tabs[i]
            .post(
                f"/t/{trace.pk}/steps/{i}/label/",
                {"value": str(values[i])},
                headers={"HX-Request": "true"},
            )
            .status_code
        )

    statuses = _run_at_once([save(i) for i in range(THREADS)])
    assert statuses == [200] * THREADS
    assert Annotation.objects.filter(trace=trace, annotator=user).count() == 1
    saved = dict(
        StepLabel.objects.filter(annotation__trace=trace).values_list("step__index", "value")
    )
    assert saved == dict(enumerate(values))


def test_fifty_tabs_sending_their_first_change_through_the_page_api_lose_nothing():
    """The page's own saves (/api/traces/<id>/changes/) make the annotation with one INSERT ...
    ON CONFLICT DO NOTHING (issue 16): fifty tabs of one annotator, none of whom has an
    annotation yet, each send their first change at once; one annotation, every label kept."""
    user = make_user()
    project = make_project(members={user: "annotator"})
    trace = make_trace(project, steps=[f"Step {i}." for i in range(THREADS)])
    tabs = _tabs(user, THREADS)

    def send(i: int) -> Callable[[], int]:
        body = {"client": f"tab{i}", "changes": [{"seq": 1, "op": "label", "index": i, "value": 1}]}
        return lambda: (
            tabs[i]
            .post(f"/api/traces/{trace.pk}/changes/", body, content_type="application/json")
            .status_code
        )

    statuses = _run_at_once([send(i) for i in range(THREADS)])
    assert statuses == [200] * THREADS
    assert Annotation.objects.filter(trace=trace, annotator=user).count() == 1
    assert StepLabel.objects.filter(annotation__trace=trace, value=1).count() == THREADS


def test_fifty_tabs_sending_later_changes_at_once_keep_every_label_and_change_number():
    """A later change (the annotation exists) stores its change-log number in the annotation's
    `client_seqs`, one entry per tab: fifty tabs each sending their second change at once must
    neither lose a label nor another tab's number, and a resend of a number already stored
    changes nothing."""
    user = make_user()
    project = make_project(members={user: "annotator"})
    trace = make_trace(project, steps=[f"Step {i}." for i in range(THREADS)])
    tabs = _tabs(user, THREADS)
    url = f"/api/traces/{trace.pk}/changes/"
    for i, tab in enumerate(tabs):  # each tab's first change, one after the other
        body = {"client": f"tab{i}", "changes": [{"seq": 1, "op": "label", "index": i, "value": 1}]}
        assert tab.post(url, body, content_type="application/json").status_code == 200

    def send(i: int) -> Callable[[], int]:
        change = {"seq": 2, "op": "label", "index": i, "value": -1, "note": f"n{i}"}
        body = {"client": f"tab{i}", "changes": [change]}
        return lambda: tabs[i].post(url, body, content_type="application/json").status_code

    statuses = _run_at_once([send(i) for i in range(THREADS)])
    assert statuses == [200] * THREADS
    annotation = Annotation.objects.get(trace=trace, annotator=user)
    assert annotation.client_seqs == {f"tab{i}": 2 for i in range(THREADS)}
    saved = dict(StepLabel.objects.filter(annotation=annotation).values_list("step__index", "note"))
    assert saved == {i: f"n{i}" for i in range(THREADS)}
    assert set(StepLabel.objects.filter(annotation=annotation).values_list("value", flat=True)) == {
        -1
    }
    stale = {"client": "tab0", "changes": [{"seq": 2, "op": "label", "index": 0, "value": 1}]}
    answer = tabs[0].post(url, stale, content_type="application/json").json()
    assert (answer["applied"], answer["skipped"]) == ([], [2])
    assert StepLabel.objects.get(annotation=annotation, step__index=0).value == -1


def test_fifty_tabs_writing_fields_of_one_step_lose_no_field():
    """value, flag and note of one step sent by different tabs at once: each write keeps the others."""
    user = make_user()
    project = make_project(members={user: "annotator"})
    trace = make_trace(project)
    tabs = _tabs(user, THREADS)
    url = f"/t/{trace.pk}/steps/1/label/"
    bodies = [{"value": "-1"}, {"flagged": "1"}, {"note": "a step to look at again"}]

    def save(i: int) -> Callable[[], int]:
        return lambda: tabs[i].post(url, bodies[i % 3], headers={"HX-Request": "true"}).status_code

    statuses = _run_at_once([save(i) for i in range(THREADS)])
    assert statuses == [200] * THREADS
    label = StepLabel.objects.get(annotation__trace=trace, step__index=1)
    assert (label.value, label.flagged, label.note) == (-1, True, "a step to look at again")
    assert StepLabel.objects.filter(annotation__trace=trace).count() == 1


def test_fifty_heartbeats_at_once_credit_no_more_than_the_time_that_passed():
    """Fifty tabs beating at once (or a client inflating its time): every request is answered,
    and together they credit one heartbeat plus at most the wall time they took, not 50 x 2 s."""
    user = make_user()
    project = make_project(members={user: "annotator"})
    trace = make_trace(project)
    tabs = _tabs(user, THREADS)

    def beat(i: int) -> Callable[[], int]:
        return lambda: tabs[i].post(f"/t/{trace.pk}/heartbeat/", {"seconds": "2"}).status_code

    started = time.monotonic()
    assert _run_at_once([beat(i) for i in range(THREADS)]) == [200] * THREADS
    elapsed = time.monotonic() - started
    credited = Annotation.objects.get(trace=trace, annotator=user).active_seconds
    assert 2.0 <= credited <= 2.0 + elapsed


def test_twenty_annotators_first_labelling_one_trace_fill_its_slots_once():
    """Issue 16's first label (annotation, lease and label in one transaction, the slot taken
    without locking the trace's queue row): twenty annotators at once on a trace of overlap 2 all
    keep their label, exactly two hold a slot (0 and 1) and the trace has no open slot left."""
    from review import services as queues
    from review.models import Assignment, AssignmentStatus, TracePriority

    users = [make_user(f"first{i}") for i in range(20)]
    project = make_project(members={u: "annotator" for u in users}, overlap=2)
    trace = make_trace(project)
    queues.priorities_sync(project=project)
    tabs = [_tabs(user, 1)[0] for user in users]

    def save(i: int) -> Callable[[], int]:
        return lambda: (
            tabs[i]
            .post(f"/t/{trace.pk}/steps/0/label/", {"value": "1"}, headers={"HX-Request": "true"})
            .status_code
        )

    statuses = _run_at_once([save(i) for i in range(len(users))])
    assert statuses == [200] * len(users)
    assert StepLabel.objects.filter(annotation__trace=trace, value=1).count() == len(users)
    leased = Assignment.objects.filter(trace=trace, status=AssignmentStatus.LEASED)
    assert sorted(leased.values_list("slot", flat=True)) == [0, 1]
    assert Assignment.objects.filter(trace=trace).count() == 2
    assert TracePriority.objects.get(trace=trace).open_slots == 0


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite serialises every write: no row locks to see"
)
def test_a_first_label_does_not_wait_for_another_traces_first_label_in_the_project():
    """Issue 16: a first label took the project-wide queue lock until its commit, so ten
    annotators' first labels on ten traces of one project queued behind each other. It now locks
    its own trace's queue row only: while one first label's transaction is open on trace A, a
    first label on trace B of the same project saves at once (a 3 s lock timeout fails it)."""
    from review import services as queues
    from review.models import Assignment, AssignmentStatus

    first, second = make_user("holder"), make_user("other")
    project = make_project(members={first: "annotator", second: "annotator"})
    trace_a, trace_b = make_trace(project), make_trace(project)
    queues.priorities_sync(project=project)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        from django.db import transaction

        from annotate import services

        try:
            with transaction.atomic():
                services.label_set_at(
                    user=first, trace=trace_a, index=0, annotation_id=None, value=1
                )
                holding.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(timeout=30)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '3s'")
        client = _tabs(second, 1)[0]
        response = client.post(
            f"/t/{trace_b.pk}/steps/0/label/", {"value": "1"}, headers={"HX-Request": "true"}
        )
        assert response.status_code == 200
    finally:
        release.set()
        holder.join(timeout=30)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
    leased = Assignment.objects.filter(status=AssignmentStatus.LEASED)
    assert sorted(leased.values_list("trace_id", "annotator__username")) == [
        (trace_a.pk, "holder"),
        (trace_b.pk, "other"),
    ]


def test_first_labels_takes_submits_skips_and_refreshes_at_once_keep_every_slot_count():
    """Every writer of a trace's slots at once: first labels (the trace's row lock), the API's
    take (`lease_next`), submissions, skips and queue refreshes (the project's lock, then the
    rows). No error or deadlock, no slot held twice, a submission without a slot only while every
    slot is held (a freed slot goes to it), and every trace's stored open-slot count is its overlap
    less its live holders, as a refresh from scratch counts it."""
    from review import services as queues
    from review.models import Assignment, AssignmentStatus, TracePriority

    users = [make_user(f"mixed{i}") for i in range(16)]
    project = make_project(members={u: "annotator" for u in users}, overlap=2)
    traces = [make_trace(project) for _ in range(3)]
    queues.priorities_sync(project=project)
    tabs = [_tabs(user, 1)[0] for user in users]

    def job(i: int) -> Callable[[], int]:
        user, trace = users[i], traces[i % len(traces)]
        kind = i % 4
        if kind == 0:  # an API take: the best open trace
            return lambda: int(queues.lease_next(user=user, project=project) is not None)
        if kind == 1:  # a whole labelled trace submitted (its slot kept or taken)
            return lambda: (
                tabs[i]
                .post(
                    f"/t/{trace.pk}/steps/0/label/", {"value": "1"}, headers={"HX-Request": "true"}
                )
                .status_code
                and queues.assignment_on_submit(user=user, trace=trace).pk
                and 200
            )
        if kind == 2:  # a first label, then a skip
            return lambda: (
                tabs[i]
                .post(
                    f"/t/{trace.pk}/steps/1/label/", {"value": "-1"}, headers={"HX-Request": "true"}
                )
                .status_code
                and queues.assignment_skip(user=user, trace=trace, reason="unclear").pk
                and 200
            )
        return lambda: (  # a first label while the whole queue is refreshed
            tabs[i]
            .post(f"/t/{trace.pk}/steps/2/label/", {"value": "1"}, headers={"HX-Request": "true"})
            .status_code
            + 0 * queues.priorities_refresh(project=project)
        )

    results = _run_at_once([job(i) for i in range(len(users))])
    assert all(r in (0, 1, 200) for r in results), results
    for trace in traces:
        live = list(
            Assignment.objects.filter(
                trace=trace, status__in=[AssignmentStatus.LEASED, AssignmentStatus.SUBMITTED]
            ).values_list("slot", flat=True)
        )
        slots = [s for s in live if s is not None]
        assert len(slots) == len(set(slots)) and len(slots) <= 2, live
        assert len(slots) == min(2, len(live)), live  # no holder without a slot while one is free
        assert TracePriority.objects.get(trace=trace).open_slots == max(0, 2 - len(live)), live
        queues.priorities_refresh(project=project, trace_ids=[trace.pk])  # the count from scratch
        assert TracePriority.objects.get(trace=trace).open_slots == max(0, 2 - len(live)), live


def test_annotators_submitting_the_same_traces_at_once_count_each_filled_trace_once():
    """The project's kept count of filled traces (at least `overlap` submissions, read by every
    labelling page's progress) is kept by the submission that fills a trace, under the trace's
    row lock, and so are each annotator's kept passes (done, and done on filled traces: the
    filling submission adds to every submitter of the trace, under the project's row lock).
    Ten traces, five annotators submitting at once (overlap 4): traces 0-4 get four submitters
    (filled), 5-9 three (not filled); every submit succeeds (no deadlock between the fan-outs),
    each trace is counted once and every annotator's counts are the count by hand."""
    from annotate import services
    from annotate.models import AnnotatorProgress, Project

    users = [make_user() for _ in range(5)]
    project = make_project(members={u: "annotator" for u in users}, overlap=4)
    traces = [make_trace(project) for _ in range(10)]

    def submits(t: int, i: int) -> bool:
        return (t + i) % 5 not in ({0} if t < 5 else {0, 1})

    # Every pass started first, so the submits race on nothing else.
    for t, trace in enumerate(traces):
        for i, user in enumerate(users):
            if submits(t, i):
                services.label_set(user=user, step=trace.steps.first(), value=1)

    def submit(user, trace) -> Callable[[], int]:  # type: ignore[no-untyped-def]
        def job() -> int:
            services.annotation_submit(user=user, trace=trace, finish_reason="give_up")
            return 200

        return job

    jobs = [
        submit(u, tr) for t, tr in enumerate(traces) for i, u in enumerate(users) if submits(t, i)
    ]
    assert _run_at_once(jobs) == [200] * len(jobs)
    assert Project.objects.get(pk=project.pk).filled_count == 5
    kept = {
        row.annotator_id: (row.done, row.done_filled)
        for row in AnnotatorProgress.objects.filter(project=project)
    }
    by_hand = {
        u.pk: (
            sum(submits(t, i) for t in range(10)),
            sum(submits(t, i) for t in range(5)),
        )
        for i, u in enumerate(users)
    }
    assert kept == by_hand
