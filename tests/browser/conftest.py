"""Playwright driving Debian's Chromium against pytest-django's live server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from a thread
# with a running loop unless told that this is a test that knows what it does.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path(os.environ.get("STEPLENS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _page(browser, live_server, *, bypass_csp: bool) -> Iterator[object]:  # type: ignore[no-untyped-def]
    context = browser.new_context(
        viewport={"width": 1400, "height": 1000}, base_url=live_server.url, bypass_csp=bypass_csp
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    # Script errors show in the test's captured output.
    page.on("pageerror", lambda error: print("page error:", error))
    page.on(
        "console",
        lambda m: m.type == "error" and print("console error:", m.text, m.location.get("url")),
    )
    yield page
    # Leave the page first and give its pagehide beacons (heartbeat, notes) a moment to land,
    # so that they do not race the database flush that ends the test.
    page.goto("about:blank")
    page.wait_for_timeout(150)
    context.close()


@pytest.fixture
def page(browser, live_server) -> Iterator[object]:  # type: ignore[no-untyped-def]
    # Playwright evaluates the tests' string predicates (wait_for_function) with eval, which the
    # pages' Content-Security-Policy refuses: test pages bypass it; tests/browser/test_csp.py
    # checks the pages under the policy with `strict_page`.
    yield from _page(browser, live_server, bypass_csp=True)


@pytest.fixture
def strict_page(browser, live_server) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """A page that enforces the Content-Security-Policy, as every browser does."""
    yield from _page(browser, live_server, bypass_csp=False)


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
