"""Math-Shepherd traces imported by steplens are scored on exactly the text the model card scores
(issue 13, item 2): the step number is written once, never ``Step 1: Step 1: ...``.

The model card (peiyi9979/math-shepherd-mistral-7b-prm) scores
``tokenizer.encode(f"{question} {output}")`` where ``output`` is the ``"Step n: ... ки"`` lines, and
reads softmax over the logits of "+" / "-" at each ``ки``; a Math-Shepherd record's ``input`` is
that text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from annotate.formats import math_shepherd
from annotate.formats.exporters import math_shepherd as exporter
from annotate.formats.exporters.base import ExportRecord
from scoring.prm import TraceInput, build_scorer
from scoring.prm.formatting import format_math_shepherd

from .conftest import data_file


def shepherd_records() -> list[dict[str, Any]]:
    text = data_file("math_shepherd_sample.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line]


def imported(record: dict[str, Any]) -> TraceInput:
    """The trace as steplens stores it after importing the record (what a ScoreRun scores)."""
    parsed = math_shepherd.parse_record(record)
    return TraceInput(parsed.problem.text, [s.text for s in parsed.steps])


def model_card_scores(path: Path, tokenizer: Any, text: str) -> list[float]:
    """The model card's code on ``text``, with the tiny causal LM."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True).eval()
    candidate_tokens = tokenizer.encode("+ -", add_special_tokens=False)  # [good, bad]
    step_tag_id = tokenizer.encode("ки")[-1]
    input_id = torch.tensor([tokenizer.encode(text)])
    with torch.no_grad():
        logits = model(input_id).logits[:, :, candidate_tokens]
        scores = logits.softmax(dim=-1)[:, :, 0]
        return scores[input_id == step_tag_id].tolist()


def test_an_imported_record_is_formatted_as_its_own_input_text(tokenizer: Any) -> None:
    for record in shepherd_records():
        enc = format_math_shepherd(tokenizer, imported(record))
        assert enc.input_ids == tokenizer.encode(record["input"])
        assert tokenizer.decode(enc.input_ids).count("Step 1:") == record["input"].count("Step 1:")


def test_an_imported_record_scores_as_the_model_card_scores_it(
    tiny_models: dict[str, Path],
) -> None:
    scorer = build_scorer("token_tag", model_path=str(tiny_models["causal_lm"]))
    records = shepherd_records()
    results = scorer.score([imported(r) for r in records])
    for record, result in zip(records, results, strict=True):
        # AutoTokenizer from the checkpoint, as the model card loads it
        expected = model_card_scores(tiny_models["causal_lm"], scorer.tokenizer, record["input"])
        assert result.scores == pytest.approx(expected, abs=1e-5)


def test_steps_without_numbers_are_numbered_once(tokenizer: Any) -> None:
    trace = TraceInput("1+1?", ["1+1=2", "Step 2: So 2", "The answer is: 2"])
    enc = format_math_shepherd(tokenizer, trace)
    assert tokenizer.decode(enc.input_ids) == (
        "1+1? Step 1: 1+1=2 ки\nStep 2: So 2 ки\nStep 3: The answer is: 2 ки"
    )


def test_the_exporter_and_the_formatter_write_the_same_text(tokenizer: Any) -> None:
    """One rule: a trace from another source, some of whose steps already say their number,
    exports to the same text the token-tag formatting scores."""
    steps = ["Step 1: 1+1=2", "so 2", "Step 3: The answer is: 2"]
    record = ExportRecord(
        trace_id=1, external_id="x", source="jsonl", subset="", generator="",
        final_answer="", final_answer_correct=None, trace_metadata={}, problem="1+1?",
        problem_sha256="", reference_answer="", steps=steps, parts=["response"] * 3,
        labels=[1, 1, 1],
    )  # fmt: skip
    [row] = list(exporter.rows([record], neutral="", options={}))
    enc = format_math_shepherd(tokenizer, TraceInput("1+1?", steps))
    assert tokenizer.decode(enc.input_ids) == row.data["input"]
    from scoring.prm.formatting import number_step

    for n, step in enumerate(steps, 1):
        assert math_shepherd.numbered_step(n, step) == number_step("Step {n}: ", n, step)
