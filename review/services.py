"""Writes of review: the labelling queue (stored priorities, strategies, leases on overlap slots,
skips) and gold labels set by adjudication, with their change log.

"Next" is one indexed query over `TracePriority` (partial index on project, priority desc, trace
where slots are open), never a scan of a project's traces per request. Priorities are refreshed
when scores change (scoring.signals.scores_written, see review.receivers) and when a submission,
skip or lease changes a trace's open slots; `manage.py queue_refresh` rebuilds a whole project.

A trace has `project.overlap` slots. Handing a trace out leases one slot (the `TracePriority`
row is locked while the slot is chosen, and the database refuses two live holders of one slot);
a lease not submitted within `lease_minutes` expires and the slot returns to the queue. Annotators
never see each other's labels here: the queue only hands out traces.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from statistics import pstdev
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, connections, router, transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone

from annotate.models import (
    Annotation,
    AnnotationStatus,
    GoldLabel,
    GoldSource,
    Project,
    Step,
    Trace,
)
from annotate.sql import column, insert, select, table
from scoring.prm import metrics
from scoring.prm.aggregate import aggregate

from . import audit, fts
from .models import (
    Assignment,
    AssignmentStatus,
    GoldLabelChange,
    QueueSettings,
    QueueStrategy,
    SkipReason,
    TracePriority,
)

UserLike = User | AnonymousUser

LIVE = (AssignmentStatus.LEASED, AssignmentStatus.SUBMITTED)

# What each strategy puts first, shown on the queue page and in the API.
STRATEGY_HELP: dict[str, str] = {
    QueueStrategy.SEQUENTIAL: "Traces in import order. A baseline, and the right choice when every "
    "trace must be labelled anyway.",
    QueueStrategy.RANDOM: "Traces in a fixed random order: an unbiased sample of the corpus, the "
    "baseline that active-learning strategies are measured against.",
    QueueStrategy.UNCERTAINTY: "Traces with a step scored closest to the PRM's threshold first "
    "(the PRM is least sure there, so a human label teaches it the most).",
    QueueStrategy.COMMITTEE: "Traces where the project's PRMs disagree most on some step (the "
    "largest gap between two scorers' scores of one step) first.",
    QueueStrategy.SPREAD: "Traces where a generative PRM's sampled critiques disagree most on "
    "some step (the spread of P(Yes) over the K samples) first.",
    QueueStrategy.CONVINCING_WRONG: "Traces with a wrong final answer that the PRM still scores "
    "highly (its weakest step scored high) first: the convincing wrong answers PRM800K chose.",
}

# The TracePriority column each strategy orders by (sequential: none, so import order).
_STRATEGY_COLUMN = {
    QueueStrategy.RANDOM: "random_key",
    QueueStrategy.UNCERTAINTY: "uncertainty",
    QueueStrategy.COMMITTEE: "committee",
    QueueStrategy.SPREAD: "spread",
    QueueStrategy.CONVINCING_WRONG: "convincing_wrong",
}

_REFRESH_CHUNK = 2000


def queue_settings_get(*, project: Project) -> QueueSettings:
    settings, _ = QueueSettings.objects.get_or_create(project=project)
    return settings


def strategy_set(
    *, project: Project, strategy: str, lease_minutes: int | None = None
) -> QueueSettings:
    """Order the project's queue by another strategy: one UPDATE copies the stored signal.
    With `lease_minutes`, also how long a trace handed out stays its annotator's."""
    if strategy not in QueueStrategy.values:
        raise ValidationError({"strategy": f"Unknown strategy {strategy!r}."})
    if lease_minutes is not None and not 1 <= lease_minutes <= 24 * 60:
        raise ValidationError({"lease_minutes": "A lease lasts from 1 minute to 24 hours (1440)."})
    with transaction.atomic():
        settings = queue_settings_get(project=project)
        _queue_lock(project)
        settings.strategy = strategy
        if lease_minutes is not None:
            settings.lease_minutes = lease_minutes
        settings.save(update_fields=["strategy", "lease_minutes"])
        column = _STRATEGY_COLUMN.get(QueueStrategy(strategy))
        TracePriority.objects.filter(project=project).update(priority=F(column) if column else 0.0)
    return settings


# --- signals --------------------------------------------------------------------------------------


def random_key(trace_id: int) -> float:
    """A fixed pseudo-random number in [0, 1) per trace (Knuth's multiplicative hash).

    >>> random_key(1), random_key(2) != random_key(1)
    (0.6180339868, True)
    """
    return round(((trace_id * 2654435761) % 2**32) / 2**32, 10)


def trace_signals(
    *,
    scores_by_scorer: Sequence[tuple[float, list[float | None], list[list[float]]]],
    final_answer_correct: bool | None,
) -> dict[str, float]:
    """The worth of labelling one trace under each strategy, from its scorers' step scores.

    `scores_by_scorer`: (threshold, step scores, per-step sampled P(Yes) or []) per scorer.

    >>> s = trace_signals(scores_by_scorer=[(0.5, [0.9, 0.55], []), (0.5, [0.2, 0.6], [])],
    ...                   final_answer_correct=False)
    >>> {k: round(v, 3) for k, v in s.items()}
    {'uncertainty': 0.85, 'committee': 0.7, 'spread': 0.0, 'convincing_wrong': 0.55}
    """
    uncertainty: list[float] = []
    spread = 0.0
    aggregates: list[float] = []
    for threshold, all_scores, samples in scores_by_scorer:
        scores = [s for s in all_scores if s is not None]  # None: the scorer gave no verdict
        if not scores:
            continue
        width = max(threshold, 1.0 - threshold) or 1.0
        uncertainty.append(max(1.0 - abs(s - threshold) / width for s in scores))
        for step_samples in samples:
            if len(step_samples) >= 2:
                spread = max(spread, pstdev(step_samples))
        weakest = aggregate(scores, "min")
        if weakest is not None:
            aggregates.append(weakest)
    committee = 0.0
    scored = [scores for _, scores, _ in scores_by_scorer if any(s is not None for s in scores)]
    if len(scored) >= 2:
        for column in zip(*scored, strict=False):
            known = [s for s in column if s is not None]
            if len(known) >= 2:
                committee = max(committee, max(known) - min(known))
    return {
        "uncertainty": sum(uncertainty) / len(uncertainty) if uncertainty else 0.0,
        "committee": committee,
        "spread": spread,
        "convincing_wrong": max(aggregates)
        if final_answer_correct is False and aggregates
        else 0.0,
    }


def prm_verdict(
    scores_by_scorer: Sequence[tuple[float, list[float | None], list[list[float]]]],
) -> dict[str, Any]:
    """The lowest step score of any scorer, and whether any scorer puts a step at or below its
    threshold (the audit's rule, `scoring.prm.metrics.predicted_correct`); a step a scorer gave
    no verdict on (None) counts for neither.

    >>> prm_verdict([(0.5, [0.9, 0.6], []), (0.7, [0.8, 0.65], [])])
    {'prm_min': 0.6, 'prm_wrong': True}
    >>> prm_verdict([])
    {'prm_min': None, 'prm_wrong': None}
    >>> prm_verdict([(0.5, [None, None], [])])
    {'prm_min': None, 'prm_wrong': None}
    """
    scored = [
        (threshold, known)
        for threshold, scores, _ in scores_by_scorer
        if (known := [s for s in scores if s is not None])  # None: no verdict on that step
    ]
    if not scored:
        return {"prm_min": None, "prm_wrong": None}
    return {
        "prm_min": min(min(scores) for _, scores in scored),
        "prm_wrong": any(
            not metrics.predicted_correct(min(scores), threshold) for threshold, scores in scored
        ),
    }


def _open_slots(*, project: Project, trace_ids: Sequence[int]) -> dict[int, int]:
    """Overlap less the live assignments and the submissions of people without one (older data)."""
    live = dict(
        Assignment.objects.filter(trace_id__in=trace_ids, status__in=LIVE)
        .values("trace_id")
        .annotate(n=Count("pk"))
        .values_list("trace_id", "n")
    )
    unassigned = dict(
        Annotation.objects.filter(
            trace_id__in=trace_ids, status=AnnotationStatus.SUBMITTED, imported=False
        )
        .exclude(
            Exists(
                Assignment.objects.filter(
                    trace_id=OuterRef("trace_id"),
                    annotator_id=OuterRef("annotator_id"),
                    status__in=LIVE,
                )
            )
        )
        .values("trace_id")
        .annotate(n=Count("pk"))
        .values_list("trace_id", "n")
    )
    return {t: max(0, project.overlap - live.get(t, 0) - unassigned.get(t, 0)) for t in trace_ids}


def priorities_refresh(*, project: Project, trace_ids: Iterable[int] | None = None) -> int:
    """Recompute the stored signals, priority and open slots of these traces (all of the
    project's when None), creating rows that are missing. Returns how many rows were written."""
    settings = queue_settings_get(project=project)
    column = _STRATEGY_COLUMN.get(QueueStrategy(settings.strategy))
    if trace_ids is None:
        ids = list(
            Trace.objects.filter(project=project).order_by("pk").values_list("pk", flat=True)
        )
    else:
        ids = sorted(set(trace_ids))
    leases_expire(project=project)
    written = 0
    for start in range(0, len(ids), _REFRESH_CHUNK):
        chunk = ids[start : start + _REFRESH_CHUNK]
        traces = dict(
            Trace.objects.filter(pk__in=chunk, project=project).values_list(
                "pk", "final_answer_correct"
            )
        )
        per_trace = audit.queue_scores(project=project, trace_ids=list(traces))
        rows = []
        for trace_id, correct in traces.items():
            signals = trace_signals(
                scores_by_scorer=per_trace.get(trace_id, []), final_answer_correct=correct
            )
            row = TracePriority(
                trace_id=trace_id,
                project=project,
                random_key=random_key(trace_id),
                **signals,
                **prm_verdict(per_trace.get(trace_id, [])),
            )
            row.priority = getattr(row, column) if column else 0.0
            rows.append(row)
        _search_documents(trace_ids=list(traces))
        with transaction.atomic():
            # Open slots are counted and written under the slots' lock (the project's, then the
            # chunk's rows), so that a lease taken meanwhile is never overwritten by a count made
            # before it.
            _slots_lock(project, list(traces))
            slots = _open_slots(project=project, trace_ids=list(traces))
            for row in rows:
                row.open_slots = slots[row.trace_id]
            _upsert_priorities(rows)
        written += len(rows)
    return written


def _search_documents(*, trace_ids: list[int]) -> None:
    """The data browser's full-text documents of these traces, where missing (PostgreSQL: one
    INSERT ... SELECT, review.fts). A trace's text does not change after its import."""
    if connection.vendor != "postgresql" or not trace_ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            fts.FILL.format(
                where="WHERE t.id = ANY(%s) AND NOT EXISTS "
                "(SELECT 1 FROM review_tracesearch d WHERE d.trace_id = t.id)"
            ),
            [trace_ids],
        )


def _upsert_priorities(rows: list[TracePriority]) -> None:
    TracePriority.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["trace"],
        update_fields=[
            "priority",
            "open_slots",
            "uncertainty",
            "committee",
            "spread",
            "convincing_wrong",
            "random_key",
            "prm_min",
            "prm_wrong",
            "updated_at",
        ],
    )


_pending = threading.local()


def priorities_refresh_on_commit(*, project: Project, trace_ids: Iterable[int]) -> None:
    """priorities_refresh once the transaction commits, batched: a scores import of thousands of
    runs in one transaction refreshes its traces in a few queries, not a few per run."""
    pending: dict[int, set[int]] = _pending.__dict__.setdefault("by_project", {})
    pending.setdefault(project.pk, set()).update(trace_ids)
    transaction.on_commit(_flush_pending)


def _flush_pending() -> None:
    pending: dict[int, set[int]] = _pending.__dict__.pop("by_project", {})
    for project in Project.objects.filter(pk__in=list(pending)):
        priorities_refresh(project=project, trace_ids=pending[project.pk])


def priorities_sync(*, project: Project) -> int:
    """Create the rows of traces imported since the last refresh (their signals computed)."""
    missing = list(
        Trace.objects.filter(project=project)
        .exclude(Exists(TracePriority.objects.filter(trace_id=OuterRef("pk"))))
        .values_list("pk", flat=True)
    )
    return priorities_refresh(project=project, trace_ids=missing) if missing else 0


# --- leases ---------------------------------------------------------------------------------------


def _lease_length(project: Project) -> timedelta:
    return timedelta(minutes=queue_settings_get(project=project).lease_minutes)


def leases_expire(*, project: Project | None = None, now: datetime | None = None) -> int:
    """Leases past their time return their slot to the queue; returns how many expired."""
    now = now or timezone.now()
    expired = Assignment.objects.filter(status=AssignmentStatus.LEASED, leased_until__lt=now)
    if project is not None:
        expired = expired.filter(project=project)
    count = 0
    with transaction.atomic():
        if project is not None:
            _queue_lock(project)
        for pk, trace_id, slot in expired.select_for_update(skip_locked=True).values_list(
            "pk", "trace_id", "slot"
        ):
            Assignment.objects.filter(pk=pk).update(
                status=AssignmentStatus.EXPIRED, finished_at=now
            )
            _slot_freed(trace_id=trace_id, slot=slot)
            count += 1
    return count


def _slot_freed(*, trace_id: int, slot: int | None) -> None:
    """A holder left this slot (skip, expiry; its row no longer live): the earliest submission
    recorded without a slot (made while every slot was held) takes it, else the trace has one
    open slot more. So a submission without a slot exists only while every slot is held, and the
    stored count always equals `_open_slots`' (overlap less every live holder)."""
    waiting = (
        Assignment.objects.filter(
            trace_id=trace_id, status=AssignmentStatus.SUBMITTED, slot__isnull=True
        )
        .order_by("finished_at", "pk")
        .values_list("pk", flat=True)
        .first()
        if slot is not None
        else None
    )
    if waiting is not None:
        Assignment.objects.filter(pk=waiting).update(slot=slot)
    else:
        TracePriority.objects.filter(trace_id=trace_id).update(open_slots=F("open_slots") + 1)


def _free_slot(*, trace_id: int, overlap: int) -> int | None:
    used = set(
        Assignment.objects.filter(
            trace_id=trace_id, status__in=LIVE, slot__isnull=False
        ).values_list("slot", flat=True)
    )
    return _lowest_free(used=used, overlap=overlap)


def _lowest_free(*, used: set[int | None], overlap: int) -> int | None:
    """The lowest slot number below the overlap that no live holder has, or None."""
    return next((s for s in range(overlap) if s not in used), None)


def _hold_fields(*, slot: int | None, now: datetime, status: str, minutes: int) -> dict[str, Any]:
    return {
        "slot": slot,
        "status": status,
        "leased_at": now,
        "leased_until": now + timedelta(minutes=minutes),
        "finished_at": now if status == AssignmentStatus.SUBMITTED else None,
        "skip_reason": "",
        "skip_note": "",
    }


def _hold(
    *,
    user: UserLike,
    project: Project,
    trace_id: int,
    slot: int | None,
    now: datetime,
    status: str,
    minutes: int | None = None,
) -> Assignment:
    if minutes is None:
        minutes = queue_settings_get(project=project).lease_minutes
    assignment, _ = Assignment.objects.update_or_create(
        trace_id=trace_id,
        annotator_id=user.pk,
        defaults={
            "project": project,
            **_hold_fields(slot=slot, now=now, status=status, minutes=minutes),
        },
    )
    return assignment


def _queue_lock(project: Project) -> int:
    """Serialise the writes of a project's slot counts (inside a transaction): a write, so that it
    locks on SQLite as on PostgreSQL (where it is the QueueSettings row's lock). Returns the
    project's lease length in minutes, read by the same statement (UPDATE ... RETURNING); the
    settings row is made first when the project has none yet."""
    db = connections[router.db_for_write(QueueSettings)]
    minutes = column(db, QueueSettings, "lease_minutes")
    sql = (
        f"UPDATE {table(db, QueueSettings)} SET {minutes} = {minutes} "
        f"WHERE {column(db, QueueSettings, 'project')} = %s RETURNING {minutes}"
    )
    with db.cursor() as cursor:
        cursor.execute(sql, [project.pk])
        row = cursor.fetchone()
    if row is None:  # first use of this project's queue
        queue_settings_get(project=project)
        return _queue_lock(project)
    return int(row[0])


def _slots_lock(project: Project, trace_ids: Sequence[int]) -> int:
    """The lock every writer of slots takes, except an annotator's first label: the project's
    queue lock (`_queue_lock`), then the queue rows of these traces, in trace order. A first label
    (`lease_on_start`) takes its trace's row only, so first labels on different traces of a
    project no longer wait for each other (issue 16); a writer holding the project lock waits for
    that row like any other. One order (project, then rows by trace) cannot deadlock: a first
    label holds one row and waits for no other slot lock. Returns the lease length in minutes."""
    minutes = _queue_lock(project)
    ids = sorted(set(trace_ids))
    for start in range(0, len(ids), _REFRESH_CHUNK):
        list(
            TracePriority.objects.filter(trace_id__in=ids[start : start + _REFRESH_CHUNK])
            .order_by("trace_id")
            .select_for_update()
            .values_list("trace_id", flat=True)
        )
    return minutes


def _trace_slot_lock(trace: Trace) -> tuple[bool, int | None]:
    """Lock one trace's queue row for a first label and take one of its open slots: a write
    (UPDATE ... SET open_slots = open_slots - 1 RETURNING), so that it locks on SQLite as on
    PostgreSQL, which answers the project's lease length in the same statement. A caller that
    then takes no slot gives it back (`_slot_given_back`) in the same transaction, so nobody sees
    the count it held meanwhile. (False, None) when the trace has no queue row yet: the caller
    takes the project's lock instead and makes the row; (True, None) when the project has no
    queue settings yet."""
    db = connections[router.db_for_write(TracePriority)]
    slots = column(db, TracePriority, "open_slots")
    sql = (
        f"UPDATE {table(db, TracePriority)} SET {slots} = {slots} - 1 "
        f"WHERE {column(db, TracePriority, 'trace')} = %s "
        f"RETURNING (SELECT {column(db, QueueSettings, 'lease_minutes')} "
        f"FROM {table(db, QueueSettings)} "
        f"WHERE {column(db, QueueSettings, 'project')} = %s)"
    )
    with db.cursor() as cursor:
        cursor.execute(sql, [trace.pk, trace.project_id])
        row = cursor.fetchone()
    if row is None:
        return False, None
    return True, None if row[0] is None else int(row[0])


def _open_slots_add(trace_id: int, delta: int) -> int:
    """open_slots + `delta` on the trace's queue row (written out: the first label's path, issue
    16); the rows updated (0 when the trace has no queue row)."""
    db = connections[router.db_for_write(TracePriority)]
    slots = column(db, TracePriority, "open_slots")
    with db.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table(db, TracePriority)} SET {slots} = {slots} + %s "
            f"WHERE {column(db, TracePriority, 'trace')} = %s",
            [delta, trace_id],
        )
        return int(cursor.rowcount)


def _slot_given_back(*, trace_id: int) -> None:
    """The slot `_trace_slot_lock` took, given back: its caller took none after all."""
    _open_slots_add(trace_id, 1)


def _slot_taken(*, project: Project, trace_id: int) -> None:
    """One slot of the trace fewer (its queue row made, counting the new holder, when missing)."""
    if not _open_slots_add(trace_id, -1):
        priorities_refresh(project=project, trace_ids=[trace_id])


def _slot_holders_and_mine(*, trace_id: int, user_id: int | None) -> list[Assignment]:
    """The trace's assignments that hold a slot (live, with a slot number) and this user's, in
    one written-out statement (a first label's path, issue 16)."""
    db = connections[router.db_for_read(Assignment)]
    where = (
        f"{column(db, Assignment, 'trace')} = %s "
        f"AND ({column(db, Assignment, 'annotator')} = %s "
        f"OR ({column(db, Assignment, 'status')} IN ({', '.join(['%s'] * len(LIVE))}) "
        f"AND {column(db, Assignment, 'slot')} IS NOT NULL))"
    )
    return select(db, Assignment, where, [trace_id, user_id, *(str(status) for status in LIVE)])


def _take_slot(
    *, user: UserLike, project: Project, trace_id: int, now: datetime, status: str
) -> Assignment | None:
    """Give this user a free slot of the trace, or None when all are taken. Every caller holds
    the slots' lock of this trace (`_slots_lock`: the project's queue lock, then the trace's
    queue row), taken first in its transaction."""
    slot = _free_slot(trace_id=trace_id, overlap=project.overlap)
    if slot is None:
        return None
    assignment = _hold(
        user=user, project=project, trace_id=trace_id, slot=slot, now=now, status=status
    )
    _slot_taken(project=project, trace_id=trace_id)
    return assignment


def _candidates(*, user: UserLike, project: Project, after_trace_id: int | None) -> Any:
    mine = Assignment.objects.filter(trace_id=OuterRef("trace_id"), annotator_id=user.pk).exclude(
        status__in=[AssignmentStatus.EXPIRED, AssignmentStatus.RELEASED]
    )
    touched = Annotation.objects.filter(trace_id=OuterRef("trace_id"), annotator_id=user.pk)
    rows = (
        TracePriority.objects.filter(project=project, open_slots__gt=0, held_out=False)
        .exclude(Exists(mine))
        .exclude(Exists(touched))
        .order_by("-priority", "trace_id")
    )
    if after_trace_id is not None:
        rows = rows.exclude(trace_id=after_trace_id)
    return rows


def _held_or_started(
    *, user: UserLike, project: Project, after_trace_id: int | None, now: datetime
) -> tuple[Trace | None, bool]:
    """(a trace this annotator holds a live lease on, True), else (one they started and did not
    skip, False), else (None, False)."""
    queue_settings_get(project=project)  # the queue lock's row exists before any transaction
    leases_expire(project=project, now=now)
    skip = Q(pk=after_trace_id) if after_trace_id is not None else Q(pk__in=[])
    held = (
        Trace.objects.filter(
            project=project,
            assignments__annotator_id=user.pk,
            assignments__status=AssignmentStatus.LEASED,
        )
        .exclude(skip)
        .order_by("pk")
        .first()
    )
    if held is not None:
        return held, True
    started = (
        Trace.objects.filter(
            project=project,
            annotations__annotator_id=user.pk,
            annotations__status=AnnotationStatus.IN_PROGRESS,
        )
        .exclude(skip)
        .exclude(
            Exists(
                Assignment.objects.filter(
                    trace_id=OuterRef("pk"),
                    annotator_id=user.pk,
                    status=AssignmentStatus.SKIPPED,
                )
            )
        )
        .order_by("pk")
        .first()
    )
    return started, False


def next_trace_peek(
    *, user: UserLike, project: Project, after_trace_id: int | None = None
) -> Trace | None:
    """The trace `lease_next` would hand this annotator, leasing nothing: the labelling page's
    "next". Its slot is taken when labelling starts (the first label: `lease_on_start`), so an
    annotator who opens a trace and leaves it fills no slot (issue 14)."""
    trace, _ = _held_or_started(
        user=user, project=project, after_trace_id=after_trace_id, now=timezone.now()
    )
    if trace is not None:
        return trace
    for attempt in range(2):
        row = (
            _candidates(user=user, project=project, after_trace_id=after_trace_id)
            .only("trace_id")
            .first()
        )
        if row is not None:
            return Trace.objects.select_related("problem").get(pk=row.trace_id)
        if attempt == 0 and not priorities_sync(project=project):
            break
    return None


def lease_on_start(*, user: UserLike, trace: Trace) -> Assignment | None:
    """An annotator started labelling a trace (its first label): they take a slot of it now,
    unless they hold or submitted one already; None when every slot is taken (their labels are
    kept all the same, and a submission beyond the overlap is recorded without a slot).

    Three statements on the first label's path (issue 16, it was thirteen): the trace's queue
    row locked with one of its open slots taken (`_trace_slot_lock`, which answers the lease
    length; not the project's lock, so first labels on other traces go on meanwhile); one read of
    the trace's slots with this user's assignment; the assignment's INSERT (or UPDATE). When no
    slot is taken after all (one held already, or none free), a fourth gives it back. No
    savepoint: a caller inside a transaction (annotate's first label) rolls back as a whole."""
    project = trace.project
    with transaction.atomic(savepoint=False):
        locked, minutes = _trace_slot_lock(trace)
        if not locked:  # no queue row yet: made under the slots' lock (this transaction's)
            minutes = _slots_lock(project, [trace.pk])
            if not TracePriority.objects.filter(trace_id=trace.pk).exists():
                priorities_refresh(project=project, trace_ids=[trace.pk])
        elif minutes is None:  # the project's first use of its queue (the row is locked)
            minutes = queue_settings_get(project=project).lease_minutes
        rows = _slot_holders_and_mine(trace_id=trace.pk, user_id=user.pk)
        current = next((row for row in rows if row.annotator_id == user.pk), None)
        holds_live = current is not None and current.status in LIVE
        slot = None
        if not holds_live:
            slot = _lowest_free(
                used={row.slot for row in rows if row.status in LIVE}, overlap=project.overlap
            )
        if slot is None:  # a live slot held already, or none free: nothing taken
            if locked:
                _slot_given_back(trace_id=trace.pk)
            return current if holds_live else None
        fields = _hold_fields(
            slot=slot,
            now=timezone.now(),
            status=AssignmentStatus.LEASED,
            minutes=minutes,
        )
        if current is None:
            assert user.pk is not None, "an annotator who labels is signed in"
            current = Assignment(trace_id=trace.pk, annotator_id=user.pk, project=project, **fields)
            insert(connections[router.db_for_write(Assignment)], current)
        else:
            for name, value in fields.items():
                setattr(current, name, value)
            current.save(update_fields=list(fields))
        if not locked:  # the row made above counted no slot of this lease
            _slot_taken(project=project, trace_id=trace.pk)
        return current


def lease_next(
    *, user: UserLike, project: Project, after_trace_id: int | None = None
) -> Trace | None:
    """The trace this annotator should open next, leasing a slot on it when it is a new one (an
    explicit start: the API's "take"; the page uses `next_trace_peek`).

    First a trace they hold a live lease on, then one they started and did not skip, then the
    best open trace by the project's strategy. None when the queue is empty for them.
    """
    now = timezone.now()
    started, held = _held_or_started(
        user=user, project=project, after_trace_id=after_trace_id, now=now
    )
    if held:
        return started
    if started is not None:
        with transaction.atomic():
            _slots_lock(project, [started.pk])
            _take_slot(
                user=user,
                project=project,
                trace_id=started.pk,
                now=now,
                status=AssignmentStatus.LEASED,
            )
        return started
    for attempt in range(2):
        for _ in range(5):  # a stale open_slots count is repaired and the next row tried
            with transaction.atomic():
                _queue_lock(project)  # first, always: the lock order that cannot deadlock
                row = (
                    _candidates(user=user, project=project, after_trace_id=after_trace_id)
                    .select_for_update(skip_locked=True, of=("self",))
                    .only("trace_id")
                    .first()
                )
                if row is None:
                    break
                try:
                    taken = _take_slot(
                        user=user,
                        project=project,
                        trace_id=row.trace_id,
                        now=now,
                        status=AssignmentStatus.LEASED,
                    )
                except IntegrityError:  # pragma: no cover - the constraint caught a race
                    taken = None
                if taken is not None:
                    return Trace.objects.select_related("problem").get(pk=row.trace_id)
            priorities_refresh(project=project, trace_ids=[row.trace_id])
        if attempt == 0 and not priorities_sync(project=project):
            break
    return None


def assignment_on_submit(*, user: UserLike, trace: Trace) -> Assignment:
    """A submission keeps its slot for good (or takes a free one if it had none; a submission
    beyond the overlap is recorded without a slot)."""
    now = timezone.now()
    project = trace.project
    queue_settings_get(project=project)
    with transaction.atomic():
        _slots_lock(project, [trace.pk])
        assignment = Assignment.objects.filter(trace=trace, annotator_id=user.pk).first()
        if assignment is not None and assignment.status == AssignmentStatus.SUBMITTED:
            return assignment
        if assignment is not None and assignment.status == AssignmentStatus.LEASED:
            Assignment.objects.filter(pk=assignment.pk).update(
                status=AssignmentStatus.SUBMITTED, finished_at=now
            )
            assignment.status = AssignmentStatus.SUBMITTED
            return assignment
        taken = _take_slot(
            user=user,
            project=project,
            trace_id=trace.pk,
            now=now,
            status=AssignmentStatus.SUBMITTED,
        )
        if taken is not None:
            return taken
        return _hold(
            user=user,
            project=project,
            trace_id=trace.pk,
            slot=None,
            now=now,
            status=AssignmentStatus.SUBMITTED,
        )


def assignment_skip(*, user: UserLike, trace: Trace, reason: str, note: str = "") -> Assignment:
    """Skip a trace with a reason: its slot returns to the queue, and it is not offered to this
    annotator again. Labels already given are kept."""
    if reason not in SkipReason.values:
        raise ValidationError({"reason": f"Choose a reason ({', '.join(SkipReason.values)})."})
    if reason == SkipReason.OTHER and not note.strip():
        raise ValidationError({"note": "Say why in a note when the reason is 'other'."})
    now = timezone.now()
    queue_settings_get(project=trace.project)
    with transaction.atomic():
        _slots_lock(trace.project, [trace.pk])
        if Annotation.objects.filter(
            trace=trace, annotator_id=user.pk, status=AnnotationStatus.SUBMITTED
        ).exists():
            raise ValidationError({"reason": "You submitted this trace; it cannot be skipped."})
        assignment = (
            Assignment.objects.select_for_update().filter(trace=trace, annotator_id=user.pk).first()
        )
        freed = assignment is not None and assignment.status == AssignmentStatus.LEASED
        assignment_slot = assignment.slot if assignment is not None else None
        assignment = _hold(
            user=user,
            project=trace.project,
            trace_id=trace.pk,
            slot=None,
            now=now,
            status=AssignmentStatus.SKIPPED,
        )
        if freed:
            _slot_freed(trace_id=trace.pk, slot=assignment_slot)
        Assignment.objects.filter(pk=assignment.pk).update(
            skip_reason=reason, skip_note=note.strip(), finished_at=now
        )
        assignment.skip_reason, assignment.skip_note = reason, note.strip()
    return assignment


def lease_renew(*, user: UserLike, trace: Trace) -> int:
    """An annotator still at work (a heartbeat) keeps their lease: one indexed UPDATE."""
    return Assignment.objects.filter(
        trace=trace, annotator_id=user.pk, status=AssignmentStatus.LEASED
    ).update(leased_until=timezone.now() + _lease_length(trace.project))


def queue_preview(*, user: UserLike, project: Project, limit: int = 30) -> list[Trace]:
    """What "next" would hand this annotator, in order, without leasing anything: their held and
    started traces, then the best open ones. Each trace carries `started_by_me`."""
    mine = list(
        Trace.objects.filter(project=project)
        .filter(
            Q(
                assignments__annotator_id=user.pk,
                assignments__status=AssignmentStatus.LEASED,
            )
            | Q(
                annotations__annotator_id=user.pk,
                annotations__status=AnnotationStatus.IN_PROGRESS,
            )
        )
        .distinct()
        .select_related("problem")
        .order_by("pk")[:limit]
    )
    for trace in mine:
        trace.started_by_me = True  # type: ignore[attr-defined]
    want = max(0, limit - len(mine))
    ids = list(
        _candidates(user=user, project=project, after_trace_id=None).values_list(
            "trace_id", flat=True
        )[:want]
    )
    if len(ids) < want and priorities_sync(project=project):  # traces imported since
        ids = list(
            _candidates(user=user, project=project, after_trace_id=None).values_list(
                "trace_id", flat=True
            )[:want]
        )
    fresh = Trace.objects.select_related("problem").in_bulk(ids)
    new = [fresh[i] for i in ids if i in fresh]
    for trace in new:
        trace.started_by_me = False  # type: ignore[attr-defined]
    return mine + new


# --- adjudication (gold labels) ------------------------------------------------------------------


def gold_set(*, user: User, step: Step, value: int | None, rationale: str) -> GoldLabel | None:
    """A reviewer's gold label for a step (None clears it), with the reason; every change is
    written to the audit log (GoldLabelChange) with the value and source it replaced."""
    rationale = rationale.strip()
    if value is not None and value not in (-1, 0, 1):
        raise ValidationError({"value": f"{value!r} is not a gold label (-1, 0 or +1)."})
    if not rationale:
        raise ValidationError({"rationale": "Say why: a gold label needs a rationale."})
    with transaction.atomic():
        # Lock the step: two reviewers saving at once are logged one after the other.
        Step.objects.select_for_update().filter(pk=step.pk).first()
        current = GoldLabel.objects.filter(step=step).first()
        old_value = current.value if current else None
        old_source = current.source if current else ""
        gold: GoldLabel | None
        if value is None:
            if current is not None:
                current.delete()
            gold = None
        else:
            gold, _ = GoldLabel.objects.update_or_create(
                step=step,
                defaults={
                    "value": value,
                    "source": GoldSource.ADJUDICATED,
                    "set_by": user,
                    "rationale": rationale,
                },
            )
        GoldLabelChange.objects.create(
            step=step,
            old_value=old_value,
            new_value=value,
            old_source=old_source,
            new_source=GoldSource.ADJUDICATED if value is not None else "",
            changed_by=user,
            rationale=rationale,
        )
    return gold
