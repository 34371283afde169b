"""Long traces and per-project keys in real Chromium (issue 14): the step rail shows every step's
label and jumps on a click; `g` goes to the next unlabelled step, `d` to the next step where the
PRM disagrees with the annotator; a project's own keys label steps."""

from __future__ import annotations

import pytest

from annotate import services
from annotate.models import StepLabel
from tests.factories import make_project, make_trace, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


def test_rail_jump_keys_and_project_keys(page) -> None:  # type: ignore[no-untyped-def]
    user = make_user("lee", password=PASSWORD)
    project = make_project("long", members={user: "annotator"})
    services.project_update(project=project, hotkeys={"keys": {"plus": "y", "minus": "x"}})
    trace = make_trace(project, steps=[f"Step {n}." for n in range(60)])
    page.goto(f"/t/{trace.pk}/")
    page.fill("#id_username", "lee")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#trace-page[data-ready=true]")
    assert page.locator(".rail-tick").count() == 60

    page.keyboard.press("y")  # step 1: +1 with the project's key
    page.keyboard.press("x")  # step 2: -1
    page.keyboard.press("1")  # the default key of "plus" is not this project's: nothing
    page.wait_for_function("!document.querySelector('.step[data-save=pending]')")
    values = dict(StepLabel.objects.values_list("step__index", "value"))
    assert values == {0: 1, 1: -1}
    page.wait_for_selector('.rail-tick[data-index="0"][data-value="1"]')
    assert page.get_attribute('.rail-tick[data-index="1"]', "data-value") == "-1"

    # A click on the rail jumps to that step.
    page.click('.rail-tick[data-index="40"]')
    page.wait_for_selector("#step-40.is-current")
    page.keyboard.press("y")
    # `g`: the next unlabelled step after the current one (41 is next; from 41 on, 42).
    page.keyboard.press("g")
    page.wait_for_selector("#step-42.is-current")

    # `d`: the next step whose PRM verdict contradicts the label (the panel's badges: step 2
    # judged right by the PRM but labelled -1; step 1 labelled +1 and judged right).
    page.evaluate(
        """() => {
             for (const [i, wrong] of [[0, false], [1, false], [40, true]]) {
               const slot = document.querySelector(`#step-${i} .step-scores`);
               slot.innerHTML = `<span class="score-badge${wrong ? ' score-wrong' : ''}">prm</span>`;
             }
             document.dispatchEvent(new Event('htmx:oobAfterSwap'));
           }"""
    )
    page.keyboard.press("d")
    page.wait_for_selector("#step-1.is-current")
    page.keyboard.press("d")
    page.wait_for_selector("#step-40.is-current")
    assert page.locator(".rail-tick.is-disagree").count() == 2
