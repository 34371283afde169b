"""Selected traces as chat messages, for distillation: by human labels or by a PRM's aggregate score.

`options["select"]`: "labels" keeps traces whose every step is labelled correct; "scorer" keeps the
top `options["top_k"]` traces of each problem by the PRM aggregate the service put on each record.
Thinking steps go inside `<think>...</think>` before the response, as reasoning models write them.

>>> from .base import ExportRecord
>>> r = ExportRecord(trace_id=1, external_id="x", source="jsonl", subset="", generator="",
...     final_answer="", final_answer_correct=None, trace_metadata={}, problem="1+1?",
...     problem_sha256="", reference_answer="", steps=["Hmm.", "1+1=2."],
...     parts=["thinking", "response"], labels=[1, 1])
>>> next(rows([r], neutral="", options={"select": "labels"})).data["messages"][1]["content"]
'<think>\\nHmm.\\n</think>\\n\\n1+1=2.'
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .base import ExportRecord, ExportRow, map_labels

NAME = "sft"
PARQUET_SCHEMA = {"messages": "messages"}
NEEDS_STEP_METADATA = False
CARRIES_LABEL_SOURCES = False  # no labels in the rows
SELECT_CHOICES = ("labels", "scorer")


def needs_neutral_mapping(options: dict[str, Any]) -> bool:
    return options.get("select", "labels") == "labels"


def completion_text(steps: list[str], parts: list[str]) -> str:
    thinking = [s for s, p in zip(steps, parts, strict=True) if p == "thinking"]
    response = "\n\n".join(s for s, p in zip(steps, parts, strict=True) if p != "thinking")
    if not thinking:
        return response
    return "<think>\n" + "\n\n".join(thinking) + "\n</think>\n\n" + response


def rows(
    records: list[ExportRecord], *, neutral: str, options: dict[str, Any]
) -> Iterator[ExportRow]:
    select = options.get("select", "labels")
    top_k = options.get("top_k")
    if select == "scorer":
        scored = [r for r in records if r.aggregate is not None]
        chosen = sorted(scored, key=lambda r: (-(r.aggregate or 0.0), r.trace_id))
    else:
        chosen = [
            r for r in records if r.labels and all(v == 1 for v in map_labels(r.labels, neutral))
        ]
    seen: set[int] = set()  # label policy "all": a trace once, however many annotators agree
    taken = 0
    for record in chosen:
        if record.trace_id in seen or (top_k is not None and taken >= top_k):
            continue
        seen.add(record.trace_id)
        taken += 1
        yield ExportRow(
            data={
                "messages": [
                    {"role": "user", "content": record.problem},
                    {"role": "assistant", "content": completion_text(record.steps, record.parts)},
                ]
            },
            labels=[1] * len(record.steps) if select == "labels" else [],
        )
