"""PRM evaluation against gold labels: ProcessBench, PRMBench, AUROC, calibration, Best-of-N.

Plain Python + numpy, no Django: a notebook or a training script imports it as it is. Every rate
is a fraction in [0, 1]; a metric with nothing to measure (no trace with an error, one class only)
is None, never a made-up 0.

One threshold rule for every figure (`predicted_correct`): a step is predicted correct when its
score is *above* the threshold, wrong when it is at or below it. It is PRMBench's rule
(`step_level_validity_labels = [item > self.validity_threshold ...]`, ssmisya/PRMBench @ a1ae4eab,
mr_eval/models/qwen_prm.py:116, math_shepherd.py:89, skywork_prm.py:105) and the one ProcessBench's
own PRM script implies (QwenLM/ProcessBench, code/run_eval_prm_rlhflow.py:50: a step is right only
when `+` is the greedy token, i.e. P(+) > P(-)).

Conventions, each the benchmark's own:
- ProcessBench: the predicted earliest error is the first step predicted wrong, -1 when there is
  none. acc_error is the exact-match accuracy of that index on traces whose label is not -1,
  acc_correct the accuracy (prediction -1) on traces labelled -1, F1 their harmonic mean
  (code/run_eval_prm_rlhflow.py:70-81).
- PRMBench: PRMScore is the mean of the F1 of the correct-step class and the F1 of the error-step
  class (mr_eval/tasks/prmtest_classified/task.py:219-235); per class the same, except
  `multi_solutions` (no error steps), scored by the correct-step F1 alone
  (mr_visualize/eval_res_view/draw_figure/draw_radar.ipynb, get_prmscore_from_current_res_dict).
- Calibration: the reliability diagram and `ece` are positive-class (the score against "this step is
  correct"); `top_label_ece` is the top-label ECE papers compare (Guo et al. 2017, eq. 3).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# Inputs: plain sequences or numpy arrays.
Bools = Sequence[bool] | np.ndarray
Floats = Sequence[float] | np.ndarray


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def harmonic_mean(a: float | None, b: float | None) -> float | None:
    """2ab / (a + b); 0 when both are 0, None when either is unknown.

    >>> harmonic_mean(0.5, 1.0)
    0.6666666666666666
    >>> harmonic_mean(0.0, 0.0), harmonic_mean(None, 1.0)
    (0.0, None)
    """
    if a is None or b is None:
        return None
    return 2 * a * b / (a + b) if a + b > 0 else 0.0


THRESHOLD_RULE = (
    "A step is predicted correct when its score is above the threshold and wrong when it is at or "
    "below it (PRMBench's rule), in every figure."
)


def predicted_correct(scores: Floats | float, threshold: float = 0.5) -> Any:
    """The one threshold rule: score > threshold (a bool, or a boolean array for an array).

    >>> predicted_correct(0.5, 0.5), predicted_correct(0.51, 0.5)
    (False, True)
    >>> predicted_correct([0.2, 0.5, 0.8], 0.5).tolist()
    [False, False, True]
    """
    if isinstance(scores, int | float):
        return bool(scores > threshold)
    return np.asarray(scores, dtype=np.float64) > threshold


# --- ProcessBench ---------------------------------------------------------------------------------


def first_error_prediction(scores: Sequence[float], threshold: float = 0.5) -> int:
    """The index of the first step predicted wrong (score at or below the threshold), -1 when none.

    >>> first_error_prediction([0.9, 0.7, 0.3, 0.8])
    2
    >>> first_error_prediction([0.9, 0.5], threshold=0.5)
    1
    """
    for index, score in enumerate(scores):
        if not predicted_correct(float(score), threshold):
            return index
    return -1


@dataclass(frozen=True)
class ProcessBenchResult:
    acc_error: float | None
    acc_correct: float | None
    f1: float | None
    n_error: int
    n_correct: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def processbench(labels: Sequence[int], predictions: Sequence[int]) -> ProcessBenchResult:
    """ProcessBench's metric from gold earliest-error labels and predicted ones (-1: no error).

    >>> r = processbench([-1, -1, 2, 0, 3], [-1, 1, 2, 0, 1])
    >>> r.acc_error, r.acc_correct, round(r.f1, 4)
    (0.6666666666666666, 0.5, 0.5714)
    """
    if len(labels) != len(predictions):
        raise ValueError("labels and predictions differ in length")
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(predictions, dtype=np.int64)
    err = y != -1
    n_error, n_correct = int(err.sum()), int((~err).sum())
    acc_error = _rate(int((p[err] == y[err]).sum()), n_error)
    acc_correct = _rate(int((p[~err] == -1).sum()), n_correct)
    return ProcessBenchResult(
        acc_error=acc_error,
        acc_correct=acc_correct,
        f1=harmonic_mean(acc_error, acc_correct),
        n_error=n_error,
        n_correct=n_correct,
    )


def processbench_from_scores(
    labels: Sequence[int], scores: Sequence[Sequence[float]], threshold: float = 0.5
) -> ProcessBenchResult:
    """processbench() with each trace's prediction made from its step scores at `threshold`."""
    return processbench(labels, [first_error_prediction(s, threshold) for s in scores])


def _prefix_minima(scores: Sequence[Sequence[float]]) -> list[np.ndarray]:
    return [np.minimum.accumulate(np.asarray(s, dtype=np.float64)) for s in scores]


def processbench_f1_curve(
    labels: Sequence[int], scores: Sequence[Sequence[float]], thresholds: Floats
) -> np.ndarray:
    """ProcessBench F1 at each threshold, without re-scanning the traces per threshold.

    With m_i the running minimum of a trace's scores, the prediction equals a label L != -1
    exactly when m_L <= t < m_{L-1} (m_{-1} = +inf), and equals -1 exactly when t < m_last; so
    each count is a difference of two sorted-array searches.

    >>> labels, scores = [-1, 1], [[0.9, 0.8], [0.9, 0.2, 0.7]]
    >>> processbench_f1_curve(labels, scores, [0.1, 0.5, 0.85]).tolist()
    [0.0, 1.0, 0.0]
    """
    t = np.asarray(thresholds, dtype=np.float64)
    minima = _prefix_minima(scores)
    lo, hi, last = [], [], []
    for label, m in zip(labels, minima, strict=True):
        if label == -1:
            last.append(m[-1] if len(m) else np.inf)
        elif label < len(m):
            lo.append(m[label])
            hi.append(m[label - 1] if label > 0 else np.inf)
        else:  # a label past the scored steps can never be matched
            lo.append(np.inf)
            hi.append(np.inf)
    lo_s, hi_s, last_s = np.sort(lo), np.sort(hi), np.sort(last)
    # count(x <= t) = searchsorted(x, t, "right"); count(x > t) = n - that.
    hit_err = np.searchsorted(lo_s, t, "right") - np.searchsorted(hi_s, t, "right")
    hit_ok = len(last_s) - np.searchsorted(last_s, t, "right")
    acc_e = hit_err / len(lo_s) if len(lo_s) else np.full(t.shape, np.nan)
    acc_c = hit_ok / len(last_s) if len(last_s) else np.full(t.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(acc_e + acc_c > 0, 2 * acc_e * acc_c / (acc_e + acc_c), 0.0)
    return np.where(np.isnan(acc_e) | np.isnan(acc_c), np.nan, f1)


def best_threshold(
    labels: Sequence[int], scores: Sequence[Sequence[float]]
) -> tuple[float | None, float | None]:
    """(threshold, F1): the threshold that maximises ProcessBench F1, searched over every point
    where a prediction can change (each running minimum, and just below it); ties go to the
    threshold nearest 0.5. A score of +inf (a step with no verdict) is never predicted wrong.

    >>> best_threshold([-1, 1, 0], [[0.9, 0.8], [0.9, 0.6, 0.7], [0.55, 0.9]])
    (0.7, 1.0)
    >>> best_threshold([-1, 1], [[float("inf"), 0.8], [float("inf"), 0.6, 0.7]])
    (0.7, 1.0)
    """
    minima = _prefix_minima(scores)
    if not minima:
        return None, None
    values = np.unique(np.concatenate([m for m in minima if len(m)] or [np.zeros(0)]))
    values = values[np.isfinite(values)]  # +inf: a step with no verdict, never a threshold
    if not len(values):
        return None, None
    candidates = np.unique(np.concatenate([values, np.nextafter(values, -np.inf)]))
    f1 = processbench_f1_curve(labels, scores, candidates)
    if np.all(np.isnan(f1)):
        return None, None
    best = np.nanmax(f1)
    is_best = f1 == best
    ties = np.flatnonzero(is_best)
    # F1 only changes at candidates: any point of a run of tied candidates is as good, so take
    # the middle of the run nearest 0.5 (never a boundary, where float rounding could tip it).
    pick = int(ties[np.argmin(np.abs(candidates[ties] - 0.5))])
    left = right = pick
    while left > 0 and is_best[left - 1]:
        left -= 1
    while right < len(candidates) - 1 and is_best[right + 1]:
        right += 1
    middle = (candidates[left] + candidates[right]) / 2
    rounded = round(float(middle), 6)
    if processbench_f1_curve(labels, scores, [rounded])[0] == best:
        middle = rounded
    return float(middle), float(best)


# --- PRMBench -------------------------------------------------------------------------------------


def binary_f1(truth: np.ndarray, predicted: np.ndarray) -> float | None:
    """F1 of the positive class of two boolean arrays; None when the class never occurs.

    >>> binary_f1(np.array([True, True, False]), np.array([True, False, False]))
    0.6666666666666666
    """
    tp = int((truth & predicted).sum())
    fp = int((~truth & predicted).sum())
    fn = int((truth & ~predicted).sum())
    if tp + fp + fn == 0:
        return None
    return 2 * tp / (2 * tp + fp + fn)


@dataclass(frozen=True)
class PRMBenchResult:
    score: float | None
    f1_correct: float | None
    f1_error: float | None
    accuracy: float | None
    n_steps: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# PRMBench's classes without error steps: their score is the correct-step F1 alone.
PRMBENCH_POSITIVE_ONLY_CLASSES = frozenset({"multi_solutions"})


def prmbench(
    correct: Bools, scores: Floats, threshold: float = 0.5, *, classification: str | None = None
) -> PRMBenchResult:
    """PRMBench's PRMScore over steps: 0.5 * F1(correct class) + 0.5 * F1(error class), a step
    predicted correct when its score is above the threshold. For one of PRMBench's classes
    (`classification`), its own per-class rule: `multi_solutions` is the correct-step F1 alone.

    >>> r = prmbench([True, True, False, False], [0.9, 0.4, 0.2, 0.6])
    >>> r.f1_correct, r.f1_error, r.score
    (0.5, 0.5, 0.5)
    >>> prmbench([True, True, True], [0.9, 0.4, 0.8], classification="multi_solutions").score
    0.8
    """
    truth = np.asarray(correct, dtype=bool)
    predicted = predicted_correct(scores, threshold)
    if truth.shape != predicted.shape:
        raise ValueError("correct and scores differ in length")
    f1_pos = binary_f1(truth, predicted)
    f1_neg = binary_f1(~truth, ~predicted)
    if classification in PRMBENCH_POSITIVE_ONLY_CLASSES:
        score = f1_pos
    else:
        score = None if f1_pos is None or f1_neg is None else 0.5 * f1_pos + 0.5 * f1_neg
    return PRMBenchResult(
        score=score,
        f1_correct=f1_pos,
        f1_error=f1_neg,
        accuracy=_rate(int((truth == predicted).sum()), len(truth)),
        n_steps=len(truth),
    )


# --- ranking and calibration ----------------------------------------------------------------------


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    # Boundaries of runs of equal values.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    average = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def auroc(positive: Bools, scores: Floats) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with ties counted half); None with one class.

    >>> auroc([True, True, False, False], [0.9, 0.4, 0.2, 0.6])
    0.75
    >>> auroc([True, False], [0.5, 0.5])
    0.5
    """
    y = np.asarray(positive, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(positive: Bools, scores: Floats) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct score, from (0, 0) to (1, 1)."""
    y = np.asarray(positive, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if not y.any() or y.all():
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tps = np.cumsum(y)[distinct]
    fps = np.cumsum(~y)[distinct]
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    count: int
    mean_score: float | None
    fraction_correct: float | None


@dataclass(frozen=True)
class Calibration:
    """`ece` and `bins`: positive-class reliability (a step's score against whether the step is
    correct); `top_label_ece`: the top-label ECE (the confidence of the predicted class)."""

    ece: float | None
    bins: list[CalibrationBin] = field(default_factory=list)
    top_label_ece: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ece": self.ece,
            "top_label_ece": self.top_label_ece,
            "bins": [asdict(b) for b in self.bins],
        }


def _binned(
    confidence: np.ndarray, hit: np.ndarray, n_bins: int
) -> tuple[float, list[CalibrationBin]]:
    """ECE (the count-weighted mean |fraction of hits - mean confidence| over equal-width bins
    [k/n, (k+1)/n), the last closed at 1) and the bins."""
    index = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    sums = np.bincount(index, weights=confidence, minlength=n_bins)
    hits = np.bincount(index, weights=hit, minlength=n_bins)
    bins = []
    ece = 0.0
    for b in range(n_bins):
        n = int(counts[b])
        mean = float(sums[b] / n) if n else None
        frac = float(hits[b] / n) if n else None
        if n:
            ece += n / len(confidence) * abs(mean - frac)  # type: ignore[operator]
        bins.append(CalibrationBin(b / n_bins, (b + 1) / n_bins, n, mean, frac))
    return float(ece), bins


def calibration(correct: Bools, scores: Floats, n_bins: int = 10) -> Calibration:
    """Reliability diagram bins (equal width over [0, 1]) and two expected calibration errors.

    - `ece`, positive-class: the score is the confidence that the step is correct and the hit is
      "the step is correct" (torchmetrics' BinaryCalibrationError: `confidences, accuracies =
      preds, target`, src/torchmetrics/functional/classification/calibration_error.py:138).
    - `top_label_ece`: the confidence of the predicted class, max(score, 1 - score), and the hit is
      "the predicted class is right" (Guo et al. 2017, eq. 3; torchmetrics'
      MulticlassCalibrationError over [1 - score, score]: `confidences, predictions =
      preds.max(dim=1)`, calibration_error.py:244-245). The predicted class is "correct" when the
      score is above 0.5 (a tie goes to "wrong", the first class, as torch.max does).

    Both weigh each bin's |fraction of hits - mean confidence| by its share of the steps
    (calibration_error.py:97).

    >>> c = calibration([True, False, True, True], [0.95, 0.9, 0.1, 0.15], n_bins=2)
    >>> round(c.ece, 4), [b.count for b in c.bins], round(c.top_label_ece, 4)
    (0.65, [2, 2], 0.65)
    """
    y = np.asarray(correct, dtype=bool)
    s = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    if not len(s):
        return Calibration(ece=None, bins=[])
    ece, bins = _binned(s, y.astype(np.float64), n_bins)
    predicted = predicted_correct(s, 0.5)
    top_ece, _ = _binned(np.maximum(s, 1.0 - s), (predicted == y).astype(np.float64), n_bins)
    return Calibration(ece=ece, bins=bins, top_label_ece=top_ece)


# --- Best-of-N ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One of a problem's N sampled solutions: its aggregate PRM score, whether its final answer is
    right, and the answer itself (for majority vote; empty when unknown)."""

    score: float | None
    correct: bool
    answer: str = ""


def best_of_n(problems: Sequence[Sequence[Candidate]]) -> dict[str, Any]:
    """Accuracy of picking each problem's highest-scoring candidate, beside majority vote over the
    final answers, the mean accuracy of one random pick, and the oracle (any candidate right).

    Only problems with at least two scored candidates count. Majority vote is None when the
    answers are unknown; its ties go to the answer seen first.

    >>> p1 = [Candidate(0.9, False, "3"), Candidate(0.4, True, "4"), Candidate(0.3, True, "4")]
    >>> p2 = [Candidate(0.2, False, "1"), Candidate(0.8, True, "2")]
    >>> r = best_of_n([p1, p2])
    >>> r["prm"], r["majority"], r["random"], r["oracle"], r["problems"]
    (0.5, 0.5, 0.5833333333333333, 1.0, 2)
    """
    chosen: list[bool] = []
    majority: list[bool] = []
    random_pick: list[float] = []
    oracle: list[bool] = []
    answers_known = True
    for candidates in problems:
        scored = [c for c in candidates if c.score is not None and not math.isnan(c.score)]
        if len(scored) < 2:
            continue
        best = max(scored, key=lambda c: c.score)  # type: ignore[arg-type,return-value]
        chosen.append(best.correct)
        random_pick.append(sum(c.correct for c in scored) / len(scored))
        oracle.append(any(c.correct for c in scored))
        if all(c.answer for c in scored):
            top = Counter(c.answer for c in scored).most_common(1)[0][0]
            majority.append(next(c.correct for c in scored if c.answer == top))
        else:
            answers_known = False
    n = len(chosen)
    return {
        "problems": n,
        "prm": _rate(sum(chosen), n),
        "majority": _rate(sum(majority), len(majority)) if answers_known and majority else None,
        "random": sum(random_pick) / n if n else None,
        "oracle": _rate(sum(oracle), n),
    }
