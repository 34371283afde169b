"""The labelling queue: overlap slots and leases (never two holders of one slot, expired leases come
back), skip with a reason, strategies ordered by stored priorities refreshed when scores change,
and annotators who never see each other's labels."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from annotate import selectors, services
from annotate.models import Annotation, StepLabel
from review import services as queues
from review.models import Assignment, AssignmentStatus, QueueStrategy, TracePriority
from scoring import services as scoring_services
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def team():
    users = [make_user(f"a{i}") for i in range(4)]
    project = make_project("q", members={u: "annotator" for u in users}, overlap=2)
    traces = [make_trace(project, external_id=f"t{i}") for i in range(3)]
    return project, users, traces


def test_overlap_gives_each_trace_k_annotators_and_never_two_holders_of_a_slot(team) -> None:
    project, users, traces = team
    taken = {u.username: queues.lease_next(user=u, project=project) for u in users}
    # Sequential: t0 twice (overlap 2), then t1 twice.
    assert [t.external_id for t in taken.values()] == ["t0", "t0", "t1", "t1"]
    slots = Assignment.objects.filter(status=AssignmentStatus.LEASED)
    assert sorted(slots.filter(trace=traces[0]).values_list("slot", flat=True)) == [0, 1]
    assert TracePriority.objects.get(trace=traces[0]).open_slots == 0
    # Asking again hands back the same lease (no second slot).
    assert queues.lease_next(user=users[0], project=project) == traces[0]
    assert Assignment.objects.filter(annotator=users[0]).count() == 1
    # The database refuses a second live holder of a slot.
    with pytest.raises(IntegrityError), transaction.atomic():
        Assignment.objects.filter(trace=traces[1], annotator=users[2]).update(slot=0)
        Assignment.objects.filter(trace=traces[1], annotator=users[3]).update(slot=0)


def test_expired_leases_return_to_the_queue(team) -> None:
    project, users, traces = team
    first = queues.lease_next(user=users[0], project=project)
    queues.lease_next(user=users[1], project=project)
    Assignment.objects.filter(annotator=users[0]).update(
        leased_until=timezone.now() - timedelta(seconds=1)
    )
    # users[2] gets the freed slot of t0 rather than t1.
    assert queues.lease_next(user=users[2], project=project) == first
    assert Assignment.objects.get(annotator=users[0]).status == AssignmentStatus.EXPIRED
    assert TracePriority.objects.get(trace=first).open_slots == 0


def test_heartbeat_keeps_the_lease(team) -> None:
    project, users, traces = team
    trace = queues.lease_next(user=users[0], project=project)
    Assignment.objects.filter(annotator=users[0]).update(
        leased_until=timezone.now() + timedelta(seconds=5)
    )
    services.annotation_add_active_time(user=users[0], trace=trace, seconds=10)
    assert Assignment.objects.get(annotator=users[0]).leased_until > timezone.now() + timedelta(
        minutes=20
    )


def test_submit_keeps_the_slot_and_the_queue_moves_on(team) -> None:
    project, users, traces = team
    for user in users[:2]:
        trace = queues.lease_next(user=user, project=project)
        services.label_all_correct(user=user, trace=trace)
        services.annotation_submit(user=user, trace=trace)
    assert set(Assignment.objects.filter(trace=traces[0]).values_list("status", flat=True)) == {
        AssignmentStatus.SUBMITTED
    }
    assert queues.lease_next(user=users[2], project=project) == traces[1]
    # Someone who opens a trace directly and submits still takes a slot.
    services.label_all_correct(user=users[3], trace=traces[2])
    services.annotation_submit(user=users[3], trace=traces[2])
    assert TracePriority.objects.get(trace=traces[2]).open_slots == 1


def test_skip_with_a_reason_frees_the_slot_and_is_not_offered_again(team) -> None:
    project, users, traces = team
    trace = queues.lease_next(user=users[0], project=project)
    with pytest.raises(ValidationError):
        queues.assignment_skip(user=users[0], trace=trace, reason="bored")
    with pytest.raises(ValidationError):
        queues.assignment_skip(user=users[0], trace=trace, reason="other", note=" ")
    queues.assignment_skip(user=users[0], trace=trace, reason="too_hard")
    skipped = Assignment.objects.get(annotator=users[0])
    assert (skipped.status, skipped.skip_reason, skipped.slot) == ("skipped", "too_hard", None)
    assert TracePriority.objects.get(trace=trace).open_slots == 2
    assert queues.lease_next(user=users[0], project=project) == traces[1]


def test_a_slot_freed_by_a_skip_or_an_expiry_goes_to_a_submission_that_had_none(team) -> None:
    """A submission made while every slot was held is recorded without a slot; when a holder
    skips (or their lease expires) that submission takes the freed slot, instead of the trace
    counting one open slot more than a refresh from scratch counts (a defect of the first mixed
    concurrency run: the stored count and the refresh disagreed)."""
    project, users, traces = team
    trace = traces[0]
    for user in users[:2]:
        queues.lease_on_start(user=user, trace=trace)  # both slots held
    late = queues.assignment_on_submit(user=users[2], trace=trace)
    assert (late.status, late.slot) == ("submitted", None)
    queues.assignment_skip(user=users[0], trace=trace, reason="too_hard")
    assert Assignment.objects.get(pk=late.pk).slot is not None
    assert TracePriority.objects.get(trace=trace).open_slots == 0
    Assignment.objects.filter(annotator=users[1]).update(
        leased_until=timezone.now() - timedelta(minutes=1)
    )
    assert queues.leases_expire(project=project) == 1
    assert TracePriority.objects.get(trace=trace).open_slots == 1  # no one else was waiting
    queues.priorities_refresh(project=project, trace_ids=[trace.pk])
    assert TracePriority.objects.get(trace=trace).open_slots == 1


def test_skip_through_the_page_opens_the_next_trace(team) -> None:
    project, users, traces = team
    client = Client()
    client.force_login(users[0])
    assert client.get(reverse("review:next", args=["q"]))["Location"] == reverse(
        "annotate:trace", args=[traces[0].pk]
    )
    queue_page = client.get(reverse("review:queue", args=["q"])).content.decode()
    assert "Sequential (import order)" in queue_page and "Skip" in queue_page
    response = client.post(
        reverse("review:skip", args=[traces[0].pk]), {"reason": "unclear"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("annotate:trace", args=[traces[1].pk])


def _score(project, scorer, scores: dict[str, list[float]], capture) -> None:
    payload = "\n".join(json.dumps({"trace_id": k, "scores": v}) for k, v in scores.items())
    with capture(execute=True):  # priorities are refreshed once the scores are committed
        scoring_services.scores_import(
            project=project, scorer=scorer, stream=io.BytesIO(payload.encode()), filename="s"
        )


def test_strategies_order_by_stored_priorities_refreshed_when_scores_change(
    team, django_capture_on_commit_callbacks
) -> None:
    project, users, traces = team
    traces[2].final_answer_correct = False
    traces[2].save()
    a = scoring_services.scorer_create(name="a", backend="tool", projects=[project])
    b = scoring_services.scorer_create(name="b", backend="tool", projects=[project])
    _score(
        project,
        a,
        {"t0": [0.9, 0.9, 0.95], "t1": [0.9, 0.52, 0.9], "t2": [0.9, 0.8, 0.85]},
        django_capture_on_commit_callbacks,
    )
    _score(
        project,
        b,
        {"t0": [0.9, 0.9, 0.95], "t1": [0.9, 0.5, 0.9], "t2": [0.1, 0.8, 0.85]},
        django_capture_on_commit_callbacks,
    )
    order = {}
    for strategy in (
        QueueStrategy.UNCERTAINTY,
        QueueStrategy.COMMITTEE,
        QueueStrategy.CONVINCING_WRONG,
        QueueStrategy.SEQUENTIAL,
    ):
        queues.strategy_set(project=project, strategy=strategy)
        order[strategy] = [
            t.external_id for t in queues.queue_preview(user=users[0], project=project)
        ]
    assert order[QueueStrategy.UNCERTAINTY][0] == "t1"  # a step at 0.5 / 0.52
    assert order[QueueStrategy.COMMITTEE][0] == "t2"  # 0.9 against 0.1 on step 0
    assert order[QueueStrategy.CONVINCING_WRONG][0] == "t2"  # wrong answer, scored 0.8 by a
    assert order[QueueStrategy.SEQUENTIAL] == ["t0", "t1", "t2"]
    # New scores change the order: both PRMs now put t0 right at the threshold.
    queues.strategy_set(project=project, strategy=QueueStrategy.UNCERTAINTY)
    _score(project, a, {"t0": [0.5, 0.5, 0.5]}, django_capture_on_commit_callbacks)
    _score(project, b, {"t0": [0.9, 0.5, 0.9]}, django_capture_on_commit_callbacks)
    assert queues.lease_next(user=users[0], project=project) == traces[0]


def test_annotators_never_see_each_others_labels(team) -> None:
    project, users, traces = team
    services.label_set(user=users[0], step=traces[0].steps.get(index=0), value=-1, note="mine")
    data = selectors.trace_for_annotation(user=users[1], trace_id=traces[0].pk)
    assert all(view.label is None for view in data.steps)
    assert list(selectors.annotation_list_for_user(user=users[1], trace=traces[0])) == []
    client = Client()
    client.force_login(users[1])
    assert "mine" not in client.get(reverse("annotate:trace", args=[traces[0].pk])).content.decode()
    assert client.get(reverse("review:review", args=["q"])).status_code == 403


def test_queue_api_take_skip_and_strategy(team) -> None:
    project, users, traces = team
    admin = make_user("boss")
    services.membership_set(project=project, user=admin, role="admin")
    client = Client()
    client.force_login(users[0])
    lease = client.post(reverse("api:queue-take", args=["q"])).json()
    assert (lease["trace_id"], lease["slot"], lease["status"]) == (traces[0].pk, 0, "leased")
    info = client.get(reverse("api:queue", args=["q"])).json()
    assert info["strategy"] == "sequential" and len(info["strategies"]) == 6
    assert [row["trace_id"] for row in info["my_leases"]] == [traces[0].pk]
    skip = client.post(reverse("api:trace-skip", args=[traces[0].pk]), {"reason": "broken"}).json()
    assert skip["status"] == "skipped"
    denied = client.put(
        reverse("api:queue-strategy", args=["q"]),
        {"strategy": "random"},
        content_type="application/json",
    )
    assert (denied.status_code, denied.json()) == (403, {"detail": "Admins only."})
    client.force_login(admin)
    done = client.put(
        reverse("api:queue-strategy", args=["q"]),
        {"strategy": "random"},
        content_type="application/json",
    )
    assert done.json()["strategy"] == "random"


def test_queue_refresh_command_builds_rows_and_expires_leases(team) -> None:
    from django.core.management import call_command

    project, users, traces = team
    out = io.StringIO()
    call_command("queue_refresh", "--project", "q", stdout=out)
    assert out.getvalue().startswith("3 traces refreshed")
    assert TracePriority.objects.filter(project=project).count() == 3
    queues.lease_next(user=users[0], project=project)
    Assignment.objects.update(leased_until=timezone.now() - timedelta(minutes=1))
    out = io.StringIO()
    call_command("queue_refresh", "--project", "q", "--expire-only", stdout=out)
    assert out.getvalue().strip() == "1 leases expired"
    assert TracePriority.objects.get(trace=traces[0]).open_slots == 2


@pytest.mark.django_db
def test_opening_the_next_trace_leases_nothing_until_the_first_label() -> None:
    """Issue 14 item 5: browsing ("Start labelling", look, leave) used to lease a slot per trace
    opened, filling the queue with "in progress" rows; the slot is taken by the first label."""
    browsing, labelling = make_user("browsing"), make_user("labelling")
    project = make_project(members={browsing: "annotator", labelling: "annotator"})
    traces = [make_trace(project) for _ in range(2)]
    client = Client()
    client.force_login(browsing)
    for _ in range(3):
        response = client.get(reverse("review:next", args=[project.slug]))
        assert response.status_code == 302
    assert not Assignment.objects.exists()
    opened = int(response["Location"].strip("/").split("/")[-1])
    assert opened == traces[0].pk
    # Its slot is free: another annotator is handed the same trace, and labels it first.
    assert queues.next_trace_peek(user=labelling, project=project) == traces[0]
    services.label_set(user=labelling, step=traces[0].steps.get(index=0), value=1)
    lease = Assignment.objects.get()
    assert (lease.annotator, lease.trace, lease.status) == (
        labelling,
        traces[0],
        AssignmentStatus.LEASED,
    )
    # The one who only looked is now sent to the next open trace.
    assert queues.next_trace_peek(user=browsing, project=project) == traces[1]
    # Labelling again neither takes a second slot nor moves the lease.
    services.label_set(user=labelling, step=traces[0].steps.get(index=1), value=1)
    assert Assignment.objects.count() == 1


def test_a_first_label_save_takes_the_slot_in_few_queries() -> None:
    """Issue 16: an annotator's first label on a trace of a project with a queue makes the
    annotation and takes a slot. It was 25 queries here (the step looked up, get_or_create, the
    settings read twice, the trace's queue row locked, update_or_create, and a count of the one
    label just written); then 11; now 10: session, user, the trace, and in one transaction (a
    savepoint here, the test's transaction being open) the annotation's INSERT, the queue lock
    that takes the slot (open slots less one) and answers the lease length, one read of the
    trace's slots, the assignment's INSERT and the label's upsert. With every slot taken (a third
    annotator, overlap 2), no assignment, and the slot taken by the lock is given back: 10 too.
    Later saves are the queries of a started trace: five, four on PostgreSQL (its upsert returns
    the annotation's label counts)."""
    users = [make_user(f"f{i}") for i in range(3)]
    project = make_project("fq", members={u: "annotator" for u in users}, overlap=2)
    trace = make_trace(project)
    queues.priorities_sync(project=project)
    queues.queue_settings_get(project=project)
    url = reverse("annotate:step_label", args=[trace.pk, 1])
    counts = []
    for user in users:
        client = Client()
        client.force_login(user)
        client.get(reverse("annotate:trace", args=[trace.pk]))
        with CaptureQueriesContext(connection) as first:
            response = client.post(url, {"value": "-1"}, HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        first_count = len(first)  # now: a request's start clears the log these slices read
        html = response.content.decode().replace("<strong>", "").replace("</strong>", "")
        assert "1 of 3 steps labelled" in html
        page = client.get(reverse("annotate:trace", args=[trace.pk])).content.decode()
        assert "1 of 3 steps labelled" in page.replace("<strong>", "").replace("</strong>", "")
        with CaptureQueriesContext(connection) as later:
            response = client.post(url, {"value": "1"}, HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        counts.append((first_count, len(later)))
    later = 4 if connection.vendor == "postgresql" else 5
    assert counts == [(10, later), (10, later), (10, later)], counts
    leases = Assignment.objects.filter(trace=trace).order_by("annotator__username")
    assert [(a.annotator.username, a.slot, a.status) for a in leases] == [
        ("f0", 0, AssignmentStatus.LEASED),
        ("f1", 1, AssignmentStatus.LEASED),
    ]
    assert all(a.leased_until > timezone.now() + timedelta(minutes=20) for a in leases)
    assert TracePriority.objects.get(trace=trace).open_slots == 0
    assert StepLabel.objects.filter(step__trace=trace, value=1).count() == 3


def test_a_first_label_of_a_missing_step_writes_nothing_and_takes_no_slot() -> None:
    user = make_user("m0")
    project = make_project("mq", members={user: "annotator"}, overlap=2)
    trace = make_trace(project)
    queues.priorities_sync(project=project)
    client = Client()
    client.force_login(user)
    url = reverse("annotate:step_label", args=[trace.pk, 3])
    assert client.post(url, {"value": "1"}, HTTP_HX_REQUEST="true").status_code == 404
    assert not Annotation.objects.exists() and not Assignment.objects.exists()
    assert TracePriority.objects.get(trace=trace).open_slots == 2


def test_a_first_label_without_a_queue_row_makes_it_counting_the_new_lease() -> None:
    user = make_user("n0")
    project = make_project("nq", members={user: "annotator"}, overlap=2)
    trace = make_trace(project)
    TracePriority.objects.filter(trace=trace).delete()
    services.label_set(user=user, step=trace.steps.get(index=0), value=1)
    assert Assignment.objects.get().slot == 0
    assert TracePriority.objects.get(trace=trace).open_slots == 1


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="prepared statements are PostgreSQL's (the CI runs it)",
)
def test_the_saves_statements_stay_prepared_on_postgresql() -> None:
    """On PostgreSQL the parameters are bound by the server and a statement run
    DATABASE_PREPARE_THRESHOLD times (5) on a connection stays prepared there, so the save's
    statements are no longer parsed and planned on every click (config/settings.py; issue 16:
    +13% saves and +22% pages per second side by side, docs/benchmarks.md)."""
    assert connection.settings_dict["OPTIONS"].get("server_side_binding") is True
    user = make_user("p0")
    project = make_project("pq", members={user: "annotator"})
    trace = make_trace(project)
    client = Client()
    client.force_login(user)
    url = reverse("api:label-changes", args=[trace.pk])
    for seq in range(1, 8):
        body = {"client": "tab", "changes": [{"seq": seq, "op": "label", "index": 0, "value": 1}]}
        assert client.post(url, body, content_type="application/json").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("client_seqs" in sql for sql in prepared), prepared  # the change log's UPDATE
    assert any("ON CONFLICT" in sql for sql in prepared), prepared  # the label's upsert


def test_the_pages_first_change_takes_the_slot_in_few_queries() -> None:
    """The labelling page's script saves through /api/traces/<id>/changes/ (label_changes_apply):
    its first change makes the annotation (one INSERT ... ON CONFLICT DO NOTHING: the trace's
    read said it had none, so no row-locked read first, and no savepoint) and takes the slot as the htmx save does; a later
    change reads the annotation once, row-locked. Neither reads back the label its upsert
    returned; the label count comes back from the statement that stores the change-log number.
    On PostgreSQL the trace's read brings its steps' ids too (no steps query)."""
    user, other = make_user("c0"), make_user("c1")
    project = make_project("cq", members={user: "annotator", other: "annotator"}, overlap=1)
    trace = make_trace(project)
    queues.priorities_sync(project=project)
    queues.queue_settings_get(project=project)
    client = Client()
    client.force_login(user)
    url = reverse("api:label-changes", args=[trace.pk])
    counts = []
    for seq in (1, 2):
        body = {"client": "tab", "changes": [{"seq": seq, "op": "label", "index": 0, "value": 1}]}
        with CaptureQueriesContext(connection) as queries:
            response = client.post(url, body, content_type="application/json")
        assert response.status_code == 200, response.content
        assert (response.json()["labelled"], response.json()["step_count"]) == (1, 3)
        counts.append(len(queries))
    # They were 31 and 13, then 17 and 10, then 13 and 10 (both databases), then 12 and 8 on
    # PostgreSQL (13 and 9 on SQLite). Now the queue lock takes the slot, and on PostgreSQL the
    # label's upsert and the change-log number go in one statement (a CTE).
    # Then a later change on PostgreSQL became one statement in autocommit (the change-log
    # number's guarded UPDATE, the label's upsert fed by it and the count: no BEGIN, no lock, no
    # COMMIT): session, user, the trace with its steps, that statement.
    assert counts == ([10, 4] if connection.vendor == "postgresql" else [12, 9]), counts
    lease = Assignment.objects.get()
    assert (lease.annotator, lease.slot, lease.status) == (user, 0, AssignmentStatus.LEASED)
    assert TracePriority.objects.get(trace=trace).open_slots == 0
