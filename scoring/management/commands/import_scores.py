"""Load step scores computed elsewhere (JSONL), all or nothing."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.models import Project
from scoring import services
from scoring.models import Scorer


class Command(BaseCommand):
    help = (
        "Import scores: JSONL lines "
        '{"trace_id": <external id>, "scores": [...], "trajectory_score"?}.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--scorer", required=True)
        parser.add_argument("--project", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project {options['project']!r}.")
        scorer = Scorer.objects.filter(name=options["scorer"]).first()
        if scorer is None:
            raise CommandError(f"No scorer {options['scorer']!r} (see manage.py add_scorer).")
        try:
            with open(options["file"], "rb") as stream:
                result = services.scores_import(
                    project=project, scorer=scorer, stream=stream, filename=options["file"]
                )
        except OSError as exc:
            raise CommandError(f"Cannot read {options['file']}: {exc.strerror}") from exc
        except services.ScoresFileError as exc:
            raise CommandError(f"{exc} (nothing was imported)") from exc
        self.stdout.write(f"{scorer.name} on {project.slug}: {result.summary()}")
