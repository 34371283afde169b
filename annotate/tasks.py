"""Celery tasks of annotate: thin (ids in, service out) and safe to run twice."""

from __future__ import annotations

from celery import shared_task

from . import import_jobs, rendered
from .models import Project


@shared_task(
    name=import_jobs.RUN_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def import_job_run_task(job_id: int) -> str:
    """Import a large upload (annotate.import_jobs); a second delivery finds it done."""
    job = import_jobs.import_job_run(job_id=job_id)
    return job.status if job is not None else "missing"


@shared_task(
    name=rendered.FILL_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def html_fill_task(project_id: int, after_trace_id: int) -> int:
    """Keep the HTML of an import's texts (annotate.rendered); a second delivery renders nothing."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return 0
    return rendered.html_fill(project=project, after_trace_id=after_trace_id)["rendered"]
