"""Preference pairs at the first error: the prefix, a correct continuation, and the wrong step (DPO).

The correct continuation is, in this order: another trace of the same problem with the same prefix
whose next step is labelled correct, or an alternative completion the labeler rated +1 at that step
(PRM800K keeps them in the step's metadata), or the labeler's own correction (`human_completion`).
A first error with no correct continuation gives no pair. `prompt` is the problem followed by the
prefix steps, one per line, so TRL's DPOTrainer reads `prompt, chosen, rejected` as they are.

>>> from .base import ExportRecord
>>> def rec(i, steps, labels):
...     return ExportRecord(trace_id=i, external_id=str(i), source="jsonl", subset="", generator="",
...         final_answer="", final_answer_correct=None, trace_metadata={}, problem="P",
...         problem_sha256="", reference_answer="", steps=steps, parts=["response"] * len(steps),
...         labels=labels)
>>> out = list(rows([rec(1, ["a", "bad"], [1, -1]), rec(2, ["a", "good"], [1, 1])],
...                 neutral="", options={}))
>>> [(r.data["prompt"], r.data["chosen"], r.data["rejected"]) for r in out]
[('P\\na', 'good', 'bad')]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .base import ExportRecord, ExportRow, first_error, map_label, map_labels

NAME = "pairs"
PARQUET_SCHEMA = {
    "prompt": "string",
    "chosen": "string",
    "rejected": "string",
    "problem": "string",
    "prefix": "list<string>",
    "error_step": "int",
    "source_id": "string",
}
NEEDS_STEP_METADATA = True
# A pair joins steps of different traces: no per-step row to carry who chose each label.
CARRIES_LABEL_SOURCES = False


def needs_neutral_mapping(options: dict[str, Any]) -> bool:
    return True  # is a neutral step a first error? a correct continuation?


def _alternative(metadata: dict[str, Any], neutral: str) -> str | None:
    kept = metadata.get("prm800k") or {}
    for completion in kept.get("completions") or []:
        if map_label(completion.get("rating"), neutral) == 1:
            return completion["text"]
    human = kept.get("human_completion")
    if isinstance(human, dict) and human.get("text") and human.get("rating") != -1:
        return human["text"]
    return None


def rows(
    records: list[ExportRecord], *, neutral: str, options: dict[str, Any]
) -> Iterator[ExportRow]:
    mapped = [map_labels(record.labels, neutral) for record in records]
    # (prefix) -> the first correct next step any trace of this problem has after that prefix.
    correct_next: dict[tuple[str, ...], str] = {}
    for record, labels in zip(records, mapped, strict=True):
        for i, value in enumerate(labels):
            if value is None:
                break
            if value == 1:
                correct_next.setdefault(tuple(record.steps[:i]), record.steps[i])
    seen: set[tuple[str, str, str]] = set()
    for record, labels in zip(records, mapped, strict=True):
        error = first_error(labels)
        if error is None or any(value != 1 for value in labels[:error]):
            continue
        prefix = record.steps[:error]
        chosen = correct_next.get(tuple(prefix))
        if chosen is None and record.step_metadata:
            chosen = _alternative(record.step_metadata[error], neutral)
        rejected = record.steps[error]
        if chosen is None or chosen == rejected:
            continue
        prompt = "\n".join([record.problem, *prefix])
        if (prompt, chosen, rejected) in seen:
            continue
        seen.add((prompt, chosen, rejected))
        yield ExportRow(
            data={
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "problem": record.problem,
                "prefix": prefix,
                "error_step": error,
                "source_id": record.external_id,
            },
            labels=[1, -1],
        )
