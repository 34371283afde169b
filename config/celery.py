"""The Celery application: configured from Django settings (CELERY_*), tasks autodiscovered."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from django.db import transaction

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("steplens")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def task_send_on_commit(name: str, *args: Any, queue: str | None = None) -> None:
    """Send the task registered under `name` once the current transaction commits.

    Services enqueue tasks by name through here, so that no services module imports a tasks
    module (the tasks import the services): no import cycle, and no function-level import to hide
    one. The registered task's own `apply_async` is used, so eager mode (tests) still runs it.
    """
    options = {"queue": queue} if queue else {}
    signature = app.signature(name, args=list(args))
    transaction.on_commit(lambda: signature.apply_async(**options))
