"""Celery tasks of review: thin (ids in, service out) and safe to run twice."""

from __future__ import annotations

from celery import shared_task

from annotate.models import Project

from . import services


# The name it had in annotate.tasks, so that messages queued before the move still run.
@shared_task(
    name="annotate.tasks.queue_priorities_sync_task",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def queue_priorities_sync_task(project_id: int) -> int:
    """Give newly imported traces their queue rows, so that the next "next" does not have to."""
    project = Project.objects.filter(pk=project_id).first()
    return services.priorities_sync(project=project) if project is not None else 0
