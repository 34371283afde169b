"""A real browser: two annotators label the same real ProcessBench trace differently, the step
reaches the reviewer's adjudication queue, the reviewer sets gold with a rationale, and the PRM
audit page's numbers change. Leaves a screenshot of the audit page in test-artifacts/audit.png."""

from __future__ import annotations

import io
import json

import pytest

from annotate import services
from annotate.models import AnnotationStatus, GoldLabel, Trace
from review.models import GoldLabelChange
from scoring import services as scoring_services
from tests.browser.test_labelling import PASSWORD, wait_saved
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCORES = {
    "gsm8k-200": [0.95] * 8,
    "gsm8k-201": [0.9, 0.8, 0.85, 0.9, 0.7, 0.6],
    "gsm8k-202": [0.8, 0.3],
}


def import_gsm8k(ids: list[str]) -> list[Trace]:
    from annotate.imports import project_for_import, traces_import
    from tests.conftest import REPO_ROOT

    lines = (REPO_ROOT / "data" / "processbench" / "gsm8k.jsonl").read_text().splitlines()
    by_id = {json.loads(line)["id"]: line for line in lines}
    chosen = [by_id[i] for i in ids]  # in this order: the queue hands them out by import order
    project, _ = project_for_import(slug="pb")
    traces_import(
        project=project,
        stream=io.BytesIO("\n".join(chosen).encode()),
        filename="gsm8k.jsonl",
        format="processbench",
    )
    return [Trace.objects.get(project=project, external_id=i) for i in ids]


def session(browser, live_server, username: str, start: str):  # type: ignore[no-untyped-def]
    context = browser.new_context(
        viewport={"width": 1400, "height": 1000}, base_url=live_server.url
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(start)
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{start}")
    return context, page


def label_and_submit(page, trace_id: int, keys: list[str]) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_selector("#step-0.is-current")
    for key in keys:
        page.keyboard.press(key)
    wait_saved(page)
    page.keyboard.press("Enter")  # submit, then the queue opens the next trace
    page.wait_for_url(lambda url: not url.endswith(f"/t/{trace_id}/"))


def metric(page, name: str) -> str:  # type: ignore[no-untyped-def]
    return page.locator(f'[data-metric="{name}"]').inner_text()


def test_disagreement_adjudicated_and_the_audit_changes(browser, live_server, artifacts) -> None:  # type: ignore[no-untyped-def]
    traces = import_gsm8k(["gsm8k-202", "gsm8k-200", "gsm8k-201"])
    target = traces[0]
    project = target.project
    project.overlap = 2
    project.save()
    for name, role in (("ann1", "annotator"), ("ann2", "annotator"), ("rev", "reviewer")):
        services.membership_set(project=project, user=make_user(name, password=PASSWORD), role=role)
    scorer = scoring_services.scorer_create(name="prm", backend="tool", projects=[project])
    payload = "\n".join(json.dumps({"trace_id": k, "scores": v}) for k, v in SCORES.items())
    scoring_services.scores_import(
        project=project, scorer=scorer, stream=io.BytesIO(payload.encode()), filename="s.jsonl"
    )

    # The reviewer's audit before: ProcessBench calls all three traces correct (label -1), so
    # there is no trace with an error to be accurate on.
    rev_context, rev = session(browser, live_server, "rev", "/scoring/audit/p/pb/")
    assert metric(rev, "acc_error") == "n/a"
    gold_before = rev.get_by_test_id("gold-steps").inner_text()

    # Two annotators, each through their own queue: the same first trace (overlap 2), labelled
    # differently on its second step.
    for name, keys in (("ann1", ["1", "1"]), ("ann2", ["1", "3"])):
        context, page = session(browser, live_server, name, "/p/pb/")
        page.get_by_role("link", name="Start labelling").first.click()
        page.wait_for_url(f"**/t/{target.pk}/")
        label_and_submit(page, target.pk, keys)
        context.close()
    assert set(target.annotations.values_list("status", flat=True)) == {AnnotationStatus.SUBMITTED}

    # The step reaches the adjudication queue; the reviewer opens it and sets gold -1.
    rev.goto("/p/pb/review/")
    row = rev.get_by_test_id("disagreements").locator("tbody tr")
    assert row.count() == 1 and "gsm8k-202" in row.inner_text()
    row.get_by_role("link", name="Adjudicate").click()
    rev.wait_for_url(f"**/review/t/{target.pk}/#step-1")
    step = rev.get_by_test_id("adj-step-1")
    text = step.inner_text().lower()  # headings are set in capitals by CSS
    assert "annotators disagree" in text and "ann1" in text and "ann2" in text
    form = rev.get_by_role("form", name="Gold label of step 2")
    form.get_by_label("−1 wrong").check()
    form.get_by_label("Rationale").fill("0.3 of 0.8 is wrong here: the product is 0.24")
    form.get_by_role("button", name="Save gold").click()
    rev.wait_for_selector("text=Gold label of step 2 saved.")
    gold = GoldLabel.objects.get(step__trace=target, step__index=1)
    assert (gold.value, gold.source) == (-1, "adjudicated")
    assert GoldLabelChange.objects.get().rationale.startswith("0.3 of 0.8")
    rev.goto("/p/pb/review/")
    assert rev.get_by_text("No disagreements waiting").is_visible()

    # The audit now has a trace with an error, and the PRM found it (0.3 < 0.5 at step 1).
    rev.goto("/scoring/audit/p/pb/")
    assert metric(rev, "acc_error") == "1.000"
    assert metric(rev, "f1") == "1.000"
    assert rev.get_by_test_id("gold-steps").inner_text() == gold_before
    assert rev.locator(".plot svg").count() == 4
    rev.screenshot(path=str(artifacts / "audit.png"), full_page=True)
    rev_context.close()
