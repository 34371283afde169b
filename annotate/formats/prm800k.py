"""Raw PRM800K labelling records -> a trace plus one labeler's annotation of it.

A record is one labeler's session on one solution:
- phase 2 (`question.pre_generated_steps` present): the trace is the pre-generated solution; the
  labeler rated its steps in order and, with `found_error`, stopped at the first wrong one, so only a
  prefix is rated. At the rated steps the first completion is the pre-generated step itself and the
  others are alternatives sampled for comparison.
- phase 1: the solution was built step by step: at each step the labeler rated the sampled
  completions and continued with one (`chosen_completion`) or wrote their own (`human_completion`).
  The trace is that chosen path; a last step where nothing was chosen (the labeler stopped there)
  is not part of it.
- phase 1 in the "stepwise critique" form (a denormalised copy, e.g. xhghhh/Enhancing-PRM800K's
  phase1_test.stepwise-critic): one row per rated candidate step, `instruction, responses[] (the
  steps chosen so far), next_response, rating, is_preferred_response, is_human_response,
  is_solution, answer`. The consecutive rows of one problem (`group_records`) are one labelling
  session: read as the raw phase-1 record they came from, the preferred row at each step is the
  chosen step (or the human one), the others its alternatives. The form has no labeler, timestamp
  or time: the annotation is the stand-in labeler's (`STEPWISE_CRITIQUE_LABELER`).
The trace's external id is a hash of the problem and the step texts, so two labelers of the same
solution share one trace and each brings an annotation. The whole raw record stays with the
annotation as JSON text (metadata["prm800k"]["record_json"]), so an export can write it back
exactly: see records_from_annotation().
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from .base import (
    FormatError,
    ParsedAnnotation,
    ParsedProblem,
    ParsedStep,
    ParsedStepLabel,
    ParsedTrace,
    check_label,
    check_str_list,
    expect_object,
    opt_bool,
    opt_int,
    opt_number,
    opt_str,
    record_json,
    req_list,
    req_str,
    sha256_of,
    type_name,
)

SOURCE = "prm800k"
STEPWISE_CRITIQUE = "stepwise_critique"
# Who labelled a stepwise-critique session: the form does not say.
STEPWISE_CRITIQUE_LABELER = "stepwise-critique"
_CRITIQUE_FIELDS = (
    "instruction",
    "responses",
    "next_response",
    "rating",
    "is_preferred_response",
    "is_human_response",
    "is_solution",
    "answer",
)
FINISH_REASONS = ("solution", "found_error", "bad_problem", "give_up")
USERNAME_PREFIX = "prm800k-"
_ANSWER_STEP = "# Answer"


def username_for(labeler: str) -> str:
    """The (inactive) steplens user that stands for a PRM800K labeler."""
    return USERNAME_PREFIX + labeler


def _completion(value: Any, field: str) -> dict[str, Any]:
    comp = expect_object(value, field=field)
    req_str(comp, "text", prefix=field + ".")
    check_label(comp.get("rating"), field=field + ".rating")
    opt_bool(comp, "flagged", prefix=field + ".")
    return comp


def _label_step(
    value: Any, field: str
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, int | None]:
    """(completions, human completion, chosen index) of one entry of label.steps, checked."""
    step = expect_object(value, field=field)
    raw = step.get("completions")
    if raw is not None and not isinstance(raw, list):
        raise FormatError(
            f"expected a list or null, got {type_name(raw)}", field=field + ".completions"
        )
    completions = [_completion(c, f"{field}.completions[{i}]") for i, c in enumerate(raw or [])]
    human = step.get("human_completion")
    if isinstance(human, str):  # some converted copies flatten it to its text
        human = {"text": human, "rating": None, "flagged": False}
    elif human is not None:
        human = _completion(human, field + ".human_completion")
    chosen = opt_int(step, "chosen_completion", prefix=field + ".")
    if chosen is not None and not 0 <= chosen < len(completions):
        raise FormatError(
            f"index {chosen} out of range ({len(completions)} completions)",
            field=field + ".chosen_completion",
        )
    return completions, human, chosen


def _alternatives(
    completions: list[dict[str, Any]], human: dict[str, Any] | None, chosen: int | None
) -> dict[str, Any]:
    """Step metadata: what the labeler saw besides the step itself (nothing when there was nothing)."""
    if len(completions) <= 1 and human is None:
        return {}
    return {
        SOURCE: {"completions": completions, "human_completion": human, "chosen_completion": chosen}
    }


def is_stepwise_critique(record: Any) -> bool:
    """A row of the stepwise-critique form (not a raw labelling record)."""
    return isinstance(record, dict) and "instruction" in record and "label" not in record


def group_records(records: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
    """(line, record) with the consecutive stepwise-critique rows of one labelling session (the
    same instruction, steps chosen so far never fewer than the row before) joined into one
    record `{"stepwise_critique": [rows], "lines": [their lines]}`; raw records pass as they are.
    Memory: one session's rows."""
    rows: list[Any] = []
    lines: list[int] = []

    def flush() -> Iterator[tuple[int, Any]]:
        if rows:
            yield lines[0], {STEPWISE_CRITIQUE: list(rows), "lines": list(lines)}
            rows.clear()
            lines.clear()

    def depth(row: dict[str, Any]) -> int:
        responses = row.get("responses")
        return len(responses) if isinstance(responses, list) else 0

    for line, record in records:
        if not is_stepwise_critique(record):
            yield from flush()
            yield line, record
            continue
        if rows and (
            record.get("instruction") != rows[-1].get("instruction")
            or depth(record) < depth(rows[-1])
        ):
            yield from flush()
        rows.append(record)
        lines.append(line)
    yield from flush()


def _critique_row(row: Any, line: int | None) -> dict[str, Any]:
    """One stepwise-critique row, checked; a bad one names the form, its line and the field."""

    def fail(field: str, message: str) -> FormatError:
        return FormatError(f"PRM800K stepwise critique row: {message}", field=field, line=line)

    if not isinstance(row, dict):
        raise FormatError(f"expected a JSON object, got {type_name(row)}", line=line)
    for key in _CRITIQUE_FIELDS:
        if key not in row:
            raise fail(
                key,
                f"missing field (a row holds {', '.join(_CRITIQUE_FIELDS)}; a raw PRM800K record "
                "holds labeler, question and label instead)",
            )
    if not isinstance(row["instruction"], str) or not row["instruction"].strip():
        raise fail("instruction", "expected the problem text")
    responses = row["responses"]
    if not isinstance(responses, list) or not all(isinstance(r, str) for r in responses):
        raise fail("responses", "expected the list of the steps chosen so far")
    if not isinstance(row["next_response"], str):
        raise fail("next_response", f"expected a string, got {type_name(row['next_response'])}")
    try:
        check_label(row["rating"], field="rating")
    except FormatError as err:
        raise fail("rating", err.message) from None
    for key in ("is_preferred_response", "is_human_response", "is_solution"):
        if not isinstance(row[key], bool):
            raise fail(key, f"expected true or false, got {type_name(row[key])}")
    if row["answer"] is not None and not isinstance(row["answer"], str):
        raise fail("answer", f"expected a string or null, got {type_name(row['answer'])}")
    return row


def _critique_session(
    rows: list[Any], lines: list[int | None]
) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """(problem, label.steps as in a raw phase-1 record, the last chosen row) of one session."""
    checked = [_critique_row(row, line) for row, line in zip(rows, lines, strict=True)]
    problem = checked[0]["instruction"]
    chosen: list[str] = []
    label_steps: list[dict[str, Any]] = []
    last: dict[str, Any] = {}
    at = 0
    while at < len(checked):
        k = len(checked[at]["responses"])
        group = []
        while at < len(checked) and len(checked[at]["responses"]) == k:
            group.append((checked[at], lines[at]))
            at += 1
        for row, line in group:
            if row["responses"] != chosen[:k] or k > len(chosen):
                raise FormatError(
                    f"PRM800K stepwise critique row: its responses are not the steps chosen "
                    f"before it (the preferred next_response of each earlier row of this "
                    f"problem, {len(chosen)} so far)",
                    field="responses",
                    line=line,
                )
        preferred = [(row, line) for row, line in group if row["is_preferred_response"]]
        if len(preferred) > 1:
            raise FormatError(
                f"PRM800K stepwise critique row: a second preferred row for step {k + 1} (one is "
                f"chosen per step; the first is on line {preferred[0][1]})",
                field="is_preferred_response",
                line=preferred[1][1],
            )
        completions = [
            {"text": row["next_response"], "rating": row["rating"], "flagged": False}
            for row, _ in group
            if not row["is_human_response"]
        ]
        humans = [row for row, _ in group if row["is_human_response"]]
        human = (
            {"text": humans[0]["next_response"], "rating": humans[0]["rating"], "flagged": False}
            if humans
            else None
        )
        index = None
        if preferred and not preferred[0][0]["is_human_response"]:
            texts = [c["text"] for c in completions]
            index = texts.index(preferred[0][0]["next_response"])
        elif not preferred:
            human = None  # nothing was chosen: the labeler stopped here
        label_steps.append(
            {"completions": completions, "human_completion": human, "chosen_completion": index}
        )
        if not preferred:
            if at < len(checked):
                raise FormatError(
                    f"PRM800K stepwise critique row: no preferred row for step {k + 1}, yet the "
                    "session goes on",
                    field="is_preferred_response",
                    line=lines[at],
                )
            break
        last = preferred[0][0]
        chosen.append(last["next_response"])
    return problem, label_steps, last


def _parse_stepwise_critique(rec: dict[str, Any], subset: str) -> ParsedTrace:
    rows = rec[STEPWISE_CRITIQUE]
    lines = rec.get("lines") or [None] * len(rows)
    problem, label_steps, last = _critique_session(rows, lines)
    steps: list[ParsedStep] = []
    labels: list[ParsedStepLabel] = []
    for entry in label_steps:
        completions, human, chosen = (
            entry["completions"],
            entry["human_completion"],
            entry["chosen_completion"],
        )
        taken = completions[chosen] if chosen is not None else human
        if taken is None:
            break
        steps.append(
            ParsedStep(text=taken["text"], metadata=_alternatives(completions, human, chosen))
        )
        labels.append(ParsedStepLabel(len(steps) - 1, taken["rating"], False))
    if not steps:
        raise FormatError(
            "PRM800K stepwise critique: no preferred row for the first step",
            field="is_preferred_response",
            line=lines[0],
        )
    raw = record_json(rows)
    sha = sha256_of(raw)
    return ParsedTrace(
        external_id=sha256_of(problem, *(step.text for step in steps)),
        problem=ParsedProblem(text=problem),
        steps=steps,
        final_answer=last.get("answer") or "",
        subset=subset or "phase1",
        metadata={SOURCE: {"phase": 1, "form": STEPWISE_CRITIQUE}},
        annotations=[
            ParsedAnnotation(
                labeler=STEPWISE_CRITIQUE_LABELER,
                finish_reason="solution" if last.get("is_solution") else "give_up",
                active_seconds=0.0,
                submitted_at=None,
                labels=labels,
                metadata={
                    SOURCE: {"form": STEPWISE_CRITIQUE, "record_json": raw, "record_sha256": sha}
                },
                record_sha256=sha,
                record_json=raw,
            )
        ],
        content_id=True,
    )


def parse_record(record: Any, *, subset: str = "") -> ParsedTrace:
    if isinstance(record, dict) and STEPWISE_CRITIQUE in record:
        return _parse_stepwise_critique(record, subset)
    if is_stepwise_critique(record):  # one row on its own (group_records joins a file's rows)
        return _parse_stepwise_critique({STEPWISE_CRITIQUE: [record]}, subset)
    rec = expect_object(record)
    labeler = req_str(rec, "labeler", nonempty=True, max_length=150 - len(USERNAME_PREFIX))
    timestamp = opt_str(rec, "timestamp")
    if timestamp is not None:
        try:
            datetime.fromisoformat(timestamp)
        except ValueError:
            raise FormatError(
                f"expected an ISO 8601 date and time, got {timestamp!r}", field="timestamp"
            ) from None
    opt_int(rec, "generation")
    opt_bool(rec, "is_quality_control_question")
    opt_bool(rec, "is_initial_screening_question")
    if "question" not in rec:
        raise FormatError("missing field", field="question")
    question = expect_object(rec["question"], field="question")
    problem = req_str(question, "problem", prefix="question.", nonempty=True)
    pre_steps = question.get("pre_generated_steps")
    if pre_steps is not None:
        check_str_list(pre_steps, field="question.pre_generated_steps")
    pre_answer = opt_str(question, "pre_generated_answer", prefix="question.")
    opt_number(question, "pre_generated_verifier_score", prefix="question.")
    if "label" not in rec:
        raise FormatError("missing field", field="label")
    label = expect_object(rec["label"], field="label")
    label_steps = req_list(label, "steps", prefix="label.")
    total_time = opt_number(label, "total_time", prefix="label.")
    finish_reason = req_str(label, "finish_reason", prefix="label.")
    if finish_reason not in FINISH_REASONS:
        raise FormatError(
            f"expected one of {', '.join(FINISH_REASONS)}, got {finish_reason!r}",
            field="label.finish_reason",
        )

    steps: list[ParsedStep] = []
    labels: list[ParsedStepLabel] = []
    checked = [_label_step(s, f"label.steps[{j}]") for j, s in enumerate(label_steps)]
    if pre_steps is not None:
        steps = [ParsedStep(text=text) for text in pre_steps]
        for j, (completions, human, chosen) in enumerate(checked[: len(pre_steps)]):
            steps[j].metadata = _alternatives(completions, human, chosen)
            # The rating of the pre-generated step is that of the completion with its text.
            candidates = ([chosen] if chosen is not None else []) + list(range(len(completions)))
            match = next((i for i in candidates if completions[i]["text"] == pre_steps[j]), None)
            if match is not None:
                comp = completions[match]
                labels.append(ParsedStepLabel(j, comp.get("rating"), bool(comp.get("flagged"))))
    else:
        for completions, human, chosen in checked:
            taken = completions[chosen] if chosen is not None else human
            if taken is None:
                break  # the labeler stopped here without continuing the solution
            index = len(steps)
            steps.append(
                ParsedStep(text=taken["text"], metadata=_alternatives(completions, human, chosen))
            )
            labels.append(ParsedStepLabel(index, taken.get("rating"), bool(taken.get("flagged"))))

    final_answer = pre_answer or ""
    if not final_answer and steps and steps[-1].text.startswith(_ANSWER_STEP):
        final_answer = steps[-1].text[len(_ANSWER_STEP) :].strip()
    phase = 2 if pre_steps is not None else 1
    trace_meta: dict[str, Any] = {"phase": phase}
    for key in ("pre_generated_answer", "pre_generated_verifier_score"):
        if key in question:
            trace_meta[key] = question[key]
    if "generation" in rec:
        trace_meta["generation"] = rec["generation"]
    raw = record_json(rec)
    sha = sha256_of(raw)
    return ParsedTrace(
        external_id=sha256_of(problem, *(step.text for step in steps)),
        problem=ParsedProblem(
            text=problem,
            reference_answer=opt_str(question, "ground_truth_answer", prefix="question.") or "",
            reference_solution=opt_str(question, "ground_truth_solution", prefix="question.") or "",
        ),
        steps=steps,
        final_answer=final_answer,
        subset=subset or f"phase{phase}",
        metadata={SOURCE: trace_meta},
        annotations=[
            ParsedAnnotation(
                labeler=labeler,
                finish_reason=finish_reason,
                active_seconds=(total_time or 0.0) / 1000.0,
                submitted_at=timestamp,
                labels=labels,
                metadata={SOURCE: {"record_json": raw, "record_sha256": sha}},
                record_sha256=sha,
                record_json=raw,
            )
        ],
        content_id=True,
    )


def records_from_annotation(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """The raw records an imported annotation came from, exactly as they were in the file.

    Usually one; more when the same labeler labelled the same solution in several sessions.
    """
    kept = metadata[SOURCE]
    return [json.loads(text) for text in [kept["record_json"], *kept.get("more_records_json", [])]]
