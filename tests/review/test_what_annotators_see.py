"""One rule for what annotators see, in every page and API (issue "Hardening", items 2 and 3):
a blind project's scores stay hidden in Best-of-N until the annotator submits the trace, and the
reference solution (reviewer-only in the API) is not on the annotator's labelling page."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from annotate import services
from annotate.models import Problem
from scoring import services as scoring_services
from scoring.models import RunStatus, ScoreRun, StepScore
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def blind_world():
    annotator, reviewer = make_user(), make_user()
    project = make_project(members={annotator: "annotator", reviewer: "reviewer"})
    project.blind = True
    project.save()
    trace = make_trace(project)
    scorer = scoring_services.scorer_create(name="prm", backend="tool", projects=[project])
    run = ScoreRun.objects.create(
        trace=trace, scorer=scorer, scorer_version=scorer.version, status=RunStatus.DONE
    )
    for step in trace.steps.all():
        StepScore.objects.create(run=run, step=step, score=0.9)
    return annotator, reviewer, trace


def _best_of_n(user, trace) -> dict:
    client = APIClient()
    client.force_authenticate(user)
    rows = client.get(f"/api/problems/{trace.problem_id}/best-of-n/", {"scorer": "prm"}).json()
    return next(r for r in rows if r["trace_id"] == trace.pk)


def test_best_of_n_hides_a_blind_projects_scores_until_the_annotator_submits(blind_world):
    annotator, reviewer, trace = blind_world
    hidden = _best_of_n(annotator, trace)
    assert (hidden["aggregate"], hidden["steps_scored"]) == (None, 0)
    page = Client()
    page.force_login(annotator)
    html = page.get(f"/scoring/problems/{trace.problem_id}/best-of-n/", {"scorer": "prm"})
    assert html.status_code == 200 and "0.900" not in html.content.decode()
    assert _best_of_n(reviewer, trace)["aggregate"] == pytest.approx(0.9)  # reviewers see it
    services.annotation_submit(user=annotator, trace=trace, finish_reason="give_up")
    shown = _best_of_n(annotator, trace)
    assert shown["aggregate"] == pytest.approx(0.9) and shown["steps_scored"] > 0


def test_the_reference_solution_is_for_reviewers_on_the_page_as_in_the_api():
    annotator, reviewer = make_user(), make_user()
    project = make_project(members={annotator: "annotator", reviewer: "reviewer"})
    trace = make_trace(project)
    Problem.objects.filter(pk=trace.problem_id).update(
        reference_answer="42", reference_solution="SOLUTION-WORKED-OUT-IN-FULL"
    )
    for user, sees in ((annotator, False), (reviewer, True)):
        client = Client()
        client.force_login(user)
        html = client.get(f"/t/{trace.pk}/").content.decode()
        assert ("SOLUTION-WORKED-OUT-IN-FULL" in html) is sees
        assert "42" in html  # the reference answer is for everyone
        api = APIClient()
        api.force_authenticate(user)
        detail = api.get(f"/api/traces/{trace.pk}/").json()
        assert ("SOLUTION-WORKED-OUT-IN-FULL" in str(detail)) is sees
