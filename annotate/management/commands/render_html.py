"""`manage.py render_html [--project SLUG] [--batch N] [--prune]`: fill the kept HTML of texts."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate import rendered
from annotate.models import Project


class Command(BaseCommand):
    help = (
        "Render and keep the HTML of every problem, step, final answer and excerpt the pages "
        "show (annotate.rendered) that the current renderer version has not rendered yet, so no "
        "page view renders them. Safe to run again or to stop: each batch is committed, and a "
        "new run renders only the rest. --prune deletes the HTML of older renderer versions. "
        "Progress on stderr; the last line of stdout is a JSON summary."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", metavar="SLUG", help="one project (default: every one)")
        parser.add_argument(
            "--batch", type=int, default=200, metavar="N", help="traces a batch (default 200)"
        )
        parser.add_argument(
            "--prune", action="store_true", help="also delete older renderer versions' HTML"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch"] < 1:
            raise CommandError(f"--batch: must be 1 or more, not {options['batch']}")
        project = None
        if options["project"] is not None:
            project = Project.objects.filter(slug=options["project"]).first()
            if project is None:
                raise CommandError(f"--project {options['project']!r}: no such project")

        def progress(done: int, total: int, fresh: int) -> None:
            self.stderr.write(f"render_html: {done:,}/{total:,} traces, {fresh:,} texts rendered")

        summary = rendered.html_fill(project=project, batch=options["batch"], progress=progress)
        summary = {"project": project.slug if project else None, **summary}
        if options["prune"]:
            summary["pruned"] = rendered.html_prune()
        self.stdout.write(json.dumps(summary))
