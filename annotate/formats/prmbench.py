"""PRMBench records (a modified process with 1-indexed `error_steps`) <-> traces.

The trace is `modified_process` under `modified_question`; steps listed in `error_steps` are gold
-1, every other step gold +1. The rest of the record (original question and process, reason,
idx, classification, ...) is kept in the trace's metadata so the record can be written back.

>>> t = parse_record({"modified_question": "q", "modified_process": ["a", "b", "c"],
...                   "error_steps": [2], "idx": "prm_test_p1_1", "classification": "circular"})
>>> t.external_id, t.subset, [s.gold for s in t.steps]
('prm_test_p1_1:circular', 'circular', [1, -1, 1])
"""

from __future__ import annotations

from typing import Any

from .base import (
    FormatError,
    ParsedProblem,
    ParsedStep,
    ParsedTrace,
    expect_object,
    req_list,
    req_str,
    req_str_list,
    type_name,
)

SOURCE = "prmbench"
# Held in columns (problem text, steps); everything else stays in metadata["prmbench"]["record"].
_IN_COLUMNS = ("modified_question", "modified_process")


def parse_record(record: Any, *, subset: str = "") -> ParsedTrace:
    rec = expect_object(record)
    question = req_str(rec, "modified_question", nonempty=True)
    steps = req_str_list(rec, "modified_process", nonempty=True)
    error_steps = req_list(rec, "error_steps")
    classification = req_str(rec, "classification", nonempty=True, max_length=100)
    if "idx" not in rec:
        raise FormatError("missing field", field="idx")
    idx = rec["idx"]
    if isinstance(idx, bool) or not isinstance(idx, str | int):
        raise FormatError(f"expected a string or an integer, got {type_name(idx)}", field="idx")
    wrong: set[int] = set()
    for i, number in enumerate(error_steps):
        if isinstance(number, bool) or not isinstance(number, int):
            raise FormatError(
                f"expected a 1-based step number, got {type_name(number)}",
                field=f"error_steps[{i}]",
            )
        if not 1 <= number <= len(steps):
            raise FormatError(
                f"step {number} out of range: modified_process has {len(steps)} steps "
                "(error_steps are 1-based)",
                field=f"error_steps[{i}]",
            )
        wrong.add(number - 1)
    external_id = f"{idx}:{classification}"
    if len(external_id) > 200:
        raise FormatError("idx + classification longer than 200 characters", field="idx")
    ground_truth = rec.get("ground_truth")
    return ParsedTrace(
        external_id=external_id,
        problem=ParsedProblem(
            text=question, reference_answer=ground_truth if isinstance(ground_truth, str) else ""
        ),
        steps=[
            ParsedStep(text=text, gold=-1 if i in wrong else 1) for i, text in enumerate(steps)
        ],
        subset=subset or classification,
        metadata={
            SOURCE: {
                "record": {key: value for key, value in rec.items() if key not in _IN_COLUMNS},
                "keys": list(rec),
            }
        },
    )


def record_from_trace(*, problem: str, steps: list[str], metadata: dict[str, Any]) -> dict[str, Any]:
    """The record a trace was imported from, field for field and in the same key order."""
    kept = metadata[SOURCE]
    values = {**kept["record"], "modified_question": problem, "modified_process": steps}
    return {key: values[key] for key in kept["keys"]}
