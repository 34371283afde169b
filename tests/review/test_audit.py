"""The PRM audit over a project: the prm_report command, the audit page and queue, and the API, on
real ProcessBench and PRMBench records with hand-checked scores; reviewers only."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from annotate import services as annotate_services
from annotate.imports import project_for_import, traces_import
from annotate.models import Step, Trace
from review import services as review_services
from scoring import services
from tests.factories import make_user
from tests.scoring.test_metrics import (
    GSM8K,
    HAND,
    PRMBENCH,
    prmbench_random_scores,
    prmbench_reference_class_scores,
)

pytestmark = pytest.mark.django_db


def import_lines(slug: str, lines: list[str], fmt: str):
    project, _ = project_for_import(slug=slug)
    traces_import(
        project=project,
        stream=io.BytesIO("\n".join(lines).encode()),
        filename="x.jsonl",
        format=fmt,
    )
    return project


def load_scores(project, scorer, scores: dict[str, list[float]]) -> None:
    payload = "\n".join(json.dumps({"trace_id": k, "scores": v}) for k, v in scores.items())
    services.scores_import(
        project=project, scorer=scorer, stream=io.BytesIO(payload.encode()), filename="s.jsonl"
    )


@pytest.fixture
def pb():
    lines = [line for line in GSM8K.read_text().splitlines() if json.loads(line)["id"] in HAND]
    project = import_lines("pb", lines, "processbench")
    scorer = services.scorer_create(name="prm", backend="tool", projects=[project])
    load_scores(project, scorer, {rid: scores for rid, (scores, _) in HAND.items()})
    return project, scorer


def report_json(*args: str) -> dict:
    out = io.StringIO()
    call_command("prm_report", *args, "--json", stdout=out)
    text = out.getvalue()
    assert text.count("\n") <= 1  # one JSON object
    return json.loads(text)


def test_prm_report_json_equals_processbench_on_hand_checked_records(pb) -> None:
    report = report_json("--project", "pb", "--scorer", "prm")
    assert report["traces"] == 7 and report["steps"] == sum(len(s) for s, _ in HAND.values())
    assert report["processbench"]["acc_error"] == pytest.approx(1 / 2)
    assert report["processbench"]["acc_correct"] == pytest.approx(2 / 3)
    assert report["processbench"]["f1"] == pytest.approx(4 / 7)
    for key in ("auroc", "ece"):
        assert 0.0 <= report[key] <= 1.0
    assert 0.0 <= report["prmbench"]["score"] <= 1.0
    assert set(report["best_of_n"]) == {"min", "last", "product", "mean"}
    # At 0.15 only gsm8k-2's step 1 (0.1) scores below: that is its label, so 1 of 4 error traces
    # is right, and all three correct traces are.
    low = report_json("--project", "pb", "--scorer", "prm", "--threshold", "0.15")
    assert low["processbench"]["acc_correct"] == 1.0
    assert low["processbench"]["acc_error"] == 0.25


def test_prm_report_text_and_errors(pb) -> None:
    out = io.StringIO()
    call_command("prm_report", "--project", "pb", "--scorer", "prm", stdout=out)
    assert "ProcessBench" in out.getvalue() and "F1 0.5714" in out.getvalue()
    with pytest.raises(Exception, match="No scorer"):
        call_command("prm_report", "--project", "pb", "--scorer", "nope")


def test_prmbench_score_on_a_real_prmbench_record() -> None:
    line = PRMBENCH.read_text().splitlines()[0]
    project = import_lines("prmb", [line], "prmbench")
    scorer = services.scorer_create(name="prm", backend="tool", projects=[project])
    scores = [0.9] * 13
    scores[0] = 0.3
    scores[4], scores[6], scores[9], scores[10] = 0.1, 0.8, 0.2, 0.5
    trace = Trace.objects.get(project=project)
    load_scores(project, scorer, {trace.external_id: scores})
    report = report_json("--project", "prmb", "--scorer", "prm")
    assert report["gold_steps"] == 13
    assert report["prmbench"]["score"] == pytest.approx(0.5 * 16 / 18 + 0.5 * 6 / 8)


def test_consistency_checks_find_processbench_traces_with_a_wrong_step_but_a_right_answer() -> None:
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines()]
    odd = [r for r in rows if r["final_answer_correct"] and r["label"] != -1][:2]
    plain = [r for r in rows if r["label"] == -1][:1]
    project = import_lines("cons", [json.dumps(r) for r in odd + plain], "processbench")
    scorer = services.scorer_create(name="prm", backend="tool", projects=[project])
    load_scores(project, scorer, {r["id"]: [0.5] * len(r["steps"]) for r in odd + plain})
    report = report_json("--project", "cons", "--scorer", "prm")
    found = report["consistency"]["wrong_step_but_answer_right"]
    assert found["count"] == 2
    assert {t["external_id"] for t in found["traces"]} == {r["id"] for r in odd}


def test_audit_page_is_for_reviewers_and_changes_with_gold(pb) -> None:
    project, scorer = pb
    annotator, reviewer = make_user("ann"), make_user("rev")
    annotate_services.membership_set(project=project, user=annotator, role="annotator")
    annotate_services.membership_set(project=project, user=reviewer, role="reviewer")
    url = reverse("review:audit", args=["pb"])
    c = Client()
    c.force_login(annotator)
    refused = c.get(url)  # a member knows the project: told why, not "no such project"
    assert refused.status_code == 403 and "Reviewers only." in refused.content.decode()
    assert c.get(reverse("api:audit", args=["pb"])).json() == {"detail": "Reviewers only."}
    c.force_login(reviewer)
    page = c.get(url).content.decode()
    assert 'data-metric="f1">0.571<' in page
    assert page.count("<svg") == 4 and "Calibration, positive class (ECE" in page
    # The worst mistake: gsm8k-201's last step is right (gold +1) but scored 0.49.
    api = c.get(reverse("api:audit", args=["pb"]), {"threshold": "0.5"}).json()
    assert api["processbench"]["f1"] == pytest.approx(4 / 7)
    queue = c.get(reverse("review:audit_queue", args=["pb"])).content.decode()
    gsm2 = Trace.objects.get(external_id="gsm8k-2")
    assert reverse("review:adjudicate", args=[gsm2.pk]) in queue
    # A reviewer settles gsm8k-1's step 2 (unlabelled in ProcessBench) as wrong: the gold first
    # error stays 1 and the step count grows by one.
    step = Step.objects.get(trace__external_id="gsm8k-1", index=2)
    before = api["gold_steps"]
    review_services.gold_set(user=reviewer, step=step, value=-1, rationale="wrong arithmetic")
    after = c.get(reverse("api:audit", args=["pb"])).json()
    assert after["gold_steps"] == before + 1
    assert c.get(reverse("api:audit-queue", args=["pb"])).json()[0]["severity"] >= 0.5


def test_audit_scores_each_prmbench_class_by_prmbench_own_rule() -> None:
    lines = PRMBENCH.read_text().splitlines()
    recs = [json.loads(line) for line in lines]
    project = import_lines("prmb-all", lines, "prmbench")
    scorer = services.scorer_create(name="prm", backend="tool", projects=[project])
    scores = prmbench_random_scores(recs, 11)
    load_scores(
        project,
        scorer,
        {f"{r['idx']}:{r['classification']}": s for r, s in zip(recs, scores, strict=True)},
    )
    expected = prmbench_reference_class_scores(recs, scores)
    report = report_json("--project", "prmb-all", "--scorer", "prm")
    got = {name: m["prmbench"] for name, m in report["by_subset"].items()}
    assert got == pytest.approx(expected, abs=1e-12)
    # multi_solutions has no error step: its score is the correct-step F1, not half of it.
    ms = [r for r in recs if r["classification"] == "multi_solutions"]
    assert ms and all(not r["error_steps"] for r in ms)
    assert got["multi_solutions"] > 0.5


def test_one_threshold_rule_in_every_figure_and_stated_on_the_page() -> None:
    """A gold +1 step scored exactly at the threshold is a mistake in the worst list, in the
    per-position accuracy, in PRMBench's figure and in ProcessBench's, and the page says so."""
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines()]
    correct = next(r for r in rows if r["label"] == -1 and len(r["steps"]) >= 3)
    project = import_lines("rule", [json.dumps(correct)], "processbench")
    scorer = services.scorer_create(name="prm", backend="tool", projects=[project])
    scores = [0.9] * len(correct["steps"])
    scores[1] = 0.5  # exactly at the threshold
    load_scores(project, scorer, {correct["id"]: scores})
    report = report_json("--project", "rule", "--scorer", "prm", "--threshold", "0.5")
    assert [(w["step_index"], w["gold"]) for w in report["worst"]] == [(1, 1)]
    position = {p["position"]: p["accuracy"] for p in report["by_position"]}
    assert position["0"] == 1.0 and position["1"] == 0.0
    n = len(scores)
    assert report["prmbench"]["accuracy"] == pytest.approx((n - 1) / n)
    assert report["processbench"]["acc_correct"] == 0.0  # predicted first error: step 1
    assert "above" in report["threshold_rule"]
    reviewer = make_user("rev-rule")
    annotate_services.membership_set(project=project, user=reviewer, role="reviewer")
    c = Client()
    c.force_login(reviewer)
    page = c.get(reverse("review:audit", args=["rule"])).content.decode()
    assert "predicted correct when its score is above 0.5" in page
    assert 'data-metric="ece_top_label"' in page and "ECE, positive class" in page
    api = c.get(reverse("api:audit", args=["rule"])).json()
    assert api["threshold_rule"] == report["threshold_rule"]
    assert api["ece_top_label"] == pytest.approx(report["ece_top_label"])


def test_no_check_steps_are_left_out_of_every_figure_and_counted() -> None:
    """A step the tool backend could not check (its neutral 0.50 with details.verdict "unknown")
    is no prediction: not a mistake in the worst list, the per-position accuracy, PRMBench,
    AUROC or ProcessBench; a trace with no verdict at all is left out of ProcessBench. The report,
    the command and the page say how many steps were left out for that reason."""
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines()]
    correct = [r for r in rows if r["label"] == -1 and len(r["steps"]) >= 3][:2]
    wrong = next(r for r in rows if r["label"] >= 1)
    project = import_lines("nocheck", [json.dumps(r) for r in [*correct, wrong]], "processbench")
    scorer = services.scorer_create(name="tool", backend="tool", projects=[project])
    unknown = {"checks": [], "verdict": "unknown"}
    first, second = correct
    records = [
        # One step checked wrong would be a mistake; here it is "no check": no prediction.
        {
            "trace_id": first["id"],
            "scores": [0.9 if i != 1 else 0.5 for i in range(len(first["steps"]))],
            "details": [unknown if i == 1 else None for i in range(len(first["steps"]))],
        },
        # Nothing checked at all: no ProcessBench prediction can be made.
        {
            "trace_id": second["id"],
            "scores": [0.5] * len(second["steps"]),
            "details": [unknown] * len(second["steps"]),
        },
        # The error step is flagged; the step before it is no check.
        {
            "trace_id": wrong["id"],
            "scores": [
                0.1 if i == wrong["label"] else (0.5 if i == wrong["label"] - 1 else 0.9)
                for i in range(len(wrong["steps"]))
            ],
            "details": [
                unknown if i == wrong["label"] - 1 else None for i in range(len(wrong["steps"]))
            ],
        },
    ]
    services.scores_import(
        project=project,
        scorer=scorer,
        stream=io.BytesIO("\n".join(json.dumps(r) for r in records).encode()),
        filename="s.jsonl",
    )
    left_out = 1 + len(second["steps"]) + 1
    report = report_json("--project", "nocheck", "--scorer", "tool", "--threshold", "0.5")
    steps = len(first["steps"]) + len(second["steps"]) + len(wrong["steps"])
    assert report["steps"] == steps
    assert report["worst"] == []
    assert report["no_verdict"] == {
        "steps": left_out,
        "gold_steps": left_out,
        "traces_without_any": 1,
    }
    # ProcessBench's gold: every step of a correct trace, the steps up to the error of the other.
    gold = len(first["steps"]) + len(second["steps"]) + wrong["label"] + 1
    assert report["gold_steps"] == gold - left_out
    position = {p["position"]: p for p in report["by_position"]}
    assert all(p["accuracy"] in (None, 1.0) for p in position.values())
    assert report["prmbench"]["accuracy"] == 1.0
    assert report["auroc"] == 1.0
    pb = report["processbench"]
    assert (pb["n_correct"], pb["n_error"]) == (1, 1)  # the trace with no verdict is left out
    assert pb["acc_correct"] == 1.0 and pb["acc_error"] == 1.0
    assert report["sample"]["gold_steps"] == gold - left_out
    out = io.StringIO()
    call_command("prm_report", "--project", "nocheck", "--scorer", "tool", stdout=out)
    assert f"{left_out} steps with no verdict" in out.getvalue()
    reviewer = make_user("rev-nocheck")
    annotate_services.membership_set(project=project, user=reviewer, role="reviewer")
    c = Client()
    c.force_login(reviewer)
    page = c.get(reverse("review:audit", args=["nocheck"])).content.decode()
    assert f'data-testid="no-verdict">{left_out} steps' in page
    api = c.get(reverse("api:audit", args=["nocheck"])).json()
    assert api["no_verdict"] == report["no_verdict"]
