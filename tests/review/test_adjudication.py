"""Adjudication: disagreeing steps reach the reviewers' queue, the page shows every annotator's
label, note and time beside the PRM scores, gold is set with a rationale and logged; the same
through the API; annotators and outsiders cannot reach any of it."""

from __future__ import annotations

import io
import json

import pytest
from django.test import Client
from django.urls import reverse

from annotate import services
from annotate.models import GoldLabel
from review.models import GoldLabelChange
from scoring import services as scoring_services
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup():
    a, b, reviewer, outsider = (make_user(n) for n in ("ann", "bob", "rev", "out"))
    project = make_project(
        "rv", members={a: "annotator", b: "annotator", reviewer: "reviewer"}, overlap=2
    )
    trace = make_trace(project, steps=["2+2=4", "4*3=13", "So 13."], external_id="t-1")
    for user, values, note in ((a, [1, -1, -1], "13 is wrong"), (b, [1, 1, 1], "")):
        for index, value in enumerate(values):
            services.label_set(user=user, step=trace.steps.get(index=index), value=value)
        services.label_set(user=user, step=trace.steps.get(index=1), note=note)
        services.annotation_submit(user=user, trace=trace)
    scorer = scoring_services.scorer_create(name="prm", backend="tool", projects=[project])
    scoring_services.scores_import(
        project=project,
        scorer=scorer,
        stream=io.BytesIO(json.dumps({"trace_id": "t-1", "scores": [0.9, 0.2, 0.3]}).encode()),
        filename="s.jsonl",
    )
    return project, trace, a, b, reviewer, outsider


def client_for(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_disagreements_reach_the_adjudication_queue(setup) -> None:
    project, trace, a, b, reviewer, _ = setup
    page = client_for(reviewer).get(reverse("review:review", args=["rv"])).content.decode()
    link = reverse("review:adjudicate", args=[trace.pk])
    assert page.count(link) == 2  # steps 2 and 3, widest split first
    api = client_for(reviewer).get(reverse("api:disagreement-list", args=["rv"])).json()
    assert [(r["step_index"], r["values"]) for r in api] == [(1, [-1, 1]), (2, [-1, 1])]


def test_the_adjudication_page_shows_labels_notes_scores_and_sets_gold(setup) -> None:
    project, trace, a, b, reviewer, _ = setup
    c = client_for(reviewer)
    url = reverse("review:adjudicate", args=[trace.pk])
    html = c.get(url).content.decode()
    assert "13 is wrong" in html and "ann" in html and "bob" in html
    assert "0.200" in html and "annotators disagree" in html
    missing = c.post(url, {"index": "1", "value": "-1", "rationale": ""})
    assert missing.status_code == 400 and not GoldLabel.objects.exists()
    saved = c.post(url, {"index": "1", "value": "-1", "rationale": "4*3 is 12"})
    assert saved.status_code == 302
    gold = GoldLabel.objects.get(step__index=1)
    assert (gold.value, gold.source, gold.set_by, gold.rationale) == (
        -1,
        "adjudicated",
        reviewer,
        "4*3 is 12",
    )
    c.post(url, {"index": "1", "value": "0", "rationale": "on reflection"})
    log = list(
        GoldLabelChange.objects.order_by("created_at", "id").values_list(
            "old_value", "new_value", "rationale"
        )
    )
    assert log == [(None, -1, "4*3 is 12"), (-1, 0, "on reflection")]
    assert "on reflection" in c.get(url).content.decode()
    # Settled steps leave the queue (unless asked for).
    queue = c.get(reverse("api:disagreement-list", args=["rv"])).json()
    assert [r["step_index"] for r in queue] == [2]
    everything = c.get(reverse("api:disagreement-list", args=["rv"]), {"resolved": "true"}).json()
    assert [r["step_index"] for r in everything] == [1, 2]


def test_gold_through_the_api_and_the_log(setup) -> None:
    project, trace, a, b, reviewer, _ = setup
    c = client_for(reviewer)
    url = reverse("api:gold-set", args=[trace.pk, 2])
    bad = c.put(url, {"value": 1}, content_type="application/json")
    assert bad.status_code == 400
    ok = c.put(
        url, {"value": -1, "rationale": "follows from step 2"}, content_type="application/json"
    ).json()
    step = ok["steps"][2]
    assert step["gold"]["value"] == -1 and step["history"][0]["changed_by"] == "rev"
    assert {lab["annotator"] for lab in step["labels"]} == {"ann", "bob"}
    assert step["scores"][0]["score"] == pytest.approx(0.3)
    cleared = c.put(
        url, {"value": None, "rationale": "unsure"}, content_type="application/json"
    ).json()
    assert cleared["steps"][2]["gold"] is None and len(cleared["steps"][2]["history"]) == 2


def test_only_reviewers_reach_review(setup) -> None:
    project, trace, a, b, reviewer, outsider = setup
    urls = [
        reverse("review:review", args=["rv"]),
        reverse("review:agreement", args=["rv"]),
        reverse("review:adjudicate", args=[trace.pk]),
        reverse("api:disagreement-list", args=["rv"]),
        reverse("api:agreement", args=["rv"]),
        reverse("api:adjudication", args=[trace.pk]),
    ]
    for user, status in ((a, 403), (outsider, 404)):  # a member is told why; outsiders see nothing
        c = client_for(user)
        for url in urls:
            assert c.get(url).status_code == status, (user, url)
        assert (
            c.put(
                reverse("api:gold-set", args=[trace.pk, 0]),
                {"value": 1, "rationale": "x"},
                content_type="application/json",
            ).status_code
            == status
        )
    assert Client().get(urls[0]).status_code == 302  # to the login page
    assert not GoldLabel.objects.exists()
    # Session writes need the CSRF token.
    csrf = Client(enforce_csrf_checks=True)
    csrf.force_login(reviewer)
    assert csrf.post(urls[2], {"index": "0", "value": "1", "rationale": "x"}).status_code == 403


def test_agreement_page_and_api(setup) -> None:
    project, trace, a, b, reviewer, _ = setup
    c = client_for(reviewer)
    html = c.get(reverse("review:agreement", args=["rv"])).content.decode()
    assert "Krippendorff" in html and "Cohen" in html and "ann" in html
    data = c.get(reverse("api:agreement", args=["rv"])).json()
    assert data["annotators"] == 2 and data["steps_multi"] == 3
    assert data["pairs"][0]["percent"] == pytest.approx(1 / 3)
    assert data["first_error"] == {"traces": 1, "pairwise": 0.0, "unanimous": 0.0}


def test_a_step_the_tool_could_not_check_is_unknown_on_the_adjudication_page(setup) -> None:
    from tests.scoring.test_views import _tool_scores

    project, _, a, _, reviewer, _ = setup
    scorer = scoring_services.scorer_create(
        name="tool", backend="tool", projects=[project], threshold=0.3
    )
    trace = make_trace(
        project, steps=["2+2=4", "So we go on."], parts=["thinking", "response"], external_id="t-2"
    )
    _tool_scores(trace, scorer)
    html = client_for(reviewer).get(reverse("review:adjudicate", args=[trace.pk])).content.decode()
    first, second = html.split('data-testid="adj-step-')[1:3]
    assert ">right<" in first and "thinking" in first
    # The neutral 0.50 is above this scorer's threshold, but nothing was checked: not "right".
    assert ">right<" not in second and "unknown (no check)" in second and "response" in second
