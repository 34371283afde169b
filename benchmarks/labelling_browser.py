"""The labelling page in real Chromium (Playwright): page-ready p95 and key-to-saved p95 on a
20-step and a 500-step trace (issue 14). Results: docs/benchmarks.md, "Labelling page in a browser".

    PYTHONPATH=. .venv/bin/python -m pytest -p no:cacheprovider -q -s benchmarks/labelling_browser.py

Runs against pytest-django's live server (Django's threaded dev server, SQLite, DEBUG off) on
loopback, with the Chromium the browser tests use. Page ready: from navigation start until the
page is usable: the later of DOMContentLoaded's end (KaTeX has rendered the math) and
keyboard.js's "steplens:ready" mark (the change log replayed, the first step focused). Key to
saved: from the keydown of a label key until the step says "saved" (the server confirmed the
change), one key at a time. Prints one JSON line per trace size.
"""

from __future__ import annotations

import json
import statistics

import pytest

from tests.browser.conftest import browser  # noqa: F401  (the fixture)
from tests.factories import make_project, make_trace, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "benchmark password 1"
LOADS = 15
KEYS = 60

STEP = "We have $x_{n} = \\frac{n(n+1)}{2}$, so the sum up to {n} is {m}; check: {m} - {n} = {k}."


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def _measure(page, trace_id: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    ready: list[float] = []
    parts: dict[str, list[float]] = {"response_end": [], "dom_interactive": [], "script_ready": []}
    for _ in range(LOADS):
        page.goto(f"/t/{trace_id}/")
        page.wait_for_selector("#trace-page[data-ready=true]")
        page.wait_for_load_state("load")
        ready.append(
            page.evaluate(
                """() => Math.max(
                     performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd,
                     performance.getEntriesByName('steplens:ready')[0].startTime)"""
            )
        )
        nav = page.evaluate(
            """() => { const n = performance.getEntriesByType('navigation')[0];
                       return [n.responseEnd, n.domInteractive,
                               performance.getEntriesByName('steplens:ready')[0].startTime]; }"""
        )
        for name, value in zip(parts, nav, strict=True):
            parts[name].append(value)
    saved: list[float] = []
    for n in range(KEYS):
        key = "1" if n % 2 == 0 else "3"
        page.evaluate(
            """() => {
                 const row = document.querySelector('.step.is-current');
                 window.__row = row;
                 window.__done = new Promise(resolve => {
                   const t0 = {v: null};
                   document.addEventListener('keydown', () => { t0.v = performance.now(); },
                                             {capture: true, once: true});
                   new MutationObserver((_, obs) => {
                     if (row.getAttribute('data-save') === 'saved') {
                       obs.disconnect(); resolve(performance.now() - t0.v);
                     }
                   }).observe(row, {attributes: true, attributeFilter: ['data-save']});
                 });
               }"""
        )
        page.keyboard.press(key)
        saved.append(page.evaluate("window.__done"))
        page.keyboard.press("k")  # back to the same step: the next key changes it again
    return {
        "page_ready_p50_ms": round(statistics.median(ready), 1),
        "page_ready_p95_ms": round(_p(ready, 0.95), 1),
        "key_to_saved_p50_ms": round(statistics.median(saved), 1),
        "key_to_saved_p95_ms": round(_p(saved, 0.95), 1),
        # Where the time goes (medians, ms from navigation start): the HTML fully received,
        # parsed, and keyboard.js done (before KaTeX renders in DOMContentLoaded).
        **{f"{name}_p50_ms": round(statistics.median(v), 1) for name, v in parts.items()},
        "loads": LOADS,
        "keys": KEYS,
    }


@pytest.mark.parametrize("steps", [20, 500])
def test_labelling_page_latency(browser, live_server, steps: int) -> None:  # noqa: F811
    user = make_user("bench", password=PASSWORD)
    project = make_project(f"bench-{steps}", members={user: "annotator"})
    texts = [
        STEP.replace("{n}", str(n))
        .replace("{m}", str(n * (n + 1) // 2))
        .replace("{k}", str(n * (n + 1) // 2 - n))
        for n in range(steps)
    ]
    trace = make_trace(project, steps=texts)
    context = browser.new_context(
        viewport={"width": 1400, "height": 1000}, base_url=live_server.url
    )
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(f"/t/{trace.pk}/")
    page.fill("#id_username", "bench")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#trace-page[data-ready=true]")
    result = {"steps": steps, **_measure(page, trace.pk)}
    print(json.dumps(result))
    page.goto("about:blank")
    context.close()
