"""A real browser on figures, tables and thinking traces: interleaved thinking / response steps
are shown and labelled in their stored order; a table is a grid, open; figures show on the
labelling and adjudication pages."""

from __future__ import annotations

import pytest

from annotate.models import StepLabel, Trace
from tests.browser.test_labelling import PASSWORD, expect_states, log_in
from tests.factories import import_jsonl, make_project, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_interleaved_thinking_and_response_are_labelled_in_order(page, artifacts) -> None:  # type: ignore[no-untyped-def]
    annotator = make_user("annie", password=PASSWORD)
    project = make_project("rf", members={annotator: "annotator"})
    import_jsonl(
        project,
        {
            "id": "rf-1",
            "problem": "What is $3 \\times 4$?",
            "steps": [
                {"text": "Let me think: 3 times 4.", "part": "thinking"},
                {"text": "$3 \\times 4 = 12$.", "part": "response"},
                {"text": "Check: 4 + 4 + 4 = 13.", "part": "thinking"},
                {"text": "The answer is $\\boxed{12}$.", "part": "response"},
            ],
        },
    )
    trace = Trace.objects.get(external_id="rf-1")
    log_in(page, "annie", f"/t/{trace.pk}/")
    page.wait_for_selector("#step-0.is-current")
    rows = page.eval_on_selector_all(
        ".steps .step", "els => els.map(e => [e.dataset.index, e.dataset.part])"
    )
    assert rows == [["0", "thinking"], ["1", "response"], ["2", "thinking"], ["3", "response"]]
    titles = page.eval_on_selector_all(".section-title", "els => els.map(e => e.textContent)")
    assert [t.split()[0] for t in titles] == ["Thinking", "Response", "Thinking", "Response"]
    # Down to the third row (the second thinking step) and mark it the first wrong step.
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert page.locator("#step-2").get_attribute("aria-current") == "step"
    page.keyboard.press("e")
    expect_states(page, {0: {"plus"}, 1: {"plus"}, 2: {"minus", "first-error"}, 3: set()})
    page.screenshot(path=str(artifacts / "interleaved-thinking.png"), full_page=True)
    page.wait_for_function("() => !document.querySelector('.step[data-save=pending]')")
    labels = dict(
        StepLabel.objects.filter(annotation__trace=trace).values_list("step__index", "value")
    )
    assert labels[2] == -1 and labels[0] == labels[1] == 1
