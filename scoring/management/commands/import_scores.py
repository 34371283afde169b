"""Load step scores computed elsewhere (JSONL), all or nothing; a new scorer name registers an
external scorer (never run here, versioned by import)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.models import Project
from scoring import services


class Command(BaseCommand):
    help = (
        "Import scores: JSONL lines "
        '{"trace_id": <external id>, "scores": [...], "trajectory_score"?, "response_score"?, '
        '"details"?}.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument(
            "--scorer",
            required=True,
            help="A registered scorer, or a new name: registered as an external scorer of the "
            "project (its scores only ever come from imports).",
        )
        parser.add_argument("--project", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project {options['project']!r}.")
        try:
            with open(options["file"], "rb") as stream:
                result = services.scores_import_by_name(
                    project=project,
                    scorer_name=options["scorer"],
                    stream=stream,
                    filename=options["file"],
                )
        except OSError as exc:
            raise CommandError(f"Cannot read {options['file']}: {exc.strerror}") from exc
        except services.ScoresFileError as exc:
            raise CommandError(f"{exc} (nothing was imported)") from exc
        name = result.scorer.name if result.scorer else options["scorer"]
        self.stdout.write(f"{name} on {project.slug}: {result.summary()}")
