"""Math-Shepherd rows: `input` (the problem, then each step followed by the tag `ки`), `label` (`+`/`-` there).

Steps from other sources are numbered "Step k:" as Math-Shepherd's are, so the rows read back.

>>> from .base import ExportRecord
>>> r = ExportRecord(trace_id=1, external_id="x", source="jsonl", subset="", generator="",
...     final_answer="", final_answer_correct=None, trace_metadata={}, problem="1+1?",
...     problem_sha256="", reference_answer="", steps=["1+1=2", "So 3"], parts=["response"] * 2,
...     labels=[1, -1])
>>> next(rows([r], neutral="", options={})).data
{'input': '1+1? Step 1: 1+1=2 ки\\nStep 2: So 3 ки', 'label': '1+1? Step 1: 1+1=2 +\\nStep 2: So 3 -'}
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .. import math_shepherd as source_format
from .base import ExportRecord, ExportRow, label_sources, labelled_prefix, map_labels

NAME = "math_shepherd"
PARQUET_SCHEMA = None
NEEDS_STEP_METADATA = False
CARRIES_LABEL_SOURCES = True  # `label_sources`, one per tagged step (label policy "all")


def needs_neutral_mapping(options: dict[str, Any]) -> bool:
    return True  # only "+" and "-"


def rows(
    records: list[ExportRecord], *, neutral: str, options: dict[str, Any]
) -> Iterator[ExportRow]:
    for record in records:
        labels = map_labels(record.labels, neutral)
        n = labelled_prefix(labels)
        if n == 0:
            continue
        golds = labels[:n]
        if 0 in golds:
            raise ValueError(f"trace {record.external_id}: neutral label without a mapping")
        kept = dict(record.trace_metadata.get(source_format.SOURCE, {}))
        steps = record.steps[:n]
        if record.source != source_format.SOURCE:
            kept = {}  # the layout numbers the steps (source_format.numbered_step)
        elif n < len(record.steps):
            kept.pop(
                "input", None
            )  # the raw text has a tag for every step; only a prefix is labelled
        data = source_format.record_from_trace(
            problem=record.problem, steps=steps, golds=golds, metadata={source_format.SOURCE: kept}
        )
        data.update(label_sources(record, n))
        yield ExportRow(data=data, labels=[int(value) for value in golds if value is not None])
