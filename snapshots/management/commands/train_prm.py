"""Train a PRM from a project's TRL snapshot: `--sync` in this process, else on the `train` queue.

The last line on standard output is one JSON object (scorer, version, backend, params,
model_path, train_rows, test_rows, seconds, and the test split's auroc, processbench_f1,
prmbench_score) that `add_scorer NAME --backend B --model PATH --params JSON` reads as it is.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.models import Project
from snapshots import training
from snapshots.models import TrainingRun, TrainingStatus


class Command(BaseCommand):
    help = "Train a PRM on a snapshot's train split; register it as a new scorer version."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True)
        parser.add_argument("--snapshot", required=True, help="NAME or NAME@VERSION (TRL, jsonl).")
        parser.add_argument("--base", required=True, help="'tiny' or a local model directory.")
        parser.add_argument("--scorer", required=True, help="The scorer to make a version of.")
        parser.add_argument("--epochs", type=float)
        parser.add_argument("--learning-rate", type=float)
        parser.add_argument("--max-length", type=int)
        parser.add_argument("--batch-tokens", type=int)
        parser.add_argument("--seed", type=int)
        parser.add_argument("--head", choices=["token_classification", "qwen_extra0"])
        parser.add_argument(
            "--params", default="{}", help="More engine parameters as JSON (docs/training.md)."
        )
        parser.add_argument("--curve", action="store_true", help="Also train on 25/50/75%%.")
        parser.add_argument("--sync", action="store_true", help="Train in this process.")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project {options['project']!r}.")
        try:
            params = json.loads(options["params"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--params is not valid JSON: {exc}") from exc
        if not isinstance(params, dict):
            raise CommandError("--params must be a JSON object")
        for key in ("epochs", "learning_rate", "max_length", "batch_tokens", "seed", "head"):
            if options[key] is not None:
                params[key] = options[key]
        try:
            run = training.training_run_create(
                user=None,
                project=project,
                snapshot=options["snapshot"],
                base=options["base"],
                scorer_name=options["scorer"],
                params=params,
                curve=options["curve"],
                enqueue=not options["sync"],
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        if not options["sync"]:
            self.stdout.write(f"Training run {run.pk} queued on the train queue.")
            self.stdout.write(json.dumps({"run": run.pk, "status": run.status}))
            return
        started = time.monotonic()
        self.stderr.write(f"Training run {run.pk} in this process...")

        def bar(event: dict[str, Any]) -> None:
            done, total = event.get("step", 0), event.get("total_steps") or 1
            filled = int(30 * done / total)
            loss = event.get("loss")
            self.stderr.write(
                f"\r[{'#' * filled}{'.' * (30 - filled)}] step {done}/{total}"
                + (f" loss {loss:.4f}" if isinstance(loss, float) else ""),
                ending="",
            )

        run = training.training_run_execute(run_id=run.pk, echo=bar) or run
        self.stderr.write(f"\n{run.log}\n")
        if run.status != TrainingStatus.DONE:
            raise CommandError(f"Training run {run.pk} {run.status}: {run.error}")
        self.stdout.write(json.dumps(summary(run, seconds=time.monotonic() - started)))
        sys.stdout.flush()


def summary(run: TrainingRun, *, seconds: float) -> dict[str, Any]:
    test = run.metrics.get("test", {})
    return {
        "run": run.pk,
        "scorer": run.scorer_name,
        "version": run.scorer_version,
        "backend": run.result.get("backend"),
        "params": run.result.get("scorer_params"),
        "model_path": run.output_path,
        "train_rows": run.result.get("train_rows"),
        "test_rows": test.get("rows", 0),
        "seconds": round(seconds, 1),
        "auroc": test.get("step_auroc"),
        "processbench_f1": test.get("processbench_f1"),
        "prmbench_score": test.get("prmbench_score"),
        "learning_curve": run.learning_curve or None,
    }
