"""One trace too long for the model fails only its own run, with the reason; the other runs of
the same task are scored, and ``score --sync`` goes on to the end (issue 13, item 10)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from scoring import engine, services
from scoring.models import RunStatus, ScoreRun
from tests.factories import import_processbench_sample, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_engines() -> Any:
    """Each test's scorer is a new model: no engine cached under a reused scorer id."""
    engine._ENGINES.clear()
    yield
    engine._ENGINES.clear()


@pytest.fixture
def project():
    return import_processbench_sample(make_project("pb"))


@pytest.fixture
def tiny_step_head(tmp_path: Path, project: Any) -> Path:
    from scoring.prm.tiny import save_tiny_model, train_tokenizer

    texts = [t.problem.text for t in project.traces.all()]
    texts += [s.text for t in project.traces.all() for s in t.steps.all()]
    return save_tiny_model(tmp_path / "m", train_tokenizer(texts, vocab_size=600), seed=1)


def lengths(model_dir: Path, project: Any) -> dict[int, int]:
    """Tokens per trace as the engine formats them (trace id -> length)."""
    from scoring.prm import TraceInput, build_scorer

    scorer = build_scorer("step_head", model_path=str(model_dir))
    out = {}
    for trace in project.traces.all():
        steps = list(trace.steps.order_by("index").values_list("text", flat=True))
        out[trace.pk] = len(scorer.encode(TraceInput(trace.problem.text, steps)))
    return out


def test_one_over_long_trace_fails_alone_and_the_rest_are_scored(project, tiny_step_head):
    by_trace = lengths(tiny_step_head, project)
    ordered = sorted(by_trace.values())
    limit = ordered[-3]  # the two longest traces (if distinct) are over the limit
    too_long = {t for t, n in by_trace.items() if n > limit}
    assert 1 <= len(too_long) <= 2
    scorer = services.scorer_create(
        name="tiny",
        backend="step_head",
        model_path=str(tiny_step_head),
        params={"max_length": limit},
        projects=[project],
    )
    runs = services.score_runs_enqueue(traces=list(by_trace), scorers=[scorer])
    assert len(runs) == 80
    # one task's worth of runs (scored in one engine call), the over-long traces among them
    task = [r.pk for r in runs if r.trace_id in too_long]
    task += [r.pk for r in runs if r.trace_id not in too_long][: services.RUNS_PER_TASK - len(task)]
    counts = engine.score_and_write(run_ids=task)
    chunk = ScoreRun.objects.filter(pk__in=task)
    failed = chunk.filter(status=RunStatus.FAILED)
    assert set(failed.values_list("trace_id", flat=True)) == too_long
    for run in failed:
        assert f"{by_trace[run.trace_id]} tokens, more than max_length={limit}" in run.error
    assert counts == {"done": 32 - len(too_long), "failed": len(too_long), "skipped": 0}
    assert chunk.filter(status=RunStatus.DONE).count() == 32 - len(too_long)


def test_score_sync_scores_every_other_trace_and_names_the_long_one(
    project, tiny_step_head, capsys
):
    by_trace = lengths(tiny_step_head, project)
    limit = max(by_trace.values()) - 1
    [too_long] = [t for t, n in by_trace.items() if n > limit]
    call_command(
        "add_scorer", "tiny", "--backend", "step_head", "--model", str(tiny_step_head),
        "--params", f'{{"max_length": {limit}}}', "--project", "pb",
    )  # fmt: skip
    with pytest.raises(CommandError, match="Some runs failed"):
        call_command("score", "--project", "pb", "--scorer", "tiny", "--sync")
    out = capsys.readouterr().out
    assert "tiny: 79 traces scored, 1 failed." in out
    assert f"failed trace {too_long}:" in out and f"more than max_length={limit}" in out
    assert ScoreRun.objects.filter(status=RunStatus.DONE).count() == 79
