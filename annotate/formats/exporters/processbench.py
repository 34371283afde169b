"""ProcessBench rows: `id, generator, problem, steps, final_answer_correct, label` (earliest wrong step, -1).

A trace imported from ProcessBench whose labels still say what they said comes back as the record it
was, key for key; its `label` is always recomputed from the labels, so an adjudication shows.

>>> from .base import ExportRecord
>>> r = ExportRecord(trace_id=1, external_id="math-3", source="jsonl", subset="", generator="g",
...     final_answer="", final_answer_correct=False, trace_metadata={}, problem="p",
...     problem_sha256="", reference_answer="", steps=["a", "b", "c"], parts=["response"] * 3,
...     labels=[1, -1, None])
>>> next(rows([r], neutral="", options={})).data["label"]
1
>>> r.label_sources = ["filled", "first_error", ""]
>>> next(rows([r], neutral="", options={})).data["label_sources"]
['filled', 'first_error', None]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .. import processbench as source_format
from .base import ExportRecord, ExportRow, first_error, label_sources, map_labels

NAME = "processbench"
PARQUET_SCHEMA = None
NEEDS_STEP_METADATA = False
# `label_sources` beside `steps`, one per step, None where unlabelled (label policy "all").
CARRIES_LABEL_SOURCES = True


def needs_neutral_mapping(options: dict[str, Any]) -> bool:
    return True  # is a neutral step the earliest error or not? only the user can say


def label_of(labels: list[int | None]) -> int | None:
    """The ProcessBench label, or None when the labels cannot say (a gap before any error).

    >>> label_of([1, 1, 1]), label_of([1, -1, None]), label_of([1, None, None])
    (-1, 1, None)
    """
    error = first_error(labels)
    if error is not None:
        return error
    # -1 claims every step is correct: only when every step is labelled.
    return -1 if labels and all(value == 1 for value in labels) else None


def rows(
    records: list[ExportRecord], *, neutral: str, options: dict[str, Any]
) -> Iterator[ExportRow]:
    for record in records:
        labels = map_labels(record.labels, neutral)
        label = label_of(labels)
        if label is None:
            continue
        record_id = record.external_id
        if record.annotator not in ("gold", "majority"):
            record_id = f"{record_id}@{record.annotator}"  # one row per annotator: ids stay unique
        if record.source == source_format.SOURCE and source_format.SOURCE in record.trace_metadata:
            data = source_format.record_from_trace(
                external_id=record_id,
                generator=record.generator,
                problem=record.problem,
                steps=record.steps,
                final_answer_correct=record.final_answer_correct,
                metadata=record.trace_metadata,
            )
            data["label"] = label  # same key, same place
        else:
            data = {
                "id": record_id,
                "generator": record.generator,
                "problem": record.problem,
                "steps": record.steps,
                "final_answer_correct": record.final_answer_correct,
                "label": label,
            }
        data.update(label_sources(record, len(record.steps)))
        judged = labels if label == -1 else labels[: label + 1]
        yield ExportRow(data=data, labels=[value for value in judged if value is not None])
