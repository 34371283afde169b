"""The bridge from score runs (Django) to the PRM engine (scoring.prm), one model per process."""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from django.conf import settings

from annotate import bundles
from annotate.tables import table_or_none

from . import services
from .models import Scorer, ScoreRun

logger = logging.getLogger(__name__)

# Backends that run a model in micro-batches take the worker's token budget.
_BATCHED_BACKENDS = {"step_head", "token_tag", "value_head", "generative"}

# (scorer id, version, what it was built from) -> a built engine scorer; models load once per
# worker process. The settings are part of the key: an id can come back with other settings
# (SQLite reuses a rolled-back insert's id; a database restored from a backup).
_ENGINES: dict[tuple[Any, ...], Any] = {}


def _params(scorer: Scorer) -> dict[str, Any]:
    params = dict(scorer.params or {})
    if scorer.backend in _BATCHED_BACKENDS:
        params.setdefault("max_tokens", settings.STEPLENS_BATCH_TOKENS)
    return params


def engine_for(scorer: Scorer) -> Any:
    params = _params(scorer)
    built_from = json.dumps(
        [scorer.backend, scorer.model_path, scorer.revision, params],
        sort_keys=True,
        default=str,
    )
    key = (scorer.pk, scorer.version, built_from)
    if key not in _ENGINES:
        # Imported here: the web process never imports the engine (nor torch through it).
        from scoring.prm import build_scorer

        for stale in [k for k in _ENGINES if k[0] == scorer.pk]:
            del _ENGINES[stale]
        _ENGINES[key] = build_scorer(
            scorer.backend,
            model_path=scorer.model_path or None,
            device=settings.STEPLENS_DEVICE,
            dtype=settings.STEPLENS_DTYPE,
            params=params,
        )
    return _ENGINES[key]


def score_runs(runs: Sequence[ScoreRun]) -> tuple[list[services.RunResult], dict[int, str]]:
    """Score runs of ONE scorer in one engine call (the engine packs them into micro-batches).

    Returns the results and, for each run whose trace the engine refuses alone (too long for
    the model, unformattable), the reason: that run fails, the others are scored.
    """
    from scoring.prm import TraceInput, score_each

    scorer = runs[0].scorer
    inputs = []
    for run in runs:
        steps = list(run.trace.steps.order_by("index").values_list("text", "part"))
        problem = run.trace.problem
        table = table_or_none(problem.table)
        inputs.append(
            TraceInput(
                key=str(run.pk),
                problem=problem.text,
                steps=[text for text, _ in steps],
                parts=[part for _, part in steps],
                reference_answer=problem.reference_answer or None,
                images=[
                    bundles.inline_image(project_id=problem.project_id, address=a)
                    for a in problem.images or []
                ],
                table=table.as_json() if table is not None else None,
            )
        )
    started = time.perf_counter()
    outputs, refused = score_each(engine_for(scorer), inputs)
    per_run_ms = (time.perf_counter() - started) * 1000 / max(len(outputs), 1)
    results = [
        services.RunResult(
            run_id=int(out.key),
            step_scores=[s.score for s in out.steps],
            step_details=[dict(s.details or {}) for s in out.steps],
            trajectory_score=out.trajectory_score,
            response_score=out.response_score,
            duration_ms=per_run_ms,
        )
        for out in outputs
    ]
    return results, {int(key): reason for key, reason in refused.items()}


def judge_final_answers(runs: Sequence[ScoreRun]) -> int:
    """Decide `final_answer_correct` of the runs' traces whose correctness is unknown, where the
    problem has a reference answer: the trace's final answer (or the one its steps state: the last
    \\boxed{}, "# Answer", "####", "The answer is") against the reference with the tool backend's
    check (exact after normalising, sympy, then math-verify). Best-of-N then says "unknown" only
    when it truly is. Returns how many traces were decided."""
    try:  # the tool extra (sympy, math-verify): every worker has it; without it, nothing is decided
        from scoring.prm.backends.tool import answers_match, find_final_answer
    except ImportError:  # pragma: no cover - a worker installed without the tool extra
        logger.warning("final answers not judged: the tool extra (sympy, math-verify) is missing")
        return 0
    verdicts: dict[int, tuple[bool, str]] = {}
    for run in runs:
        trace = run.trace
        reference = trace.problem.reference_answer.strip()
        if trace.pk in verdicts or trace.final_answer_correct is not None or not reference:
            continue
        answer = trace.final_answer.strip()
        if not answer:
            found = find_final_answer(
                list(trace.steps.order_by("index").values_list("text", flat=True))
            )
            answer = found[1] if found else ""
        verdict = answers_match(answer, reference) if answer else None
        if verdict is not None:
            verdicts[trace.pk] = (verdict, answer)
    return services.final_answers_set(verdicts=verdicts)


def score_and_write(*, run_ids: Sequence[int], worker: str = "") -> dict[str, int]:
    """Claim these runs, score them (one engine call per scorer) and write each run's scores.

    Done runs are skipped (a redelivered task scores nothing twice); a trace the engine refuses
    alone (too long for the model) fails only its own run, with the reason; any other engine
    error becomes the error of the runs it was scoring. Errors are shown on the page, retryable.
    """
    runs = services.score_runs_claim(run_ids=run_ids, worker=worker)
    by_scorer: dict[int, list[ScoreRun]] = defaultdict(list)
    for run in runs:
        by_scorer[run.scorer_id].append(run)
    done = failed = 0
    judge_final_answers(runs)
    for scorer_runs in by_scorer.values():
        try:
            results, refused = score_runs(scorer_runs)
        except Exception as exc:
            logger.exception("scorer %s failed", scorer_runs[0].scorer.name)
            for run in scorer_runs:
                services.score_run_fail(run_id=run.pk, error=f"{type(exc).__name__}: {exc}")
            failed += len(scorer_runs)
            continue
        for run_id, reason in refused.items():
            services.score_run_fail(run_id=run_id, error=f"TraceError: {reason}")
            failed += 1
        for result in results:
            try:
                services.score_run_complete(result=result)
                done += 1
            except Exception as exc:
                services.score_run_fail(run_id=result.run_id, error=f"{type(exc).__name__}: {exc}")
                failed += 1
    return {"done": done, "failed": failed, "skipped": len(run_ids) - len(runs)}
