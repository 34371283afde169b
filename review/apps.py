"""App config of review: queues and priorities, agreement, adjudication, the PRM audit."""

from __future__ import annotations

from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "review"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The apps to the left announce what changed (annotate.signals, scoring.signals); the
        # queue listens here, so that they never import review.
        # Register the Celery tasks in every process (services send them by name).
        from . import (
            receivers,  # noqa: F401
            tasks,  # noqa: F401
        )
