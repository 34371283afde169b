"""The format parsers on the real files in data/: what each record becomes, and exact write-back."""

from __future__ import annotations

import doctest
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from annotate.formats import (
    PARSERS,
    base,
    jsonl,
    math_shepherd,
    prm800k,
    prmbench,
    processbench,
    trl,
)
from annotate.formats.base import FormatError, iter_records

DATA = Path(__file__).resolve().parents[2] / "data"


def records(name: str) -> list[dict[str, Any]]:
    with (DATA / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def dumps(value: Any) -> str:
    """Key order matters: json.dumps keeps it, == on dicts would not notice."""
    return json.dumps(value, ensure_ascii=False)


@pytest.mark.parametrize(
    "module", [base, processbench, prmbench, math_shepherd, trl, jsonl, prm800k]
)
def test_doctests(module: Any) -> None:
    assert doctest.testmod(module).failed == 0


# --- ProcessBench ------------------------------------------------------------------------------


def test_processbench_gsm8k_12_first_wrong_step_is_step_1() -> None:
    rec = next(r for r in records("processbench_sample.jsonl") if r["id"] == "gsm8k-12")
    assert rec["label"] == 1
    trace = processbench.parse_record(rec)
    assert trace.external_id == "gsm8k-12"
    assert trace.subset == "gsm8k"
    assert trace.generator == "Qwen2.5-1.5B-Instruct"
    assert trace.final_answer_correct is False
    assert [s.gold for s in trace.steps] == [1, -1, None, None, None, None, None]
    assert [s.text for s in trace.steps] == rec["steps"]


def test_processbench_all_correct_trace_is_all_plus_one() -> None:
    rec = next(r for r in records("processbench_sample.jsonl") if r["label"] == -1)
    assert [s.gold for s in processbench.parse_record(rec).steps] == [1] * len(rec["steps"])


def test_processbench_subset_argument_wins_over_the_id() -> None:
    rec = records("processbench_sample.jsonl")[0]
    assert processbench.parse_record(rec, subset="held-out").subset == "held-out"


@pytest.mark.parametrize("name", ["gsm8k", "math", "olympiadbench", "omnimath"])
def test_processbench_every_record_is_written_back_exactly(name: str) -> None:
    for rec in records(f"processbench/{name}.jsonl"):
        t = processbench.parse_record(rec)
        back = processbench.record_from_trace(
            external_id=t.external_id,
            generator=t.generator,
            problem=t.problem.text,
            steps=[s.text for s in t.steps],
            final_answer_correct=t.final_answer_correct,
            metadata=t.metadata,
        )
        assert dumps(back) == dumps(rec)


def test_processbench_write_back_keeps_unknown_fields_and_key_order() -> None:
    rec = {"label": -1, "note": "x", **records("processbench_sample.jsonl")[0]}
    rec["label"] = -1
    t = processbench.parse_record(rec)
    back = processbench.record_from_trace(
        external_id=t.external_id,
        generator=t.generator,
        problem=t.problem.text,
        steps=[s.text for s in t.steps],
        final_answer_correct=t.final_answer_correct,
        metadata=t.metadata,
    )
    assert dumps(back) == dumps(rec)


# --- PRMBench ----------------------------------------------------------------------------------


def test_prmbench_error_steps_are_one_based_gold_minus_one() -> None:
    recs = records("prmbench_sample.jsonl")
    rec = recs[0]
    assert rec["error_steps"] == [5, 7, 10, 11]
    t = prmbench.parse_record(rec)
    assert [i for i, s in enumerate(t.steps) if s.gold == -1] == [4, 6, 9, 10]
    assert all(s.gold == 1 for s in t.steps if s.gold != -1)
    assert t.problem.text == rec["modified_question"]
    assert t.subset == "circular"
    assert t.external_id == "prm_test_p1_69:circular"
    # idx + classification identifies a record in the sample.
    assert len({prmbench.parse_record(r).external_id for r in recs}) == len(recs) == 43


def test_prmbench_multi_solutions_have_no_wrong_step_and_a_reference_answer() -> None:
    rec = next(
        r for r in records("prmbench_sample.jsonl") if r["classification"] == "multi_solutions"
    )
    t = prmbench.parse_record(rec)
    assert {s.gold for s in t.steps} == {1}
    assert t.problem.reference_answer == rec["ground_truth"]


def test_prmbench_every_record_is_written_back_exactly() -> None:
    for rec in records("prmbench_sample.jsonl"):
        t = prmbench.parse_record(rec)
        back = prmbench.record_from_trace(
            problem=t.problem.text, steps=[s.text for s in t.steps], metadata=t.metadata
        )
        assert dumps(back) == dumps(rec)


# --- Math-Shepherd -----------------------------------------------------------------------------


def test_math_shepherd_labels_follow_the_tags_although_the_lengths_differ() -> None:
    for rec in records("math_shepherd_sample.jsonl"):
        assert len(rec["label"]) != len(rec["input"])
        t = math_shepherd.parse_record(rec)
        expected = [1 if m == "+" else -1 for m in re.findall(r" ([+-])(?:\n|$)", rec["label"])]
        assert [s.gold for s in t.steps] == expected
        assert len(t.steps) == rec["input"].count("ки")
        assert t.problem.text == rec["input"].split(" Step 1:")[0]
        assert [s.text.split(":")[0] for s in t.steps] == [
            f"Step {i}" for i in range(1, len(t.steps) + 1)
        ]
        assert not any("ки" in s.text for s in t.steps)
        assert t.subset == "GSM8K"


def test_math_shepherd_third_record_step_by_step() -> None:
    t = math_shepherd.parse_record(records("math_shepherd_sample.jsonl")[2])
    assert t.problem.text.startswith("If Buzz bought a pizza with 78 slices")
    assert (
        t.steps[1].text
        == "Step 2: The waiter ate 13 x 8 / 13 = <<13*8/13=6>>6 slices of the pizza."
    )
    assert [s.gold for s in t.steps] == [1, -1, -1, -1, -1]
    assert t.final_answer == "52"


def test_math_shepherd_every_record_is_written_back_exactly() -> None:
    for rec in records("math_shepherd_sample.jsonl"):
        t = math_shepherd.parse_record(rec)
        back = math_shepherd.record_from_trace(
            problem=t.problem.text,
            steps=[s.text for s in t.steps],
            golds=[s.gold for s in t.steps],
            metadata=t.metadata,
        )
        assert dumps(back) == dumps(rec)
        assert "input" not in t.metadata["math_shepherd"]  # the layout rebuilt it, no copy kept


def test_math_shepherd_label_that_is_not_the_input_is_refused() -> None:
    rec = dict(records("math_shepherd_sample.jsonl")[0])
    rec["label"] = rec["label"].replace("Janet pays", "Janet paid")
    with pytest.raises(FormatError) as info:
        math_shepherd.parse_record(rec)
    assert info.value.field == "label"
    assert "character 9" in info.value.message  # "Janet pa|y"


# --- TRL and the generic format ----------------------------------------------------------------


def test_trl_record_from_a_real_processbench_trace() -> None:
    rec = next(r for r in records("processbench_sample.jsonl") if r["id"] == "gsm8k-12")
    trl_rec = {"prompt": rec["problem"], "completions": rec["steps"][:2], "labels": [True, False]}
    t = trl.parse_record(trl_rec)
    assert [s.gold for s in t.steps] == [1, -1]
    assert t.problem.text == rec["problem"]
    back = trl.record_from_trace(
        problem=t.problem.text, steps=[s.text for s in t.steps], golds=[1, -1], metadata=t.metadata
    )
    assert dumps(back) == dumps(trl_rec)
    with_id = trl.parse_record({**trl_rec, "id": 7})
    assert with_id.external_id == "7" and not with_id.content_id


def test_trl_labels_must_match_the_completions() -> None:
    with pytest.raises(FormatError) as info:
        trl.parse_record({"prompt": "p", "completions": ["a", "b"], "labels": [True]})
    assert (info.value.field, info.value.message) == (
        "labels",
        "expected one label per completion (2), got 1",
    )
    with pytest.raises(FormatError) as info:
        trl.parse_record({"prompt": "p", "completions": ["a"], "labels": [1]})
    assert (info.value.field, info.value.message) == (
        "labels[0]",
        "expected true or false, got int",
    )


def test_jsonl_steps_as_objects_with_parts_and_every_optional_field() -> None:
    t = jsonl.parse_record(
        {
            "id": "r1",
            "problem": "What is $1+1$?",
            "steps": [{"text": "Think.", "part": "thinking"}, "So $2$."],
            "labels": [None, 1],
            "reference_answer": "2",
            "final_answer": "2",
            "final_answer_correct": True,
            "generator": "m",
            "subset": "toy",
            "images": ["https://example.org/a.png"],
            "table": {"header": ["a", "b"], "rows": [[1, 2]]},
            "metadata": {"k": "v"},
        }
    )
    assert [(s.part, s.text, s.gold) for s in t.steps] == [
        ("thinking", "Think.", None),
        ("response", "So $2$.", 1),
    ]
    assert (t.external_id, t.subset, t.generator, t.final_answer_correct) == (
        "r1",
        "toy",
        "m",
        True,
    )
    assert t.problem.images == ["https://example.org/a.png"]
    assert t.problem.table == {"header": ["a", "b"], "rows": [[1, 2]]}
    assert t.metadata == {"k": "v"}


def test_the_documented_generic_example_parses_as_documented() -> None:
    doc = (DATA.parent / "docs" / "formats.md").read_text(encoding="utf-8")
    example = doc.split("```json\n", 1)[1].split("```", 1)[0]
    t = jsonl.parse_record(json.loads(example))
    assert [(s.part, s.gold) for s in t.steps] == [
        ("thinking", 1),
        ("thinking", 1),
        ("response", 1),
        ("response", None),
    ]
    assert (t.external_id, t.final_answer, t.metadata) == ("demo-1", "1024", {"temperature": 0.7})


@pytest.mark.parametrize(
    ("record", "field", "message"),
    [
        (
            {"problem": "p", "steps": 3},
            "steps",
            'expected a list of strings or of {"text", "part"} objects, got int',
        ),
        (
            {"problem": "p", "steps": ["a", 3]},
            "steps[1]",
            'expected a string or a {"text", "part"} object, got int',
        ),
        ({"problem": "p", "steps": []}, "steps", "no steps: a trace needs at least one step"),
        ({"problem": "p"}, "steps", "missing field (or 'thinking' / 'response')"),
        ({"steps": ["a"]}, "problem", "missing field"),
        ({"problem": 5, "steps": ["a"]}, "problem", "expected a string, got int"),
        (
            {"problem": "p", "steps": ["a"], "labels": [2]},
            "labels[0]",
            "label 2 out of range (allowed: -1, 0, 1 or null)",
        ),
        (
            {"problem": "p", "steps": ["a"], "labels": [True]},
            "labels[0]",
            "expected one of -1, 0, 1 or null, got bool",
        ),
        (
            {"problem": "p", "steps": ["a"], "labels": [1, 1]},
            "labels",
            "expected one label per step (1), got 2",
        ),
        (
            {"problem": "p", "steps": [{"text": "a", "part": "answer"}]},
            "steps[0].part",
            "expected 'thinking' or 'response', got 'answer'",
        ),
        (
            {"problem": "p", "steps": ["a"], "label": [1]},
            "label",
            "unknown field (known: id, problem, steps, thinking, response, labels, reference_answer, "
            "reference_solution, final_answer, final_answer_correct, generator, subset, images, "
            "table, metadata; put anything else in 'metadata')",
        ),
        (
            {"problem": "p", "steps": ["a"], "response": ["b"]},
            "response",
            "give either 'steps' or 'response', not both",
        ),
    ],
)
def test_jsonl_errors_name_the_field(record: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(FormatError) as info:
        jsonl.parse_record(record)
    assert (info.value.field, info.value.message) == (field, message)


# --- PRM800K -----------------------------------------------------------------------------------


def test_prm800k_phase2_found_error_rates_only_a_prefix() -> None:
    rec = records("prm800k_sample.jsonl")[0]
    t = prm800k.parse_record(rec)
    assert [s.text for s in t.steps] == rec["question"]["pre_generated_steps"]  # all 13 steps
    (annotation,) = t.annotations
    assert annotation.finish_reason == "found_error"
    assert [(lab.step_index, lab.value) for lab in annotation.labels] == [
        (0, 1),
        (1, 0),
        (2, 1),
        (3, 1),
        (4, 1),
        (5, 1),
        (6, -1),
    ]
    assert annotation.active_seconds == pytest.approx(164.458)
    assert annotation.labeler == "cc88bf76-df08-4041-be67-3464279cb3b1"
    # The wrong step's sampled alternatives are kept with the step.
    alternatives = t.steps[6].metadata["prm800k"]["completions"]
    assert [c["rating"] for c in alternatives] == [-1, 1, 1, 1]
    assert t.steps[0].metadata == {}
    assert t.final_answer == "7200"
    assert t.problem.reference_answer == "28800"
    assert t.problem.reference_solution.startswith("Choose any seat")
    assert t.metadata["prm800k"]["pre_generated_verifier_score"] == pytest.approx(0.00115461102)
    assert t.subset == "phase2"


def test_prm800k_phase1_path_takes_the_human_completion_object() -> None:
    rec = records("prm800k_sample.jsonl")[5]
    human = rec["label"]["steps"][1]["human_completion"]
    assert isinstance(human, dict) and rec["label"]["steps"][1]["chosen_completion"] is None
    t = prm800k.parse_record(rec)
    assert t.steps[1].text == human["text"] == "We have $3p+e=1.24$ and $5p+e=1.82$."
    assert t.steps[1].metadata["prm800k"]["human_completion"] == human
    assert [c["rating"] for c in t.steps[1].metadata["prm800k"]["completions"]] == [-1] * 5
    # The chosen completion (index 4) is the last step, rated +1.
    assert t.steps[5].text == rec["label"]["steps"][5]["completions"][4]["text"]
    labels = {lab.step_index: lab.value for lab in t.annotations[0].labels}
    assert labels[1] is None and labels[5] == 1
    assert t.subset == "phase1"


def test_prm800k_phase1_give_up_ends_where_nothing_was_chosen() -> None:
    rec = records("prm800k_sample.jsonl")[7]
    assert len(rec["label"]["steps"]) == 30
    t = prm800k.parse_record(rec)
    assert len(t.steps) == 29
    assert t.annotations[0].finish_reason == "give_up"


def test_prm800k_keeps_the_raw_record_exactly() -> None:
    for rec in records("prm800k_sample.jsonl"):
        (annotation,) = prm800k.parse_record(rec).annotations
        (back,) = prm800k.records_from_annotation(annotation.metadata)
        assert dumps(back) == dumps(rec)


def test_prm800k_same_solution_same_trace_id_whoever_labelled_it() -> None:
    rec = records("prm800k_sample.jsonl")[0]
    other = json.loads(json.dumps(rec))
    other["labeler"] = "someone-else"
    other["label"]["steps"] = other["label"]["steps"][:3]
    assert prm800k.parse_record(other).external_id == prm800k.parse_record(rec).external_id


def test_prm800k_rating_out_of_range_names_the_completion() -> None:
    rec = json.loads(json.dumps(records("prm800k_sample.jsonl")[0]))
    rec["label"]["steps"][2]["completions"][0]["rating"] = 2
    with pytest.raises(FormatError) as info:
        prm800k.parse_record(rec)
    assert info.value.field == "label.steps[2].completions[0].rating"
    rec = json.loads(json.dumps(records("prm800k_sample.jsonl")[5]))
    rec["label"]["steps"][0]["chosen_completion"] = 3
    with pytest.raises(FormatError) as info:
        prm800k.parse_record(rec)
    assert (info.value.field, info.value.message) == (
        "label.steps[0].chosen_completion",
        "index 3 out of range (1 completions)",
    )


# --- reading files -----------------------------------------------------------------------------


def test_reader_takes_a_json_array_and_tells_each_records_line() -> None:
    recs = records("processbench_sample.jsonl")[:3]
    text = json.dumps(recs, indent=4, ensure_ascii=False)
    read = list(iter_records(io.BytesIO(text.encode())))
    assert [value for _, value in read] == recs
    lines = text.splitlines()
    assert [lines[n - 1].strip() for n, _ in read] == ["{", "{", "{"]
    assert read[0][0] == 2


def test_reader_reports_broken_json_with_its_line() -> None:
    data = b'{"a": 1}\n\n{"a": 2,,}\n'
    with pytest.raises(FormatError) as info:
        list(iter_records(io.BytesIO(data)))
    assert info.value.line == 3
    assert info.value.message == (
        "invalid JSON: Expecting property name enclosed in double quotes at column 9"
    )
    with pytest.raises(FormatError) as info:
        list(iter_records(io.BytesIO(b'[\n{"a": 1},\n{"a": 2}\n{"a": 3}]')))
    assert info.value.line == 4
    assert info.value.message == "invalid JSON: Expecting ',' or ']' after a record at column 1"


def test_reader_skips_blank_lines_and_a_byte_order_mark() -> None:
    data = "\ufeff" + '{"a": 1}\n\n   \n{"a": 2}\n'
    assert list(iter_records(io.BytesIO(data.encode()))) == [(1, {"a": 1}), (4, {"a": 2})]


def test_every_format_refuses_a_record_that_is_not_an_object() -> None:
    for parse in PARSERS.values():
        with pytest.raises(FormatError, match="expected a JSON object, got list"):
            parse([1, 2])
