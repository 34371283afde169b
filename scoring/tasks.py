"""Celery tasks of the model side: thin (ids in, engine, service out) and safe to run twice."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import close_old_connections

from . import engine, services, signals
from .models import ScoreRun, WorkerHeartbeat

logger = logging.getLogger(__name__)

# Every this many heartbeats a live worker also sweeps runs stuck queued or running.
SWEEP_EVERY_BEATS = 12


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def score_runs(self: Any, run_ids: list[int]) -> dict[str, int]:
    """Score these runs (already-done ones are skipped), one engine call per scorer."""
    return engine.score_and_write(
        run_ids=run_ids, worker=services.worker_id(self.request.hostname or "")
    )


@shared_task(ignore_result=True)
def sweep_stuck_runs() -> int:
    return services.score_runs_sweep()


def _beat(hostname: str, queues: str, beats: int) -> None:
    """One heartbeat: this node is alive, the runs this process is scoring keep their lease (a
    batch longer than the lease is not taken from a live worker by its own sweep, which runs in
    this thread beside the task), and every SWEEP_EVERY_BEATS beats the stuck runs go back."""
    services.worker_heartbeat(hostname=hostname, queues=queues)
    services.score_runs_renew(worker=services.worker_id(hostname))
    if beats % SWEEP_EVERY_BEATS == 0:
        swept = services.score_runs_sweep()
        if swept:
            logger.warning("re-enqueued %d stuck score runs", swept)
        signals.worker_tick.send(sender=None)


def _heartbeat_loop(hostname: str, queues: str, stop: threading.Event) -> None:
    beats = 0
    while not stop.is_set():
        try:
            close_old_connections()
            _beat(hostname, queues, beats)
        except Exception:  # the database may be briefly away; try again next beat
            logger.warning("worker heartbeat failed", exc_info=True)
        beats += 1
        stop.wait(settings.STEPLENS_WORKER_HEARTBEAT_SECONDS)


_stop_heartbeat = threading.Event()


@worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    hostname = sender.hostname
    queues = ",".join(sorted(sender.app.amqp.queues.keys()))
    # This node runs nothing yet: runs it held when it died go back to the queue now.
    released = services.score_runs_release_worker(worker=hostname)
    if released:
        logger.warning("took back %d runs this worker held when it stopped", released)
    threading.Thread(
        target=_heartbeat_loop,
        args=(hostname, queues, _stop_heartbeat),
        daemon=True,
        name="steplens-heartbeat",
    ).start()


@worker_shutdown.connect
def _on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    _stop_heartbeat.set()
    if sender is not None:
        WorkerHeartbeat.objects.filter(hostname=sender.hostname).delete()


def wait_for_runs(run_ids: list[int], *, timeout: float = 30.0) -> bool:
    """For scripts and tests: poll until the runs are done or failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not ScoreRun.objects.filter(pk__in=run_ids, status__in=["queued", "running"]).exists():
            return True
        time.sleep(0.05)
    return False
