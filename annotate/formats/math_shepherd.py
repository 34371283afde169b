"""Math-Shepherd records (`input` with a `ки` tag after each step, `label` with `+`/`-` there) <-> traces.

`label` is `input` with every tag replaced by one character, so the two differ in length by one
character per step; the labels are read by walking both strings in step, never by position alone.

>>> t = parse_record({"input": "What is 1+1? Step 1: 1+1=2 ки\\nStep 2: The answer is: 2 ки",
...                   "label": "What is 1+1? Step 1: 1+1=2 +\\nStep 2: The answer is: 2 -",
...                   "task": "GSM8K"})
>>> t.problem.text, [s.text for s in t.steps], [s.gold for s in t.steps], t.final_answer
('What is 1+1?', ['Step 1: 1+1=2', 'Step 2: The answer is: 2'], [1, -1], '2')
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
    opt_str,
    record_json,
    req_str,
    sha256_of,
)

SOURCE = "math_shepherd"
TAG = "ки"
STEP_PREFIX = "Step {n}: "
FIRST_STEP = STEP_PREFIX.format(n=1).rstrip()
FIELDS = ("input", "label", "task")
_MARKS = {"+": 1, "-": -1}
_ANSWER_PREFIX = "The answer is:"


def _labels(text: str, label: str) -> list[int]:
    """The +1/-1 at each tag of `text`, read from `label` (which must be `text` with tags replaced)."""
    pieces = text.split(TAG)
    if len(label) != len(text) - (len(TAG) - 1) * (len(pieces) - 1):
        raise FormatError(
            f"expected 'input' with each of its {len(pieces) - 1} '{TAG}' tags replaced by '+' or "
            f"'-' ({len(text) - (len(TAG) - 1) * (len(pieces) - 1)} characters), "
            f"got {len(label)} characters",
            field="label",
        )
    values: list[int] = []
    pos = 0
    for i, piece in enumerate(pieces):
        if label[pos : pos + len(piece)] != piece:
            offset = next(
                j for j, (a, b) in enumerate(zip(piece, label[pos:], strict=False)) if a != b
            )
            raise FormatError(
                f"differs from 'input' at character {pos + offset + 1} (outside the step tags)",
                field="label",
            )
        pos += len(piece)
        if i < len(pieces) - 1:
            mark = label[pos]
            if mark not in _MARKS:
                raise FormatError(
                    f"expected '+' or '-' where 'input' has tag {i + 1}, got {mark!r}",
                    field="label",
                )
            values.append(_MARKS[mark])
            pos += 1
    return values


def parse_record(record: Any, *, subset: str = "") -> ParsedTrace:
    rec = expect_object(record)
    text = req_str(rec, "input", nonempty=True)
    label = req_str(rec, "label")
    task = opt_str(rec, "task", max_length=100)
    pieces = text.split(TAG)
    if len(pieces) < 2:
        raise FormatError(f"no step tag '{TAG}' in the text", field="input")
    golds = _labels(text, label)
    # The problem is the text before the first step; rfind, because a problem may itself quote
    # "Step 1:" while the first step always starts with it.
    start = pieces[0].rfind(FIRST_STEP)
    if start == -1:
        raise FormatError(
            f"no '{FIRST_STEP}' before the first tag: cannot tell the problem from the first step",
            field="input",
        )
    problem = pieces[0][:start].strip()
    if not problem:
        raise FormatError(f"no problem text before '{FIRST_STEP}'", field="input")
    bodies = [pieces[0][start:], *pieces[1:-1]]
    steps = [body.strip() for body in bodies]
    kept: dict[str, Any] = {"task": task} if "task" in rec else {}
    # Keep the raw input only when the canonical layout would not rebuild it exactly.
    if pieces[-1] or _layout(problem, steps, [TAG] * len(steps)) != text:
        kept["input"] = text
    extra = {key: value for key, value in rec.items() if key not in FIELDS}
    if extra:
        kept["extra_json"] = record_json(extra)
    if tuple(rec) != FIELDS:
        kept["keys"] = list(rec)
    last = steps[-1]
    answer = (
        last[last.rfind(_ANSWER_PREFIX) + len(_ANSWER_PREFIX) :].strip()
        if (_ANSWER_PREFIX in last)
        else ""
    )
    return ParsedTrace(
        external_id=sha256_of(text),
        problem=ParsedProblem(text=problem),
        steps=[ParsedStep(text=s, gold=g) for s, g in zip(steps, golds, strict=True)],
        final_answer=answer,
        subset=subset or (task or ""),
        metadata={SOURCE: kept},
        content_id=True,
    )


def numbered_step(n: int, text: str) -> str:
    """Step ``n`` as a Math-Shepherd line writes it, its number written once.

    The importer keeps "Step n:" in the step text, as the record has it; a step from another
    source gets it here. scoring.prm.formatting.number_step is the same rule for the token-tag
    formatting (the app layers keep the two packages apart; a test pins them together).

    >>> numbered_step(1, "1+1=2"), numbered_step(1, "Step 1: 1+1=2")
    ('Step 1: 1+1=2', 'Step 1: 1+1=2')
    """
    prefix = STEP_PREFIX.format(n=n)
    return text if text.startswith(prefix.rstrip()) else prefix + text


def _layout(problem: str, steps: list[str], tags: list[str]) -> str:
    return (
        problem
        + " "
        + "".join(
            f"{numbered_step(i + 1, step)} {tag}" + ("\n" if i < len(steps) - 1 else "")
            for i, (step, tag) in enumerate(zip(steps, tags, strict=True))
        )
    )


def record_from_trace(
    *, problem: str, steps: list[str], golds: list[int | None], metadata: dict[str, Any]
) -> dict[str, Any]:
    """The record (input, label, task) for a trace, with `golds` (+1/-1) at the tags.

    With the imported gold labels this is the imported record, field for field.
    """
    kept = metadata.get(SOURCE, {})
    marks = []
    for i, gold in enumerate(golds):
        if gold not in (1, -1):
            raise ValueError(f"step {i}: Math-Shepherd has only '+' and '-', got {gold!r}")
        marks.append("+" if gold == 1 else "-")
    if "input" in kept:
        text = kept["input"]
        pieces = text.split(TAG)
        label = "".join(p + (marks[i] if i < len(marks) else "") for i, p in enumerate(pieces))
    else:
        text = _layout(problem, steps, [TAG] * len(steps))
        label = _layout(problem, steps, marks)
    values = {"input": text, "label": label, **json.loads(kept.get("extra_json", "{}"))}
    if "task" in kept:
        values["task"] = kept["task"]
    return {key: values[key] for key in kept.get("keys", [k for k in FIELDS if k in values])}
