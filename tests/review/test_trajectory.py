"""Trajectory scores (ReasonFlux-PRM's trajectory reward, a tool's answer check) where a reviewer
decides: a Best-of-N ranking by them, the audit's AUROC of them against final-answer
correctness, and the adjudication page."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from review.audit import audit_report
from scoring import services
from scoring.models import ScoreRun
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():  # type: ignore[no-untyped-def]
    reviewer = make_user()
    project = make_project(members={reviewer: "reviewer"})
    scorer = services.scorer_create(name="rf", backend="tool", projects=[project])
    text = "Shared: what is $6 \\times 7$?"
    traces = []
    # (step scores, trajectory, answer right): the step scores rank them one way, the
    # trajectory score the other way round.
    for steps, trajectory, right in (
        ([0.9, 0.9], 0.2, False),
        ([0.6, 0.5], 0.7, True),
        ([0.4, 0.3], 0.9, True),
    ):
        trace = make_trace(project, steps=["6*7 = 42", "So 42."], problem_text=text)
        trace.final_answer, trace.final_answer_correct = ("42" if right else "41"), right
        trace.save()
        services.score_runs_enqueue(traces=[trace], scorers=[scorer])
        run = ScoreRun.objects.get(trace=trace, scorer=scorer)
        services.score_runs_claim(run_ids=[run.pk])
        services.score_run_complete(
            result=services.RunResult(run_id=run.pk, step_scores=steps, trajectory_score=trajectory)
        )
        traces.append(trace)
    return reviewer, project, scorer, traces


def test_best_of_n_can_rank_by_the_trajectory_score(world) -> None:  # type: ignore[no-untyped-def]
    reviewer, _, _, traces = world
    client = Client()
    client.force_login(reviewer)
    api = f"/api/problems/{traces[0].problem_id}/best-of-n/"
    by_min = client.get(api, {"scorer": "rf", "how": "min"}).json()
    by_trajectory = client.get(api, {"scorer": "rf", "how": "trajectory"}).json()
    assert [r["trace_id"] for r in by_min] == [t.pk for t in traces]
    assert [r["trace_id"] for r in by_trajectory] == [t.pk for t in reversed(traces)]
    assert [r["aggregate"] for r in by_trajectory] == [0.9, 0.7, 0.2]
    html = client.get(
        reverse("review:best_of_n", args=[traces[0].problem_id]),
        {"scorer": "rf", "how": "trajectory"},
    ).content.decode()
    assert '<option value="trajectory" selected>' in html
    assert html.index(traces[2].external_id) < html.index(traces[0].external_id)


def test_the_audit_measures_the_trajectory_score_against_final_answer_correctness(world) -> None:  # type: ignore[no-untyped-def]
    _, project, scorer, _ = world
    report = audit_report(project=project, scorer=scorer)
    assert report["trajectory"] == {"traces": 3, "right": 2, "auroc": 1.0}
    # Best-of-N by the trajectory score picks a right answer; by the weakest step, a wrong one.
    assert report["best_of_n"]["trajectory"]["prm"] == 1.0
    assert report["best_of_n"]["min"]["prm"] == 0.0
    reviewer = world[0]
    client = Client()
    client.force_login(reviewer)
    html = client.get(reverse("review:audit", args=[project.slug]), {"scorer": "rf"}).content
    assert b'data-metric="trajectory_auroc">1.000<' in html


def test_the_adjudication_page_shows_each_scorers_trajectory_score(world) -> None:  # type: ignore[no-untyped-def]
    reviewer, _, _, traces = world
    client = Client()
    client.force_login(reviewer)
    html = client.get(reverse("review:adjudicate", args=[traces[1].pk])).content.decode()
    assert 'data-testid="trajectory-score"' in html and "rf: trajectory 0.700" in html
