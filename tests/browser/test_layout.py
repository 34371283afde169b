"""The labelling page on a phone (390 x 844) and in dark mode, and the adjudication deep link
below the sticky header (issue 14 items 6, 7); screenshots go to test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.factories import make_project, make_trace, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


def _context_page(browser, live_server, **options) -> Iterator[object]:  # type: ignore[no-untyped-def]
    context = browser.new_context(base_url=live_server.url, bypass_csp=True, **options)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    page.goto("about:blank")
    context.close()


@pytest.fixture
def trace():  # type: ignore[no-untyped-def]
    annotator = make_user("pat", password=PASSWORD)
    project = make_project("a-project-with-a-rather-long-name", members={annotator: "annotator"})
    steps = [f"Step {n}: we compute $x_{n} = {n}^2 = {n * n}$ and go on." for n in range(12)]
    return make_trace(project, steps=steps, external_id="bd8232fc0e6d4f0a9b1c-long-id")


def _log_in(page, path: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(path)
    page.fill("#id_username", "pat")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{path.split('#')[0]}*")
    page.wait_for_selector("#trace-page[data-ready=true]")


def _in_viewport(page, selector: str) -> bool:  # type: ignore[no-untyped-def]
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    return bool(box) and box["y"] >= 0 and box["y"] + box["height"] <= size["height"]


def test_phone_layout_keeps_submit_reachable_and_the_legend_behind_help(  # type: ignore[no-untyped-def]
    browser, live_server, trace, artifacts
) -> None:
    pages = _context_page(
        browser, live_server, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = next(pages)
    _log_in(page, f"/t/{trace.pk}/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # Header: the project, a short trace id and the progress.
    assert page.locator(".crumb-project").is_visible()
    assert page.locator(".crumb-trace").is_visible()
    assert page.inner_text(".topbar-progress-short") == "0/1"
    # Submit on screen at the top and at the bottom of a long trace; the legend is not shown.
    assert _in_viewport(page, "#submit-button")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight / 2)")
    assert _in_viewport(page, "#submit-button")
    assert page.locator(".shortcuts-card").is_hidden()
    page.screenshot(path=str(artifacts / "labelling-phone.png"))
    page.click("#help-button")
    assert page.locator("#shortcut-help").is_visible()
    page.screenshot(path=str(artifacts / "labelling-phone-help.png"))
    next(pages, None)


def test_dark_mode_follows_the_system(browser, live_server, trace, artifacts) -> None:  # type: ignore[no-untyped-def]
    pages = _context_page(
        browser, live_server, viewport={"width": 1280, "height": 900}, color_scheme="dark"
    )
    page = next(pages)
    _log_in(page, f"/t/{trace.pk}/")
    page.keyboard.press("1")
    page.keyboard.press("3")
    page.keyboard.press("2")
    page.wait_for_function("!document.querySelector('.step[data-save=pending]')")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(21, 24, 28)"
    page.screenshot(path=str(artifacts / "labelling-dark.png"))
    next(pages, None)


def test_a_deep_link_shows_its_step_below_the_sticky_header(page, trace) -> None:  # type: ignore[no-untyped-def]
    _log_in(page, f"/t/{trace.pk}/")
    page.goto(f"/t/{trace.pk}/#step-9")
    page.reload()  # a fresh load of the link, as from the adjudication page
    page.wait_for_selector("#trace-page[data-ready=true]")
    page.wait_for_timeout(300)
    header = page.locator(".topbar").bounding_box()
    step = page.locator("#step-9").bounding_box()
    assert step["y"] >= header["y"] + header["height"], (step, header)
    assert page.get_attribute("#step-9", "aria-current") == "step"
