"""Every page that shows problem or step text reads its HTML from the kept fragments
(annotate.rendered), one query a page: a second view renders nothing, and shows what the renderer
gives, hostile text inert."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from unittest import mock

import pytest
from django.db import connection
from django.template.defaultfilters import truncatechars
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotate import rendering
from annotate.models import Problem, Project, Trace
from annotate.rendering import render_markdown, render_table
from review import services as queues
from scoring import services as scoring_services
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert(1)</script> [x](javascript:alert(2)) <img src=x onerror="alert(3)"> $a<b$'
PROBLEM = f"Find $x$ if **x** = 2. {HOSTILE} " + "And more words. " * 12  # > 160 characters
ANSWER = f"$x = 2$ {HOSTILE} " + "because " * 10  # > 80 characters
TABLE = {"header": ["n", "<b>$n^2$</b>"], "rows": [["2", "$4$"], ["3", HOSTILE]]}


@pytest.fixture
def world(django_capture_on_commit_callbacks) -> dict[str, object]:
    rev, ann = make_user("rev"), make_user("ann")
    project = make_project("pages", members={rev: "reviewer", ann: "annotator"})
    Project.objects.filter(pk=project.pk).update(guidelines=f"Be **careful**. {HOSTILE}")
    traces = [
        make_trace(
            project,
            external_id=f"t{i}",
            problem_text=PROBLEM,
            steps=[f"Step $x_{i}$ *one*.", HOSTILE, "`code $y$`"],
        )
        for i in range(3)
    ]
    Problem.objects.filter(project=project).update(table=TABLE, reference_answer=f"$2$ {HOSTILE}")
    Trace.objects.filter(project=project).update(final_answer=ANSWER)
    tool = scoring_services.scorer_create(name="tool", backend="tool", projects=[project])
    payload = "\n".join(
        json.dumps({"trace_id": t.external_id, "scores": [0.9, 0.1, 0.5]}) for t in traces
    )
    with django_capture_on_commit_callbacks(execute=True):
        scoring_services.scores_import(
            project=project, scorer=tool, stream=io.BytesIO(payload.encode()), filename="s"
        )
    queues.priorities_sync(project=project)
    return {"project": project, "trace": traces[0], "rev": rev, "ann": ann}


PAGES: dict[str, tuple[str, Callable[[dict[str, object]], str]]] = {
    "trace": ("ann", lambda w: reverse("annotate:trace", args=[w["trace"].pk])),  # type: ignore[attr-defined]
    "adjudicate": ("rev", lambda w: reverse("review:adjudicate", args=[w["trace"].pk])),  # type: ignore[attr-defined]
    "best_of_n": (
        "rev",
        lambda w: reverse("review:best_of_n", args=[w["trace"].problem_id]) + "?scorer=tool",  # type: ignore[attr-defined]
    ),
    "queue": ("ann", lambda w: reverse("review:queue", args=["pages"])),
    "data": ("rev", lambda w: reverse("review:data", args=["pages"])),
    "doc": ("ann", lambda w: reverse("annotate:doc", args=["formats"])),
}


def view(world: dict[str, object], name: str) -> str:
    who, url = PAGES[name]
    client = Client()
    client.force_login(world[who])  # type: ignore[arg-type]
    response = client.get(url(world))
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def markdown_renders():  # type: ignore[no-untyped-def]
    """Counts every Markdown render, whoever calls the renderer."""
    return mock.patch.object(rendering._MD, "render", wraps=rendering._MD.render)


def without_tokens(html: str) -> str:
    return re.sub(r"\b[A-Za-z0-9]{64}\b", "<csrf token>", html)  # masked anew on each response


@pytest.mark.parametrize("name", list(PAGES))
def test_a_second_view_renders_nothing_reads_one_query_and_shows_the_same_page(
    world: dict[str, object], name: str
) -> None:
    with markdown_renders() as render:
        first = view(world, name)
    assert render.call_count > 0  # nothing was kept before the first view
    with markdown_renders() as render, CaptureQueriesContext(connection) as queries:
        second = view(world, name)
    assert render.call_count == 0
    kept = [q["sql"] for q in queries.captured_queries if "annotate_renderedhtml" in q["sql"]]
    assert len(kept) == 1, kept
    assert without_tokens(second) == without_tokens(first)


def expected_fragments(world: dict[str, object], name: str) -> list[str]:
    """What each page showed with the `markdown` filter before: render_markdown of its texts."""
    trace: Trace = world["trace"]  # type: ignore[assignment]
    problem = Problem.objects.get(pk=trace.problem_id)
    table = render_table(TABLE["header"], TABLE["rows"])  # type: ignore[arg-type]
    steps = [render_markdown(s.text) for s in trace.steps.order_by("index")]
    return {
        "trace": [render_markdown(PROBLEM), render_markdown(ANSWER), table, *steps],
        "adjudicate": [render_markdown(PROBLEM), render_markdown(problem.reference_answer), table]
        + steps,
        "best_of_n": [
            render_markdown(PROBLEM),
            render_markdown(problem.reference_answer),
            render_markdown(truncatechars(ANSWER, 80)),
        ],
        "queue": [
            render_markdown(world["project"].guidelines),  # type: ignore[attr-defined]
            render_markdown(truncatechars(PROBLEM, 140)),
        ],
        "data": [render_markdown(truncatechars(PROBLEM, 160))],
        "doc": [],
    }[name]


@pytest.mark.parametrize("name", list(PAGES))
def test_each_page_shows_the_renderers_html_and_hostile_text_stays_inert(
    world: dict[str, object], name: str
) -> None:
    for html in (view(world, name), view(world, name)):  # rendered, then read back
        for fragment in expected_fragments(world, name):
            assert fragment in html
        assert "<script>alert" not in html and "<img src=x" not in html
        assert 'href="javascript:' not in html


def test_the_problem_table_is_kept_too(world: dict[str, object]) -> None:
    view(world, "trace")
    with mock.patch("annotate.templatetags.steplens.render_markdown") as fallback:
        view(world, "adjudicate")
    fallback.assert_not_called()
