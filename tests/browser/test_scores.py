"""In a real browser, with a real Celery worker on Redis: scores fill in on an open trace without a
reload; in a blind project they stay hidden until Submit, then show, and a revision keeps both."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from annotate import services
from annotate.models import StepLabel
from scoring import services as scoring_services
from scoring.models import RunStatus, ScoreRun
from tests.browser.test_labelling import PASSWORD, import_processbench, log_in, wait_saved
from tests.factories import make_user
from tests.scoring.worker import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# A step's score badge: the scorer's name and the score, "?" marking a neutral "no check".
SCORE_BADGE = re.compile(r"tool (\? )?[01]\.\d\d")


def _setup(*, blind: bool):  # type: ignore[no-untyped-def]
    trace, following = import_processbench(["gsm8k-12", "math-128"])
    project = trace.project
    project.blind = blind
    project.save()
    services.membership_set(
        project=project, user=make_user("sam", password=PASSWORD), role="annotator"
    )
    scoring_services.scorer_create(name="tool", backend="tool", projects=[project])
    return trace, following


def test_scores_fill_in_without_a_reload(page, worker, artifacts) -> None:  # type: ignore[no-untyped-def]
    trace, _ = _setup(blind=False)
    worker.start()
    log_in(page, "sam", f"/t/{trace.pk}/")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    steps = trace.steps.count()
    page.wait_for_function(
        f"document.querySelectorAll('[data-testid=step-score]').length === {steps}", timeout=60_000
    )
    assert page.evaluate("window.__sameDocument") is True
    assert page.locator("[data-testid=run-status]").inner_text() == "done"
    # each step shows its score beside it, as a number ("?" before it where the tool backend
    # had nothing to check: its 0.50 is no verdict)
    first = page.locator(f"#step-scores-{trace.steps.get(index=0).pk} [data-testid=step-score]")
    assert re.fullmatch(r"tool (\? )?0\.\d\d", first.inner_text())
    # a label click re-renders the step's controls; its score stays
    page.keyboard.press("1")
    page.wait_for_selector("#step-0 [data-action=plus][aria-pressed=true]")
    assert first.count() == 1
    page.screenshot(path=str(artifacts / "scores.png"), full_page=False)


def test_blind_project_shows_scores_only_after_submit(page, worker) -> None:  # type: ignore[no-untyped-def]
    trace, _ = _setup(blind=True)
    worker.start()
    log_in(page, "sam", f"/t/{trace.pk}/")
    page.wait_for_selector("[data-testid=blind-notice]")
    run = ScoreRun.objects.get(trace=trace)
    assert wait_until(lambda: ScoreRun.objects.get(pk=run.pk).status == RunStatus.DONE, timeout=60)
    page.wait_for_timeout(1500)  # several polls after the run is done
    assert page.locator("[data-testid=step-score]").count() == 0
    assert not SCORE_BADGE.search(page.content())

    page.keyboard.press("a")  # all steps correct
    page.wait_for_selector("#step-0 [data-action=plus][aria-pressed=true]")
    wait_saved(page)
    page.keyboard.press("Enter")
    # the first submit stays on the trace and reveals the scores
    page.wait_for_selector("[data-testid=step-score]", timeout=20_000)
    assert f"/t/{trace.pk}/" in page.url
    assert page.locator("[data-testid=blind-notice]").count() == 0
    # the annotator revises step 2 after seeing the scores; the blind answer is kept apart
    page.keyboard.press("j")
    page.keyboard.press("3")
    page.wait_for_selector("#step-1 [data-action=minus][aria-pressed=true]")
    # shown at once, saved a moment later: wait until no step is pending
    page.wait_for_function("!document.querySelector('.step[data-save=pending]')")
    label = StepLabel.objects.get(step__trace=trace, step__index=1)
    assert (label.blind_value, label.value) == (1, -1)


def test_best_of_n_scores_a_problems_traces_and_ranks_them(page, worker, artifacts) -> None:  # type: ignore[no-untyped-def]
    """PRM800K's three sampled solutions of one problem: the page offers to score them, the
    worker does, and the ranking fills in without a reload, each with its final answer."""
    import io

    from annotate.imports import project_for_import, traces_import
    from annotate.models import Trace
    from tests.conftest import REPO_ROOT

    path = REPO_ROOT / "data" / "prm800k_sample.jsonl"
    project, _ = project_for_import(slug="prm")
    traces_import(
        project=project, stream=io.BytesIO(path.read_bytes()), filename=path.name, format="prm800k"
    )
    services.membership_set(
        project=project, user=make_user("sam", password=PASSWORD), role="reviewer"
    )
    scoring_services.scorer_create(name="tool", backend="tool", projects=[project])
    problem = next(
        t.problem
        for t in Trace.objects.filter(project=project)
        if t.problem.reference_answer == "504"
    )
    n = problem.traces.count()
    assert n == 3
    worker.start()
    log_in(page, "sam", f"/scoring/problems/{problem.pk}/best-of-n/")
    assert "3 of these traces have no tool scores yet" in page.inner_text("main")
    assert "Nothing to rank yet: 0 of 3 traces scored" in page.inner_text(
        "[data-testid=best-of-n-sample]"
    )
    page.click("[data-testid=score-missing]")  # a form POST, then the page polls
    try:
        page.wait_for_function(
            "[...document.querySelectorAll('[data-testid=ranking] tbody tr td:nth-child(6)')]"
            ".every(td => /^\\d\\.\\d{3}$/.test(td.innerText.trim()))",
            timeout=60_000,
        )
    except PlaywrightTimeout:  # say what the worker did and what the runs are
        runs = list(ScoreRun.objects.values_list("trace_id", "status", "error"))
        raise AssertionError(f"no ranking after 60 s; runs {runs}\n{worker.log()}") from None
    rows = page.locator("[data-testid=ranking] tbody tr")
    assert rows.count() == n
    # every sampled solution answered 2016 (the reference is 504): the answer step fails its
    # check, so each trace's weakest step is the tool's "false" score
    assert all(rows.nth(i).locator("td").nth(3).inner_text() == "2016" for i in range(n))
    assert all(rows.nth(i).locator("td").nth(5).inner_text() == "0.050" for i in range(n))
    assert page.locator("[data-testid=reference-answer]").inner_text() == "504"
    # One problem is one draw: the page says what the ranking and the accuracy rest on.
    sample = page.locator("[data-testid=best-of-n-sample]").inner_text()
    assert "This ranking rests on 3 of 3 traces scored by tool." in sample
    assert "too few to mean much (fewer than 30)" in sample
    page.screenshot(path=str(artifacts / "best_of_n.png"), full_page=True)
