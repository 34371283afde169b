"""End to end with a real Celery worker process on Redis: scores arrive; a killed worker loses nothing."""

from __future__ import annotations

import pytest
from django.db.models import Count
from django.urls import reverse

from annotate import imports
from scoring import services
from scoring.models import RunQueue, RunStatus, ScoreRun, StepScore
from tests.factories import make_project, make_user
from tests.scoring.worker import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def corpus(repo_root):
    user = make_user()
    project = make_project(members={user: "annotator"})
    with open(repo_root / "data" / "processbench_sample.jsonl", "rb") as stream:
        imports.traces_import(
            project=project,
            stream=stream,
            filename="processbench_sample.jsonl",
            format="processbench",
        )
    scorer = services.scorer_create(name="tool", backend="tool", projects=[project])
    return user, project, scorer


def test_opening_a_trace_brings_scores_from_a_worker(client, worker, corpus):
    user, project, scorer = corpus
    trace = project.traces.order_by("id").first()
    worker.start()
    client.force_login(user)
    assert client.post(reverse("scoring:open", args=[trace.pk])).status_code == 200
    run = ScoreRun.objects.get(trace=trace, scorer=scorer)
    assert run.queue == RunQueue.INTERACTIVE
    assert wait_until(
        lambda: ScoreRun.objects.get(pk=run.pk).status == RunStatus.DONE, timeout=60
    ), worker.log()
    html = client.get(reverse("scoring:panel", args=[trace.pk])).content.decode()
    assert html.count('data-testid="step-score"') == trace.steps.count()
    assert 'data-testid="no-worker"' not in html


def test_worker_killed_mid_run_then_restarted_scores_every_step_once(worker, corpus):
    user, project, scorer = corpus
    trace_ids = list(project.traces.values_list("pk", flat=True))
    runs = services.score_runs_enqueue(traces=trace_ids, scorers=[scorer], queue=RunQueue.BULK)
    assert len(runs) == len(trace_ids) == 80
    worker.start()
    done = ScoreRun.objects.filter(status=RunStatus.DONE)
    # Kill it while it is busy: some runs finished, some not.
    assert wait_until(lambda: done.count() >= 5, timeout=120), worker.log()
    worker.kill()
    finished_before_kill = done.count()
    assert finished_before_kill < len(trace_ids), "the worker finished before it could be killed"
    assert ScoreRun.objects.filter(status=RunStatus.RUNNING).exists()

    worker.start()
    assert wait_until(lambda: done.count() == len(trace_ids), timeout=180), worker.log()

    step_total = sum(ScoreRun.objects.get(pk=r.pk).trace.steps.count() for r in runs)
    assert StepScore.objects.count() == step_total
    assert not StepScore.objects.values("run", "step").annotate(n=Count("id")).filter(n__gt=1)
    assert not ScoreRun.objects.exclude(status=RunStatus.DONE).exists()
    # the runs the dead worker held were claimed again by the restarted one
    assert ScoreRun.objects.filter(attempts__gte=2).exists()
