"""`manage.py import_traces FILE [FILE ...] --format FORMAT --project SLUG`: import trace files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from annotate.imports import FORMATS, ImportFileError, project_for_import, traces_import


class Command(BaseCommand):
    help = (
        "Import step-labelled traces from files (JSON Lines, or a JSON array) into a project, "
        "creating the project if missing. Each file is all or nothing; importing a file again "
        "adds nothing. Formats: see docs/formats.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE", help="files to import, in order")
        parser.add_argument("--format", required=True, choices=FORMATS, help="format of the files")
        parser.add_argument("--project", required=True, metavar="SLUG", help="project slug")
        parser.add_argument(
            "--subset", default="", help="subset name for every trace (default: from the data)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        paths = [Path(name) for name in options["files"]]
        for path in paths:
            if not path.is_file():
                raise CommandError(f"{path}: no such file")
        # One transaction for the whole command: a malformed file leaves the database as it was,
        # without the files before it and without a project created for them.
        try:
            with transaction.atomic():
                report = self._import(paths, options)
        except ImportFileError as err:
            raise CommandError(f"{err}\nNothing was imported.") from None
        # Printed once committed, so that nothing claims an import that was then rolled back.
        for line in report:
            self.stdout.write(line)

    def _import(self, paths: list[Path], options: dict[str, Any]) -> list[str]:
        report = []
        try:
            project, created = project_for_import(slug=options["project"])
        except ValidationError as err:
            raise CommandError(
                f"--project {options['project']!r}: {'; '.join(err.messages)}"
            ) from None
        if created:
            report.append(f"Created project '{project.slug}'.")
        for path in paths:
            with path.open("rb") as stream:
                result = traces_import(
                    project=project,
                    stream=stream,
                    filename=str(path),
                    format=options["format"],
                    subset=options["subset"],
                )
            report.append(f"{path}: {result.summary()}")
        return report
