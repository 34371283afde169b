"""How far annotators agree: Cohen's kappa per pair, Fleiss' kappa, Krippendorff's alpha (ordinal for
+1/0/-1), first-wrong-step agreement, and per-annotator statistics.

The coefficients are pure functions over plain values (numpy only, tested on published worked
examples); `review.selectors.project_agreement` gathers a project's submitted labels and computes
them all, and `selectors.agreement_for_user` checks that the reader is a reviewer.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LABEL_VALUES = (-1, 0, 1)


# --- coefficients ---------------------------------------------------------------------------------


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters over the same items: (p_o - p_e) / (1 - p_e).

    None with no items; 1.0 when both raters use one and the same category throughout (perfect
    agreement that chance also predicts; kappa is undefined there, and 1.0 is what users expect).

    Wikipedia's worked example (20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no):
    >>> a = ["y"] * 25 + ["n"] * 25
    >>> b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    >>> round(cohen_kappa(a, b), 4)
    0.4
    """
    if len(a) != len(b):
        raise ValueError("the raters rated different numbers of items")
    if not a:
        return None
    categories = sorted(set(a) | set(b), key=repr)
    code = {c: i for i, c in enumerate(categories)}
    x = np.array([code[v] for v in a])
    y = np.array([code[v] for v in b])
    k = len(categories)
    matrix = np.zeros((k, k))
    np.add.at(matrix, (x, y), 1)
    n = matrix.sum()
    p_o = np.trace(matrix) / n
    p_e = float((matrix.sum(axis=1) / n) @ (matrix.sum(axis=0) / n))
    if p_e >= 1.0:
        return 1.0 if p_o >= 1.0 else 0.0
    return float((p_o - p_e) / (1 - p_e))


def fleiss_kappa(units: Sequence[Sequence[Hashable]]) -> float | None:
    """Fleiss' kappa over units, each a list of the ratings it received (two or more; units with
    fewer are left out). With differing numbers of raters per unit, each unit's agreement is
    computed over its own rater count (the usual generalisation).

    Wikipedia's worked example (10 subjects, 14 raters, 5 categories) gives 0.210:
    >>> table = [[0,0,0,0,14],[0,2,6,4,2],[0,0,3,5,6],[0,3,9,2,0],[2,2,8,1,1],
    ...          [7,7,0,0,0],[3,2,6,3,0],[2,5,3,2,2],[6,5,2,1,0],[0,2,2,3,7]]
    >>> units = [[c for c, n in enumerate(row) for _ in range(n)] for row in table]
    >>> round(fleiss_kappa(units), 3)
    0.21
    """
    rated = [list(u) for u in units if len(u) >= 2]
    if not rated:
        return None
    categories = sorted({v for u in rated for v in u}, key=repr)
    code = {c: i for i, c in enumerate(categories)}
    counts = np.zeros((len(rated), len(categories)))
    for i, unit in enumerate(rated):
        for value in unit:
            counts[i, code[value]] += 1
    per_unit = counts.sum(axis=1)
    p_i = ((counts**2).sum(axis=1) - per_unit) / (per_unit * (per_unit - 1))
    p_bar = p_i.mean()
    p_j = counts.sum(axis=0) / counts.sum()
    p_e = float((p_j**2).sum())
    if p_e >= 1.0:
        return 1.0 if p_bar >= 1.0 else 0.0
    return float((p_bar - p_e) / (1 - p_e))


def krippendorff_alpha(
    units: Sequence[Sequence[float]],
    *,
    level: str = "ordinal",
    categories: Sequence[float] | None = None,
) -> float | None:
    """Krippendorff's alpha = 1 - D_o / D_e over units, each the list of values it received
    (missing ratings simply absent; units with fewer than two values are not pairable).

    `level`: "nominal", "ordinal" (the default: -1 < 0 < +1 are ordered) or "interval".
    The ordinal distance between categories c <= k uses the coincidence marginals n_g:
    (sum_{g=c..k} n_g - (n_c + n_k) / 2) ** 2.

    Krippendorff's own worked example (4 coders, 12 units, values 1..5, missing data):
    >>> data = [[1, 1, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2], [1, 2, 3, 4],
    ...         [4, 4, 4, 4], [1, 1, 2, 1], [2, 2, 2, 2], [5, 5, 5], [1, 1], [3]]
    >>> [round(krippendorff_alpha(data, level=lv), 3) for lv in ("nominal", "ordinal", "interval")]
    [0.743, 0.815, 0.849]
    """
    pairable = [list(u) for u in units if len(u) >= 2]
    if not pairable:
        return None
    values = sorted(set(categories or ()) | {v for u in pairable for v in u})
    code = {v: i for i, v in enumerate(values)}
    k = len(values)
    coincidence = np.zeros((k, k))
    for unit in pairable:
        m = len(unit)
        counts = np.zeros(k)
        for v in unit:
            counts[code[v]] += 1
        # Ordered pairs of different raters within the unit, weighted 1 / (m - 1).
        coincidence += (np.outer(counts, counts) - np.diag(counts)) / (m - 1)
    n_c = coincidence.sum(axis=1)
    n = n_c.sum()
    delta: np.ndarray
    if level == "nominal":
        delta = 1.0 - np.eye(k)
    elif level == "interval":
        points = np.asarray(values, dtype=np.float64)
        delta = (points[:, None] - points[None, :]) ** 2
    elif level == "ordinal":
        cumulative = np.cumsum(n_c)
        delta = np.zeros((k, k))
        for c, d in itertools.product(range(k), repeat=2):
            lo, hi = min(c, d), max(c, d)
            between = cumulative[hi] - (cumulative[lo - 1] if lo > 0 else 0.0)
            delta[c, d] = (between - (n_c[lo] + n_c[hi]) / 2) ** 2
    else:
        raise ValueError(f"unknown level {level!r}")
    observed = float((coincidence * delta).sum())
    expected = float((np.outer(n_c, n_c) * delta).sum() / (n - 1))
    if expected == 0.0:
        return 1.0 if observed == 0.0 else None
    return 1.0 - observed / expected


def first_error(values: Sequence[int | None]) -> int:
    """The index of the first step labelled -1, or -1 when none is (ProcessBench's convention).

    >>> first_error([1, 1, -1, None]), first_error([1, 0, 1])
    (2, -1)
    """
    return next((i for i, v in enumerate(values) if v == -1), -1)


def first_error_agreement(traces: Sequence[Mapping[Any, int]]) -> dict[str, Any]:
    """Agreement on the first wrong step: each trace maps annotator -> first error index (-1: none).

    `pairwise`: the share of annotator pairs (over traces) naming the same step; `unanimous`: the
    share of traces (with two or more annotators) where all do.

    >>> first_error_agreement([{"a": 2, "b": 2}, {"a": -1, "b": 3, "c": -1}])
    {'traces': 2, 'pairwise': 0.5, 'unanimous': 0.5}
    """
    pairs = agree = unanimous = counted = 0
    for trace in traces:
        answers = list(trace.values())
        if len(answers) < 2:
            continue
        counted += 1
        unanimous += len(set(answers)) == 1
        for x, y in itertools.combinations(answers, 2):
            pairs += 1
            agree += x == y
    return {
        "traces": counted,
        "pairwise": agree / pairs if pairs else None,
        "unanimous": unanimous / counted if counted else None,
    }


# --- a project's agreement -----------------------------------------------------------------------


@dataclass
class PairAgreement:
    a: str
    b: str
    steps: int
    kappa: float | None
    percent: float | None


@dataclass
class AnnotatorStats:
    user_id: int
    username: str
    traces_submitted: int = 0
    steps_labelled: int = 0
    active_seconds: float = 0.0
    gold_steps: int = 0
    gold_agree: int = 0
    kappa_with_gold: float | None = None
    mean_pair_kappa: float | None = None

    @property
    def traces_per_hour(self) -> float | None:
        hours = self.active_seconds / 3600
        return self.traces_submitted / hours if hours > 0 else None

    @property
    def seconds_per_step(self) -> float | None:
        return self.active_seconds / self.steps_labelled if self.steps_labelled else None

    @property
    def gold_agreement(self) -> float | None:
        return self.gold_agree / self.gold_steps if self.gold_steps else None


@dataclass
class ProjectAgreement:
    annotators: int
    traces_multi: int  # traces submitted by two or more annotators
    steps_multi: int  # steps rated by two or more of them
    fleiss_kappa: float | None
    krippendorff_alpha: float | None
    first_error: dict[str, Any]
    pairs: list[PairAgreement] = field(default_factory=list)
    stats: list[AnnotatorStats] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "annotators": self.annotators,
            "traces_multi": self.traces_multi,
            "steps_multi": self.steps_multi,
            "fleiss_kappa": self.fleiss_kappa,
            "krippendorff_alpha": self.krippendorff_alpha,
            "first_error": self.first_error,
            "pairs": [vars(p) for p in self.pairs],
            "annotators_stats": [
                {
                    "user_id": s.user_id,
                    "username": s.username,
                    "traces_submitted": s.traces_submitted,
                    "steps_labelled": s.steps_labelled,
                    "active_seconds": s.active_seconds,
                    "traces_per_hour": s.traces_per_hour,
                    "seconds_per_step": s.seconds_per_step,
                    "gold_steps": s.gold_steps,
                    "gold_agreement": s.gold_agreement,
                    "kappa_with_gold": s.kappa_with_gold,
                    "mean_pair_kappa": s.mean_pair_kappa,
                }
                for s in self.stats
            ],
        }
