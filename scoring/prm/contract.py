"""The engine's contract: traces in, one score in [0, 1] per step out (plus details), typed."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable


class ScorerError(Exception):
    """A scorer could not be built or could not score a batch (the message says why)."""


class ModelLoadError(ScorerError):
    """A model or tokenizer could not be loaded from the given path."""


class FormattingError(ScorerError):
    """A trace could not be turned into model inputs (e.g. separator positions != steps)."""


class TraceError(ScorerError):
    """One trace of a batch cannot be scored (too long, unformattable); ``key`` names it.

    Raised before any forward pass, so a caller can drop that trace and score the rest
    (:func:`score_each` does).
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"trace {key!r}: {message}")
        self.key = key


@dataclass(frozen=True)
class TraceInput:
    """One reasoning trace to score.

    ``steps`` are the step texts in order. ``parts`` (same length as ``steps`` when given)
    says which part of a trajectory-response trace each step belongs to, e.g. ``"thinking"``
    or ``"response"``. ``key`` is an opaque id the caller uses to match results (a Trace pk).
    What the annotator sees besides the text comes too: ``images``, the problem's figures as
    addresses (``data:image/...`` URLs or https), and ``table``, the problem's table as
    ``{"header": [str, ...], "rows": [[str, ...], ...]}`` (docs/formats.md, "Tables").
    """

    problem: str
    steps: Sequence[str]
    parts: Sequence[str] | None = None
    reference_answer: str | None = None
    key: str = ""
    images: Sequence[str] = ()
    table: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.parts is not None and len(self.parts) != len(self.steps):
            raise ValueError(
                f"trace {self.key!r}: {len(self.parts)} parts for {len(self.steps)} steps"
            )


@dataclass(frozen=True)
class StepScoreOut:
    """The score of one step: ``score`` in [0, 1] (1 = correct), ``details`` JSON-serialisable.

    Examples of details: ``{"critiques": [...], "p_yes": [...]}`` (generative),
    ``{"checks": [{"expression": ..., "expected": ..., "computed": ..., "ok": ...}]}`` (tool).
    ``details["verdict"] = "unknown"`` says the score is no verdict (the tool backend's neutral
    0.5 where nothing could be checked): the app shows such a step as unknown, neither right nor
    wrong, whatever the scorer's threshold.
    """

    score: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TraceScores:
    """Scores of one trace, ``steps`` in the trace's step order, one per input step.

    ``trajectory_score``: the scorer's score of the whole trace (ReasonFlux-PRM's trajectory
    reward, the tool backend's final-answer check), or None. ``response_score``: of a
    trajectory-response trace (thinking steps and response steps), the score of the final
    response part alone, beside the trajectory score; None for other traces or scorers.
    """

    key: str
    steps: list[StepScoreOut]
    trajectory_score: float | None = None
    response_score: float | None = None

    @property
    def scores(self) -> list[float]:
        return [s.score for s in self.steps]


@runtime_checkable
class Scorer(Protocol):
    """A PRM loaded once (per worker process) that then scores many batches of traces.

    ``score`` returns one TraceScores per input trace, in the input order, each with exactly
    one StepScoreOut per step. It raises ScorerError for a batch it cannot score.
    """

    name: str

    def score(self, traces: Sequence[TraceInput]) -> list[TraceScores]: ...


P = TypeVar("P")


def parse_params(cls: type[P], params: Mapping[str, Any] | None, backend: str) -> P:
    """A backend's typed params from the JSON-ish dict a Scorer row stores; an unknown key is an
    error (a typo must not silently fall back to a default)."""
    params = dict(params or {})
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(params) - names)
    if unknown:
        raise ScorerError(f"{backend}: unknown params {unknown}; known: {sorted(names)}")
    try:
        return cls(**params)
    except TypeError as exc:
        raise ScorerError(f"{backend}: bad params: {exc}") from exc


def score_each(
    scorer: Scorer, traces: Sequence[TraceInput]
) -> tuple[list[TraceScores], dict[str, str]]:
    """Score ``traces``, leaving out each one the scorer refuses alone (a :class:`TraceError`,
    e.g. longer than the model's ``max_length``) with its reason: one over-long trace never
    costs the others their scores. Returns the scores of the rest, in input order, and
    ``{key: reason}`` of the refused. Keys must be unique.

    >>> class Short:
    ...     name = "short"
    ...     def score(self, traces):
    ...         for t in traces:
    ...             if len(t.steps) > 1:
    ...                 raise TraceError(t.key, "too long")
    ...         return [TraceScores(t.key, [StepScoreOut(1.0)]) for t in traces]
    >>> done, refused = score_each(Short(), [TraceInput("q", ["a"], key="1"),
    ...                                      TraceInput("q", ["a", "b"], key="2")])
    >>> [d.key for d in done], refused
    (['1'], {'2': "trace '2': too long"})
    """
    remaining = list(traces)
    refused: dict[str, str] = {}
    while remaining:
        try:
            return scorer.score(remaining), refused
        except TraceError as exc:
            index = next((i for i, t in enumerate(remaining) if t.key == exc.key), None)
            if index is None:
                raise
            refused[exc.key] = str(exc)
            del remaining[index]
    return [], refused
