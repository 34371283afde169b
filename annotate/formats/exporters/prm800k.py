"""PRM800K rows: the raw labelling schema (-1 / 0 / +1), one row per labeler's pass.

An annotation imported from PRM800K whose labels are still the ones its record gives is written back
as the raw record, exactly (and so are further sessions of the same labeler kept beside it); with a
neutral mapping, a raw record holding a 0 rating has its 0 ratings mapped (alternatives included) and
nothing else changed, and one without any is written back exactly. Other
passes (made in steplens, or gold/majority labels) are written in the same schema as a phase-2
record: the trace's steps are `pre_generated_steps`, and each labelled step of the labelled prefix
is one entry of `label.steps` with the step itself as its only completion.

>>> from .base import ExportRecord
>>> r = ExportRecord(trace_id=1, external_id="x", source="jsonl", subset="", generator="",
...     final_answer="2", final_answer_correct=None, trace_metadata={}, problem="1+1?",
...     problem_sha256="", reference_answer="2", steps=["1+1=2", "# Answer 2"],
...     parts=["response"] * 2, labels=[0, -1])
>>> row = next(rows([r], neutral="", options={})).data
>>> [s["completions"][0]["rating"] for s in row["label"]["steps"]], row["label"]["finish_reason"]
([0, -1], 'found_error')
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .. import prm800k as source_format
from .base import ExportRecord, ExportRow, labelled_prefix, map_label, map_labels

NAME = "prm800k"
PARQUET_SCHEMA = None
NEEDS_STEP_METADATA = False
# `source` in each step's completion (annotators' passes made in steplens)
CARRIES_LABEL_SOURCES = True


def needs_neutral_mapping(options: dict[str, Any]) -> bool:
    return False  # PRM800K's own scale has 0


def _raw_records(record: ExportRecord, neutral: str) -> list[dict[str, Any]] | None:
    """The imported raw records of this pass, if its labels are still theirs (and unmapped)."""
    annotation = record.annotation
    if not annotation or not annotation.get("imported"):
        return None
    metadata = annotation.get("metadata") or {}
    if source_format.SOURCE not in metadata:
        return None
    if metadata[source_format.SOURCE].get("form") == source_format.STEPWISE_CRITIQUE:
        return None  # rows of another form: written in the PRM800K schema from the labels
    raw = source_format.records_from_annotation(metadata)
    parsed = source_format.parse_record(raw[0])
    if [s.text for s in parsed.steps] != record.steps:
        return None
    values: list[int | None] = [None] * len(record.steps)
    flags = [False] * len(record.steps)
    for label in parsed.annotations[0].labels:
        values[label.step_index] = label.value
        flags[label.step_index] = label.flagged
    if values != record.labels or (record.flagged and flags != record.flagged):
        return None  # relabelled in steplens since the import
    return raw


def _map_neutral(raw: dict[str, Any], neutral: str) -> dict[str, Any]:
    """The raw record with each 0 rating (of every completion and human completion) mapped as
    `neutral` says (`drop`: null, PRM800K's "not rated"); the record itself when it has none.

    >>> raw = {"label": {"steps": [{"completions": [{"text": "a", "rating": 0}],
    ...     "human_completion": None}, {"completions": None, "human_completion": None}]}}
    >>> _map_neutral(raw, "negative")["label"]["steps"][0]["completions"][0]["rating"]
    -1
    >>> _map_neutral(raw, "") is raw, raw["label"]["steps"][0]["completions"][0]["rating"]
    (True, 0)
    """

    def rated(step: dict[str, Any]) -> list[dict[str, Any]]:
        human = step.get("human_completion")
        return [*(step.get("completions") or []), *([human] if isinstance(human, dict) else [])]

    steps = raw["label"]["steps"]
    if not neutral or not any(c.get("rating") == 0 for s in steps for c in rated(s)):
        return raw
    mapped = json.loads(json.dumps(raw))  # a deep copy, key order kept
    for step in mapped["label"]["steps"]:
        for completion in rated(step):
            if completion.get("rating") == 0:
                completion["rating"] = map_label(0, neutral)
    return mapped


def _ratings(raw: dict[str, Any]) -> list[int]:
    parsed = source_format.parse_record(raw)
    return [label.value for label in parsed.annotations[0].labels if label.value is not None]


def _finish_reason(labels: list[int | None], n: int, given: str) -> str:
    if given:
        return given
    if -1 in labels[:n]:
        return "found_error"
    return "solution" if n == len(labels) else "give_up"


def rows(
    records: list[ExportRecord], *, neutral: str, options: dict[str, Any]
) -> Iterator[ExportRow]:
    for record in records:
        raw = _raw_records(record, neutral)
        if raw is not None:
            for data in raw:
                data = _map_neutral(data, neutral)
                yield ExportRow(data=data, labels=_ratings(data))
            continue
        labels = map_labels(record.labels, neutral)
        n = labelled_prefix(labels)
        if n == 0:
            continue
        annotation = record.annotation or {}
        flagged = record.flagged or [False] * len(record.steps)
        sources = record.label_sources or [""] * len(record.steps)
        submitted_at = annotation.get("submitted_at")
        data = {
            "labeler": record.annotator,
            "timestamp": submitted_at,
            "generation": None,
            "is_quality_control_question": False,
            "is_initial_screening_question": False,
            "question": {
                "problem": record.problem,
                "ground_truth_answer": record.reference_answer,
                "pre_generated_steps": record.steps,
                "pre_generated_answer": record.final_answer,
                "pre_generated_verifier_score": None,
            },
            "label": {
                "steps": [
                    {
                        "completions": [
                            {
                                "text": text,
                                "rating": value,
                                "flagged": flag,
                                # steplens' addition: who chose the rating (a propagated +1 is
                                # not a judged one); only on annotators' passes.
                                **({"source": sources[i]} if sources[i] else {}),
                            }
                        ],
                        "human_completion": None,
                        "chosen_completion": 0,
                    }
                    for i, (text, value, flag) in enumerate(
                        zip(record.steps[:n], labels[:n], flagged[:n], strict=True)
                    )
                ],
                # null when withheld (a snapshot publishes annotators' times only if asked)
                "total_time": None
                if annotation.get("active_seconds") is None
                else round(float(annotation["active_seconds"]) * 1000),
                "finish_reason": _finish_reason(labels, n, annotation.get("finish_reason") or ""),
            },
        }
        yield ExportRow(data=data, labels=[value for value in labels[:n] if value is not None])
