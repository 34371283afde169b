"""The audit, Best-of-N and agreement figures say how many traces or steps they rest on, with
bootstrap intervals, and warn when that is too few to mean anything."""

from __future__ import annotations

import io
import json
import random

import pytest
from django.test import Client
from django.urls import reverse

from annotate import services as annotate_services
from annotate.models import GoldLabel, GoldSource, Step, Trace
from review import audit, sampling
from scoring import services as scoring_services
from scoring.prm import metrics
from tests.factories import make_project, make_trace, make_user


def _synthetic(n: int, seed: int = 1):
    """n traces of 4 steps; half have an error at a random step, which a decent PRM scores low."""
    rng = random.Random(seed)
    labels, scores, gold = [], [], []
    for _ in range(n):
        first = rng.choice([-1, -1, 0, 1, 2, 3])
        row_gold = [
            None if first != -1 and i > first else (-1 if i == first else 1) for i in range(4)
        ]
        row = [
            min(1.0, max(0.0, (0.2 if i == first else 0.8) + rng.gauss(0, 0.2))) for i in range(4)
        ]
        labels.append(first)
        scores.append(row)
        gold.append(row_gold)
    return labels, scores, gold


def test_nine_traces_are_called_too_few_and_two_hundred_are_not() -> None:
    labels, scores, gold = _synthetic(9)
    small = sampling.audit_sample(labels=labels, scores=scores, gold=gold, threshold=0.5)
    assert small["traces_with_gold"] == 9
    assert small["warning"].startswith("Too few to mean much: 9 traces with gold labels")
    labels, scores, gold = _synthetic(200)
    big = sampling.audit_sample(labels=labels, scores=scores, gold=gold, threshold=0.5)
    assert big["warning"] is None
    f1 = metrics.processbench_from_scores(labels, scores, 0.5).f1
    lo, hi = big["f1_interval"]
    assert lo <= f1 <= hi and hi - lo < 0.25
    lo_small, hi_small = small["f1_interval"]
    assert hi_small - lo_small > hi - lo  # fewer traces, wider interval
    steps = [(g >= 0, s) for gs, ss in zip(gold, scores, strict=True) for g, s in zip(gs, ss, strict=True) if g is not None]
    auroc = metrics.auroc([p for p, _ in steps], [s for _, s in steps])
    assert big["auroc_interval"][0] <= auroc <= big["auroc_interval"][1]


@pytest.mark.django_db
def test_the_audit_page_and_api_say_what_the_figures_rest_on(
    django_capture_on_commit_callbacks,
) -> None:
    rev = make_user("rev")
    project = make_project("s", members={rev: "reviewer"})
    tool = scoring_services.scorer_create(name="tool", backend="tool", projects=[project])
    traces = [make_trace(project, external_id=f"t{i}", steps=("a", "b")) for i in range(4)]
    for i, trace in enumerate(traces):
        for step in Step.objects.filter(trace=trace):
            GoldLabel.objects.create(
                step=step,
                value=-1 if (i == 0 and step.index == 1) else 1,
                source=GoldSource.IMPORTED,
            )
    payload = "\n".join(
        json.dumps({"trace_id": t.external_id, "scores": [0.9, 0.3]}) for t in traces
    )
    with django_capture_on_commit_callbacks(execute=True):
        scoring_services.scores_import(
            project=project, scorer=tool, stream=io.BytesIO(payload.encode()), filename="s"
        )
    report = audit.audit_report(project=project, scorer=tool)
    assert report["sample"]["traces_with_gold"] == 4 and report["sample"]["traces_with_error"] == 1
    assert "4 traces with gold labels (fewer than 30)" in report["sample"]["warning"]
    client = Client()
    client.force_login(rev)
    page = client.get(reverse("review:audit", args=["s"])).content.decode()
    assert "F1 rests on 4 traces with gold labels (1 with an error, 3 without)" in page
    assert "Too few to mean much" in page
    api = client.get(reverse("api:audit", args=["s"])).json()
    assert api["sample"]["warning"] == report["sample"]["warning"]


@pytest.mark.django_db
def test_agreement_from_four_steps_says_so() -> None:
    a, b, rev = make_user("a"), make_user("b"), make_user("rev")
    project = make_project("ag", members={a: "annotator", b: "annotator", rev: "reviewer"})
    for i in range(2):
        trace = make_trace(project, external_id=f"t{i}", steps=("x", "y"))
        for user in (a, b):
            annotate_services.label_all_correct(user=user, trace=trace)
            annotate_services.annotation_submit(user=user, trace=trace)
    client = Client()
    client.force_login(rev)
    assert client.get(reverse("api:agreement", args=["ag"])).json()["warning"] == (
        "Kappa from 4 steps: too few to mean much (fewer than 30)."
    )
    assert (
        "Kappa from 4 steps"
        in client.get(reverse("review:agreement", args=["ag"])).content.decode()
    )


@pytest.mark.django_db
def test_one_problems_best_of_n_says_what_it_rests_on(django_capture_on_commit_callbacks) -> None:
    rev = make_user("rev")
    project = make_project("bon", members={rev: "reviewer"})
    tool = scoring_services.scorer_create(name="tool", backend="tool", projects=[project])
    first = make_trace(project, external_id="a0", problem_text="P0", steps=("x", "y"))
    make_trace(project, external_id="a1", problem_text="P0", steps=("x", "y"))
    make_trace(project, external_id="a2", problem_text="P0", steps=("x", "y"))
    # Three more problems with two candidates of known correctness each: 4 in the project.
    for p in range(1, 4):
        for i in range(2):
            make_trace(project, external_id=f"b{p}{i}", problem_text=f"P{p}", steps=("x", "y"))
    Trace.objects.filter(project=project).exclude(external_id="a2").update(
        final_answer_correct=True
    )

    def score(ids: list[str]) -> None:
        payload = "\n".join(json.dumps({"trace_id": t, "scores": [0.9, 0.3]}) for t in ids)
        with django_capture_on_commit_callbacks(execute=True):
            scoring_services.scores_import(
                project=project, scorer=tool, stream=io.BytesIO(payload.encode()), filename="s"
            )

    client = Client()
    client.force_login(rev)
    page_url = reverse("review:best_of_n", args=[first.problem_id])
    api_url = reverse("api:best-of-n-sample", args=[first.problem_id])

    score(["a0"])
    api = client.get(api_url, {"scorer": "tool"}).json()
    assert api == {
        "traces": 3,
        "scored": 1,
        "project_problems": 0,
        "warning": "Nothing to rank yet: 1 of 3 traces scored (Best-of-N needs two or more).",
    }
    assert api["warning"] in client.get(page_url, {"scorer": "tool"}).content.decode()

    score(["a0", "a1", "a2", "b10", "b11", "b20", "b21", "b30", "b31"])
    api = client.get(api_url, {"scorer": "tool"}).json()
    assert (api["scored"], api["project_problems"]) == (3, 4)
    assert api["warning"] == sampling.best_of_n_warning(4)
    assert api["warning"].startswith("Best-of-N from 4 problems")
    page = client.get(page_url, {"scorer": "tool"}).content.decode()
    assert "This ranking rests on 3 of 3 traces scored by tool." in page
    assert "rests on 4 problems of this project" in page
    assert api["warning"] in page
