"""Writes of the model side: scorers, score runs (enqueue, claim, complete, fail) and imported scores."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from annotate.models import Project, Step, Trace
from config.celery import task_send_on_commit

from . import signals
from .models import Backend, RunQueue, RunStatus, Scorer, ScoreRun, StepScore, WorkerHeartbeat
from .prm.contract import ScorerError
from .prm.params import params_check, params_known
from .prm.redact import redact_text, redact_url

# How many runs one Celery task scores together (the engine then packs them by token budget).
RUNS_PER_TASK = 32
SCORE_RUNS_TASK = "scoring.tasks.score_runs"


def run_lease() -> timedelta:
    """A run claimed (or queued) longer ago than this and not finished goes to another worker."""
    return timedelta(seconds=settings.STEPLENS_RUN_LEASE_SECONDS)


# Parameter names that would hold a secret: never stored (a scorer's params are shown to site
# admins, written to the admin, logs and run errors). A secret stays in the worker's environment,
# referenced by name (the remote backend's `api_key_env`).
_SECRET_PARAM = re.compile(r"(api_?key|token|secret|password|passwd|credential)", re.IGNORECASE)


def _check_no_secrets(params: dict[str, Any], *, known: Iterable[str] = ()) -> None:
    """`known`: the backend's own parameter names (`max_tokens`, `good_token`...), which hold
    no secret whatever they look like; the name rule is for the others."""
    known = set(known)
    for key, value in params.items():
        if _SECRET_PARAM.search(key) and not key.endswith("_env") and key not in known:
            raise ValidationError(
                {
                    "params": f"params.{key}: secrets are not stored with a scorer; put it in an "
                    f"environment variable of the workers and name it in params.{key}_env"
                }
            )
        if isinstance(value, str) and "://" in value:
            parts = urlsplit(value)
            if parts.username or parts.password or parts.query or parts.fragment:
                raise ValidationError(
                    {
                        "params": f"params.{key}: a URL with credentials or a query string "
                        f"({redact_url(value)} is fine); pass a key through an environment "
                        "variable instead (params.api_key_env)"
                    }
                )


# Backends that load a model from `model_path` (a directory on the workers).
_MODEL_BACKENDS = {
    Backend.STEP_HEAD,
    Backend.TOKEN_TAG,
    Backend.VALUE_HEAD,
    Backend.GENERATIVE,
    Backend.VISION,
}


def _check_params(backend: str, params: dict[str, Any]) -> None:
    """Secrets first (a secret's name is refused before its type is looked at), then the
    backend's own parser, the one the worker builds the scorer with."""
    _check_no_secrets(params, known=params_known(backend))
    try:
        params_check(backend, params)
    except ScorerError as exc:
        raise ValidationError({"params": str(exc)}) from exc


@transaction.atomic
def scorer_create(
    *,
    name: str,
    backend: str,
    model_path: str = "",
    revision: str = "",
    params: dict[str, Any] | None = None,
    threshold: float = 0.5,
    projects: Iterable[Project] = (),
) -> Scorer:
    _check_params(backend, params or {})
    if backend in _MODEL_BACKENDS and not model_path.strip():
        raise ValidationError(
            {
                "model_path": f"the {backend} backend reads a model: give its directory on the workers"
            }
        )
    scorer = Scorer(
        name=name,
        backend=Backend(backend),
        model_path=model_path,
        revision=revision,
        params=params or {},
        threshold=threshold,
    )
    scorer.full_clean()
    scorer.save()
    scorer.projects.set(list(projects))
    return scorer


def scorer_update(
    *,
    scorer: Scorer,
    model_path: str | None = None,
    revision: str | None = None,
    params: dict[str, Any] | None = None,
    threshold: float | None = None,
    rescore: bool = False,
) -> Scorer:
    """Change what a scorer computes; any change to the model or its parameters bumps the version.

    ``rescore`` bumps it with nothing changed here (the weights were replaced in place, or a
    steplens upgrade changed what the backend computes): every trace is scored again.
    """
    if params is not None:
        _check_params(scorer.backend, params)
    changed = rescore
    for field, value in (("model_path", model_path), ("revision", revision), ("params", params)):
        if value is not None and getattr(scorer, field) != value:
            setattr(scorer, field, value)
            changed = True
    if threshold is not None:
        scorer.threshold = threshold
    if changed:
        scorer.version += 1
    scorer.full_clean()
    scorer.save()
    return scorer


def project_scorers_set(*, project: Project, scorers: Iterable[Scorer]) -> list[Scorer]:
    """Choose which scorers score this project (the others stop being shown and enqueued)."""
    chosen = list(scorers)
    project.scorers.set(chosen)
    return chosen


def _enqueue_tasks(*, run_ids_by_scorer: dict[int, list[int]], queue: str) -> None:
    # By name: scoring.tasks imports this module, so this one never imports it.
    for run_ids in run_ids_by_scorer.values():
        for start in range(0, len(run_ids), RUNS_PER_TASK):
            chunk = run_ids[start : start + RUNS_PER_TASK]
            task_send_on_commit(SCORE_RUNS_TASK, chunk, queue=queue)


def score_runs_enqueue(
    *,
    traces: Sequence[Trace] | Iterable[int],
    scorers: Sequence[Scorer],
    queue: str = RunQueue.BULK,
    retry_failed: bool = False,
) -> list[ScoreRun]:
    """Create the runs that are missing for the scorers' current versions and enqueue them.

    Runs that exist already (queued, running or done) are left alone, so this is safe to call on
    every page open; failed runs are queued again only with `retry_failed`.
    """
    queue = RunQueue(queue)
    # An external scorer's scores only ever come from an import: nothing to run.
    scorers = [s for s in scorers if s.backend != Backend.EXTERNAL]
    trace_ids = [t.pk if isinstance(t, Trace) else int(t) for t in traces]
    if not trace_ids or not scorers:
        return []
    now = timezone.now()
    to_enqueue: dict[int, list[int]] = {}
    with transaction.atomic():
        for scorer in scorers:
            existing = dict(
                ScoreRun.objects.filter(
                    scorer=scorer, scorer_version=scorer.version, trace_id__in=trace_ids
                ).values_list("trace_id", "status")
            )
            missing = [tid for tid in trace_ids if tid not in existing]
            ScoreRun.objects.bulk_create(
                [
                    ScoreRun(
                        trace_id=tid,
                        scorer=scorer,
                        scorer_version=scorer.version,
                        queue=queue,
                        queued_at=now,
                    )
                    for tid in missing
                ],
                ignore_conflicts=True,
            )
            if retry_failed:
                ScoreRun.objects.filter(
                    scorer=scorer,
                    scorer_version=scorer.version,
                    trace_id__in=[t for t, s in existing.items() if s == RunStatus.FAILED],
                ).update(status=RunStatus.QUEUED, error="", queue=queue, queued_at=now)
            fresh = ScoreRun.objects.filter(
                scorer=scorer,
                scorer_version=scorer.version,
                trace_id__in=trace_ids,
                status=RunStatus.QUEUED,
                queued_at=now,
            )
            ids = list(fresh.values_list("pk", flat=True))
            if ids:
                to_enqueue[scorer.pk] = ids
        _enqueue_tasks(run_ids_by_scorer=to_enqueue, queue=queue)
    return list(ScoreRun.objects.filter(pk__in=[i for ids in to_enqueue.values() for i in ids]))


def project_backfill(
    *, project: Project, scorer: Scorer, retry_failed: bool = False
) -> list[ScoreRun]:
    """ "Score all": the scorer's missing runs over every trace of the project, on the bulk queue."""
    return score_runs_enqueue(
        traces=list(project.traces.values_list("pk", flat=True)),
        scorers=[scorer],
        queue=RunQueue.BULK,
        retry_failed=retry_failed,
    )


def final_answers_set(*, verdicts: dict[int, tuple[bool, str]]) -> int:
    """Write decided final-answer correctness ({trace id: (correct, the answer compared)}) where it
    is still unknown (an imported verdict is never overwritten); the answer is kept when the trace
    had none. Returns how many traces changed."""
    changed = 0
    with transaction.atomic():
        for trace_id, (correct, answer) in verdicts.items():
            changed += Trace.objects.filter(
                pk=trace_id, final_answer_correct__isnull=True, final_answer=""
            ).update(final_answer_correct=correct, final_answer=answer[:10_000])
            changed += Trace.objects.filter(pk=trace_id, final_answer_correct__isnull=True).update(
                final_answer_correct=correct
            )
    return changed


def score_run_retry(*, run: ScoreRun) -> ScoreRun:
    if run.status != RunStatus.FAILED:
        raise ValidationError(
            {"status": f"Only a failed run can be retried (this one is {run.status})."}
        )
    if run.scorer.backend == Backend.EXTERNAL:
        raise ValidationError(
            {"status": f"{run.scorer.name} is external: import its scores again (import_scores)."}
        )
    with transaction.atomic():
        ScoreRun.objects.filter(pk=run.pk).update(
            status=RunStatus.QUEUED, error="", queue=RunQueue.INTERACTIVE, queued_at=timezone.now()
        )
        _enqueue_tasks(run_ids_by_scorer={run.scorer_id: [run.pk]}, queue=RunQueue.INTERACTIVE)
    run.refresh_from_db()
    return run


def worker_id(node: str) -> str:
    """Who claims a run: the Celery node and this process (`gpu@host#1234`)."""
    return f"{node}#{os.getpid()}"


def _process_dead(claimed_by: str, node: str) -> bool:
    """Whether a run was claimed by a process of this node (so, of this machine) that is gone:
    a worker child killed mid-run (the OOM killer) leaves its runs `running`."""
    owner, _, pid = claimed_by.rpartition("#")
    if owner != node or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def score_runs_claim(*, run_ids: Sequence[int], worker: str = "") -> list[ScoreRun]:
    """Mark the given runs running for this worker (`worker_id(node)`) and return them.

    A run is claimable when queued, or running with an expired lease (its worker died), or running
    for a process of this same node that is no longer alive (the redelivered task of a killed
    child takes its runs back at once). Done runs are skipped: a task delivered twice scores
    nothing twice.
    """
    stale = timezone.now() - run_lease()
    claimable = Q(status=RunStatus.QUEUED) | Q(status=RunStatus.RUNNING, started_at__lt=stale)
    node = worker.rpartition("#")[0]
    with transaction.atomic():
        candidates = ScoreRun.objects.select_for_update(skip_locked=True).filter(
            pk__in=list(run_ids)
        )
        ids = list(candidates.filter(claimable).values_list("pk", flat=True))
        if node:
            orphans = candidates.filter(
                status=RunStatus.RUNNING, claimed_by__startswith=f"{node}#"
            ).exclude(pk__in=ids)
            ids += [
                pk
                for pk, claimed_by in orphans.values_list("pk", "claimed_by")
                if _process_dead(claimed_by, node)
            ]
        ScoreRun.objects.filter(pk__in=ids).update(
            status=RunStatus.RUNNING,
            started_at=timezone.now(),
            attempts=F("attempts") + 1,
            claimed_by=worker,
        )
    return list(ScoreRun.objects.filter(pk__in=ids).select_related("scorer", "trace__problem"))


@dataclass(frozen=True)
class RunResult:
    """What the engine computed for one run, as plain values."""

    run_id: int
    step_scores: Sequence[float]
    step_details: Sequence[dict[str, Any]] | None = None
    trajectory_score: float | None = None
    response_score: float | None = None
    details: dict[str, Any] | None = None
    duration_ms: float | None = None


def _clean_score(value: float, *, where: str) -> float:
    score = float(value)
    if not 0.0 <= score <= 1.0:
        raise ValidationError({"scores": f"{where}: score {score!r} is outside [0, 1]."})
    return score


def score_run_complete(*, result: RunResult) -> ScoreRun:
    """Write one run's step scores in one transaction; writing the same result twice is harmless."""
    with transaction.atomic():
        run = ScoreRun.objects.select_for_update().get(pk=result.run_id)
        step_ids = list(run.trace.steps.order_by("index").values_list("pk", flat=True))
        if len(result.step_scores) != len(step_ids):
            raise ValidationError(
                {
                    "scores": f"run {run.pk}: {len(result.step_scores)} scores for "
                    f"{len(step_ids)} steps."
                }
            )
        details = result.step_details or [{} for _ in step_ids]
        StepScore.objects.filter(run=run).delete()
        StepScore.objects.bulk_create(
            StepScore(
                run=run,
                step_id=step_id,
                score=_clean_score(score, where=f"run {run.pk} step {i}"),
                details=detail or {},
            )
            for i, (step_id, score, detail) in enumerate(
                zip(step_ids, result.step_scores, details, strict=True)
            )
        )
        run.status = RunStatus.DONE
        run.error = ""
        run.trajectory_score = (
            None
            if result.trajectory_score is None
            else _clean_score(result.trajectory_score, where=f"run {run.pk} trajectory")
        )
        run.response_score = (
            None
            if result.response_score is None
            else _clean_score(result.response_score, where=f"run {run.pk} response")
        )
        run.details = result.details or {}
        run.finished_at = timezone.now()
        run.duration_ms = result.duration_ms
        run.save()
        # New scores change what labelling this trace is worth (review's queue listens).
        signals.scores_written.send(
            sender=ScoreRun, project=run.trace.project, trace_ids=[run.trace_id]
        )
    return run


def score_run_fail(*, run_id: int, error: str) -> None:
    """A run failed: its error is stored (and shown to annotators) with every URL redacted."""
    ScoreRun.objects.filter(pk=run_id).exclude(status=RunStatus.DONE).update(
        status=RunStatus.FAILED, error=redact_text(error)[:5000], finished_at=timezone.now()
    )


def _requeue(runs: QuerySet[ScoreRun]) -> int:
    """Put these unfinished runs back in the queue and send them to the workers again.

    The rows are locked as they are read and a run a worker holds locked (claiming it now) is
    skipped: read-then-update by id re-queued a run a worker had claimed in between, under the
    worker that was scoring it (tests/scoring/test_sweep_concurrency.py). The next sweep sees
    it again if that claim was rolled back."""
    by_scorer: dict[tuple[int, str], list[int]] = {}
    with transaction.atomic():
        locked = runs.select_for_update(skip_locked=True)
        for run_id, scorer_id, queue in locked.values_list("pk", "scorer_id", "queue"):
            by_scorer.setdefault((scorer_id, queue), []).append(run_id)
        ids = [run_id for chunk in by_scorer.values() for run_id in chunk]
        ScoreRun.objects.filter(pk__in=ids).update(
            status=RunStatus.QUEUED, queued_at=timezone.now(), claimed_by=""
        )
        for (scorer_id, queue), chunk in by_scorer.items():
            _enqueue_tasks(run_ids_by_scorer={scorer_id: chunk}, queue=queue)
    return len(ids)


def score_runs_sweep(*, older_than: timedelta | None = None) -> int:
    """Re-enqueue runs stuck queued or running (a lost message, a dead worker); returns how many."""
    cutoff = timezone.now() - (run_lease() if older_than is None else older_than)
    return _requeue(
        ScoreRun.objects.filter(
            Q(status=RunStatus.QUEUED, queued_at__lt=cutoff)
            | Q(status=RunStatus.RUNNING, started_at__lt=cutoff)
        )
    )


def score_runs_renew(*, worker: str) -> int:
    """Renew the lease of the runs this worker process (`worker_id`) is scoring: `started_at` is
    the lease's clock, so a live worker whose batch outlasts STEPLENS_RUN_LEASE_SECONDS keeps
    its runs; a dead one stops renewing and its runs go back after one lease. Returns how many."""
    return ScoreRun.objects.filter(status=RunStatus.RUNNING, claimed_by=worker).update(
        started_at=timezone.now()
    )


def score_runs_release_worker(*, worker: str) -> int:
    """A worker node that (re)starts runs nothing: give its unfinished runs back to the queue."""
    return _requeue(ScoreRun.objects.filter(status=RunStatus.RUNNING, claimed_by=worker))


def worker_heartbeat(*, hostname: str, queues: str) -> None:
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"queues": queues, "last_seen": timezone.now()}
    )


class ScoresFileError(ValueError):
    """A malformed scores file; nothing was written."""

    def __init__(self, *, file: str, line: int | None, field: str | None, message: str) -> None:
        self.file, self.line, self.field, self.message = file, line, field, message
        where = file + (f", line {line}" if line is not None else "")
        where += f", field '{field}'" if field else ""
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class ScoresImportResult:
    runs_written: int
    steps_scored: int
    scorer: Scorer | None = None
    created: bool = False  # an external scorer registered by this import

    def summary(self) -> str:
        text = f"{self.runs_written} runs, {self.steps_scored} step scores"
        if self.scorer is not None and self.scorer.backend == Backend.EXTERNAL:
            text += f" (external scorer, version {self.scorer.version}"
            text += ", registered by this import)" if self.created else ")"
        return text


def scores_import_by_name(
    *, project: Project, scorer_name: str, stream: IO[bytes], filename: str
) -> ScoresImportResult:
    """scores_import() for a scorer named `scorer_name`: a name not registered yet becomes an
    external scorer of this project (and an external scorer is attached to the project it is
    imported into), all in the import's transaction: a refused file registers nothing."""
    with transaction.atomic():
        scorer = Scorer.objects.filter(name=scorer_name).first()
        created = scorer is None
        if scorer is None:
            try:
                scorer = scorer_create(name=scorer_name, backend=Backend.EXTERNAL)
            except ValidationError as exc:
                raise ScoresFileError(
                    file=filename, line=None, field="scorer", message="; ".join(exc.messages)
                ) from None
        if scorer.backend == Backend.EXTERNAL:
            scorer.projects.add(project)
        result = scores_import(project=project, scorer=scorer, stream=stream, filename=filename)
    return ScoresImportResult(
        runs_written=result.runs_written,
        steps_scored=result.steps_scored,
        scorer=result.scorer,
        created=created,
    )


def scores_import(
    *, project: Project, scorer: Scorer, stream: IO[bytes], filename: str
) -> ScoresImportResult:
    """Load scores computed elsewhere: JSONL `{"trace_id", "scores": [...], "trajectory_score"?,
    "response_score"? (of a trajectory-response trace: its response part alone), "details"?: [{...} or null, one per score]}` (a critique, a check: kept per step, shown).

    `trace_id` is the trace's external id as imported. Everything is validated before anything is
    written; a second import of the same file replaces the same runs' scores (no duplicates).
    An external scorer is versioned by import: a file that changes scores the current version
    already holds makes a new version (the older runs stay, as any scorer's older versions do);
    a file that only adds traces, or repeats what is there, adds to the current version.
    """
    if not scorer.projects.filter(pk=project.pk).exists():
        raise ScoresFileError(
            file=filename,
            line=None,
            field="scorer",
            message=f"scorer {scorer.name!r} does not score project {project.slug}: attach it "
            f"first (manage.py add_scorer {scorer.name} --backend {scorer.backend} "
            f"--project {project.slug})",
        )
    parsed: list[tuple[int, str, list[float], float | None]] = []
    responses: dict[int, float] = {}  # line -> response-level score, when given
    step_details: dict[int, list[dict[str, Any]]] = {}  # line -> per-step details, when given
    for number, raw in enumerate(stream, start=1):

        def fail(field: str | None, message: str, *, line: int = number) -> ScoresFileError:
            return ScoresFileError(file=filename, line=line, field=field, message=message)

        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            raise fail(None, f"not UTF-8 text (byte {exc.start + 1} of the line)") from None
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise fail(None, f"invalid JSON ({exc.msg} at column {exc.colno})") from exc
        except RecursionError:
            raise fail(None, "JSON nested too deeply") from None
        if not isinstance(record, dict):
            raise fail(None, f"expected a JSON object, got {type(record).__name__}")
        external_id = record.get("trace_id")
        if not isinstance(external_id, str | int) or isinstance(external_id, bool):
            raise fail("trace_id", "missing, or not a string")
        scores = record.get("scores")
        if not isinstance(scores, list) or not all(
            isinstance(s, int | float) and not isinstance(s, bool) for s in scores
        ):
            raise fail("scores", "expected a list of numbers")
        if any(not 0.0 <= float(s) <= 1.0 for s in scores):
            raise fail("scores", "every score must lie in [0, 1]")
        trajectory = record.get("trajectory_score")
        if trajectory is not None and (
            not isinstance(trajectory, int | float)
            or isinstance(trajectory, bool)
            or not 0.0 <= float(trajectory) <= 1.0
        ):
            raise fail("trajectory_score", "expected a number in [0, 1]")
        response = record.get("response_score")
        if response is not None:
            if (
                not isinstance(response, int | float)
                or isinstance(response, bool)
                or not 0.0 <= float(response) <= 1.0
            ):
                raise fail("response_score", "expected a number in [0, 1]")
            responses[number] = float(response)
        details = record.get("details")
        if details is not None:
            if not isinstance(details, list):
                raise fail("details", "expected a list of objects (or null), one per score")
            if len(details) != len(scores):
                raise fail(
                    "details",
                    f"expected one object (or null) per score: {len(details)} for "
                    f"{len(scores)} scores",
                )
            for i, item in enumerate(details):
                if item is not None and not isinstance(item, dict):
                    raise fail(
                        f"details[{i}]", f"expected an object or null, got {type(item).__name__}"
                    )
            step_details[number] = [item or {} for item in details]
        parsed.append(
            (
                number,
                str(external_id),
                [float(s) for s in scores],
                None if trajectory is None else float(trajectory),
            )
        )
    if not parsed:
        raise ScoresFileError(file=filename, line=None, field=None, message="no records")

    traces = {
        t.external_id: t
        for t in Trace.objects.filter(project=project, external_id__in=[p[1] for p in parsed])
    }
    step_counts = dict(
        Step.objects.filter(trace__in=traces.values())
        .values("trace_id")
        .annotate(n=Count("pk"))
        .values_list("trace_id", "n")
    )
    for number, external_id, scores, _ in parsed:
        trace = traces.get(external_id)
        if trace is None:
            raise ScoresFileError(
                file=filename,
                line=number,
                field="trace_id",
                message=f"no trace {external_id!r} in project {project.slug}",
            )
        if len(scores) != step_counts.get(trace.pk, 0):
            raise ScoresFileError(
                file=filename,
                line=number,
                field="scores",
                message=f"{len(scores)} scores for a trace of {step_counts.get(trace.pk, 0)} steps",
            )

    steps_scored = 0
    source = {"file": os.path.basename(filename)}
    with transaction.atomic():
        if scorer.backend == Backend.EXTERNAL and _changes_stored_scores(
            scorer=scorer, traces=traces, parsed=parsed, responses=responses
        ):
            Scorer.objects.filter(pk=scorer.pk).update(version=F("version") + 1)
            scorer.refresh_from_db(fields=["version"])
        for number, external_id, scores, trajectory in parsed:
            trace = traces[external_id]
            try:
                run, _ = ScoreRun.objects.get_or_create(
                    trace=trace,
                    scorer=scorer,
                    scorer_version=scorer.version,
                    defaults={"imported": True, "queue": RunQueue.BULK},
                )
            except IntegrityError:  # pragma: no cover - a concurrent creator won the race
                run = ScoreRun.objects.get(
                    trace=trace, scorer=scorer, scorer_version=scorer.version
                )
            ScoreRun.objects.filter(pk=run.pk).update(imported=True)
            score_run_complete(
                result=RunResult(
                    run_id=run.pk,
                    step_scores=scores,
                    step_details=step_details.get(number),
                    trajectory_score=trajectory,
                    response_score=responses.get(number),
                    details={"import": source},
                )
            )
            steps_scored += len(scores)
    return ScoresImportResult(runs_written=len(parsed), steps_scored=steps_scored, scorer=scorer)


def _changes_stored_scores(
    *,
    scorer: Scorer,
    traces: dict[str, Trace],
    parsed: Sequence[tuple[int, str, list[float], float | None]],
    responses: dict[int, float],
) -> bool:
    """Whether the file gives any trace that the scorer's current version has scored other step
    scores, another trajectory or another response score than those stored."""
    runs = {
        run.trace_id: run
        for run in ScoreRun.objects.filter(
            scorer=scorer,
            scorer_version=scorer.version,
            status=RunStatus.DONE,
            trace__in=[traces[p[1]] for p in parsed],
        )
    }
    if not runs:
        return False
    stored: dict[int, list[tuple[int, float]]] = {}
    for run_id, index, score in StepScore.objects.filter(run__in=runs.values()).values_list(
        "run_id", "step__index", "score"
    ):
        stored.setdefault(run_id, []).append((index, score))
    for number, external_id, scores, trajectory in parsed:
        run = runs.get(traces[external_id].pk)
        if run is None:
            continue
        if [s for _, s in sorted(stored.get(run.pk, []))] != scores:
            return True
        if run.trajectory_score != trajectory or run.response_score != responses.get(number):
            return True
    return False
