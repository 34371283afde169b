"""TRL stepwise supervision rows: `prompt`, `completions` (the labelled steps), `labels` (booleans).

>>> from .base import ExportRecord
>>> r = ExportRecord(trace_id=1, external_id="x", source="processbench", subset="", generator="",
...     final_answer="", final_answer_correct=None, trace_metadata={}, problem="1+1?",
...     problem_sha256="", reference_answer="", steps=["a", "b", "c"], parts=["response"] * 3,
...     labels=[1, -1, None])
>>> [row.data for row in rows([r], neutral="", options={})]
[{'prompt': '1+1?', 'completions': ['a', 'b'], 'labels': [True, False]}]

An annotator's row (label policy "all") also says who chose each label, in `label_sources`:

>>> r.label_sources = ["hand", "first_error", ""]
>>> next(rows([r], neutral="", options={})).data["label_sources"]
['hand', 'first_error']
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .base import ExportRecord, ExportRow, label_sources, labelled_prefix, map_labels

NAME = "trl"
# Column types of the Parquet file (see annotate.exports for the mapping to Arrow types).
PARQUET_SCHEMA = {"prompt": "string", "completions": "list<string>", "labels": "list<bool>"}
NEEDS_STEP_METADATA = False
CARRIES_LABEL_SOURCES = True  # `label_sources` beside `labels` (label policy "all")


def needs_neutral_mapping(options: dict[str, Any]) -> bool:
    return True  # a boolean label has no room for "neutral"


def rows(
    records: list[ExportRecord], *, neutral: str, options: dict[str, Any]
) -> Iterator[ExportRow]:
    for record in records:
        labels = map_labels(record.labels, neutral)
        n = labelled_prefix(labels)
        if n == 0:
            continue
        kept = labels[:n]
        if 0 in kept:  # the service refuses such an export before it starts; never guess here
            raise ValueError(f"trace {record.external_id}: neutral label without a mapping")
        yield ExportRow(
            data={
                "prompt": record.problem,
                "completions": record.steps[:n],
                "labels": [value == 1 for value in kept],
                **label_sources(record, n),
            },
            labels=[1 if value == 1 else -1 for value in kept],
        )
