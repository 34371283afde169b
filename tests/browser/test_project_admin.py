"""A real browser, issue 15's "Done means": a site admin creates a project in the app (never the
admin site), adds two annotators and a reviewer, imports real ProcessBench traces, attaches the
tool scorer, scores all, filters the data browser to "PRM says wrong, no label yet", assigns that
filter to an annotator, who then sees exactly those traces next. Leaves a screenshot of the data
page in test-artifacts/data-browser.png (and at phone width, data-browser-phone.png); then every
page of the project at desktop, tablet and phone widths, none wider than its column."""

from __future__ import annotations

import io
import json

import pytest

from annotate.models import Membership, Project
from review import browser as data_browser
from scoring import services as scoring_services
from scoring.models import StepScore
from tests.browser.test_labelling import PASSWORD, wait_saved
from tests.browser.test_review import session
from tests.conftest import REPO_ROOT
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SAMPLE = REPO_ROOT / "data" / "processbench_sample.jsonl"

# A site admin's pages of a project (SLUG), and the site's own pages beside them.
PROJECT_PAGES = (
    "/",
    "/import/",
    "/account/tokens/",
    "/p/SLUG/",
    "/p/SLUG/settings/",
    "/p/SLUG/annotator-view/",
    "/p/SLUG/members/",
    "/p/SLUG/data/",
    "/p/SLUG/review/",
    "/p/SLUG/agreement/",
    "/scoring/audit/p/SLUG/",
    "/scoring/audit/p/SLUG/queue/",
    "/scoring/p/SLUG/scorers/",
    "/p/SLUG/exports/",
    "/p/SLUG/training/",
)
# The page's column (<main>) against what it holds, and the document against the window; a
# descendant past <main>'s edge widens its scrollWidth unless it scrolls inside itself.
OVERFLOW_JS = """() => {
  const main = document.querySelector("main");
  if (!main) return {main: 0, column: 0, wide: ["no <main>: " + document.title], page: 0, window: 0};
  const wide = [...main.querySelectorAll("*")]
    .filter(el => el.getBoundingClientRect().right > main.getBoundingClientRect().right + 1)
    .slice(0, 3).map(el => el.tagName + "." + el.className);
  return {main: main.scrollWidth, column: main.clientWidth, wide,
          page: document.documentElement.scrollWidth, window: window.innerWidth};
}"""


def test_an_admin_runs_a_project_from_the_app(browser, live_server, artifacts) -> None:  # type: ignore[no-untyped-def]
    make_user("site-admin", password=PASSWORD, is_superuser=True)
    context, page = session(browser, live_server, "site-admin", "/")

    # A project from scratch.
    page.click("text=New project")
    page.fill("#id_slug", "gsm-audit")
    page.fill("#id_name", "GSM audit")
    page.fill("#id_guidelines", "Mark the **first** wrong step; $x^2$ is fine.")
    page.select_option("#id_label_scheme", "ternary")
    page.fill("#id_overlap", "1")
    page.click("text=Create project")
    page.wait_for_url("**/p/gsm-audit/settings/")
    page.wait_for_selector("#guidelines-preview strong")  # the preview, rendered

    # Two annotators and a reviewer: new accounts made on the members page.
    page.click("nav.tabs >> text=Members")
    for username, role in (("ann1", "annotator"), ("ann2", "annotator"), ("rev", "reviewer")):
        form = page.locator('[data-testid="member-create"]')
        form.locator('input[name="username"]').fill(username)
        form.locator('input[name="password"]').fill(PASSWORD)
        form.locator('select[name="role"]').select_option(role)
        form.locator("button[type=submit]").click()
        page.wait_for_selector(f'[data-testid="members"] td >> text="{username}"')
    project = Project.objects.get(slug="gsm-audit")
    assert dict(
        Membership.objects.filter(project=project).values_list("user__username", "role")
    ) == {
        "ann1": "annotator",
        "ann2": "annotator",
        "rev": "reviewer",
    }

    # Import real traces.
    page.click("nav.tabs >> text=Import")
    page.set_input_files("#id_file", str(SAMPLE))
    page.select_option("#id_format", "processbench")
    page.click("main form button[type=submit]")
    page.wait_for_selector(".import-result")
    assert project.traces.count() == 80

    # Attach the tool scorer and score all (Celery runs eagerly in the tests).
    page.goto("/scoring/p/gsm-audit/scorers/")
    # Registered from the app and attached. A generous time budget: under load the default 2 s
    # per trace can run out before the wrong steps are checked, and an unchecked step is no
    # verdict. A mistyped parameter is refused by name first.
    page.click("[data-testid=scorer-new]")
    page.fill("#id_name", "tool")
    page.select_option("#id_backend", "tool")
    page.fill("#id_params", '{"time_budget": 60}')
    page.click("text=Register and attach")
    assert "params.time_budget: not a parameter of the tool backend" in page.inner_text("main")
    page.fill("#id_params", '{"time_budget_s": 60}')
    page.screenshot(path=str(artifacts / "scorer_new.png"), full_page=True)
    page.click("text=Register and attach")
    assert "Registered tool; it now scores this project." in page.inner_text("main")
    page.check('input[name="scorer"][value="tool"]')
    page.click("text=Save")
    with page.expect_navigation(timeout=120_000):  # the request scores all 80 (eager Celery)
        page.click("text=Score all with tool", no_wait_after=True)
    page.wait_for_selector('[data-scorer="tool"] >> text=80 / 80')
    # The sample's wrong arithmetic is caught (4 steps; every step's checks ran).
    tool_scores = StepScore.objects.filter(run__scorer__name="tool", step__trace__project=project)
    skipped = [s.details["skipped"] for s in tool_scores if "skipped" in s.details]
    assert not skipped, skipped[:3]
    assert tool_scores.filter(score__lt=0.1).count() == 4

    # A second PRM's scores, computed elsewhere and imported (an external scorer): it puts a wrong
    # step in every 8th trace.
    lines = []
    for i, trace in enumerate(project.traces.order_by("pk")):
        n = trace.steps.count()
        scores = [0.9] * n if i % 8 else [0.9] * (n - 1) + [0.1]
        lines.append(
            json.dumps({"trace_id": trace.external_id, "source": trace.source, "scores": scores})
        )
    scoring_services.scores_import_by_name(
        project=project,
        scorer_name="offline-prm",
        stream=io.BytesIO("\n".join(lines).encode()),
        filename="offline-prm.jsonl",
    )

    # The data browser, filtered to "PRM says wrong, no label yet".
    page.click("nav.tabs >> text=Data")
    page.select_option('select[name="prm"]', "wrong")
    page.select_option('select[name="status"]', "unlabelled")
    page.click('[data-testid="data-filter"] button[type=submit]')
    page.wait_for_url("**prm=wrong**")
    assert "status=unlabelled" in page.url
    wanted = list(
        data_browser.trace_filter(
            project=project, values={"prm": "wrong", "status": "unlabelled"}
        ).values_list("external_id", flat=True)
    )
    # offline-prm's 10, and the tool's failed checks; not everything (a "no check" is no verdict)
    assert 10 <= len(wanted) < 80
    assert page.locator('[data-testid="data-total"]').inner_text() == str(len(wanted))
    page.screenshot(path=str(artifacts / "data-browser.png"), full_page=True)
    # The table stays inside the page's column (it overflowed it to the right at 1400 px).
    table = page.locator('[data-testid="data-table"]').bounding_box()
    column = page.locator('[data-testid="data-filter"]').bounding_box()
    assert table and column
    widths = page.eval_on_selector_all(
        '[data-testid="data-table"] th', "cells => cells.map(c => [c.innerText, c.offsetWidth])"
    )
    assert table["x"] + table["width"] <= column["x"] + column["width"] + 1, (table, column, widths)

    # Assign the whole filter to ann1.
    bulk = page.locator('[data-testid="data-bulk"]')
    bulk.locator('select[name="scope"]').select_option("filter")
    bulk.locator('select[name="action"]').select_option("assign")
    bulk.locator('select[name="annotator"]').select_option("ann1")
    bulk.get_by_role("button", name="Apply").click()
    page.wait_for_selector(f"text=Assign to an annotator: {len(wanted)} of {len(wanted)} traces")

    # Every page of the project, with its real data, at desktop, tablet and phone widths: nothing
    # runs past the page's column or the window (a wide table scrolls inside itself).
    first = project.traces.order_by("pk").first()
    assert first is not None
    overflowing = []
    for width, height in ((1400, 1000), (1024, 768), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        for url in (*PROJECT_PAGES, f"/t/{first.pk}/", f"/review/t/{first.pk}/"):
            response = page.goto(url.replace("SLUG", "gsm-audit"))
            assert response is not None and response.ok, (url, response and response.status)
            sizes = page.evaluate(OVERFLOW_JS)
            if width == 390 and url == "/p/SLUG/data/":
                page.screenshot(path=str(artifacts / "data-browser-phone.png"))
            if (
                not sizes["column"]
                or sizes["main"] > sizes["column"] + 1
                or sizes["page"] > sizes["window"] + 1
            ):
                overflowing.append((width, url, sizes))
    (artifacts / "overflow.json").write_text(json.dumps(overflowing, indent=1))
    assert not overflowing, overflowing
    context.close()

    # ann1's next traces are exactly those, in order.
    context, page = session(browser, live_server, "ann1", "/p/gsm-audit/")
    seen = []
    page.click("text=Start labelling")
    for _ in range(len(wanted)):
        page.wait_for_selector("#step-0.is-current")
        seen.append(page.locator(".trace-id").get_attribute("title").split(":", 1)[1])
        current = page.url
        page.keyboard.press("a")  # all steps correct
        # Submit once the labels say they are saved (a submit while a change is on its way is
        # refused: tests/browser/test_durable_labels.py), then the next trace.
        wait_saved(page)
        page.keyboard.press("Enter")
        page.wait_for_url(lambda url, current=current: url != current)
    assert seen == wanted
    context.close()
