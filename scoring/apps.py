"""App config of the model side of steplens."""

from __future__ import annotations

from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "scoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register this app's Celery tasks in every process (web included): services send them by
        # name (config.celery.task_send_on_commit), which needs them in the task registry.
        from . import tasks  # noqa: F401
