"""ProcessBench records (`id, generator, problem, steps, final_answer_correct, label`) <-> traces.

`label` is the 0-based index of the earliest wrong step, or -1 when every step is correct. As gold
labels: the steps before it +1, the step at it -1, later steps unlabelled (nobody judged them).

>>> trace = parse_record({"id": "gsm8k-12", "generator": "g", "problem": "p", "steps": ["a", "b", "c"],
...                       "final_answer_correct": False, "label": 1})
>>> trace.subset, [step.gold for step in trace.steps]
('gsm8k', [1, -1, None])
"""

from __future__ import annotations

import json
import re
from typing import Any

from .base import (
    FormatError,
    ParsedProblem,
    ParsedStep,
    ParsedTrace,
    expect_object,
    record_json,
    req_bool,
    req_int,
    req_str,
    req_str_list,
)

SOURCE = "processbench"
FIELDS = ("id", "generator", "problem", "steps", "final_answer_correct", "label")
_SUBSET_FROM_ID = re.compile(r"^(.+)-\d+$")


def subset_from_id(record_id: str) -> str:
    """ProcessBench ids are `<subset>-<n>` ("gsm8k-12", "olympiadbench-7")."""
    match = _SUBSET_FROM_ID.match(record_id)
    return match.group(1) if match and len(match.group(1)) <= 100 else ""


def gold_from_label(label: int, step_count: int) -> list[int | None]:
    if label == -1:
        return [1] * step_count
    return [1] * label + [-1] + [None] * (step_count - label - 1)


def parse_record(record: Any, *, subset: str = "") -> ParsedTrace:
    rec = expect_object(record)
    record_id = req_str(rec, "id", nonempty=True, max_length=200)
    generator = req_str(rec, "generator", max_length=200)
    problem = req_str(rec, "problem", nonempty=True)
    steps = req_str_list(rec, "steps", nonempty=True)
    final_answer_correct = req_bool(rec, "final_answer_correct")
    label = req_int(rec, "label")
    if not -1 <= label < len(steps):
        raise FormatError(
            f"label {label} out of range: -1 (no wrong step) or 0..{len(steps) - 1} "
            f"(index of the first wrong step of {len(steps)})",
            field="label",
        )
    # Everything the columns do not hold, so record_from_trace() can write the record back as it was.
    kept: dict[str, Any] = {"label": label}
    extra = {key: value for key, value in rec.items() if key not in FIELDS}
    if extra:
        kept["extra_json"] = record_json(extra)
    if tuple(rec) != FIELDS:
        kept["keys"] = list(rec)
    golds = gold_from_label(label, len(steps))
    return ParsedTrace(
        external_id=record_id,
        problem=ParsedProblem(text=problem),
        steps=[ParsedStep(text=text, gold=gold) for text, gold in zip(steps, golds, strict=True)],
        generator=generator,
        final_answer_correct=final_answer_correct,
        subset=subset or subset_from_id(record_id),
        metadata={SOURCE: kept},
    )


def record_from_trace(
    *,
    external_id: str,
    generator: str,
    problem: str,
    steps: list[str],
    final_answer_correct: bool | None,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """The record a trace was imported from, field for field and in the same key order.

    >>> rec = {"id": "math-1", "generator": "g", "problem": "p", "steps": ["a"],
    ...        "final_answer_correct": True, "label": -1}
    >>> t = parse_record(rec)
    >>> record_from_trace(external_id=t.external_id, generator=t.generator, problem=t.problem.text,
    ...     steps=[s.text for s in t.steps], final_answer_correct=t.final_answer_correct,
    ...     metadata=t.metadata) == rec
    True
    """
    kept = metadata[SOURCE]
    values: dict[str, Any] = {
        "id": external_id,
        "generator": generator,
        "problem": problem,
        "steps": steps,
        "final_answer_correct": final_answer_correct,
        "label": kept["label"],
        **json.loads(kept.get("extra_json", "{}")),
    }
    return {key: values[key] for key in kept.get("keys", FIELDS)}
