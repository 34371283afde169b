"""What every exporter shares: the record an exporter reads (one trace under one label source) and label helpers.

Pure Python (no Django): the export service (annotate.exports) builds these records from the
database; each exporter module turns the records of one problem into rows of its format.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

# How a neutral (0) label maps; "" (unset) keeps it as 0, which only formats that carry 0 accept.
NEUTRAL_CHOICES = ("", "positive", "negative", "drop")

# The extra per-step field of the formats that carry who chose each label (label policy "all"):
# a list beside the steps, which the format's consumers ignore (TRL's PRMTrainer drops every
# column but its own), and its Parquet type.
LABEL_SOURCES = "label_sources"
LABEL_SOURCES_PARQUET = {LABEL_SOURCES: "list<string>"}

# What a problem shows besides its text, carried by every row of an export whose problems have
# any (snapshots.services adds them to the exporters' rows; docs/exports.md, "Images and tables"):
# `images`, paths of image files inside the snapshot folder (or an https URL the project loads),
# and `table`, the problem's table as {header, rows} of strings (annotate.tables), or null.
IMAGES = "images"
TABLE = "table"
IMAGES_PARQUET = {IMAGES: "list<string>"}
TABLE_PARQUET = {TABLE: "table"}


@dataclass(slots=True)
class ExportRecord:
    """One trace with one set of step labels (gold, the majority, or one annotator's)."""

    trace_id: int
    external_id: str
    source: str
    subset: str
    generator: str
    final_answer: str
    final_answer_correct: bool | None
    trace_metadata: dict[str, Any]
    problem: str
    problem_sha256: str
    reference_answer: str
    steps: list[str]
    parts: list[str]
    # -1 / 0 / +1 per step as the label policy gives it (before the neutral mapping); None: unlabelled.
    labels: list[int | None]
    flagged: list[bool] = field(default_factory=list)
    # Label policy "all": who chose each step's value: "hand", "first_error" (the step marked as
    # the first wrong one), "filled" (filled in by first-error / all-correct); "" unlabelled.
    label_sources: list[str] = field(default_factory=list)
    step_metadata: list[dict[str, Any]] = field(default_factory=list)  # only for formats that ask
    # "gold", "majority", or the pseudonym of the annotator (label policy "all").
    annotator: str = "gold"
    # Label policy "all": the annotation (finish_reason, submitted_at, active_seconds, imported,
    # metadata with the raw imported record where there was one).
    annotation: dict[str, Any] | None = None
    # A PRM's aggregate score of the trace (PRM-selected `sft` exports), None when not scored.
    aggregate: float | None = None
    # The problem's image addresses and table as stored (Problem.images, Problem.table).
    problem_images: list[str] = field(default_factory=list)
    problem_table: Any = None


@dataclass(slots=True)
class ExportRow:
    """One row of an export and the labels it carries (for the dataset card's label balance)."""

    data: dict[str, Any]
    labels: list[int] = field(default_factory=list)


class Exporter(Protocol):
    def rows(
        self, records: list[ExportRecord], *, neutral: str, options: dict[str, Any]
    ) -> Iterator[ExportRow]: ...


def map_label(value: int | None, neutral: str) -> int | None:
    """A label after the neutral mapping.

    >>> [map_label(0, n) for n in ("", "positive", "negative", "drop")]
    [0, 1, -1, None]
    >>> map_label(-1, "positive"), map_label(None, "negative")
    (-1, None)
    """
    if value != 0:
        return value
    return {"": 0, "positive": 1, "negative": -1, "drop": None}[neutral]


def map_labels(values: list[int | None], neutral: str) -> list[int | None]:
    return [map_label(value, neutral) for value in values]


def labelled_prefix(values: list[int | None]) -> int:
    """How many steps from the start carry a label: an export stops at the first unlabelled step.

    Formats such as TRL's need a label on every step they hold, and a step after a gap would lose
    the context of the unlabelled one, so the prefix ends at the first gap (for ProcessBench gold,
    at the step after the earliest wrong one).

    >>> labelled_prefix([1, 1, -1, None, None]), labelled_prefix([None, 1]), labelled_prefix([1, 0])
    (3, 0, 2)
    """
    for i, value in enumerate(values):
        if value is None:
            return i
    return len(values)


def label_sources(record: ExportRecord, n: int) -> dict[str, list[str | None]]:
    """`{"label_sources": [...]}` for a row holding the record's first n steps; {} without sources.

    One entry per step: "hand", "first_error", "filled", or None for a step without a label.
    Only annotators' records (label policy "all") have sources; gold and majority rows get none.

    >>> r = ExportRecord(trace_id=1, external_id="x", source="", subset="", generator="",
    ...     final_answer="", final_answer_correct=None, trace_metadata={}, problem="p",
    ...     problem_sha256="", reference_answer="", steps=["a", "b", "c"], parts=["response"] * 3,
    ...     labels=[1, -1, None], label_sources=["filled", "first_error", ""])
    >>> label_sources(r, 2), label_sources(r, 3)
    ({'label_sources': ['filled', 'first_error']}, {'label_sources': ['filled', 'first_error', None]})
    """
    if not record.label_sources:
        return {}
    return {LABEL_SOURCES: [source or None for source in record.label_sources[:n]]}


def first_error(values: list[int | None]) -> int | None:
    """Index of the earliest wrong step when every step before it is labelled; None otherwise.

    >>> first_error([1, 1, -1, None]), first_error([1, None, -1]), first_error([1, 1])
    (2, None, None)
    """
    for i, value in enumerate(values):
        if value is None:
            return None
        if value == -1:
            return i
    return None
