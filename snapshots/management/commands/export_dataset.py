"""`manage.py export_dataset --project SLUG --format FORMAT --out PATH`: build an export snapshot, copy its files."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.formats.exporters import EXPORTERS
from annotate.models import Project
from snapshots import selectors, services


def _split(value: str) -> float:
    """`test=0.1` (or just `0.1`): the share of problems in the test split."""
    name, _, fraction = value.rpartition("=")
    if name not in ("", "test"):
        raise ValueError(value)
    return float(fraction)


class Command(BaseCommand):
    help = (
        "Export a project's labels as a new, immutable snapshot version (kept under "
        "VAR_DIR/exports, listed on the exports page) and copy its files (data, the images its "
        "rows reference under images/, README.md dataset card, SHA256SUMS) into --out. See "
        "docs/exports.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument("--format", required=True, choices=list(EXPORTERS))
        parser.add_argument("--out", required=True, type=Path, metavar="PATH", help="a folder")
        parser.add_argument("--name", help="snapshot name (default: the format)")
        parser.add_argument("--file-format", default="jsonl", choices=["jsonl", "parquet"])
        parser.add_argument("--labels", default="gold", choices=["gold", "majority", "all"])
        parser.add_argument("--min-agreement", type=float, default=0.0, metavar="FRACTION")
        parser.add_argument(
            "--neutral",
            default="",
            choices=["positive", "negative", "drop"],
            help="how neutral (0) labels map; required when the export has any and the format "
            "has no neutral value",
        )
        parser.add_argument("--split", type=_split, default=0.0, metavar="test=FRACTION")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--subset", action="append", default=[], help="repeatable")
        parser.add_argument("--source", action="append", default=[], help="repeatable")
        parser.add_argument("--include-flagged", action="store_true")
        parser.add_argument(
            "--select", choices=["labels", "scorer"], help="sft: how traces are chosen"
        )
        parser.add_argument("--scorer", help="sft --select scorer: the scorer's name")
        parser.add_argument("--aggregation", choices=list(services.AGGREGATIONS))
        parser.add_argument("--top-k", type=int)
        parser.add_argument(
            "--user", help="username recorded as the creator (needed for --select scorer)"
        )
        parser.add_argument(
            "--include-identities",
            action="store_true",
            help="the exporter's name in the card, annotators' times in the rows (withheld "
            "by default)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"--project {options['project']!r}: no such project")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"--user {options['user']!r}: no such user")
        sft = {
            key: options[key]
            for key in ("select", "scorer", "aggregation", "top_k")
            if options[key] is not None
        }
        try:
            snapshot = services.export_snapshot_create(
                project=project,
                user=user,
                name=options["name"] or options["format"].replace("_", "-"),
                format=options["format"],
                file_format=options["file_format"],
                labels=options["labels"],
                min_agreement=options["min_agreement"],
                neutral=options["neutral"],
                test_fraction=options["split"],
                seed=options["seed"],
                filters={
                    "subsets": options["subset"],
                    "sources": options["source"],
                    "include_flagged": options["include_flagged"],
                },
                options=sft,
                identities=options["include_identities"],
                enqueue=False,  # built here, in this process
            )
        except ValidationError as err:
            raise CommandError(
                "\n".join(f"{field}: {' '.join(msgs)}" for field, msgs in err.message_dict.items())
            ) from None
        try:
            snapshot = services.export_snapshot_build(snapshot_id=snapshot.pk)
        except Exception as exc:
            raise CommandError(f"The export failed: {type(exc).__name__}: {exc}") from None
        out: Path = options["out"]
        out.mkdir(parents=True, exist_ok=True)
        for name in selectors.export_file_names(snapshot=snapshot):
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(
                selectors.export_file_path(snapshot=snapshot, filename=name), out / name
            )
        counts = ", ".join(f"{split} {rows} rows" for split, rows in snapshot.row_counts.items())
        self.stdout.write(
            f"{project.slug}/{snapshot.name} v{snapshot.version}: {counts}; sha256 {snapshot.sha256}"
        )
        self.stdout.write(f"Files in {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
