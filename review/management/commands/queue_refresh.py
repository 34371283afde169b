"""Rebuild a project's labelling-queue priorities (all traces), and expire overdue leases."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.models import Project
from review import services


class Command(BaseCommand):
    help = (
        "Recompute every trace's stored queue signals, priority and open slots for a project "
        "(after a bulk import, or an overlap change); --expire-only just returns overdue leases."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--expire-only", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project {options['project']!r}.")
        expired = services.leases_expire(project=project)
        if options["expire_only"]:
            self.stdout.write(f"{expired} leases expired")
            return
        started = time.perf_counter()
        rows = services.priorities_refresh(project=project)
        self.stdout.write(
            f"{rows} traces refreshed in {time.perf_counter() - started:.1f} s; "
            f"{expired} leases expired"
        )
