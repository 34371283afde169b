"""Training PRMs from snapshots, Django side: runs as jobs, their result as a scorer version,
promotion to a project's live scorer. The engine is `scoring.prm.training` (imported inside the
worker's functions only: the web process never imports torch).

A run trains on its snapshot's train split (TRL stepwise rows; the test split is never trained
on), evaluates the checkpoint on the test split with the real backend, writes the figures into the
model card, and registers the checkpoint as a new version of its scorer, attached to the project.
"""

from __future__ import annotations

import json
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.utils import timezone

from annotate import selectors as annotate_selectors
from annotate.models import Project, Role, Step, Trace
from annotate.selectors import UserLike
from config.celery import task_send_on_commit
from scoring import services as scoring_services
from scoring.models import Backend, RunQueue, RunStatus, Scorer, StepScore
from scoring.prm.demo_params import TINY_BASE_PARAMS
from scoring.prm.redact import redact_text

from .models import (
    ExportFormat,
    ExportSnapshot,
    ExportStatus,
    PromotionAction,
    ScorerPromotion,
    TrainingRun,
    TrainingStatus,
)
from .selectors import exports_root

TRAIN_TASK = "snapshots.tasks.training_run_task"
TRAIN_MIN_ROLE = Role.ADMIN  # training and promoting change what every annotator sees
PROMOTE_MIN_ROLE = Role.REVIEWER
# A running run whose worker has not written for this long is dead (killed, OOM, machine lost).
STALE_AFTER_S = 300
PROGRESS_EVERY_S = 1.0
CURVE_FRACTIONS = (0.25, 0.5, 0.75)


def models_root() -> Path:
    return Path(settings.VAR_DIR) / "models"


# --- reads (permission checks) -------------------------------------------------------------------


def project_for_training(*, user: UserLike, slug: str, min_role: Role = TRAIN_MIN_ROLE) -> Project:
    return annotate_selectors.project_get_for_user(user=user, slug=slug, min_role=min_role)


def training_run_list_for_user(*, user: UserLike, project: Project) -> QuerySet[TrainingRun]:
    project_for_training(user=user, slug=project.slug, min_role=Role.REVIEWER)
    return TrainingRun.objects.filter(project=project).select_related("snapshot", "scorer")


def training_run_get_for_user(*, user: UserLike, run_id: int) -> TrainingRun:
    run = TrainingRun.objects.select_related("project", "snapshot", "scorer").filter(pk=run_id)
    found = run.first()
    if found is None:
        raise Http404("No such training run.")
    project_for_training(user=user, slug=found.project.slug, min_role=Role.REVIEWER)
    return found


def live_scorer(*, project: Project) -> ScorerPromotion | None:
    """The project's live scorer: its latest promotion, unless a demotion came after it."""
    latest = ScorerPromotion.objects.filter(project=project).select_related("scorer").first()
    return latest if latest is not None and latest.action == PromotionAction.PROMOTE else None


def is_stale(run: TrainingRun, *, now: Any = None) -> bool:
    now = now or timezone.now()
    seen = run.heartbeat_at or run.started_at or run.created_at
    return run.status == TrainingStatus.RUNNING and (now - seen).total_seconds() > STALE_AFTER_S


# --- writes -------------------------------------------------------------------------------------


def _snapshot_for_training(*, project: Project, name: str) -> ExportSnapshot:
    """NAME or NAME@VERSION of one of the project's snapshots (the latest version by default)."""
    base, _, version = name.partition("@")
    snapshots = ExportSnapshot.objects.filter(project=project, name=base)
    if version:
        if not version.isdigit():
            raise ValidationError({"snapshot": f"{name!r}: the version after @ is a number"})
        snapshots = snapshots.filter(version=int(version))
    snapshot = snapshots.order_by("-version").first()
    if snapshot is None:
        raise ValidationError({"snapshot": f"no snapshot {name!r} in project {project.slug}"})
    if snapshot.format != ExportFormat.TRL or snapshot.file_format != "jsonl":
        raise ValidationError(
            {"snapshot": f"{snapshot}: training reads TRL stepwise JSON Lines (format trl, jsonl)"}
        )
    if snapshot.status != ExportStatus.DONE:
        raise ValidationError({"snapshot": f"{snapshot} is {snapshot.status}, not built yet"})
    return snapshot


def _check_base(base: str) -> str:
    base = base.strip()
    if base == "tiny":
        return base
    path = Path(base)
    if not path.is_absolute() or not (path / "config.json").is_file():
        raise ValidationError(
            {
                "base": f"{base!r}: 'tiny' or an absolute path to a local model directory "
                "(with its config.json)"
            }
        )
    return base


def training_run_create(
    *,
    user: UserLike | None,
    project: Project,
    snapshot: str,
    base: str,
    scorer_name: str,
    params: dict[str, Any] | None = None,
    curve: bool = False,
    enqueue: bool = True,
) -> TrainingRun:
    """Check a training request and record it; the run is sent to the `train` queue on commit."""
    # The engine module is torch-free at import (torch is imported inside its training
    # functions), so the web process may check parameters with its own dataclass.
    from scoring.prm.training import TrainParams, TrainParamsError

    chosen = _snapshot_for_training(project=project, name=snapshot)
    existing = Scorer.objects.filter(name=scorer_name).first()
    if existing is not None and existing.backend != Backend.STEP_HEAD:
        raise ValidationError(
            {
                "scorer": f"scorer {scorer_name!r} exists with backend {existing.backend}; "
                "a trained PRM is a step_head scorer: choose another name"
            }
        )
    base = _check_base(base)
    given = dict(params or {})
    if base == "tiny":
        # A tiny base is a model trained from scratch: the engine's defaults (made for a
        # pre-trained base: one epoch at 1e-5) would teach it nothing. What the request leaves
        # out comes from the measured configuration (docs/training.md, "Measured").
        given = {**TINY_BASE_PARAMS, **given}
    if "max_length" in given and "batch_tokens" not in (params or {}):
        # A longer row than the batch's token budget would be refused: the budget grows with it.
        budget = given.get("batch_tokens", TrainParams.batch_tokens)
        given["batch_tokens"] = max(budget, given["max_length"])
    try:
        clean = TrainParams.from_dict(given).as_dict()
    except TrainParamsError as exc:
        raise ValidationError({"params": str(exc)}) from exc
    with transaction.atomic():
        run = TrainingRun.objects.create(
            project=project,
            snapshot=chosen,
            base=base,
            scorer_name=scorer_name,
            params=clean,
            curve=curve,
            created_by=user if user is not None and user.is_authenticated else None,
        )
        if enqueue:
            task_send_on_commit(TRAIN_TASK, run.pk, queue=settings.STEPLENS_TRAIN_QUEUE)
    return run


def training_run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Ask a run to stop: a queued one stops at once, a running one at its next step."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if run.status == TrainingStatus.QUEUED:
            run.status, run.finished_at = TrainingStatus.CANCELLED, timezone.now()
        elif run.status != TrainingStatus.RUNNING:
            raise ValidationError({"status": f"the run is {run.status}: nothing to cancel"})
        run.cancel_requested = True
        run.save(update_fields=["status", "finished_at", "cancel_requested"])
    return run


def training_run_restart(*, run: TrainingRun, user: UserLike | None) -> TrainingRun:
    """A new run with the same snapshot, base and parameters (for a failed, cancelled or dead one)."""
    if run.status == TrainingStatus.RUNNING and not is_stale(run):
        raise ValidationError({"status": "the run is still running"})
    if run.status == TrainingStatus.DONE:
        raise ValidationError({"status": "the run is done: start a new one to train again"})
    if run.status in (TrainingStatus.RUNNING, TrainingStatus.QUEUED):
        _fail(
            run.pk,
            f"restarted: the worker stopped (no progress for {STALE_AFTER_S} s)"
            if run.status == TrainingStatus.RUNNING
            else "restarted",
        )
    return training_run_create(
        user=user,
        project=run.project,
        snapshot=f"{run.snapshot.name}@{run.snapshot.version}",
        base=run.base,
        scorer_name=run.scorer_name,
        params=run.params,
        curve=run.curve,
    )


def training_runs_sweep(*, now: Any = None) -> int:
    """Runs whose worker died (no heartbeat for STALE_AFTER_S) become failed, with the reason."""
    count = 0
    for run in TrainingRun.objects.filter(status=TrainingStatus.RUNNING):
        if is_stale(run, now=now):
            _fail(run.pk, f"the worker stopped (no progress for {STALE_AFTER_S} s): restart it")
            count += 1
    return count


def _fail(run_id: int, error: str) -> None:
    TrainingRun.objects.filter(
        pk=run_id, status__in=[TrainingStatus.QUEUED, TrainingStatus.RUNNING]
    ).update(
        status=TrainingStatus.FAILED, error=redact_text(error)[:10000], finished_at=timezone.now()
    )


def _claim(run_id: int) -> TrainingRun | None:
    """Take a queued run (or one whose worker died) for this worker; None when it is not ours."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            return None
        if run.status == TrainingStatus.RUNNING and not is_stale(run):
            return None  # another worker holds it
        if run.status not in (TrainingStatus.QUEUED, TrainingStatus.RUNNING):
            return None  # done, failed or cancelled: a redelivered task does nothing
        now = timezone.now()
        run.status, run.started_at, run.heartbeat_at = TrainingStatus.RUNNING, now, now
        run.worker = socket.gethostname()
        run.progress_done, run.loss_curve, run.error = 0, [], ""
        run.save()
    return run


def _read_rows(snapshot: ExportSnapshot, split: str) -> list[dict[str, Any]]:
    path = exports_root() / snapshot.path / f"{split}.jsonl"
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as stream:
        return [json.loads(line) for line in stream if line.strip()]


def output_dir_for(run: TrainingRun) -> Path:
    """The run's own checkpoint folder: named by its id, so two runs never write the same one."""
    return models_root() / run.project.slug / run.scorer_name / f"run-{run.pk}"


def training_run_execute(
    *, run_id: int, echo: Callable[[dict[str, Any]], None] | None = None
) -> TrainingRun | None:
    """Train, evaluate on the test split, register the scorer version. In a worker (or --sync)."""
    from scoring.prm import training as engine

    run = _claim(run_id)
    if run is None:
        return TrainingRun.objects.filter(pk=run_id).first()
    log: list[str] = []

    def note(text: str) -> None:
        log.append(f"{timezone.now():%H:%M:%S} {text}")
        TrainingRun.objects.filter(pk=run_id).update(
            log="\n".join(log), heartbeat_at=timezone.now()
        )

    last_write = [0.0]
    curve: list[dict[str, Any]] = []

    def on_progress(event: dict[str, Any]) -> None:
        if echo is not None:
            echo(event)
        curve.append({k: event.get(k) for k in ("step", "epoch", "loss")})
        if time.monotonic() - last_write[0] >= PROGRESS_EVERY_S:
            last_write[0] = time.monotonic()
            TrainingRun.objects.filter(pk=run_id).update(
                progress_done=event.get("step", 0),
                progress_total=event.get("total_steps", 0),
                loss_curve=curve,
                heartbeat_at=timezone.now(),
            )

    def should_stop() -> bool:
        return TrainingRun.objects.filter(pk=run_id, cancel_requested=True).exists()

    try:
        params = engine.TrainParams.from_dict(run.params)
        train_rows = _read_rows(run.snapshot, "train")
        test_rows = _read_rows(run.snapshot, "test")
        note(
            f"snapshot {run.snapshot} ({run.snapshot.sha256[:12]}): {len(train_rows)} train rows, "
            f"{len(test_rows)} test rows; base {run.base}"
        )
        if not train_rows:
            raise ValidationError("the snapshot's train split is empty")
        out = output_dir_for(run)
        result = engine.train_prm(
            rows=train_rows,
            base=run.base,
            output_dir=out,
            params=params,
            on_progress=on_progress,
            should_stop=should_stop,
            snapshot_sha256=run.snapshot.sha256,
        )
        note(
            f"trained: {result.optimizer_steps} steps in {result.train_seconds:.1f} s, "
            f"{result.tokens_per_second:.0f} tokens/s"
        )
        metrics: dict[str, Any] = {}
        if test_rows:
            metrics["test"] = engine.evaluate_rows(
                out, test_rows, backend=result.backend, scorer_params=result.scorer_params
            )
            previous = _previous_checkpoint(run)
            if previous is not None:
                metrics["previous"] = engine.evaluate_rows(
                    previous.output_path,
                    test_rows,
                    backend=result.backend,
                    scorer_params=previous.result.get("scorer_params", {}),
                )
                metrics["previous"]["scorer_version"] = previous.scorer_version
            metrics["others"] = _others_on_rows(run, test_rows, engine.rows_metrics)
            note(f"test split: step AUROC {metrics['test']['step_auroc']}")
        engine.write_model_card(out, metrics=metrics)
        points: list[dict[str, Any]] = []
        if run.curve and test_rows:
            points = engine.learning_curve(
                rows=train_rows,
                eval_rows=test_rows,
                base=run.base,
                output_root=out.with_name(f"{out.name}-curve"),
                params=params,
                fractions=CURVE_FRACTIONS,
                should_stop=should_stop,
                snapshot_sha256=run.snapshot.sha256,
            )
            points.append({"fraction": 1.0, "train_rows": result.train_rows, **metrics["test"]})
            note(
                "learning curve: "
                + ", ".join(f"{p['fraction']:.0%}: {p['step_auroc']}" for p in points)
            )
        with transaction.atomic():
            scorer = _register(run, result)
            TrainingRun.objects.filter(pk=run_id).update(
                status=TrainingStatus.DONE,
                result=result.as_dict(),
                metrics=metrics,
                learning_curve=points,
                loss_curve=curve,
                progress_done=result.optimizer_steps,
                progress_total=result.optimizer_steps,
                output_path=str(out),
                scorer=scorer,
                scorer_version=scorer.version,
                finished_at=timezone.now(),
                heartbeat_at=timezone.now(),
            )
    except engine.TrainingCancelled:
        TrainingRun.objects.filter(pk=run_id).update(
            status=TrainingStatus.CANCELLED, finished_at=timezone.now(), loss_curve=curve
        )
    except Exception as exc:  # the reason is on the run, shown on its page
        note("failed")
        tail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        _fail(run_id, tail)
    return TrainingRun.objects.get(pk=run_id)


def _others_on_rows(
    run: TrainingRun, rows: list[dict[str, Any]], rows_metrics: Callable[..., dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Every other scorer of the project on the same test rows and gold steps, from the scores
    it already stored (its current version's finished runs): the rows it has scored in full are
    compared, and the figures say how many of all the rows that was."""
    by_problem: dict[str, list[tuple[int, list[str]]]] = {}
    for trace in (
        Trace.objects.filter(project=run.project, problem__text__in={r["prompt"] for r in rows})
        .select_related("problem")
        .prefetch_related(Prefetch("steps", queryset=Step.objects.order_by("index")))
    ):
        texts = [step.text for step in trace.steps.all()]
        by_problem.setdefault(trace.problem.text, []).append((trace.pk, texts))
    matched: list[tuple[dict[str, Any], int]] = []  # (row, trace id)
    for row in rows:
        n = len(row["completions"])
        for trace_id, texts in by_problem.get(row["prompt"], []):
            if texts[:n] == list(row["completions"]):
                matched.append((row, trace_id))
                break
    out: dict[str, dict[str, Any]] = {}
    for scorer in Scorer.objects.filter(projects=run.project).exclude(name=run.scorer_name):
        scores: dict[int, dict[int, float]] = {}
        for trace_id, index, score in StepScore.objects.filter(
            run__scorer=scorer,
            run__scorer_version=scorer.version,
            run__status=RunStatus.DONE,
            run__trace_id__in=[t for _, t in matched],
        ).values_list("run__trace_id", "step__index", "score"):
            scores.setdefault(trace_id, {})[index] = score
        kept_rows, kept_scores = [], []
        for row, trace_id in matched:
            n = len(row["completions"])
            got = scores.get(trace_id, {})
            if all(i in got for i in range(n)):
                kept_rows.append(row)
                kept_scores.append([got[i] for i in range(n)])
        if kept_rows:
            out[scorer.name] = {
                **rows_metrics(kept_rows, kept_scores, threshold=scorer.threshold),
                "scorer_version": scorer.version,
                "of_rows": len(rows),
            }
    return out


def _previous_checkpoint(run: TrainingRun) -> TrainingRun | None:
    """The last finished run of the same scorer, if its checkpoint is still on disk."""
    prev = (
        TrainingRun.objects.filter(scorer_name=run.scorer_name, status=TrainingStatus.DONE)
        .exclude(pk=run.pk)
        .order_by("-finished_at")
        .first()
    )
    if prev is None or not Path(prev.output_path).is_dir():
        return None
    return prev


def _register(run: TrainingRun, result: Any) -> Scorer:
    """The checkpoint as a new version of the run's scorer, attached to the project."""
    existing = Scorer.objects.filter(name=run.scorer_name).first()
    if existing is None:
        return scoring_services.scorer_create(
            name=run.scorer_name,
            backend=result.backend,
            model_path=str(result.output_dir),
            params=result.scorer_params,
            projects=[run.project],
        )
    scorer = scoring_services.scorer_update(
        scorer=existing, model_path=str(result.output_dir), params=result.scorer_params
    )
    scorer.projects.add(run.project)
    return scorer


def scorer_promote(
    *, project: Project, scorer: Scorer, user: UserLike | None, run: TrainingRun | None = None
) -> ScorerPromotion:
    """Make this scorer version the project's live scorer: attached to the project, every trace
    scored with it (bulk queue), and the queue's priorities follow as its scores arrive."""
    if run is not None and run.project_id != project.pk:
        raise ValidationError({"run": "that training run is another project's"})
    if run is None:
        run = TrainingRun.objects.filter(
            project=project, scorer=scorer, scorer_version=scorer.version
        ).first()
    with transaction.atomic():
        scorer.projects.add(project)
        promotion = ScorerPromotion.objects.create(
            project=project,
            scorer=scorer,
            scorer_version=scorer.version,
            action=PromotionAction.PROMOTE,
            training_run=run,
            metrics=(run.metrics if run is not None else {}),
            by=user if user is not None and user.is_authenticated else None,
        )
        scoring_services.score_runs_enqueue(
            traces=list(project.traces.values_list("pk", flat=True)),
            scorers=[scorer],
            queue=RunQueue.BULK,
        )
    return promotion


def scorer_demote(*, project: Project, user: UserLike | None) -> ScorerPromotion:
    """Back to no live scorer (the previous one can be promoted again); logged like a promotion."""
    live = live_scorer(project=project)
    if live is None:
        raise ValidationError({"scorer": "the project has no live scorer to demote"})
    return ScorerPromotion.objects.create(
        project=project,
        scorer=live.scorer,
        scorer_version=live.scorer_version,
        action=PromotionAction.DEMOTE,
        training_run=live.training_run,
        metrics=live.metrics,
        by=user if user is not None and user.is_authenticated else None,
    )
