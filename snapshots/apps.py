"""App config of snapshots: versioned export snapshots (and the PRMs trained from them)."""

from __future__ import annotations

from django.apps import AppConfig


class SnapshotsConfig(AppConfig):
    name = "snapshots"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register this app's Celery tasks in every process (web included): services send them by
        # name (config.celery.task_send_on_commit), which needs them in the task registry.
        from . import (
            receivers,  # noqa: F401  # sweeps on a worker's tick (scoring.signals.worker_tick)
            tasks,  # noqa: F401
        )
