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
    # By the trace's link (a bare "t3" can also occur inside the random CSRF token).
    link = 'title="{}"'
    assert html.index(link.format(traces[2].external_id)) < html.index(
        link.format(traces[0].external_id)
    )


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


def test_a_response_level_score_beside_the_trajectory_score_end_to_end(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """import_scores keeps a trajectory-response trace's response-level score beside its
    trajectory score; the run stores it; the scores API, the score panel, the adjudication page
    and the audit (its AUROC against final-answer correctness, page and API) show it."""
    import io
    import json

    from django.core.management import call_command

    reviewer = make_user()
    project = make_project(members={reviewer: "reviewer"})
    parts = ["thinking", "thinking", "response"]
    traces = []
    for right in (True, False, True):
        trace = make_trace(
            project,
            steps=["Think.", "Think more.", "So 42."],
            parts=parts,
            problem_text="Shared: what is $6 \\times 7$?",
        )
        trace.final_answer, trace.final_answer_correct = ("42" if right else "41"), right
        trace.save()
        traces.append(trace)
    records = [
        {
            "trace_id": t.external_id,
            "scores": [0.8, 0.7, 0.9],
            "trajectory_score": 0.5,
            "response_score": r,
        }
        for t, r in zip(traces, (0.9, 0.2, 0.75), strict=True)
    ]
    path = tmp_path / "scores.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    call_command(
        "import_scores",
        str(path),
        "--scorer",
        "rf",
        "--project",
        project.slug,
        stdout=io.StringIO(),
    )
    runs = {r.trace_id: r for r in ScoreRun.objects.filter(scorer__name="rf")}
    assert [runs[t.pk].response_score for t in traces] == [0.9, 0.2, 0.75]
    assert [runs[t.pk].trajectory_score for t in traces] == [0.5, 0.5, 0.5]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**records[0], "response_score": 1.5}))
    with pytest.raises(Exception, match="line 1.*response_score.*in \\[0, 1\\]"):
        call_command("import_scores", str(bad), "--scorer", "rf", "--project", project.slug)

    client = Client()
    client.force_login(reviewer)
    api = client.get(f"/api/traces/{traces[1].pk}/scores/").json()
    [run] = api["runs"]
    assert (run["trajectory_score"], run["response_score"]) == (0.5, 0.2)
    panel = client.get(reverse("scoring:panel", args=[traces[1].pk])).content.decode()
    assert 'data-testid="response-score"' in panel and "response 0.20" in panel
    html = client.get(reverse("review:adjudicate", args=[traces[1].pk])).content.decode()
    assert "rf: trajectory 0.500" in html and "response 0.200" in html
    scorer = runs[traces[0].pk].scorer
    report = audit_report(project=project, scorer=scorer)
    assert report["response"] == {"traces": 3, "right": 2, "auroc": 1.0}
    assert report["trajectory"]["auroc"] == 0.5  # the same 0.5 everywhere: no separation
    page = client.get(reverse("review:audit", args=[project.slug])).content.decode()
    assert 'data-metric="response_auroc">1.000<' in page
    audit_api = client.get(reverse("api:audit", args=[project.slug])).json()
    assert audit_api["response"] == report["response"]
    assert audit_api["trajectory"] == report["trajectory"]
    # Best-of-N can rank by it: the response scores pick a right answer.
    assert report["best_of_n"]["response"]["prm"] == 1.0
    ranked = client.get(
        f"/api/problems/{traces[0].problem_id}/best-of-n/", {"scorer": "rf", "how": "response"}
    ).json()
    assert [r["trace_id"] for r in ranked] == [traces[0].pk, traces[2].pk, traces[1].pk]
