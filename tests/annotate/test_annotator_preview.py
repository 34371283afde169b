"""The annotator's view (issue 15, item 1): reviewers and admins see what an annotator of the
project sees with its current settings (guidelines, label names, keys, legend, a trace of the
project through the labelling page's partials), with every control inert and nothing written;
the same data through the API."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from annotate import services
from annotate.models import Annotation, RenderedHtml, StepLabel
from review.models import Assignment
from scoring.models import ScoreRun
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db


def _counts() -> tuple[int, int, int, int, int]:
    return (
        StepLabel.objects.count(),
        Annotation.objects.count(),
        Assignment.objects.count(),
        ScoreRun.objects.count(),
        RenderedHtml.objects.count(),
    )


@pytest.fixture
def world():  # type: ignore[no-untyped-def]
    admin, rev, ann = make_user("boss"), make_user("rev"), make_user("ann")
    project = make_project("p", members={admin: "admin", rev: "reviewer", ann: "annotator"})
    services.project_update(
        project=project,
        guidelines="Mark the **first** wrong step.",
        label_scheme="binary",
        hotkeys={"keys": {"plus": "y", "minus": "x"}, "names": {"1": "right", "-1": "wrong"}},
    )
    first = make_trace(project, steps=("We add $1+1$.", "So it is *three*."))
    second = make_trace(project, steps=("Another step.",))
    return project, admin, rev, ann, first, second


def test_reviewers_see_the_settings_and_a_trace_as_annotators_do_with_nothing_written(
    world,  # type: ignore[no-untyped-def]
) -> None:
    project, _, rev, _, first, second = world
    client = Client()
    client.force_login(rev)
    before = _counts()
    response = client.get(reverse("annotate:annotator_preview", args=["p"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert _counts() == before  # no label, annotation, lease, score run, not even stored HTML
    assert "Binary +1 / -1" in html
    assert "<strong>first</strong>" in html  # the guidelines, rendered
    # The project's names and keys, in the label table, the buttons and the legend.
    assert re.search(r"<td>\+1</td><td>right</td><td><kbd>y</kbd>", html)
    assert re.search(r"<td>−1</td><td>wrong</td><td><kbd>x</kbd>", html)
    assert 'aria-label="Step 1: right (+1)" aria-keyshortcuts="y"' in html
    assert "right (+1), then next" in html
    assert "s0-zero" not in html  # binary: no neutral button
    # The first trace, its steps rendered like the labelling page, inside a disabled fieldset,
    # without the labelling script or the score panel's enqueuing POST.
    assert '<span class="math-inline">1+1</span>' in html and "<em>three</em>" in html
    assert re.search(r'<fieldset disabled class="preview-frame"', html)
    assert "keyboard.js" not in html
    assert reverse("scoring:open", args=[first.pk]) not in html
    assert reverse("scoring:panel", args=[first.pk]) in html
    assert f'href="?trace={second.pk}"' in html
    other = client.get(reverse("annotate:annotator_preview", args=["p"]), {"trace": second.pk})
    assert "Another step." in other.content.decode()
    assert 'data-testid="preview-next"' not in other.content.decode()


def test_blind_projects_say_scores_are_hidden_and_strangers_traces_are_404(world) -> None:  # type: ignore[no-untyped-def]
    project, admin, _, ann, _, _ = world
    services.project_update(project=project, blind=True)
    outside = make_trace(make_project("q"))
    client = Client()
    client.force_login(admin)
    url = reverse("annotate:annotator_preview", args=["p"])
    html = client.get(url).content.decode()
    assert "Blind project: scores are hidden until you submit this trace." in html
    assert "scores/" not in html
    assert client.get(url, {"trace": outside.pk}).status_code == 404
    assert client.get(url, {"trace": "x"}).status_code == 404
    client.force_login(ann)
    refused = client.get(url)
    assert refused.status_code == 403 and "Reviewers only" in refused.content.decode()


def test_an_empty_project_says_it_has_no_trace_yet() -> None:
    admin = make_user("boss")
    make_project("empty", members={admin: "admin"})
    client = Client()
    client.force_login(admin)
    html = client.get(reverse("annotate:annotator_preview", args=["empty"])).content.decode()
    assert "This project has no traces yet" in html
    assert "(no guidelines" not in html and "annotators see none" in html


def test_the_settings_page_links_to_it(world) -> None:  # type: ignore[no-untyped-def]
    _, admin, _, _, _, _ = world
    client = Client()
    client.force_login(admin)
    html = client.get(reverse("annotate:project_settings", args=["p"])).content.decode()
    assert f'href="{reverse("annotate:annotator_preview", args=["p"])}"' in html


def test_the_api_gives_the_same_data_and_writes_nothing(world) -> None:  # type: ignore[no-untyped-def]
    _, _, rev, ann, first, second = world
    api = APIClient()
    api.force_authenticate(rev)
    before = _counts()
    response = api.get(reverse("api:annotator-preview", args=["p"]))
    assert response.status_code == 200, response.content
    body = response.json()
    assert _counts() == before
    assert (body["label_scheme"], body["blind"], body["overlap"]) == ("binary", False, 1)
    assert body["guidelines_html"] == "<p>Mark the <strong>first</strong> wrong step.</p>"
    assert body["label_names"] == {"plus": "right", "zero": "neutral", "minus": "wrong"}
    assert body["keys"]["plus"] == "y"
    assert {"action": "plus", "key": "y", "description": "right (+1), then next"} in body["legend"]
    assert body["trace"]["id"] == first.pk and body["trace"]["next_trace"] == second.pk
    assert [s["text"] for s in body["trace"]["steps"]] == ["We add $1+1$.", "So it is *three*."]
    assert body["trace"]["steps"][1]["html"] == "<p>So it is <em>three</em>.</p>"
    assert api.get(reverse("api:annotator-preview", args=["p"]), {"trace": "x"}).status_code == 400
    api.force_authenticate(ann)
    assert api.get(reverse("api:annotator-preview", args=["p"])).status_code == 403
