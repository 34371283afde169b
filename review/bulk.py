"""The data browser's bulk actions on a selection of traces or a whole filter, each one logged.

assign (to an annotator, who gets them next), skip / unskip (out of the queue and back), score
(enqueue the missing runs of a scorer on the bulk queue), flag (the problems), add to an export
(the exports page then snapshots exactly these traces), delete (admins, confirmed by typing the
number of traces). Every action writes a `BulkAction` row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotate import services as annotate_services
from annotate.models import Membership, Project, Role
from annotate.selectors import project_role, require_role
from scoring import services as scoring_services
from scoring.models import RunQueue
from scoring.selectors import scorers_for_project

from . import services
from .models import Assignment, BulkAction, BulkActionKind, TracePriority

# An assigned trace waits this long for its annotator (a lease taken by "next" lasts the
# project's lease time; an assignment is a lead's decision, so it lasts until they get to it).
ASSIGNMENT_DAYS = 14

# Who may do what: reviewers steer the queue, admins spend compute and delete.
MIN_ROLE: dict[str, Role] = {
    BulkActionKind.ASSIGN: Role.REVIEWER,
    BulkActionKind.SKIP: Role.REVIEWER,
    BulkActionKind.UNSKIP: Role.REVIEWER,
    BulkActionKind.FLAG: Role.REVIEWER,
    BulkActionKind.EXPORT: Role.REVIEWER,
    BulkActionKind.SCORE: Role.ADMIN,
    BulkActionKind.DELETE: Role.ADMIN,
}


def _assign(*, project: Project, trace_ids: Sequence[int], username: str) -> int:
    member = (
        Membership.objects.select_related("user")
        .filter(project=project, user__username=username, user__is_active=True)
        .first()
    )
    if member is None:
        raise ValidationError({"annotator": f"{username!r} is not a member of this project."})
    annotator: User = member.user
    services.priorities_sync(project=project)
    now = timezone.now()
    assigned = 0
    for trace_id in trace_ids:
        with transaction.atomic():
            services._slots_lock(project, [trace_id])
            if Assignment.objects.filter(
                trace_id=trace_id, annotator=annotator, status__in=services.LIVE
            ).exists():
                continue
            try:
                taken = services._take_slot(
                    user=annotator, project=project, trace_id=trace_id, now=now, status="leased"
                )
            except IntegrityError:  # pragma: no cover - a race for the slot: the other won
                taken = None
            if taken is None:
                continue
            Assignment.objects.filter(pk=taken.pk).update(
                leased_until=now + timedelta(days=ASSIGNMENT_DAYS)
            )
            assigned += 1
    return assigned


def _hold_out(*, project: Project, trace_ids: Sequence[int], held_out: bool) -> int:
    services.priorities_sync(project=project)
    changed = 0
    for start in range(0, len(trace_ids), 5000):
        changed += (
            TracePriority.objects.filter(
                project=project, trace_id__in=trace_ids[start : start + 5000]
            )
            .exclude(held_out=held_out)
            .update(held_out=held_out)
        )
    return changed


def traces_bulk(
    *,
    user: User,
    project: Project,
    action: str,
    trace_ids: Sequence[int],
    query: str = "",
    options: dict[str, Any] | None = None,
) -> BulkAction:
    """Apply one bulk action to these traces of the project (already filtered by the caller
    through a selector) and log it. Raises ValidationError naming what is wrong."""
    options = dict(options or {})
    try:
        kind = BulkActionKind(action)
    except ValueError:
        raise ValidationError({"action": f"{action!r} is not a bulk action."}) from None
    require_role(
        role=project_role(user=user, project=project),
        minimum=MIN_ROLE[kind],
        missing="No such project.",
    )
    ids = sorted(set(int(i) for i in trace_ids))
    if not ids:
        raise ValidationError({"traces": "No trace is selected."})
    if kind == BulkActionKind.ASSIGN:
        changed = _assign(
            project=project, trace_ids=ids, username=str(options.get("annotator", ""))
        )
    elif kind in (BulkActionKind.SKIP, BulkActionKind.UNSKIP):
        changed = _hold_out(project=project, trace_ids=ids, held_out=kind == BulkActionKind.SKIP)
    elif kind == BulkActionKind.SCORE:
        name = str(options.get("scorer", ""))
        scorer = scorers_for_project(project=project).filter(name=name).first()
        if scorer is None:
            raise ValidationError({"scorer": f"{name!r} is not a scorer of this project."})
        changed = len(
            scoring_services.score_runs_enqueue(
                traces=ids, scorers=[scorer], queue=RunQueue.BULK, retry_failed=True
            )
        )
    elif kind == BulkActionKind.FLAG:
        changed = annotate_services.problems_flag(trace_ids=ids)
    elif kind == BulkActionKind.EXPORT:
        changed = 0  # the exports page makes the snapshot of these traces (the logged ids)
    else:
        if str(options.get("confirm", "")).strip() != str(len(ids)):
            raise ValidationError(
                {"confirm": f"To delete, type the number of traces selected ({len(ids)})."}
            )
        changed = annotate_services.traces_delete(trace_ids=ids)
    return BulkAction.objects.create(
        project=project,
        user=user,
        action=kind,
        query=query,
        options={k: v for k, v in options.items() if k != "confirm"},
        trace_ids=ids,
        selected=len(ids),
        changed=changed,
    )
