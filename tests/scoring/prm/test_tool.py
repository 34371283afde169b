"""The tool scorer on real ProcessBench steps: false arithmetic caught, correct arithmetic
passed, final answers checked against a reference, hostile text neither run nor hanging."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from scoring.prm import TraceInput, build_scorer
from scoring.prm.arith import check_text
from tests.scoring.prm.conftest import data_file


def by_id(records, key):
    return next(r for r in records if r["id"] == key)


def test_tool_scorer_does_not_import_torch():
    # The web process and CPU workers use this backend without the worker extras.
    code = (
        "import sys; from scoring.prm import TraceInput, build_scorer; "
        "r = build_scorer('tool').score([TraceInput('q', ['1 + 1 = 2'])]); "
        "assert r[0].steps[0].score == 0.9; assert 'torch' not in sys.modules, 'torch imported'"
    )
    repo = Path(__file__).resolve().parents[3]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=repo)


def test_wrong_sum_at_the_labelled_error_step_is_caught(records):
    record = by_id(records, "gsm8k-74")  # label 4: "2 + 48 + 3150 + 1300 = 3500 pounds."
    [result] = build_scorer("tool").score([TraceInput(record["problem"], record["steps"], key="t")])
    error = result.steps[record["label"]]
    assert error.score == 0.05
    [check] = [c for c in error.details["checks"] if not c["ok"]]
    assert check["expected"] == "3500" and check["computed"] == "4500"
    # the earlier, correct steps are not flagged
    assert all(s.score >= 0.5 for s in result.steps[: record["label"]])


def test_correct_arithmetic_in_prose_and_latex_passes(records):
    record = by_id(records, "gsm8k-12")
    [result] = build_scorer("tool").score([TraceInput(record["problem"], record["steps"])])
    # "3 plates × $6.00/plate = $18.00." (units and currency around the numbers)
    assert result.steps[1].score == 0.9
    assert result.steps[1].details["checks"][0]["expression"] == "3 * 6.00 = 18.00"
    # "$18.00 + $12.00 + $5.00 = $35.00."
    assert result.steps[5].score == 0.9
    assert result.steps[0].score == 0.5  # nothing to check


def test_latex_factorials_and_calculator_annotations():
    [ok] = check_text("$2\\cdot5!\\cdot5!=28800$")
    assert ok.ok and ok.computed == "28800"
    [ok] = check_text("\\(18 - 6 = 12\\)")
    assert ok.ok
    shepherd = data_file("math_shepherd_sample.jsonl").read_text(encoding="utf-8")
    assert "<<40*3=120>>120" in shepherd
    [calc, prose] = check_text("She spends 40 * 3 = <<40*3=120>>120 on clarinet lessons per week.")
    assert calc.source == "calculator" and calc.ok and prose.ok
    [calc, prose] = check_text("She spends 40 * 3 = <<40*3=130>>130 on lessons.")
    assert not calc.ok and not prose.ok


def test_not_checkable_is_not_an_error():
    # variables, functions, percent-of, unit conversions and integer division stay unjudged
    for text in ["x - 3 = 5", "f(2) = 7", "20% of 50 = 10", "4 \\text{ hours} = 240 \\text{ minutes}",
                 "105 \\div 14 = 7 \\quad \\text{remainder} 7", "2 + 2 = 0 \\pmod 4"]:  # fmt: skip
        assert check_text(text) == [], text


def test_boxed_answer_checked_against_reference(records):
    record = by_id(records, "gsm8k-12")  # boxes 35; the right answer is 12 * (6 + 4 + 5) = 180
    scorer = build_scorer("tool")
    wrong, right = scorer.score(
        [
            TraceInput(record["problem"], record["steps"], reference_answer="180", key="w"),
            TraceInput(record["problem"], record["steps"], reference_answer="$35.00", key="r"),
        ]
    )
    assert wrong.trajectory_score == 0.0 and wrong.steps[-1].score == 0.05
    assert wrong.steps[-1].details["answer"] == {"found": "35", "reference": "180", "ok": False}
    assert right.trajectory_score == 1.0 and right.steps[-1].score == 0.9
    # math-verify: equal values written differently (the last \boxed{} is \frac{8}{7})
    fractions = by_id(records, "omnimath-46")
    [result] = scorer.score(
        [TraceInput(fractions["problem"], fractions["steps"], reference_answer="8/7")]
    )
    assert result.trajectory_score == 1.0
    [result] = scorer.score([TraceInput("q", ["no answer here"], reference_answer="3")])
    assert result.trajectory_score == 0.0
    [result] = scorer.score([TraceInput("q", ["\\boxed{3}"])])
    assert result.trajectory_score is None  # no reference: nothing to compare


def test_hostile_text_runs_nothing_and_finishes_fast(tmp_path: Path):
    marker = tmp_path / "pwned"
    steps = [
        f"__import__('os').system('touch {marker}') = 0",
        "9**9**9**9 = 1",
        "10^{10^{10}} + 1 = 5",
        "1000000! = 1",
        "(" * 5000 + "1" + ")" * 5000 + " = 1",
        "\\sqrt[3]{" * 200 + "8" + "}" * 200 + " = 2",
        "x" * 100_000,
    ]
    start = time.monotonic()
    [result] = build_scorer("tool").score([TraceInput("q", steps, reference_answer="1")])
    [boxed] = build_scorer("tool").score(
        [TraceInput("q", ["\\boxed{9^{9^{9^{9}}}}"], reference_answer="1")]
    )
    assert time.monotonic() - start < 2.0
    assert not marker.exists()
    assert len(result.steps) == len(steps)
    assert all(s.score == 0.5 for s in result.steps)
    assert boxed.trajectory_score is None  # refused, not computed


def test_whole_sample_scores_fast_and_in_range(records):
    traces = [TraceInput(r["problem"], r["steps"], key=r["id"]) for r in records]
    start = time.monotonic()
    results = build_scorer("tool").score(traces)
    assert time.monotonic() - start < 5.0
    assert [r.key for r in results] == [t.key for t in traces]
    for trace, result in zip(traces, results, strict=True):
        assert len(result.steps) == len(trace.steps)
        assert all(s.score in (0.05, 0.5, 0.9) for s in result.steps)
    checked = sum(1 for r in results for s in r.steps if s.details["checks"])
    assert checked > 50  # plenty of real arithmetic is checkable


def test_prm800k_answer_step_is_found_and_checked():
    """PRM800K ends a solution with a "# Answer" step; its answer is checked against the
    reference on that step (the record's own pre_generated_answer says what was answered)."""
    path = data_file("prm800k_sample.jsonl")
    phase2 = [
        json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines()
    ]
    phase2 = [q for q in phase2 if q.get("pre_generated_steps")]
    assert phase2
    scorer = build_scorer("tool")
    for q in phase2:
        steps = q["pre_generated_steps"]
        assert steps[-1].startswith("# Answer")
        wrong, right = scorer.score(
            [
                TraceInput(q["problem"], steps, reference_answer=q["ground_truth_answer"]),
                TraceInput(q["problem"], steps, reference_answer=q["pre_generated_answer"]),
            ]
        )
        # every sampled solution here got the wrong answer (found_error)
        assert wrong.steps[-1].details["answer"]["found"] == q["pre_generated_answer"]
        assert wrong.trajectory_score == 0.0 and wrong.steps[-1].score == 0.05
        assert right.trajectory_score == 1.0 and right.steps[-1].score == 0.9


def test_a_check_that_raises_says_so_on_its_step(monkeypatch):
    # A step whose check raised is no verdict, and its details say why rather than nothing
    # (a silent failure once left every step of a full test run unchecked).
    from scoring.prm.backends import tool

    real = tool.check_text

    def flaky(text):
        if "7" in text:
            raise ZeroDivisionError("division by zero")
        return real(text)

    monkeypatch.setattr(tool, "check_text", flaky)
    [result] = build_scorer("tool").score(
        [TraceInput("q", ["2 + 2 = 5", "7 * 1 = 7", "1 + 1 = 2"])]
    )
    wrong, raised, right = result.steps
    assert wrong.score == 0.05 and right.score == 0.9
    assert raised.score == 0.5 and raised.details["verdict"] == "unknown"
    assert raised.details["skipped"] == "check failed: ZeroDivisionError: division by zero"
    assert "skipped" not in wrong.details and "skipped" not in right.details
