"""Score runs: created once per trace and scorer version, written atomically, safe to run twice."""

from __future__ import annotations

import io
import json
import os

import pytest
from django.core.exceptions import ValidationError

from scoring import services
from scoring.models import RunStatus, ScoreRun, StepScore
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(monkeypatch):
    # Nothing is sent to a broker here: these tests are about the rows, not the worker.
    sent: list[list[int]] = []
    from scoring import tasks

    monkeypatch.setattr(
        tasks.score_runs,
        "apply_async",
        lambda args, kwargs=None, queue=None, **_: sent.append(args[0]),
    )
    user = make_user()
    project = make_project(members={user: "annotator"})
    scorer = services.scorer_create(name="tool", backend="tool", projects=[project])
    traces = [make_trace(project, steps=["a", "b", "c"]) for _ in range(3)]
    return project, scorer, traces, sent


def test_enqueue_creates_each_run_once(setup, django_capture_on_commit_callbacks):
    project, scorer, traces, sent = setup
    with django_capture_on_commit_callbacks(execute=True):
        first = services.score_runs_enqueue(traces=traces, scorers=[scorer])
    with django_capture_on_commit_callbacks(execute=True):
        again = services.score_runs_enqueue(traces=traces, scorers=[scorer])
    assert len(first) == 3 and again == []
    assert ScoreRun.objects.count() == 3
    assert sorted(sum(sent, [])) == sorted(r.pk for r in first)


def test_new_scorer_version_means_new_runs(setup, django_capture_on_commit_callbacks):
    project, scorer, traces, _ = setup
    with django_capture_on_commit_callbacks(execute=True):
        services.score_runs_enqueue(traces=traces, scorers=[scorer])
    services.scorer_update(scorer=scorer, params={"pass_score": 0.8})
    assert scorer.version == 2
    with django_capture_on_commit_callbacks(execute=True):
        runs = services.score_runs_enqueue(traces=traces, scorers=[scorer])
    assert {r.scorer_version for r in runs} == {2}


def test_complete_twice_writes_each_step_once(setup, django_capture_on_commit_callbacks):
    project, scorer, traces, _ = setup
    with django_capture_on_commit_callbacks(execute=True):
        run = services.score_runs_enqueue(traces=traces[:1], scorers=[scorer])[0]
    claimed = services.score_runs_claim(run_ids=[run.pk])
    assert [(r.pk, r.status) for r in claimed] == [(run.pk, RunStatus.RUNNING)]
    result = services.RunResult(run_id=run.pk, step_scores=[0.9, 0.8, 0.1], trajectory_score=0.2)
    services.score_run_complete(result=result)
    services.score_run_complete(result=result)
    assert StepScore.objects.filter(run=run).count() == 3
    run.refresh_from_db()
    assert run.status == RunStatus.DONE and run.trajectory_score == 0.2
    # a done run is not claimed again: a redelivered task scores nothing twice
    assert services.score_runs_claim(run_ids=[run.pk]) == []


def test_complete_refuses_wrong_length_and_out_of_range(setup, django_capture_on_commit_callbacks):
    project, scorer, traces, _ = setup
    with django_capture_on_commit_callbacks(execute=True):
        run = services.score_runs_enqueue(traces=traces[:1], scorers=[scorer])[0]
    with pytest.raises(ValidationError, match="2 scores for 3 steps"):
        services.score_run_complete(
            result=services.RunResult(run_id=run.pk, step_scores=[0.1, 0.2])
        )
    with pytest.raises(ValidationError, match="outside"):
        services.score_run_complete(
            result=services.RunResult(run_id=run.pk, step_scores=[0.1, 0.2, 1.5])
        )
    assert not StepScore.objects.exists()


def test_failed_run_can_be_retried(setup, django_capture_on_commit_callbacks):
    project, scorer, traces, sent = setup
    with django_capture_on_commit_callbacks(execute=True):
        run = services.score_runs_enqueue(traces=traces[:1], scorers=[scorer])[0]
    services.score_run_fail(run_id=run.pk, error="CUDA out of memory")
    run.refresh_from_db()
    assert (run.status, run.error) == (RunStatus.FAILED, "CUDA out of memory")
    with django_capture_on_commit_callbacks(execute=True):
        services.score_run_retry(run=run)
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and sent[-1] == [run.pk]


def test_sweeper_requeues_stuck_runs(setup, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    project, scorer, traces, sent = setup
    with django_capture_on_commit_callbacks(execute=True):
        runs = services.score_runs_enqueue(traces=traces, scorers=[scorer])
    services.score_runs_claim(run_ids=[runs[0].pk])
    ScoreRun.objects.filter(pk=runs[0].pk).update(started_at=timezone.now() - timedelta(hours=1))
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.score_runs_sweep() == 1
    assert sent == [[runs[0].pk]]


def test_a_live_workers_heartbeat_keeps_the_runs_it_is_scoring(
    setup, django_capture_on_commit_callbacks
):
    """The sweep runs in the worker's heartbeat thread, beside the task that scores. A batch that
    outlasted the lease lost its runs to its own worker's sweep: re-queued (claimed_by cleared)
    while still being scored (seen in tests/reliability on a slower machine: a 3 s lease, batches
    of ~2 s). Each beat now renews the lease of the runs this process holds; a dead worker's go
    back to the queue after one lease."""
    from datetime import timedelta

    from django.utils import timezone

    from scoring import tasks

    project, scorer, traces, sent = setup
    with django_capture_on_commit_callbacks(execute=True):
        runs = services.score_runs_enqueue(traces=traces[:2], scorers=[scorer])
    mine, dead = services.worker_id("gpu@live"), "gpu@gone#1"
    services.score_runs_claim(run_ids=[runs[0].pk], worker=mine)
    services.score_runs_claim(run_ids=[runs[1].pk], worker=dead)
    ScoreRun.objects.update(started_at=timezone.now() - timedelta(hours=1))
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        tasks._beat("gpu@live", "bulk", 0)
    kept, swept = ScoreRun.objects.get(pk=runs[0].pk), ScoreRun.objects.get(pk=runs[1].pk)
    assert (kept.status, kept.claimed_by) == (RunStatus.RUNNING, mine)
    assert (swept.status, swept.claimed_by) == (RunStatus.QUEUED, "")
    assert sent == [[runs[1].pk]]


def _jsonl(*records: object) -> io.BytesIO:
    return io.BytesIO("\n".join(json.dumps(r) for r in records).encode())


def test_scores_import_is_all_or_nothing(setup):
    project, scorer, traces, _ = setup
    good = {"trace_id": traces[0].external_id, "scores": [0.9, 0.5, 0.1]}
    bad = {"trace_id": traces[1].external_id, "scores": [0.9, 0.5]}
    with pytest.raises(services.ScoresFileError, match=r"s.jsonl, line 2, field 'scores'"):
        services.scores_import(
            project=project, scorer=scorer, stream=_jsonl(good, bad), filename="s.jsonl"
        )
    assert not StepScore.objects.exists()
    result = services.scores_import(
        project=project,
        scorer=scorer,
        stream=_jsonl(good, {**bad, "scores": [1, 0, 0.5]}),
        filename="s.jsonl",
    )
    assert (result.runs_written, result.steps_scored) == (2, 6)
    # the same file again replaces, never duplicates
    services.scores_import(project=project, scorer=scorer, stream=_jsonl(good), filename="s.jsonl")
    assert StepScore.objects.count() == 6


def test_scores_import_names_unknown_trace(setup):
    project, scorer, traces, _ = setup
    with pytest.raises(services.ScoresFileError, match="line 1, field 'trace_id': no trace 'nope'"):
        services.scores_import(
            project=project,
            scorer=scorer,
            stream=_jsonl({"trace_id": "nope", "scores": []}),
            filename="s.jsonl",
        )


@pytest.mark.parametrize(
    "content, line, field, message",
    [
        (
            b'{"trace_id": "T", "scores": [0.5], "trajectory_score": true}\n',
            1,
            "trajectory_score",
            "a number",
        ),
        (b'{"trace_id": "T", "scores": [0.5]}\n\xff\xfe{}\n', 2, None, "not UTF-8"),
        (b"[" * 100_000 + b"\n", 1, None, "nested too deeply"),
        (
            b'{"trace_id": "T", "scores": [0.5], "details": '
            + b"[" * 50_000
            + b"]" * 50_000
            + b"}\n",
            1,
            None,
            "nested too deeply",
        ),
    ],
)
def test_a_malformed_scores_file_is_refused_naming_line_and_field(
    setup, content, line, field, message
):
    project, scorer, _, _ = setup
    with pytest.raises(services.ScoresFileError) as caught:
        services.scores_import(
            project=project, scorer=scorer, stream=io.BytesIO(content), filename="s.jsonl"
        )
    assert (caught.value.line, caught.value.field) == (line, field)
    assert message in caught.value.message
    assert not StepScore.objects.exists()


def test_scores_of_a_scorer_not_attached_to_the_project_are_refused(setup):
    project, _, traces, _ = setup
    stranger = services.scorer_create(name="elsewhere", backend="tool")
    line = {"trace_id": traces[0].external_id, "scores": [0.9, 0.5, 0.1]}
    with pytest.raises(services.ScoresFileError, match="does not score project"):
        services.scores_import(
            project=project, scorer=stranger, stream=_jsonl(line), filename="s.jsonl"
        )
    assert not StepScore.objects.exists()


def test_runs_of_a_killed_worker_process_are_taken_back_at_once(setup):
    """A worker's child killed mid-run (the OOM killer): the redelivered task, on the same node,
    takes the runs back without waiting for their lease to expire."""
    import subprocess
    import sys

    _, scorer, traces, _ = setup
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = ScoreRun.objects.create(trace=traces[0], scorer=scorer, scorer_version=scorer.version)
    alive = ScoreRun.objects.create(trace=traces[1], scorer=scorer, scorer_version=scorer.version)
    ScoreRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, claimed_by=f"gpu@host#{dead.pid}", attempts=1
    )
    ScoreRun.objects.filter(pk=alive.pk).update(  # held by a live process: left alone
        status=RunStatus.RUNNING, claimed_by=f"gpu@host#{os.getpid()}", attempts=1
    )
    claimed = services.score_runs_claim(
        run_ids=[run.pk, alive.pk], worker=services.worker_id("gpu@host")
    )
    assert [r.pk for r in claimed] == [run.pk]
    run.refresh_from_db()
    assert run.attempts == 2 and run.claimed_by == services.worker_id("gpu@host")
    # Another node cannot tell whether that process is alive: it waits for the lease.
    ScoreRun.objects.filter(pk=run.pk).update(claimed_by=f"gpu@host#{dead.pid}")
    assert services.score_runs_claim(run_ids=[run.pk], worker="cpu@other#1") == []


def test_annotators_see_a_run_that_is_tried_again(setup, client):
    project, scorer, traces, _ = setup
    user = project.memberships.get().user
    run = ScoreRun.objects.create(
        trace=traces[0], scorer=scorer, scorer_version=scorer.version, status=RunStatus.RUNNING
    )
    client.force_login(user)
    panel = client.get(f"/scoring/traces/{traces[0].pk}/scores/").content.decode()
    assert 'data-testid="run-retrying"' not in panel
    ScoreRun.objects.filter(pk=run.pk).update(attempts=2)
    panel = client.get(f"/scoring/traces/{traces[0].pk}/scores/").content.decode()
    assert "retrying (try 2)" in panel
