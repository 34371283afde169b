"""Hostile text in every field a trace brings (problem, reference answer, steps, generator, a
note) stays inert in a real browser, on every page that shows it: no dialog, no script runs.

tests/browser/test_labelling.py covers hostile step text on the trace page; this one puts the
payloads in the problem and the other fields too, and visits the queue and Best-of-N pages.
"""

from __future__ import annotations

import pytest

from annotate import services
from annotate.models import Problem, Trace
from scoring import services as scoring_services
from tests.browser.test_labelling import PASSWORD, log_in
from tests.factories import make_project, make_trace, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAYLOADS = [
    "<script>window.__pwned = 'script'; alert('script')</script>",
    "<img src=x onerror=\"window.__pwned = 'img'; alert('img')\">",
    "<b onmouseover=\"alert('hover')\" onclick=\"alert('click')\">bold</b>",
    "[click me](javascript:window.__pwned='link';alert('link'))",
    "[spaced](  JaVaScRiPt:alert('case') )",
    '<a href="javascript:alert(\'a\')">a</a> <a href="data:text/html,<script>alert(1)</script>">d</a>',
    r"$\href{javascript:alert('href')}{x}$ and $\url{javascript:alert('url')}$",
    r"$$\href{javascript:window.__pwned='display'}{\text{display}}$$",
    "</textarea><svg onload=\"window.__pwned = 'svg'; alert('svg')\"></svg>",
    "<iframe srcdoc=\"<script>parent.alert('frame')</script>\"></iframe>",
    "<style>body{display:none}</style><details open ontoggle=\"alert('toggle')\">x</details>",
    "{{ 7|add:7 }} {% now 'Y' %} ${alert('template')}",
]
HOSTILE = "\n\n".join(PAYLOADS)

# Anything in the page that would run: every element that carries an event handler, a script
# link, or an embedding element, outside the app's own chrome.
INJECTED = (
    "a[href^='javascript:' i], a[href^='data:' i], [onerror], [onload], [onclick], "
    "[onmouseover], [ontoggle], iframe, main svg[onload], main script, main img[src='x']"
)


def _hostile_trace() -> Trace:
    annotator = make_user("victim", password=PASSWORD)
    project = make_project("xss-everywhere", members={annotator: "annotator"})
    trace = make_trace(project, steps=PAYLOADS, problem_text=HOSTILE)
    Problem.objects.filter(pk=trace.problem_id).update(reference_answer=HOSTILE[:500])
    Trace.objects.filter(pk=trace.pk).update(generator=PAYLOADS[0], final_answer=PAYLOADS[1])
    services.label_set(user=annotator, step=trace.steps.get(index=0), note=HOSTILE)
    scorer = scoring_services.scorer_create(name="tool", backend="tool", projects=[project])
    assert scorer.pk
    return trace


def _poke_everything(page) -> None:  # type: ignore[no-untyped-def]
    """Hover and click every element the data produced, then wait for anything delayed."""
    for element in page.locator(
        "main p, main a, main .katex, main b, main details, main summary, main li"
    ).all()[:200]:
        try:
            element.hover(force=True, timeout=1000)
            element.click(force=True, no_wait_after=True, timeout=1000)
        except Exception:  # an element that went away or is hidden: nothing to poke
            continue
    page.wait_for_timeout(300)


def _assert_inert(page, dialogs: list[str], where: str) -> None:  # type: ignore[no-untyped-def]
    assert dialogs == [], where
    assert page.evaluate("window.__pwned") is None, where
    assert page.locator(INJECTED).count() == 0, (
        where,
        page.locator(INJECTED).first.evaluate("e => e.outerHTML"),
    )


def test_hostile_problem_and_steps_stay_inert_on_every_page(page) -> None:  # type: ignore[no-untyped-def]
    trace = _hostile_trace()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    log_in(page, "victim", f"/t/{trace.pk}/")
    page.wait_for_selector(".step-text")
    _poke_everything(page)
    page.goto(f"/t/{trace.pk}/")  # a click may have navigated: come back and check the page
    page.wait_for_selector(".step-text")
    _assert_inert(page, dialogs, "trace page")
    # The payloads are shown as text, to be read and labelled.
    assert "<script>window.__pwned" in page.locator(".problem-text").inner_text()
    assert "<script>window.__pwned" in page.locator("#step-0 .step-text").inner_text()

    for url in (
        f"/p/{trace.project.slug}/",
        f"/scoring/problems/{trace.problem_id}/best-of-n/",
        "/",
    ):
        page.goto(url)
        page.wait_for_load_state("load")
        _poke_everything(page)
        page.goto(url)
        page.wait_for_load_state("load")
        _assert_inert(page, dialogs, url)
