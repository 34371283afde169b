"""Nothing an annotator does on the labelling page is lost or hidden (issue 14), in real Chromium:
a failed save shows on its step and is retried until the server has it; a reload right after a
key or a note shows them; a logged-out annotator keeps the unsaved labels, which are sent after
logging in; an error never replaces the page (DEBUG too); Submit is refused, naming the steps,
while a change is unsaved; `e` keeps labels set by hand and is undone with `u`, and the undo
history survives a reload."""

from __future__ import annotations

import json

import pytest
from django.contrib.sessions.models import Session

from annotate.models import Annotation, AnnotationStatus, LabelSource, StepLabel
from tests.factories import make_project, make_trace, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
CHANGES = "**/api/traces/*/changes/"
# The length of every change log in the browser's storage (the undo history is kept beside them).
CHANGE_LOG_LENGTHS = """Object.keys(localStorage).filter(k => k.startsWith('steplens:changes:'))
    .map(k => JSON.parse(localStorage[k]).changes.length)"""


def saved(trace) -> dict[int, tuple[int | None, str]]:  # type: ignore[no-untyped-def]
    return {
        index: (value, source)
        for index, value, source in StepLabel.objects.filter(step__trace=trace).values_list(
            "step__index", "value", "source"
        )
    }


def wait_saved(page, trace, expected: dict[int, int | None]) -> dict[int, tuple[int | None, str]]:  # type: ignore[no-untyped-def]
    """Poll the database (the page's requests land on the live server) until it holds these."""
    rows: dict[int, tuple[int | None, str]] = {}
    for _ in range(100):
        rows = saved(trace)
        if all(rows.get(i, (None, ""))[0] == v for i, v in expected.items()):
            return rows
        page.wait_for_timeout(100)
    raise AssertionError(f"the server has {rows}, not {expected}")


def value_on_page(page, index: int) -> str | None:  # type: ignore[no-untyped-def]
    return page.get_attribute(f"#step-{index}-controls", "data-value")


@pytest.fixture
def world(page):  # type: ignore[no-untyped-def]
    annotator = make_user("dana", password=PASSWORD)
    project = make_project("durable", members={annotator: "annotator"})
    trace = make_trace(project, steps=[f"Step {n}: $x = {n}$." for n in range(6)])
    dialogs: list[str] = []

    def on_dialog(dialog) -> None:  # type: ignore[no-untyped-def]
        dialogs.append(dialog.type)
        dialog.accept()

    page.on("dialog", on_dialog)
    page.goto(f"/t/{trace.pk}/")
    page.fill("#id_username", "dana")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/t/{trace.pk}/")
    page.wait_for_selector("#trace-page[data-ready=true]")
    return {"trace": trace, "user": annotator, "dialogs": dialogs}


def test_a_failed_save_shows_on_its_step_and_is_retried_until_saved(page, world) -> None:  # type: ignore[no-untyped-def]
    trace = world["trace"]
    failures = {"left": 1}

    def flaky(route) -> None:  # type: ignore[no-untyped-def]
        if failures["left"]:
            failures["left"] -= 1
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route(CHANGES, flaky)
    page.keyboard.press("3")  # step 1: -1, its request fails
    page.wait_for_selector("#step-0[data-save=failed]")
    assert "not saved" in page.inner_text("#step-0 .save-state")
    assert "Not saved" in page.inner_text("#save-banner")
    page.keyboard.press("1")  # step 2 goes after it, in order
    # Submit is refused while a change is unsaved, naming the step.
    page.click("#submit-button")
    assert "Not submitted: steps 1, 2 not saved yet" in page.inner_text("#submit-pending")
    # The retry (backoff: 1 s) succeeds: both labels on the server, the steps say saved.
    rows = wait_saved(page, trace, {0: -1, 1: 1})
    assert rows[0] == (-1, LabelSource.HAND)
    page.wait_for_function("!document.querySelector('.step[data-save=failed]')")
    assert page.is_hidden("#save-banner")
    assert failures["left"] == 0
    assert world["dialogs"] == []


def test_a_reload_right_after_a_key_and_a_note_shows_them(page, world) -> None:  # type: ignore[no-untyped-def]
    trace = world["trace"]
    # The server is slow to get the saves (here: it never does while the page is open), so the
    # reload's page is served before them: the page shows them from the browser's change log.
    page.route(CHANGES, lambda route: route.abort("connectionreset"))
    page.keyboard.press("1")
    page.keyboard.press("n")
    page.keyboard.type("typed, then reloaded")
    page.reload()
    page.wait_for_selector("#trace-page[data-ready=true]")
    assert value_on_page(page, 0) == "1"
    assert page.input_value("#note-1") == "typed, then reloaded"
    # (The keepalive request sent as the page went may have landed meanwhile: either way the
    # page shows the changes, and sends again those it has not seen confirmed.)
    # Once the server can be reached, they are sent and confirmed.
    page.unroute(CHANGES)
    if page.is_visible("#save-banner-retry"):
        page.click("#save-banner-retry")
    wait_saved(page, trace, {0: 1})
    for _ in range(50):
        if (
            StepLabel.objects.filter(step__trace=trace, step__index=1)
            .values_list("note", flat=True)
            .first()
        ):
            break
        page.wait_for_timeout(100)
    assert StepLabel.objects.get(step__trace=trace, step__index=1).note == "typed, then reloaded"
    page.reload()
    page.wait_for_selector("#trace-page[data-ready=true]")
    assert value_on_page(page, 0) == "1"
    assert page.evaluate(CHANGE_LOG_LENGTHS) == [0]


def test_logged_out_keeps_the_labels_and_sends_them_after_logging_in(page, world) -> None:  # type: ignore[no-untyped-def]
    trace = world["trace"]
    page.keyboard.press("1")
    wait_saved(page, trace, {0: 1})
    Session.objects.all().delete()  # the session expires
    page.keyboard.press("3")
    page.keyboard.press("1")
    page.wait_for_selector("#save-banner:not([hidden])")
    text = page.inner_text("#save-banner")
    assert "You were logged out: log in again" in text
    assert "2 unsaved changes" in text and "steps 2, 3" in text
    assert page.url.endswith(f"/t/{trace.pk}/")  # the page is still there
    page.click("#save-banner-login")
    page.wait_for_url("**/accounts/login/**")
    page.fill("#id_username", "dana")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/t/{trace.pk}/")
    page.wait_for_selector("#trace-page[data-ready=true]")
    assert [value_on_page(page, i) for i in range(3)] == ["1", "-1", "1"]
    wait_saved(page, trace, {0: 1, 1: -1, 2: 1})


def test_an_error_never_replaces_the_page_even_in_debug(page, world, settings) -> None:  # type: ignore[no-untyped-def]
    settings.DEBUG = True  # django-htmx's debug handler is on the page
    trace = world["trace"]
    page.route("**/scoring/**", lambda route: route.fulfill(status=500, body="<h1>boom</h1>"))
    page.route(CHANGES, lambda route: route.fulfill(status=500, body="<h1>Server Error</h1>"))
    page.reload()
    page.wait_for_selector("#trace-page[data-ready=true]")
    page.keyboard.press("1")
    page.wait_for_selector("#step-0[data-save=failed]")
    page.wait_for_timeout(500)
    assert page.locator("#trace-page").count() == 1
    assert "boom" not in page.content()
    assert "the server answered 500" in page.inner_text("#save-banner")
    page.unroute(CHANGES)
    page.click("#save-banner-retry")
    wait_saved(page, trace, {0: 1})


def test_e_keeps_hand_labels_and_u_undoes_it(page, world) -> None:  # type: ignore[no-untyped-def]
    trace = world["trace"]
    page.keyboard.press("3")  # step 1: -1 by hand
    page.keyboard.press("2")  # step 2: 0 by hand
    page.keyboard.press("j")
    page.keyboard.press("j")  # step 4
    page.keyboard.press("e")
    rows = wait_saved(page, trace, {0: -1, 1: 0, 2: 1, 3: 1, 4: -1})
    assert rows[2] == (1, LabelSource.FILLED)
    assert rows[4] == (-1, LabelSource.FIRST_ERROR)
    assert "Kept your own labels on steps 1, 2" in page.inner_text("#label-notice")
    assert page.is_visible("#step-2 .source-mark")  # "filled" is shown on the step
    page.keyboard.press("u")  # undo `e`: steps 3 to 5 as they were (unlabelled)
    assert [value_on_page(page, i) for i in (2, 3, 4)] == ["", "", ""]
    rows = wait_saved(page, trace, {0: -1, 1: 0, 2: None, 3: None, 4: None})
    page.keyboard.press("Shift+U")  # redo
    wait_saved(page, trace, {2: 1, 3: 1, 4: -1})
    page.keyboard.press("Control+z")
    wait_saved(page, trace, {2: None, 3: None, 4: None})
    page.keyboard.press("a")  # all correct: hand labels kept, said so
    rows = wait_saved(page, trace, {0: -1, 1: 0, 2: 1, 5: 1})
    assert rows[5] == (1, LabelSource.FILLED)


def test_changes_left_in_another_traces_log_are_sent_from_the_next_trace_page(page, world) -> None:  # type: ignore[no-untyped-def]
    """A trace left with unsaved changes (offline) and never reopened: the next trace page the
    annotator opens sends them."""
    other = make_trace(world["trace"].project, steps=["x", "y"])
    box = {
        "client": "left-behind",
        "seq": 2,
        "changes": [
            {"seq": 1, "op": "label", "index": 0, "value": -1, "touch": [0]},
            {"seq": 2, "op": "label", "index": 1, "note": "written offline", "touch": [1]},
        ],
    }
    key = f"steplens:changes:{world['user'].pk}:{other.pk}"
    page.evaluate("([k, v]) => localStorage.setItem(k, v)", [key, json.dumps(box)])
    page.reload()
    page.wait_for_selector("#trace-page[data-ready=true]")
    wait_saved(page, other, {0: -1})
    assert StepLabel.objects.get(step__trace=other, step__index=1).note == "written offline"
    page.wait_for_function("k => JSON.parse(localStorage.getItem(k)).changes.length === 0", arg=key)


def test_a_log_in_in_another_tab_does_not_lose_or_block_the_saves(page, world) -> None:  # type: ignore[no-untyped-def]
    """Logging in again in another tab replaces the CSRF token this page holds (a 403): the page
    fetches a fresh one and sends the change, without saying "logged out"."""
    trace = world["trace"]
    other = page.context.new_page()
    other.goto("/")
    other.click(".topbar button:has-text('Log out')")
    other.wait_for_load_state()
    other.goto(f"/accounts/login/?next=/t/{trace.pk}/")
    other.fill("#id_username", "dana")
    other.fill("#id_password", PASSWORD)
    other.click("button[type=submit]")
    other.wait_for_url(f"**/t/{trace.pk}/")
    other.close()
    page.evaluate(
        """() => { window.__bannerShown = false;
                   const b = document.getElementById('save-banner');
                   new MutationObserver(() => { if (!b.hidden) window.__bannerShown = true; })
                     .observe(b, {attributes: true}); }"""
    )
    page.keyboard.press("3")
    page.wait_for_function(
        "document.querySelector('#step-0').dataset.save === 'saved'", timeout=3000
    )
    assert saved(trace)[0][0] == -1
    assert page.evaluate("window.__bannerShown") is False


def test_a_saved_note_is_not_sent_again_when_the_tab_is_hidden(page, world) -> None:  # type: ignore[no-untyped-def]
    trace = world["trace"]
    page.keyboard.press("n")
    page.keyboard.type("once is enough")
    page.keyboard.press("Escape")
    page.wait_for_function("!document.querySelector('.step[data-save=pending]')")
    assert StepLabel.objects.get(step__trace=trace, step__index=0).note == "once is enough"
    sent: list[str] = []
    page.on("request", lambda r: "/changes/" in r.url and r.method == "POST" and sent.append(r.url))
    page.evaluate("window.dispatchEvent(new Event('pagehide'))")  # what hiding the tab runs
    page.wait_for_timeout(300)
    assert page.evaluate(CHANGE_LOG_LENGTHS) == [0]
    assert sent == []


def test_submit_is_refused_naming_the_steps_while_their_changes_are_on_their_way(
    page, world
) -> None:  # type: ignore[no-untyped-def]
    """Issue 14: "Submit is refused while anything is pending or failed, saying which step"."""
    trace = world["trace"]
    held: list[object] = []
    page.route(CHANGES, lambda route: held.append(route))  # the saves are slow to arrive
    page.keyboard.press("1")
    page.keyboard.press("3")  # steps 1 and 2, both on their way
    page.keyboard.press("Enter")
    page.wait_for_selector("#submit-pending:not([hidden])")
    text = page.inner_text("#submit-pending")
    assert "Not submitted: steps 1, 2 still being saved" in text
    page.wait_for_timeout(500)
    assert page.url.endswith(f"/t/{trace.pk}/")  # refused at once, not submitted later either
    assert not Annotation.objects.filter(trace=trace, status=AnnotationStatus.SUBMITTED).exists()
    assert held  # the first save is held, the second waits behind it
    page.unroute(CHANGES)  # the held request goes on to the server
    wait_saved(page, trace, {0: 1, 1: -1})
    page.wait_for_selector("#submit-pending", state="hidden")  # saved: the message goes
    assert not Annotation.objects.filter(trace=trace, status=AnnotationStatus.SUBMITTED).exists()
    page.keyboard.press("Enter")  # now it submits
    page.wait_for_url("**/p/durable/")
    assert Annotation.objects.get(trace=trace).status == AnnotationStatus.SUBMITTED


def test_the_undo_history_survives_a_reload_and_submit_clears_it(page, world) -> None:  # type: ignore[no-untyped-def]
    trace = world["trace"]
    page.keyboard.press("3")  # step 1: -1 by hand (the key moves on to step 2)
    page.keyboard.press("j")
    page.keyboard.press("j")  # step 4
    page.keyboard.press("e")
    wait_saved(page, trace, {0: -1, 1: 1, 2: 1, 3: -1})

    def reload() -> None:
        page.reload()
        page.wait_for_selector("#trace-page[data-ready=true]")

    reload()
    page.keyboard.press("u")  # undoes `e`, from the history kept over the reload
    assert "Undone: first wrong step 4" in page.inner_text("#label-notice")
    wait_saved(page, trace, {0: -1, 1: None, 2: None, 3: None})
    reload()
    page.keyboard.press("Shift+U")  # redo, after another reload
    wait_saved(page, trace, {1: 1, 2: 1, 3: -1})
    reload()
    page.keyboard.press("Control+z")
    page.keyboard.press("u")  # and the label before it
    wait_saved(page, trace, {0: None, 1: None, 2: None, 3: None})
    assert [value_on_page(page, i) for i in range(4)] == ["", "", "", ""]
    page.keyboard.press("u")
    assert "Nothing to undo." in page.inner_text("#label-notice")

    # Submit clears it: the trace opened again has nothing to undo.
    page.keyboard.press("a")
    wait_saved(page, trace, {i: 1 for i in range(6)})
    page.wait_for_function("!document.querySelector('.step[data-save=pending]')")
    page.keyboard.press("Enter")
    page.wait_for_url("**/p/durable/")
    assert (
        page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('steplens:undo:'))") == []
    )
    page.goto(f"/t/{trace.pk}/")
    page.wait_for_selector("#trace-page[data-ready=true]")
    page.keyboard.press("u")
    assert "Nothing to undo." in page.inner_text("#label-notice")
    assert [value_on_page(page, i) for i in range(6)] == ["1"] * 6
