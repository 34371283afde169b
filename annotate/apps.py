"""App config of the human side of steplens."""

from __future__ import annotations

from django.apps import AppConfig


class AnnotateConfig(AppConfig):
    name = "annotate"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A password change revokes the API tokens; the tasks are registered in every process
        # (services send them by name).
        from . import (
            receivers,  # noqa: F401
            tasks,  # noqa: F401
        )

