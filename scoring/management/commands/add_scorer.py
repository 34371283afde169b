"""Register a PRM or change one (a new model or parameters bumps its version); attach projects."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.models import Project
from scoring import services
from scoring.models import Backend, Scorer


class Command(BaseCommand):
    help = "Register a scorer (PRM) and choose the projects it scores."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--backend", choices=Backend.values, required=True)
        parser.add_argument(
            "--model", default="", help="Local path of the model (from_pretrained)."
        )
        parser.add_argument("--revision", default="")
        parser.add_argument("--params", default="{}", help="JSON object of backend parameters.")
        parser.add_argument("--threshold", type=float, default=0.5)
        parser.add_argument(
            "--project", action="append", default=[], help="Project slug (repeatable)."
        )
        parser.add_argument(
            "--rescore",
            action="store_true",
            help="Bump the version even if nothing changed (weights replaced in place, or a "
            "steplens upgrade changed the backend): every trace is scored again.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            params = json.loads(options["params"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--params is not valid JSON: {exc}") from exc
        if not isinstance(params, dict):
            raise CommandError("--params must be a JSON object")
        projects = []
        for slug in options["project"]:
            project = Project.objects.filter(slug=slug).first()
            if project is None:
                raise CommandError(f"No project {slug!r}.")
            projects.append(project)
        existing = Scorer.objects.filter(name=options["name"]).first()
        try:
            if existing is None:
                scorer = services.scorer_create(
                    name=options["name"],
                    backend=options["backend"],
                    model_path=options["model"],
                    revision=options["revision"],
                    params=params,
                    threshold=options["threshold"],
                    projects=projects,
                )
                self.stdout.write(f"Registered scorer {scorer.name} ({scorer.backend}).")
            else:
                if existing.backend != options["backend"]:
                    raise CommandError(
                        f"Scorer {existing.name} exists with backend {existing.backend}; "
                        "choose another name."
                    )
                scorer = services.scorer_update(
                    scorer=existing,
                    model_path=options["model"],
                    revision=options["revision"],
                    params=params,
                    threshold=options["threshold"],
                    rescore=options["rescore"],
                )
                if projects:
                    scorer.projects.add(*projects)
                self.stdout.write(f"Updated scorer {scorer.name} (version {scorer.version}).")
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        slugs = ", ".join(p.slug for p in scorer.projects.all()) or "none yet"
        self.stdout.write(f"Projects: {slugs}")
