"""Problem and step HTML is rendered once and kept (annotate.rendered): a page view reads the
stored fragments, a new renderer version renders again, and the page shows what it showed."""

from __future__ import annotations

import html as html_lib
import re
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse

from annotate import rendered, rendering
from annotate.models import RenderedHtml, Trace
from annotate.rendering import render_markdown
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert(1)</script> [x](javascript:alert(2)) <img src=x onerror="alert(3)"> $a<b$'


@pytest.fixture
def trace() -> Trace:
    return make_trace(
        make_project("pb", members={make_user("ann"): "annotator"}),
        steps=["First $x_1 = 2$.", "Then **bold**.", HOSTILE],
        problem_text="Find $x$ if *x* = 2.",
    )


def page(trace: Trace) -> str:
    client = Client()
    client.force_login(trace.project.members.get())
    response = client.get(reverse("annotate:trace", args=[trace.pk]))
    assert response.status_code == 200
    return response.content.decode()


def step_texts(html: str) -> list[str]:
    return re.findall(r'<div class="md step-text">(.*?)</div>\s*<span id="step-scores', html, re.S)


def page_texts(trace: Trace) -> set[str]:
    """The texts the page shows as HTML (the factory gives a reference and a final answer)."""
    texts = {trace.problem.text, trace.problem.reference_answer, trace.final_answer}
    return {text for text in texts | {s.text for s in trace.steps.all()} if text}


def counting_renders():  # type: ignore[no-untyped-def]
    return mock.patch.object(rendered, "render_markdown", wraps=render_markdown)


def test_the_first_view_stores_each_text_once_and_the_next_views_render_nothing(
    trace: Trace,
) -> None:
    assert not RenderedHtml.objects.exists()  # the import renders nothing
    with counting_renders() as render:
        page(trace)
    assert render.call_count == len(page_texts(trace)) == 5  # the answers are one text
    stored = {row.digest: row for row in RenderedHtml.objects.all()}
    for step in trace.steps.all():
        row = stored[rendered.html_digest(step.text)]
        assert row.html == render_markdown(step.text)
        assert row.version == rendering.RENDERER_VERSION
    with counting_renders() as render:
        page(trace)
        page(trace)
    assert render.call_count == 0
    assert RenderedHtml.objects.count() == 5


def test_a_new_renderer_version_renders_again(trace: Trace) -> None:
    page(trace)
    with mock.patch.object(rendering, "RENDERER_VERSION", rendering.RENDERER_VERSION + 1):
        with counting_renders() as render:
            page(trace)
        assert render.call_count == 5
        assert set(RenderedHtml.objects.values_list("version", flat=True)) == {
            rendering.RENDERER_VERSION,
            rendering.RENDERER_VERSION - 1,
        }


def test_a_changed_text_is_rendered_again(trace: Trace) -> None:
    page(trace)
    trace.steps.filter(index=1).update(text="Now *changed*.")
    with counting_renders() as render:
        html = page(trace)
    assert render.call_count == 1
    assert step_texts(html)[1] == "<p>Now <em>changed</em>.</p>"


def test_the_page_shows_the_stored_html_as_rendering_gives_it_and_hostile_text_stays_inert(
    trace: Trace,
) -> None:
    first = page(trace)
    second = page(trace)
    for html in (first, second):
        assert step_texts(html) == [render_markdown(s.text) for s in trace.steps.order_by("index")]
        assert f'<div class="md problem-text">{render_markdown(trace.problem.text)}</div>' in html
        assert "<script>alert(1)" not in html and "<img src=x" not in html
        assert 'href="javascript:' not in html
    assert html_lib.escape("<script>alert(1)</script>") in step_texts(second)[2]


def test_a_stored_fragment_is_what_the_page_shows(trace: Trace) -> None:
    """The page trusts the stored rows: they are only ever written from render_markdown."""
    page(trace)
    digest = rendered.html_digest("Then **bold**.")
    RenderedHtml.objects.filter(pk=digest).update(html="<p>kept</p>")
    assert step_texts(page(trace))[1] == "<p>kept</p>"
