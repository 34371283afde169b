"""The queue's answers to what the apps to its left announce (connected in ReviewConfig.ready).

annotate and scoring never import review: they send signals (annotate.signals, scoring.signals),
and these receivers keep the labelling queue in step with labels, leases, imports and scores.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.dispatch import receiver

from annotate import signals as annotate_signals
from annotate.models import Project, Trace
from config.celery import task_send_on_commit
from scoring import signals as scoring_signals

from . import services

PRIORITIES_SYNC_TASK = "annotate.tasks.queue_priorities_sync_task"


@receiver(annotate_signals.annotation_submitted)
def _on_submitted(*, user: Any, trace: Trace, **_: Any) -> None:
    services.assignment_on_submit(user=user, trace=trace)


@receiver(annotate_signals.annotation_started)
def _on_started(*, user: Any, trace: Trace, **_: Any) -> None:
    services.lease_on_start(user=user, trace=trace)  # a slot when labelling starts, not on opening


@receiver(annotate_signals.annotation_active)
def _on_active(*, user: Any, trace: Trace, **_: Any) -> None:
    services.lease_renew(user=user, trace=trace)  # still at work: the lease runs on


@receiver(annotate_signals.traces_imported)
def _on_imported(*, project: Project, **_: Any) -> None:
    # New traces need their queue rows; a worker makes them, off the import's request (else the
    # first "next" after a large import would make them, slowly).
    task_send_on_commit(PRIORITIES_SYNC_TASK, project.pk, queue=settings.STEPLENS_EXPORT_QUEUE)


@receiver(scoring_signals.scores_written)
def _on_scores(*, project: Project, trace_ids: list[int], **_: Any) -> None:
    services.priorities_refresh_on_commit(project=project, trace_ids=trace_ids)
