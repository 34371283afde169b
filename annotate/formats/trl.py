"""TRL stepwise supervision records (`prompt`, `completions`, `labels`, optional `id`) <-> traces.

The format of TRL's PRMTrainer and the `trl-lib/*` stepwise datasets: one string per step and one
boolean per step, True -> gold +1, False -> gold -1.

>>> t = parse_record({"prompt": "1+1?", "completions": ["1+1=2", "So 3"], "labels": [True, False]})
>>> [s.gold for s in t.steps], len(t.external_id)
([1, -1], 64)
"""

from __future__ import annotations

import json
from typing import Any

from .base import (
    FormatError,
    ParsedProblem,
    ParsedStep,
    ParsedTrace,
    expect_object,
    record_json,
    req_list,
    req_str,
    req_str_list,
    sha256_of,
    type_name,
)

SOURCE = "trl"
FIELDS = ("prompt", "completions", "labels")


def parse_record(record: Any, *, subset: str = "") -> ParsedTrace:
    rec = expect_object(record)
    prompt = req_str(rec, "prompt", nonempty=True)
    completions = req_str_list(rec, "completions", nonempty=True)
    labels = req_list(rec, "labels")
    if len(labels) != len(completions):
        raise FormatError(
            f"expected one label per completion ({len(completions)}), got {len(labels)}",
            field="labels",
        )
    for i, value in enumerate(labels):
        if not isinstance(value, bool):
            raise FormatError(f"expected true or false, got {type_name(value)}", field=f"labels[{i}]")
    record_id = rec.get("id")
    if record_id is None:
        external_id, content_id = sha256_of(prompt, *completions), True
    elif isinstance(record_id, bool) or not isinstance(record_id, str | int):
        raise FormatError(f"expected a string or an integer, got {type_name(record_id)}", field="id")
    else:
        external_id, content_id = str(record_id), False
        if not external_id.strip() or len(external_id) > 200:
            raise FormatError("expected 1 to 200 characters", field="id")
    kept: dict[str, Any] = {}
    extra = {key: value for key, value in rec.items() if key not in FIELDS}
    if extra:
        kept["extra_json"] = record_json(extra)  # `id` included, with its type (int or string)
    if tuple(rec) != FIELDS:
        kept["keys"] = list(rec)
    return ParsedTrace(
        external_id=external_id,
        problem=ParsedProblem(text=prompt),
        steps=[
            ParsedStep(text=text, gold=1 if value else -1)
            for text, value in zip(completions, labels, strict=True)
        ],
        subset=subset,
        metadata={SOURCE: kept} if kept else {},
        content_id=content_id,
    )


def record_from_trace(
    *, problem: str, steps: list[str], golds: list[int | None], metadata: dict[str, Any]
) -> dict[str, Any]:
    """The record for a trace; with the imported gold labels, the imported record as it was."""
    kept = metadata.get(SOURCE, {})
    labels = []
    for i, gold in enumerate(golds):
        if gold not in (1, -1):
            raise ValueError(f"step {i}: TRL labels are true/false, got gold {gold!r}")
        labels.append(gold == 1)
    extra = json.loads(kept.get("extra_json", "{}"))
    values = {"prompt": problem, "completions": steps, "labels": labels, **extra}
    return {key: values[key] for key in kept.get("keys", FIELDS)}
