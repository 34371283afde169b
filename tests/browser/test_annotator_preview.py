"""A real browser, issue 15 item 1: a project admin opens "What an annotator sees" from the
settings page and meets the project's guidelines, label names, keys and legend, and a real trace
of the project rendered as the labelling page renders it (math typeset), with the PRM scores
beside the steps; clicking and typing there writes nothing (labels, annotations, leases and score
runs counted before and after). Leaves test-artifacts/annotator-preview.png."""

from __future__ import annotations

import pytest

from annotate import services
from annotate.models import Annotation, StepLabel, Trace
from review.models import Assignment
from scoring import engine
from scoring import services as scoring_services
from scoring.models import ScoreRun
from tests.browser.test_labelling import PASSWORD
from tests.browser.test_review import session
from tests.factories import import_processbench_sample, make_project, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _counts() -> dict[str, int]:
    return {
        "labels": StepLabel.objects.count(),
        "annotations": Annotation.objects.count(),
        "leases": Assignment.objects.count(),
        "score runs": ScoreRun.objects.count(),
    }


def test_an_admin_previews_the_annotators_page_and_nothing_is_written(  # type: ignore[no-untyped-def]
    browser, live_server, artifacts
) -> None:
    admin = make_user("lead", password=PASSWORD)
    project = import_processbench_sample(make_project("gsm-audit", members={admin: "admin"}))
    services.project_update(
        project=project,
        guidelines="Mark the **first** wrong step; $x^2$ is fine.",
        hotkeys={"keys": {"plus": "y"}, "names": {"1": "right", "-1": "wrong"}},
    )
    first = Trace.objects.filter(project=project).order_by("pk").first()
    assert first is not None
    scorer = scoring_services.scorer_create(name="tool", backend="tool", projects=[project])
    run = ScoreRun.objects.create(trace=first, scorer=scorer, scorer_version=scorer.version)
    engine.score_and_write(run_ids=[run.pk])
    before = _counts()
    assert before["score runs"] == 1

    context, page = session(browser, live_server, "lead", f"/p/{project.slug}/settings/")
    page.click('[data-testid="annotator-preview-link"]')
    page.wait_for_url(f"**/p/{project.slug}/annotator-view/")
    page.wait_for_selector('[data-testid="preview-guidelines"] strong')
    assert "right" in page.inner_text('[data-testid="preview-labels"]')
    assert page.locator(".preview-frame #s0-plus").get_attribute("aria-keyshortcuts") == "y"
    page.wait_for_selector('[data-testid="preview-guidelines"] .katex')  # math typeset
    page.wait_for_selector(".preview-frame [data-testid=step-score]")  # the stored PRM scores
    # Every control of the sample is inert: clicks and the labelling keys do nothing.
    assert page.locator(".preview-frame #s0-plus").is_disabled()
    assert page.locator(".preview-frame #all-correct").is_disabled()
    assert page.locator(".preview-frame #note-0").is_disabled()
    page.locator(".preview-frame #s0-plus").click(force=True)
    page.locator(".preview-frame #s1-first-error").click(force=True)
    page.locator(".preview-frame #all-correct").click(force=True)
    for key in ("y", "1", "j", "e", "a", "Enter"):
        page.keyboard.press(key)
    page.wait_for_timeout(500)
    assert page.url.endswith(f"/p/{project.slug}/annotator-view/")
    page.screenshot(path=str(artifacts / "annotator-preview.png"), full_page=True)
    # Another trace of the project, then the counts: nothing was made.
    page.click('[data-testid="preview-next"]')
    page.wait_for_url("**/annotator-view/?trace=*")
    page.wait_for_selector(".preview-frame .step-text")
    assert _counts() == before
    context.close()
