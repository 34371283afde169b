"""Celery tasks of annotate: thin (ids in, service out) and safe to run twice."""

from __future__ import annotations

from celery import shared_task

from . import import_jobs


@shared_task(
    name=import_jobs.RUN_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def import_job_run_task(job_id: int) -> str:
    """Import a large upload (annotate.import_jobs); a second delivery finds it done."""
    job = import_jobs.import_job_run(job_id=job_id)
    return job.status if job is not None else "missing"
