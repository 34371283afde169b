"""The labelling page's HTML, byte for byte, on fixed traces (issue 16, item 3): the fixtures were
saved from main before the page's template and queries were reworked for speed, so any change to
what the page sends (apart from CSRF tokens) shows here. Regenerate only for a change meant to be
visible: STEPLENS_WRITE_PAGE_FIXTURES=1 pytest tests/annotate/test_trace_page_html.py."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client

from annotate import services
from annotate.models import LabelScheme, Problem, Project, Step, Trace
from tests.factories import make_project, make_user

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures"
# Masked CSRF tokens differ on every response: form fields, htmx headers, the body's data attribute.
CSRF = re.compile(r'(name="csrfmiddlewaretoken" value="|"X-CSRFToken": "|data-csrf=")[^"]*"')

STEPS = [
    ("thinking", 'Let $x = 2$. Then <script>alert(1)</script> & "quotes".'),
    ("thinking", "So **x** squared is $x^2 = 4$."),
    ("response", "First, $x_1 = 2$."),
    ("response", "Then `code` and a [link](http://example.com)."),
    ("thinking", "Wait, check again: $\\frac{1}{2}$."),
    ("response", "Therefore the answer is $4$."),
]


def _trace(project: Project, *, base: int) -> Trace:
    problem = Problem.objects.create(
        pk=base,
        project=project,
        content_sha256=f"{base:064x}",
        text="What is $x^2$ if $x = 2$? <b>bold</b>",
        reference_answer="4",
        reference_solution="Square it: $2^2 = 4$.",
    )
    trace = Trace.objects.create(
        pk=base,
        project=project,
        problem=problem,
        generator="gen-1",
        final_answer="$4$",
        source="test",
        subset="math",
        external_id=f"fixed-{base}",
    )
    Step.objects.bulk_create(
        Step(pk=base + i, trace=trace, index=i, text=text, part=part)
        for i, (part, text) in enumerate(STEPS)
    )
    return trace


def _page(user: AbstractBaseUser, trace: Trace) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(f"/t/{trace.pk}/")
    assert response.status_code == 200
    return CSRF.sub(r'\1"', response.content.decode())


def _check(name: str, html: str) -> None:
    path = FIXTURES / name
    if os.environ.get("STEPLENS_WRITE_PAGE_FIXTURES"):
        FIXTURES.mkdir(exist_ok=True)
        path.write_text(html)
    assert html == path.read_text(), f"the page differs from {path.name}"


def test_a_ternary_trace_with_labels_notes_flags_and_parts_is_unchanged() -> None:
    user = make_user("fixed-annotator", id=90001)
    project = make_project("fixed-ternary", members={user: "annotator"})
    trace = _trace(project, base=91000)
    services.label_set_at(user=user, trace=trace, index=0, annotation_id=None, value=1)
    annotation_id = trace.annotations.get().pk
    services.label_set_at(
        user=user,
        trace=trace,
        index=1,
        annotation_id=annotation_id,
        value=0,
        flagged=True,
        note='A note with <b>tags</b> & "quotes"',
    )
    services.label_set_at(user=user, trace=trace, index=3, annotation_id=annotation_id, value=-1)
    services.label_set_at(
        user=user, trace=trace, index=4, annotation_id=annotation_id, flagged=True
    )
    _check("trace_page_ternary.html", _page(user, trace))


def test_a_submitted_first_error_trace_seen_by_a_reviewer_is_unchanged() -> None:
    user = make_user("fixed-reviewer", id=90002)
    project = make_project(
        "fixed-first-error", members={user: "reviewer"}, label_scheme=LabelScheme.FIRST_ERROR
    )
    trace = _trace(project, base=92000)
    step = Step.objects.select_related("trace__project").get(trace=trace, index=2)
    services.label_first_error(user=user, step=step)
    services.annotation_submit(user=user, trace=trace)
    _check("trace_page_first_error.html", _page(user, trace))


def test_an_untouched_binary_trace_is_unchanged() -> None:
    user = make_user("fixed-binary", id=90003)
    project = make_project("fixed-binary", members={user: "annotator"}, label_scheme="binary")
    trace = _trace(project, base=93000)
    _check("trace_page_binary.html", _page(user, trace))
