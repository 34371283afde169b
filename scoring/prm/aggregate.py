"""Aggregating a trace's step scores (Best-of-N) and grouping steps into "thoughts".

Pure Python, no torch: the web side can import it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

AGGREGATIONS = ("min", "last", "product", "mean")
# What a Best-of-N ranking can order traces by: an aggregate of the step scores, the run's
# trajectory score (ReasonFlux-PRM's trajectory-level reward, the tool backend's answer check),
# or its response-level score (a trajectory-response trace's response part alone).
TRAJECTORY = "trajectory"
RESPONSE = "response"
RANKINGS = (*AGGREGATIONS, TRAJECTORY, RESPONSE)


def aggregate(scores: Sequence[float], how: str) -> float | None:
    """One number per trace from its step scores; None for a trace without steps.

    ``min``: the weakest step (the usual PRM Best-of-N rule); ``last``: the final step;
    ``product``: every step right (computed in log space so long traces do not underflow
    to exactly 0 before they should); ``mean``: average step.

    >>> [aggregate([0.9, 0.5, 0.8], h) for h in AGGREGATIONS]
    [0.5, 0.8, 0.36, 0.7333333333333334]
    >>> aggregate([], "min") is None
    True
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {how!r}; use one of {AGGREGATIONS}")
    if not scores:
        return None
    if how == "min":
        return min(scores)
    if how == "last":
        return scores[-1]
    if how == "mean":
        return sum(scores) / len(scores)
    if any(s <= 0.0 for s in scores):
        return 0.0
    return round(math.exp(sum(math.log(s) for s in scores)), 12)


def aggregate_all(scores: Sequence[float]) -> dict[str, float | None]:
    """All aggregations at once (what a problem's Best-of-N ranking shows).

    >>> aggregate_all([1.0, 0.5])
    {'min': 0.5, 'last': 0.5, 'product': 0.5, 'mean': 0.75}
    """
    return {how: aggregate(scores, how) for how in AGGREGATIONS}


@dataclass(frozen=True)
class Thought:
    """Contiguous steps ``start..end`` (inclusive, 0-based) with the same verdict."""

    start: int
    end: int
    verdict: str  # "good" | "bad" | "unsure" | "unknown" (the scorer checked nothing there)
    mean_score: float
    part: str | None = None

    @property
    def size(self) -> int:
        return self.end - self.start + 1


def score_is_unknown(details: Mapping[str, Any] | None) -> bool:
    """A step score that is no verdict: its scorer checked nothing there (contract.StepScoreOut).

    >>> score_is_unknown({"checks": [], "verdict": "unknown"}), score_is_unknown({"checks": []})
    (True, False)
    """
    return details is not None and details.get("verdict") == "unknown"


def verdict(score: float, *, threshold: float = 0.5, unsure: float = 0.0) -> str:
    """``good`` above threshold + unsure, ``bad`` at or below threshold - unsure, else ``unsure``
    (the audit's rule, `metrics.predicted_correct`: a score equal to the threshold is wrong).

    >>> verdict(0.7), verdict(0.2), verdict(0.52, unsure=0.05), verdict(0.5)
    ('good', 'bad', 'unsure', 'bad')
    """
    if score > threshold + unsure:
        return "good"
    if score <= threshold - unsure:
        return "bad"
    return "unsure"


def group_thoughts(
    scores: Sequence[float],
    *,
    threshold: float = 0.5,
    unsure: float = 0.0,
    parts: Sequence[str] | None = None,
    unknown: Sequence[bool] | None = None,
) -> list[Thought]:
    """Group contiguous steps with the same verdict (and the same part, for trajectory-response
    traces) into thoughts. A step marked in `unknown` (its scorer checked nothing there) has the
    verdict ``unknown``, whatever its score.

    >>> [(t.start, t.end, t.verdict) for t in group_thoughts([0.9, 0.8, 0.1, 0.2, 0.7])]
    [(0, 1, 'good'), (2, 3, 'bad'), (4, 4, 'good')]
    >>> [(t.start, t.end, t.part) for t in group_thoughts([0.9, 0.9], parts=["thinking", "response"])]
    [(0, 0, 'thinking'), (1, 1, 'response')]
    >>> [(t.start, t.end, t.verdict) for t in group_thoughts([0.9, 0.5], threshold=0.3, unknown=[False, True])]
    [(0, 0, 'good'), (1, 1, 'unknown')]
    """
    if parts is not None and len(parts) != len(scores):
        raise ValueError("parts and scores differ in length")
    if unknown is not None and len(unknown) != len(scores):
        raise ValueError("unknown and scores differ in length")

    def verdict_of(i: int) -> str:
        if unknown is not None and unknown[i]:
            return "unknown"
        return verdict(scores[i], threshold=threshold, unsure=unsure)

    thoughts: list[Thought] = []
    start = 0
    for i in range(1, len(scores) + 1):
        boundary = i == len(scores)
        if not boundary:
            same_verdict = verdict_of(i) == verdict_of(start)
            same_part = parts is None or parts[i] == parts[start]
            boundary = not (same_verdict and same_part)
        if boundary:
            chunk = scores[start:i]
            thoughts.append(
                Thought(
                    start=start,
                    end=i - 1,
                    verdict=verdict_of(start),
                    mean_score=sum(chunk) / len(chunk),
                    part=parts[start] if parts is not None else None,
                )
            )
            start = i
    return thoughts
