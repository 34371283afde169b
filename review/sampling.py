"""How much an audit or agreement figure rests on: sample sizes, percentile-bootstrap intervals,
and a plain warning when the sample is too small to mean anything.

The interval is Efron's percentile bootstrap (Efron & Tibshirani, "An Introduction to the
Bootstrap", 1993, ch. 13): resample the TRACES with replacement (a trace's steps are not
independent, so steps are resampled with their trace), recompute the figure, and take the 2.5th
and 97.5th percentiles of the B replicates. Seeded, so a page shows the same interval twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from scoring.prm import metrics

BOOTSTRAP_REPLICATES = 1000
# Below these an F1 or an AUROC swings by tenths between two samples of the same PRM: the page
# says so instead of letting "F1 0.000 on 9 traces" read as a verdict.
MIN_TRACES = 30
MIN_PER_CLASS = 10
MIN_AGREEMENT_STEPS = 30


def bootstrap_interval(
    n: int,
    statistic: Callable[[np.ndarray], float | None],
    *,
    replicates: int = BOOTSTRAP_REPLICATES,
    seed: int = 0,
) -> list[float] | None:
    """95% percentile interval of `statistic(indices)` over resamples of range(n).

    >>> values = np.array([0.0, 1.0] * 50)
    >>> lo, hi = bootstrap_interval(100, lambda idx: float(values[idx].mean()))
    >>> 0.39 < lo < 0.5 < hi < 0.61
    True
    >>> bootstrap_interval(0, lambda idx: 1.0) is None
    True
    """
    if n == 0:
        return None
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(replicates):
        value = statistic(rng.integers(0, n, size=n))
        if value is not None and not np.isnan(value):
            found.append(value)
    if len(found) < replicates // 2:  # most resamples undefined (one class only): no interval
        return None
    lo, hi = np.percentile(found, [2.5, 97.5])
    return [float(lo), float(hi)]


def _replicates(size: int) -> int:
    """Fewer replicates for big samples (the interval is narrow there), so that a page over a
    hundred thousand gold steps still renders in well under a second."""
    return max(100, min(BOOTSTRAP_REPLICATES, BOOTSTRAP_REPLICATES * 5000 // max(size, 1)))


def audit_sample(
    *,
    labels: Sequence[int | None],
    scores: Sequence[Sequence[float]],
    gold: Sequence[Sequence[int | None]],
    threshold: float,
) -> dict[str, Any]:
    """What the audit's ProcessBench F1 and step AUROC rest on, their intervals, and a warning.

    `labels`: each trace's gold earliest-error index (-1 none, None: not fully gold-labelled);
    `scores`, `gold`: each trace's step scores and step gold labels (None where unlabelled).
    A trace's prediction does not change when it is resampled, so it is computed once.
    """
    usable = [i for i, label in enumerate(labels) if label is not None]
    y = np.array([labels[i] for i in usable], dtype=np.int64)
    predicted = np.array(
        [metrics.first_error_prediction(scores[i], threshold) for i in usable], dtype=np.int64
    )
    errors = int((y != -1).sum())
    correct_traces = len(usable) - errors

    def f1(idx: np.ndarray) -> float | None:
        return metrics.processbench(y[idx], predicted[idx]).f1

    positive, step_score, owner = [], [], []
    for t, (g_row, s_row) in enumerate(zip(gold, scores, strict=True)):
        for g, s in zip(g_row, s_row, strict=False):
            if g is not None:
                positive.append(g >= 0)
                step_score.append(s)
                owner.append(t)
    pos = np.array(positive, dtype=bool)
    sc = np.array(step_score, dtype=np.float64)
    own = np.array(owner, dtype=np.int64)
    with_steps = np.unique(own)
    local = np.searchsorted(with_steps, own)  # each step's trace, numbered 0..len(with_steps)-1

    def auroc(idx: np.ndarray) -> float | None:
        times = np.bincount(idx, minlength=len(with_steps))[local]
        chosen = np.repeat(np.arange(len(sc)), times)
        return metrics.auroc(pos[chosen], sc[chosen])

    too_few = []
    if len(usable) < MIN_TRACES:
        too_few.append(f"{len(usable)} traces with gold labels (fewer than {MIN_TRACES})")
    if usable and min(errors, correct_traces) < MIN_PER_CLASS:
        too_few.append(
            f"{errors} with an error and {correct_traces} without (fewer than {MIN_PER_CLASS} "
            "of one kind)"
        )
    return {
        "traces_with_gold": len(usable),
        "traces_with_error": errors,
        "traces_correct": correct_traces,
        "gold_steps": len(sc),
        "f1_interval": bootstrap_interval(len(usable), f1, replicates=_replicates(len(usable))),
        "auroc_interval": bootstrap_interval(
            len(with_steps), auroc, replicates=_replicates(len(sc))
        ),
        "warning": (
            "Too few to mean much: "
            + "; ".join(too_few)
            + ". Label or adjudicate more traces (the Data page filters the ones without gold)."
        )
        if too_few
        else None,
    }


def agreement_warning(steps: int) -> str | None:
    """The agreement page's note when its kappas rest on few steps ("kappa from 4 steps").

    >>> agreement_warning(4)
    'Kappa from 4 steps: too few to mean much (fewer than 30).'
    >>> agreement_warning(120) is None
    True
    """
    if steps >= MIN_AGREEMENT_STEPS:
        return None
    return f"Kappa from {steps} steps: too few to mean much (fewer than {MIN_AGREEMENT_STEPS})."


def best_of_n_warning(problems: int) -> str | None:
    """Best-of-N accuracy over fewer than MIN_TRACES problems is a coin toss or two."""
    if problems >= MIN_TRACES:
        return None
    return (
        f"Best-of-N from {problems} problem{'s' if problems != 1 else ''} with two or more "
        f"candidates of known correctness: too few to mean much (fewer than {MIN_TRACES})."
    )


def problem_best_of_n_sample(*, traces: int, scored: int, project_problems: int) -> dict[str, Any]:
    """What one problem's Best-of-N ranking rests on: `scored` of its `traces` ranked, and the
    `project_problems` (with two or more scored candidates of known correctness) that the PRM's
    Best-of-N accuracy on the audit page rests on. One problem is one draw, so the warning is
    the audit's when the project's count is small, or that there is nothing to rank.

    >>> problem_best_of_n_sample(traces=4, scored=1, project_problems=50)["warning"]
    'Nothing to rank yet: 1 of 4 traces scored (Best-of-N needs two or more).'
    >>> problem_best_of_n_sample(traces=4, scored=4, project_problems=50)["warning"] is None
    True
    >>> problem_best_of_n_sample(traces=4, scored=4, project_problems=3)["warning"][:34]
    'Best-of-N from 3 problems with two'
    """
    if scored < 2:
        warning: str | None = (
            f"Nothing to rank yet: {scored} of {traces} trace{'s' if traces != 1 else ''} "
            "scored (Best-of-N needs two or more)."
        )
    else:
        warning = best_of_n_warning(project_problems)
    return {
        "traces": traces,
        "scored": scored,
        "project_problems": project_problems,
        "warning": warning,
    }
