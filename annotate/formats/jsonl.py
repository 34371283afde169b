"""steplens' own generic JSON Lines format (documented in docs/formats.md) -> traces.

One object per line; only `problem` and the steps are required:

>>> t = parse_record({"problem": "1+1?", "thinking": ["Hmm, 1+1.", "That is 2."],
...                   "response": ["1+1=2."], "labels": [1, None, 1]})
>>> [(s.part, s.gold) for s in t.steps]
[('thinking', 1), ('thinking', None), ('response', 1)]
"""

from __future__ import annotations

from typing import Any

from ..tables import TableError, table_from
from .base import (
    PARTS,
    RESPONSE,
    THINKING,
    FormatError,
    ParsedProblem,
    ParsedStep,
    ParsedTrace,
    check_label,
    check_str_list,
    expect_object,
    opt_bool,
    opt_list,
    opt_str,
    req_str,
    sha256_of,
    type_name,
)

SOURCE = "jsonl"
FIELDS = (
    "id",
    "problem",
    "steps",
    "thinking",
    "response",
    "labels",
    "reference_answer",
    "reference_solution",
    "final_answer",
    "final_answer_correct",
    "generator",
    "subset",
    "images",
    "table",
    "metadata",
)


def _steps(rec: dict[str, Any]) -> list[ParsedStep]:
    steps: list[ParsedStep] = []
    if "thinking" in rec:
        thinking = check_str_list(rec["thinking"], field="thinking")
        steps.extend(ParsedStep(text=text, part=THINKING) for text in thinking)
    if "steps" in rec and "response" in rec:
        raise FormatError("give either 'steps' or 'response', not both", field="response")
    if "response" in rec:
        response = check_str_list(rec["response"], field="response")
        steps.extend(ParsedStep(text=text, part=RESPONSE) for text in response)
    elif "steps" in rec:
        items = rec["steps"]
        if not isinstance(items, list):
            raise FormatError(
                f'expected a list of strings or of {{"text", "part"}} objects, '
                f"got {type_name(items)}",
                field="steps",
            )
        for i, item in enumerate(items):
            if isinstance(item, str):
                steps.append(ParsedStep(text=item))
                continue
            if not isinstance(item, dict):
                raise FormatError(
                    f'expected a string or a {{"text", "part"}} object, got {type_name(item)}',
                    field=f"steps[{i}]",
                )
            unknown = sorted(set(item) - {"text", "part"})
            if unknown:
                raise FormatError(
                    f"unknown field '{unknown[0]}' (a step has 'text' and 'part')",
                    field=f"steps[{i}]",
                )
            text = req_str(item, "text", prefix=f"steps[{i}].")
            part = item.get("part", RESPONSE)
            if part not in PARTS:
                raise FormatError(
                    f"expected 'thinking' or 'response', got {part!r}", field=f"steps[{i}].part"
                )
            steps.append(ParsedStep(text=text, part=part))
    elif "thinking" not in rec:
        raise FormatError("missing field (or 'thinking' / 'response')", field="steps")
    if not steps:
        raise FormatError("no steps: a trace needs at least one step", field="steps")
    return steps


def parse_record(record: Any, *, subset: str = "") -> ParsedTrace:
    rec = expect_object(record)
    unknown = [key for key in rec if key not in FIELDS]
    if unknown:
        raise FormatError(
            f"unknown field (known: {', '.join(FIELDS)}; put anything else in 'metadata')",
            field=unknown[0],
        )
    problem = req_str(rec, "problem", nonempty=True)
    steps = _steps(rec)
    labels = opt_list(rec, "labels")
    if labels is not None:
        if len(labels) != len(steps):
            raise FormatError(
                f"expected one label per step ({len(steps)}), got {len(labels)}", field="labels"
            )
        for i, (step, value) in enumerate(zip(steps, labels, strict=True)):
            step.gold = check_label(value, field=f"labels[{i}]")
    images = opt_list(rec, "images") or []
    check_str_list(images, field="images")
    try:
        table_from(rec.get("table"))
    except TableError as err:
        field = f"table.{err.field}" if err.field else "table"
        raise FormatError(err.message, field=field) from None
    metadata = rec.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise FormatError(f"expected an object, got {type_name(metadata)}", field="metadata")
    record_id = rec.get("id")
    if record_id is None:
        external_id = sha256_of(problem, *(f"{s.part}\x00{s.text}" for s in steps))
        content_id = True
    elif isinstance(record_id, bool) or not isinstance(record_id, str | int):
        raise FormatError(
            f"expected a string or an integer, got {type_name(record_id)}", field="id"
        )
    else:
        external_id, content_id = str(record_id), False
        if not external_id.strip() or len(external_id) > 200:
            raise FormatError("expected 1 to 200 characters", field="id")
    return ParsedTrace(
        external_id=external_id,
        problem=ParsedProblem(
            text=problem,
            reference_answer=opt_str(rec, "reference_answer") or "",
            reference_solution=opt_str(rec, "reference_solution") or "",
            images=images,
            table=rec.get("table"),
        ),
        steps=steps,
        generator=opt_str(rec, "generator", max_length=200) or "",
        final_answer=opt_str(rec, "final_answer") or "",
        final_answer_correct=opt_bool(rec, "final_answer_correct"),
        subset=subset or opt_str(rec, "subset", max_length=100) or "",
        metadata=metadata,
        content_id=content_id,
    )
