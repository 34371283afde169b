"""How far annotators agree: Cohen's kappa per pair, Fleiss' kappa, Krippendorff's alpha (ordinal for
+1/0/-1), first-wrong-step agreement, and per-annotator statistics.

The coefficients are pure functions over plain values (numpy only, tested on published worked
examples); `review.selectors.project_agreement` gathers a project's submitted labels and computes
them all, and `selectors.agreement_for_user` checks that the reader is a reviewer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import krippendorff
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
    Computed by the `krippendorff` package (its ordinal metric uses the coincidence marginals,
    as Krippendorff defines it); this wrapper keeps steplens' conventions: None when no unit is
    pairable or alpha is undefined.

    Krippendorff's own worked example (4 coders, 12 units, values 1..5, missing data):
    >>> data = [[1, 1, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2], [1, 2, 3, 4],
    ...         [4, 4, 4, 4], [1, 1, 2, 1], [2, 2, 2, 2], [5, 5, 5], [1, 1], [3]]
    >>> [round(krippendorff_alpha(data, level=lv), 3) for lv in ("nominal", "ordinal", "interval")]
    [0.743, 0.815, 0.849]
    """
    pairable = [list(u) for u in units if len(u) >= 2]
    if not pairable:
        return None
    if level not in ("nominal", "ordinal", "interval"):
        raise ValueError(f"unknown level {level!r}")
    domain = sorted(set(categories or ()) | {v for u in pairable for v in u})
    if len(domain) < 2:
        return 1.0  # one value only, given by everyone: perfect agreement (D_o = D_e = 0)
    # The `krippendorff` package wants raters x units with NaN for missing; alpha depends only on
    # the values each unit received, so a unit's values fill the first rows of its column.
    data = np.full((max(len(u) for u in pairable), len(pairable)), np.nan)
    for column, unit in enumerate(pairable):
        data[: len(unit), column] = unit
    try:
        alpha = krippendorff.alpha(
            reliability_data=data,
            level_of_measurement=cast(Literal["nominal", "ordinal", "interval"], level),
            value_domain=domain,
        )
    except ValueError:  # raised where D_e = 0 with disagreement present: undefined
        return None
    return None if math.isnan(alpha) else float(alpha)


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
    steps_filled: int = 0  # of steps_labelled: filled in by first-error / all-correct, not judged
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
    # The same coefficients over judged labels only (set by hand, or the step marked first wrong):
    # a +1 that first-error / all-correct filled in is nobody's judgement of that step.
    judged: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "annotators": self.annotators,
            "traces_multi": self.traces_multi,
            "steps_multi": self.steps_multi,
            "fleiss_kappa": self.fleiss_kappa,
            "krippendorff_alpha": self.krippendorff_alpha,
            "first_error": self.first_error,
            "judged": self.judged,
            "pairs": [vars(p) for p in self.pairs],
            "annotators_stats": [
                {
                    "user_id": s.user_id,
                    "username": s.username,
                    "traces_submitted": s.traces_submitted,
                    "steps_labelled": s.steps_labelled,
                    "steps_filled": s.steps_filled,
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
