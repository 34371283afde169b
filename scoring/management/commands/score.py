"""Backfill a project's scores with one scorer: enqueue on the bulk queue, or --sync in-process."""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.models import Project
from scoring import services
from scoring.models import Backend, RunQueue, RunStatus, Scorer, ScoreRun


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


class Command(BaseCommand):
    help = "Score every trace of a project with a scorer (missing runs only), with a progress bar."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True)
        parser.add_argument("--scorer", required=True)
        parser.add_argument("--sync", action="store_true", help="Score in this process.")
        parser.add_argument("--retry-failed", action="store_true")
        parser.add_argument("--no-wait", action="store_true", help="Enqueue and return.")
        parser.add_argument("--timeout", type=float, default=3600.0)

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project {options['project']!r}.")
        scorer = Scorer.objects.filter(name=options["scorer"]).first()
        if scorer is None:
            raise CommandError(f"No scorer {options['scorer']!r} (see manage.py add_scorer).")
        if scorer.backend == Backend.EXTERNAL:
            raise CommandError(
                f"{scorer.name} is an external scorer: nothing runs it here; load its scores "
                f"with manage.py import_scores FILE --scorer {scorer.name} --project {project.slug}"
            )
        trace_ids = list(project.traces.values_list("pk", flat=True))
        if options["sync"]:
            self._sync(scorer=scorer, trace_ids=trace_ids, retry=options["retry_failed"])
        else:
            services.score_runs_enqueue(
                traces=trace_ids,
                scorers=[scorer],
                queue=RunQueue.BULK,
                retry_failed=options["retry_failed"],
            )
            if not options["no_wait"]:
                self._wait(scorer=scorer, trace_ids=trace_ids, timeout=options["timeout"])
        self._report(scorer=scorer, trace_ids=trace_ids)

    def _runs(self, scorer: Scorer, trace_ids: list[int]):  # type: ignore[no-untyped-def]
        return ScoreRun.objects.filter(
            scorer=scorer, scorer_version=scorer.version, trace_id__in=trace_ids
        )

    def _sync(self, *, scorer: Scorer, trace_ids: list[int], retry: bool) -> None:
        from scoring import engine

        # Create the runs without a broker round trip, then score them here, chunk by chunk.
        self._create_runs(scorer=scorer, trace_ids=trace_ids, retry=retry)
        pending = list(
            self._runs(scorer, trace_ids)
            .exclude(status=RunStatus.DONE)
            .values_list("pk", flat=True)
        )
        total = len(pending)
        for start in range(0, total, services.RUNS_PER_TASK):
            # A failed run (e.g. a trace too long for the model) does not stop the others; the
            # report at the end names every failure.
            engine.score_and_write(run_ids=pending[start : start + services.RUNS_PER_TASK])
            sys.stderr.write("\r" + _bar(min(start + services.RUNS_PER_TASK, total), total))
            sys.stderr.flush()
        sys.stderr.write("\n")

    def _create_runs(self, *, scorer: Scorer, trace_ids: list[int], retry: bool) -> None:
        existing = set(self._runs(scorer, trace_ids).values_list("trace_id", flat=True))
        ScoreRun.objects.bulk_create(
            [
                ScoreRun(
                    trace_id=t, scorer=scorer, scorer_version=scorer.version, queue=RunQueue.BULK
                )
                for t in trace_ids
                if t not in existing
            ],
            ignore_conflicts=True,
        )
        if retry:
            self._runs(scorer, trace_ids).filter(status=RunStatus.FAILED).update(
                status=RunStatus.QUEUED, error=""
            )

    def _wait(self, *, scorer: Scorer, trace_ids: list[int], timeout: float) -> None:
        total = len(trace_ids)
        deadline = time.monotonic() + timeout
        while True:
            finished = (
                self._runs(scorer, trace_ids)
                .filter(status__in=[RunStatus.DONE, RunStatus.FAILED])
                .count()
            )
            sys.stderr.write("\r" + _bar(finished, total))
            sys.stderr.flush()
            if finished >= total:
                break
            if time.monotonic() > deadline:
                sys.stderr.write("\n")
                raise CommandError(
                    f"Timed out with {total - finished} runs unfinished: is a worker running "
                    "(celery -A config worker -Q interactive,bulk)?"
                )
            time.sleep(0.5)
        sys.stderr.write("\n")

    def _report(self, *, scorer: Scorer, trace_ids: list[int]) -> None:
        runs = self._runs(scorer, trace_ids)
        done = runs.filter(status=RunStatus.DONE).count()
        failed = runs.filter(status=RunStatus.FAILED)
        self.stdout.write(f"{scorer.name}: {done} traces scored, {failed.count()} failed.")
        for run in failed[:5]:
            self.stdout.write(f"  failed trace {run.trace_id}: {run.error[:200]}")
        if failed.exists():
            raise CommandError("Some runs failed (retry with --retry-failed).")
