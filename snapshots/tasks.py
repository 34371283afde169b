"""Celery tasks of snapshots: thin (ids in, service out) and safe to run twice."""

from __future__ import annotations

import logging

from celery import shared_task

from . import services, training

logger = logging.getLogger(__name__)


@shared_task(
    name=services.EXPORT_BUILD_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def export_snapshot_build_task(snapshot_id: int) -> str:
    """Build an export snapshot's files; a finished snapshot is left as it is (redelivery is harmless)."""
    try:
        return services.export_snapshot_build(snapshot_id=snapshot_id).status
    except Exception:
        # The error is on the snapshot (status failed), shown on the page; retrying would fail alike.
        logger.exception("export snapshot %s failed", snapshot_id)
        return "failed"


@shared_task(
    name=training.TRAIN_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def training_run_task(run_id: int) -> str:
    """Train one run (a redelivered task after a killed worker takes the run over; a finished,
    failed or cancelled run is left as it is). Dead runs are swept on every worker's tick
    (snapshots.receivers)."""
    run = training.training_run_execute(run_id=run_id)
    return run.status if run is not None else "missing"
