"""The audit metrics equal the benchmarks' own formulas: ProcessBench on real ProcessBench records
with hand-checked predictions, PRMBench on a real PRMBench record; plus AUROC, calibration, the best
threshold and Best-of-N on cases worked out by hand."""

from __future__ import annotations

import doctest
import json
import random

import numpy as np
import pytest

from scoring.prm import metrics
from tests.conftest import REPO_ROOT

GSM8K = REPO_ROOT / "data" / "processbench" / "gsm8k.jsonl"
PRMBENCH = REPO_ROOT / "data" / "prmbench_sample.jsonl"

# Hand-written step scores for real ProcessBench records, and what ProcessBench's rule (the first
# step predicted wrong, i.e. not scoring above 0.5, else -1) predicts from them, worked out by hand.
HAND = {
    "gsm8k-0": ([0.9, 0.2, 0.8, 0.7], 1),  # label 1: right
    "gsm8k-1": ([0.9, 0.6, 0.3, 0.9, 0.9, 0.9, 0.9], 2),  # label 1: wrong (too late)
    "gsm8k-2": ([0.4, 0.1, 0.9, 0.9], 0),  # label 1: wrong (too early)
    "gsm8k-3": ([0.8, 0.7, 0.45, 0.2], 2),  # label 2: right
    "gsm8k-200": ([0.9] * 8, -1),  # label -1: right
    "gsm8k-201": ([0.9] * 5 + [0.49], 5),  # label -1: wrong
    "gsm8k-202": ([0.51, 0.6], -1),  # label -1: right (0.51 is above 0.5)
}


def records(path, ids=None):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in rows if ids is None or r["id"] in ids]


def test_doctests() -> None:
    assert doctest.testmod(metrics).failed == 0


def test_processbench_on_real_records_with_hand_checked_predictions() -> None:
    recs = {r["id"]: r for r in records(GSM8K, set(HAND))}
    assert {i: r["label"] for i, r in recs.items()} == {
        "gsm8k-0": 1,
        "gsm8k-1": 1,
        "gsm8k-2": 1,
        "gsm8k-3": 2,
        "gsm8k-200": -1,
        "gsm8k-201": -1,
        "gsm8k-202": -1,
    }
    for rid, (scores, expected) in HAND.items():
        assert len(scores) == len(recs[rid]["steps"])
        assert metrics.first_error_prediction(scores, 0.5) == expected
    labels = [recs[rid]["label"] for rid in HAND]
    result = metrics.processbench_from_scores(labels, [s for s, _ in HAND.values()], 0.5)
    # 2 of 4 error traces exact, 2 of 3 correct traces -1: F1 = 2 * 1/2 * 2/3 / (1/2 + 2/3) = 4/7.
    assert result.acc_error == pytest.approx(1 / 2)
    assert result.acc_correct == pytest.approx(2 / 3)
    assert result.f1 == pytest.approx(4 / 7)
    assert (result.n_error, result.n_correct) == (4, 3)


def test_processbench_equals_the_reference_formula_on_all_of_gsm8k() -> None:
    recs = records(GSM8K)
    rng = random.Random(7)
    scores = [[rng.random() for _ in r["steps"]] for r in recs]
    labels = [r["label"] for r in recs]
    for t in (0.3, 0.5, 0.8):
        preds = [next((i for i, s in enumerate(ss) if not s > t), -1) for ss in scores]
        err = [p == y for p, y in zip(preds, labels, strict=True) if y != -1]
        ok = [p == -1 for p, y in zip(preds, labels, strict=True) if y == -1]
        acc_e, acc_c = sum(err) / len(err), sum(ok) / len(ok)
        got = metrics.processbench_from_scores(labels, scores, t)
        assert (got.acc_error, got.acc_correct) == (acc_e, acc_c)
        assert got.f1 == pytest.approx(2 * acc_e * acc_c / (acc_e + acc_c))
        # The vectorised curve agrees with the per-threshold computation.
        assert metrics.processbench_f1_curve(labels, scores, [t])[0] == pytest.approx(got.f1)


def test_best_threshold_is_the_best_of_a_fine_sweep() -> None:
    recs = records(GSM8K)[:200]
    rng = random.Random(3)
    labels = [r["label"] for r in recs]
    scores = [
        [
            rng.betavariate(4, 2) if (r["label"] == -1 or i < r["label"]) else rng.betavariate(2, 3)
            for i in range(len(r["steps"]))
        ]
        for r in recs
    ]
    threshold, f1 = metrics.best_threshold(labels, scores)
    assert metrics.processbench_from_scores(labels, scores, threshold).f1 == pytest.approx(f1)
    sweep = max(metrics.processbench_from_scores(labels, scores, t / 1000).f1 for t in range(1001))
    assert f1 >= sweep - 1e-12


def test_prmbench_on_a_real_record() -> None:
    record = records(PRMBENCH)[0]
    assert (record["idx"], record["classification"]) == ("prm_test_p1_69", "circular")
    assert record["error_steps"] == [5, 7, 10, 11] and len(record["modified_process"]) == 13
    wrong = {n - 1 for n in record["error_steps"]}  # PRMBench counts steps from 1
    correct = [i not in wrong for i in range(13)]
    scores = [0.9] * 13
    scores[0] = 0.3  # a right step called wrong
    scores[4], scores[6], scores[9], scores[10] = 0.1, 0.8, 0.2, 0.5  # 0.5 is not above 0.5
    result = metrics.prmbench(correct, scores, 0.5)
    # Correct class: TP 8, FP 1 (step 6), FN 1 (step 0): F1 16/18. Error class: TP 3 (4, 9, 10),
    # FP 1 (step 0), FN 1 (step 6): F1 6/8. PRMScore = mean of the two.
    assert result.f1_correct == pytest.approx(16 / 18)
    assert result.f1_error == pytest.approx(6 / 8)
    assert result.score == pytest.approx(0.5 * 16 / 18 + 0.5 * 6 / 8)


def test_auroc_equals_the_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.6
    s = np.round(rng.random(300), 1)  # many ties
    pos, neg = s[y], s[~y]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert metrics.auroc(y, s) == pytest.approx(pairs / (len(pos) * len(neg)))
    assert metrics.auroc([True, True], [0.1, 0.2]) is None
    fpr, tpr = metrics.roc_curve(y, s)
    assert np.trapezoid(tpr, fpr) == pytest.approx(metrics.auroc(y, s))


def test_calibration_of_a_perfectly_calibrated_prm_is_near_zero() -> None:
    rng = np.random.default_rng(1)
    s = rng.random(20000)
    y = rng.random(20000) < s
    calib = metrics.calibration(y, s)
    assert calib.ece < 0.02
    assert sum(b.count for b in calib.bins) == 20000
    overconfident = metrics.calibration(y, np.where(s > 0.5, 1.0, 0.0))
    assert overconfident.ece > 0.2


def test_rates_are_fractions_or_none() -> None:
    r = metrics.processbench([-1, -1], [-1, 3])
    assert (r.acc_error, r.acc_correct, r.f1) == (None, 0.5, None)
    assert metrics.prmbench([True, True], [0.9, 0.9]).score is None  # no error class at all


def test_best_of_n_against_majority_vote() -> None:
    C = metrics.Candidate
    problems = [
        [C(0.9, True, "12"), C(0.2, False, "13"), C(0.3, False, "13")],  # PRM right, vote wrong
        [C(0.1, True, "5"), C(0.8, False, "6"), C(0.2, True, "5")],  # PRM wrong, vote right
        [C(0.7, True, "1"), C(0.6, True, "1")],  # both right
        [C(0.5, True, "x")],  # one candidate: not Best-of-N, left out
    ]
    r = metrics.best_of_n(problems)
    assert (r["problems"], r["prm"], r["majority"], r["oracle"]) == (3, 2 / 3, 2 / 3, 1.0)
    assert r["random"] == pytest.approx((1 / 3 + 2 / 3 + 1) / 3)
    no_answers = metrics.best_of_n([[C(0.9, True), C(0.1, False)]])
    assert no_answers["majority"] is None and no_answers["prm"] == 1.0


# --- PRMBench's own scoring function, transcribed (ssmisya/PRMBench @ a1ae4eab) -------------------


def prmbench_reference_class_scores(records, scores, threshold=0.5):
    """Per classification, PRMBench's PRMScore as its code computes it: labels = score > threshold
    (mr_eval/models/qwen_prm.py:116); TP/FP/TN/FN per step (mr_eval/tasks/prmtest_classified/
    task.py:248-294, error_steps 1-based); f1 and negative_f1 per class (task.py:219-229); the
    class score 0.5 * f1 + 0.5 * negative_f1, but f1 alone for multi_solutions
    (mr_visualize/eval_res_view/draw_figure/draw_radar.ipynb, get_prmscore_from_current_res_dict)."""
    matrix = {}
    for record, step_scores in zip(records, scores, strict=True):
        labels = [item > threshold for item in step_scores]
        hallucination_steps = [i - 1 for i in record["error_steps"]]
        m = matrix.setdefault(record["classification"], dict(TP=0, FP=0, TN=0, FN=0))
        for idx in range(len(labels)):
            if idx in hallucination_steps:
                if labels[idx] == 1:
                    m["FP"] += 1
                else:
                    m["TN"] += 1
            elif labels[idx] == 1:
                m["TP"] += 1
            else:
                m["FN"] += 1
    out = {}
    for classification, m in matrix.items():
        TP, FP, FN, TN = m["TP"], m["FP"], m["FN"], m["TN"]
        precision = TP / (TP + FP) if (TP + FP) != 0 else -1
        recall = TP / (TP + FN) if (TP + FN) != 0 else -1
        f1 = 2 * precision * recall / (precision + recall) if (precision + recall) != 0 else -1
        negative_precision = TN / (TN + FN) if (TN + FN) != 0 else -1
        negative_recall = TN / (TN + FP) if (TN + FP) != 0 else -1
        negative_f1 = (
            2 * negative_precision * negative_recall / (negative_precision + negative_recall)
            if (negative_precision + negative_recall) != 0
            else -1
        )
        if classification in ["multi_solutions"]:
            out[classification] = f1
        else:
            out[classification] = f1 * 0.5 + negative_f1 * 0.5
    return out


def prmbench_random_scores(recs, seed):
    """Scores that catch some errors in every class (PRMBench writes -1, its "undefined", for an
    F1 without a true positive and averages it in; steplens says 0 there: docs/benchmarks.md)."""
    rng = random.Random(seed)
    return [
        [
            round(rng.betavariate(2, 3) if j + 1 in r["error_steps"] else rng.betavariate(3, 2), 2)
            for j in range(len(r["modified_process"]))
        ]
        for r in recs
    ]


def test_prmbench_every_class_is_scored_by_prmbench_own_function() -> None:
    recs = records(PRMBENCH)
    classes = {r["classification"] for r in recs}
    assert "multi_solutions" in classes and len(classes) == 9
    for seed in range(5):
        scores = prmbench_random_scores(recs, seed)
        expected = prmbench_reference_class_scores(recs, scores)
        assert all(v > 0 for v in expected.values())  # no -1 sentinel averaged in
        for classification in classes:
            group = [i for i, r in enumerate(recs) if r["classification"] == classification]
            correct = [
                j + 1 not in recs[i]["error_steps"]
                for i in group
                for j in range(len(recs[i]["modified_process"]))
            ]
            flat = [s for i in group for s in scores[i]]
            got = metrics.prmbench(correct, flat, 0.5, classification=classification).score
            assert got == pytest.approx(expected[classification], abs=1e-12), classification


def test_multi_solutions_is_the_correct_step_f1_not_half_of_it() -> None:
    # Three steps of a multi_solutions record, none wrong; one called wrong: F1 = 2*2/(2*2+1).
    r = metrics.prmbench([True, True, True], [0.9, 0.3, 0.8], classification="multi_solutions")
    assert r.score == pytest.approx(0.8) and r.f1_error == 0.0
    # Any other class keeps the mean of both F1s.
    assert metrics.prmbench([True, True, True], [0.9, 0.3, 0.8]).score == pytest.approx(0.4)


# --- one threshold rule -----------------------------------------------------------------------------


def test_a_score_equal_to_the_threshold_is_wrong_in_every_metric() -> None:
    t = 0.5
    assert metrics.predicted_correct(0.5, t) is False
    assert metrics.first_error_prediction([0.9, 0.5, 0.9], t) == 1
    # PRMBench: the 0.5 step is an error-class prediction.
    r = metrics.prmbench([True, True], [0.9, 0.5], t)
    assert (r.f1_correct, r.f1_error) == (pytest.approx(2 / 3), 0.0)
    # ProcessBench and its vectorised curve agree at the boundary.
    labels, scores = [1, -1], [[0.9, 0.5], [0.6, 0.7]]
    assert metrics.processbench_from_scores(labels, scores, t).acc_error == 1.0
    assert metrics.processbench_from_scores(labels, scores, t).acc_correct == 1.0
    below = float(np.nextafter(0.5, 0))
    curve = metrics.processbench_f1_curve(labels, scores, [0.5, below])
    exact = [metrics.processbench_from_scores(labels, scores, x).f1 for x in (0.5, below)]
    assert curve.tolist() == exact == [1.0, 0.0]


# --- calibration: torchmetrics' formula, transcribed -----------------------------------------------


def torchmetrics_ece(confidences, accuracies, n_bins=10):
    """Lightning-AI/torchmetrics @ dab0333, src/torchmetrics/functional/classification/
    calibration_error.py:30-97 in numpy: bins by bucketize(right=True) - 1 over linspace(0, 1,
    n_bins + 1), sum(|acc_bin - conf_bin| * prop_bin)."""
    boundaries = np.linspace(0, 1, n_bins + 1)
    indices = np.searchsorted(boundaries, confidences, side="right") - 1
    count = np.bincount(indices, minlength=len(boundaries)).astype(float)
    with np.errstate(invalid="ignore"):  # empty bins: 0/0, then nan_to_num as torchmetrics does
        conf = np.nan_to_num(np.bincount(indices, confidences, len(boundaries)) / count)
        acc = np.nan_to_num(np.bincount(indices, accuracies, len(boundaries)) / count)
    return float(np.sum(np.abs(acc - conf) * count / count.sum()))


def test_both_eces_equal_torchmetrics_definitions() -> None:
    rng = np.random.default_rng(5)
    s = rng.random(5000) * 0.999  # below 1.0, where torchmetrics opens an extra bin
    y = rng.random(5000) < s**2  # an overconfident PRM
    calib = metrics.calibration(y, s)
    # Binary (positive class): confidences, accuracies = preds, target (calibration_error.py:138).
    assert calib.ece == pytest.approx(torchmetrics_ece(s, y.astype(float)), abs=1e-12)
    # Top label: preds [1 - s, s], confidences, predictions = preds.max(dim=1) (:244-245).
    preds = np.stack([1 - s, s], axis=1)
    predictions = preds.argmax(axis=1)
    top = torchmetrics_ece(preds.max(axis=1), (predictions == y.astype(int)).astype(float))
    assert calib.top_label_ece == pytest.approx(top, abs=1e-12)
    assert calib.top_label_ece != pytest.approx(calib.ece)
