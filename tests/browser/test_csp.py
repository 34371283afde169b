"""Under the Content-Security-Policy the pages still work in a real browser: KaTeX draws the math,
htmx loads the score panel and saves a label, the API docs render; and the browser reports no
policy violation. An image from a host that is not allowed is neither requested nor shown."""

from __future__ import annotations

import pytest

from annotate import services
from annotate.models import Problem
from scoring import services as scoring_services
from tests.browser.test_labelling import PASSWORD, log_in
from tests.factories import make_project, make_trace, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_trace_page_works_under_the_policy(strict_page) -> None:  # type: ignore[no-untyped-def]
    page = strict_page
    user = make_user("cora", password=PASSWORD)
    project = make_project(members={user: "annotator"})
    trace = make_trace(project, steps=["We have $x^2 + 1 = 5$, so $x = 2$.", "Done."])
    Problem.objects.filter(pk=trace.problem_id).update(
        text="Solve $x^2 + 1 = 5$.", images=["https://tracker.example.com/pixel.png"]
    )
    scoring_services.scorer_create(name="tool", backend="tool", projects=[project])
    messages: list[str] = []
    requests: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    page.on("request", lambda request: requests.append(request.url))
    log_in(page, "cora", f"/t/{trace.pk}/")
    page.wait_for_selector(".katex")  # KaTeX ran (a script from steplens)
    page.wait_for_selector("[data-testid=run-status]")  # htmx posted and swapped the panel in
    page.keyboard.press("1")  # a label saved through htmx
    page.wait_for_selector("#step-0 [data-action=plus][aria-pressed=true]")
    assert "tracker.example.com is not on the list of allowed image hosts" in page.content()
    assert not any("tracker.example.com" in url for url in requests)
    violations = [m for m in messages if "Content Security Policy" in m]
    assert violations == []
    services.annotation_submit(user=user, trace=trace, finish_reason="give_up")


def test_the_api_docs_render_under_the_policy(strict_page) -> None:  # type: ignore[no-untyped-def]
    page = strict_page
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    page.goto("/api/docs/")
    page.wait_for_selector(".swagger-ui .info", timeout=15_000)
    assert [m for m in messages if "Content Security Policy" in m] == []


def test_figures_from_data_urls_and_bundles_load_under_the_policy(  # type: ignore[no-untyped-def]
    strict_page, settings, tmp_path
) -> None:
    import base64
    import io
    import zipfile

    from annotate.imports import traces_import
    from annotate.models import Trace
    from tests.browser.test_media import triangle_figure

    settings.VAR_DIR = tmp_path
    page = strict_page
    user = make_user("cora", password=PASSWORD)
    project = make_project("figs", members={user: "annotator"})
    bundled = base64.b64decode(triangle_figure(200).split(",", 1)[1])
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(
            "records.jsonl",
            '{"id": "f-1", "problem": "Find $x$.", "steps": ["x = 3."], '
            f'"images": ["{triangle_figure(60)}", "fig.png"]}}',
        )
        bundle.writestr("fig.png", bundled)
    archive.seek(0)
    traces_import(project=project, stream=archive, filename="figs.zip", format="jsonl")
    trace = Trace.objects.get(external_id="f-1")
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    log_in(page, "cora", f"/t/{trace.pk}/")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.problem-images img')]"
        ".every(img => img.complete && img.naturalWidth === 240)"
    )
    assert page.locator(".problem-images img").count() == 2
    assert [m for m in messages if "Content Security Policy" in m] == []
