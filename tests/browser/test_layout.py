"""The labelling page on a phone (390 x 844), a tablet (768 x 1024, 1024 x 768) and in dark mode,
and the adjudication deep link below the sticky header (issue 14 items 6, 7); screenshots go to
test-artifacts/."""

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


WIDE_STEPS = [
    "A wide display: $$\\sum_{k=1}^{100} \\left(k^2 + 3k + \\frac{k^3 - 7k + 12}{k + 1}\\right)"
    " = 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10 + 11 + 12 + 13 + 14 + 15 + 16 + 17 + 18 + 19$$",
    "An unbroken token: " + "0123456789" * 12,
    "| a | b | c | d | e | f | g | h |\n|---|---|---|---|---|---|---|---|\n"
    "| 1000000 | 2000000 | 3000000 | 4000000 | 5000000 | 6000000 | 7000000 | 8000000 |",
]


def _overflowing(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Elements whose right edge is past the viewport (or clipped there), outside a container
    that scrolls them sideways."""
    return page.evaluate(
        """() => {
          const width = document.documentElement.clientWidth, out = [];
          const scrolls = (el) => {
            for (let p = el.parentElement; p; p = p.parentElement) {
              const o = getComputedStyle(p).overflowX;
              if ((o === 'auto' || o === 'scroll') && p.clientWidth < width) return true;
            }
            return false;
          };
          for (const el of document.querySelectorAll('body *')) {
            const r = el.getBoundingClientRect();
            if (r.width && r.right > width + 1 && !scrolls(el)) out.push(el.tagName + '#' + el.id + '.' + el.className);
          }
          return out.slice(0, 10);
        }"""
    )


@pytest.mark.parametrize(("width", "height"), [(768, 1024), (1024, 768)])
def test_tablet_layout_nothing_overflows_and_labels_and_submit_are_reachable(  # type: ignore[no-untyped-def]
    browser, live_server, trace, artifacts, width, height
) -> None:
    """A tablet, portrait and landscape: the page never scrolls sideways, every step's label
    buttons are on screen and big enough to tap, and Submit is on screen wherever one is."""
    steps = trace.steps.order_by("index")
    for step, text in zip(steps, WIDE_STEPS, strict=False):
        step.text = text
        step.save(update_fields=["text"])
    pages = _context_page(
        browser, live_server, viewport={"width": width, "height": height}, has_touch=True
    )
    page = next(pages)
    _log_in(page, f"/t/{trace.pk}/")
    page.wait_for_selector(".step-text .katex")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert _overflowing(page) == []
    page.screenshot(path=str(artifacts / f"labelling-tablet-{width}x{height}.png"))
    for y in (0, 0.5, 1):
        page.evaluate(f"window.scrollTo(0, document.body.scrollHeight * {y})")
        assert _in_viewport(page, "#submit-button"), y
    # The label buttons of every step: inside the screen's width, big enough for a finger.
    for index in range(trace.steps.count()):
        for button in page.locator(f"#step-{index}-controls button").all():
            button.scroll_into_view_if_needed()
            box = button.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, (index, box)
            assert box["height"] >= 44, (index, box)
    # A table's numbers are never cut in two (its wide rows scroll inside it).
    cell = page.locator("#step-2 td").first
    assert cell.evaluate(
        "td => td.getClientRects().length && td.scrollHeight < 2 * parseFloat(getComputedStyle(td).lineHeight)"
    )
    # The header holds on one line.
    assert page.locator(".topbar").bounding_box()["height"] < 60
    # A tap labels the step, and Submit is then tapped without scrolling to it.
    page.locator("#step-11-controls [data-label-value='-1']").tap()
    page.wait_for_function("!document.querySelector('.step[data-save=pending]')")
    assert page.get_attribute("#step-11-controls", "data-value") == "-1"
    page.locator("#all-correct").tap()  # the steps before it: +1 (filled)
    page.wait_for_function("!document.querySelector('.step[data-save=pending]')")
    page.screenshot(path=str(artifacts / f"labelling-tablet-{width}x{height}-end.png"))
    assert _in_viewport(page, "#submit-button")
    page.locator("#submit-button").tap()
    page.wait_for_url("**/p/a-project-with-a-rather-long-name/")
    next(pages, None)


def test_training_page_fits_a_phone(browser, live_server, artifacts) -> None:  # type: ignore[no-untyped-def]
    """An admin starts a training run from a phone: the form fits the width (no sideways
    scrolling), every field and the start button can be reached, labels sit by their inputs."""
    admin = make_user("ada", password=PASSWORD)
    project = make_project("a-project-with-a-rather-long-name", members={admin: "admin"})
    make_trace(project)
    pages = _context_page(
        browser, live_server, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = next(pages)
    path = f"/p/{project.slug}/training/"
    page.goto(path)
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{path}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for field in ("#id_snapshot", "#id_base", "#id_scorer", "#id_epochs", "#id_more"):
        box = page.locator(field).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (field, box)
    start = page.locator("button:has-text('Start training')")
    start.scroll_into_view_if_needed()
    box = start.bounding_box()
    assert box and box["x"] + box["width"] <= 390
    page.screenshot(path=str(artifacts / "training-phone.png"), full_page=True)
    next(pages, None)
