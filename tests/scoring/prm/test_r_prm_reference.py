"""R-PRM scored as its authors' ProcessBench evaluation scores it (issue 13, item 3).

References (github.com/NJUNLP/R-PRM): the evaluation prompt file
``src/prompts/GenPRM/GenPRM-evaluate-new3-qwen.txt``, the rows it is filled with
(``src/datasets/ProcessBench/gsm8k_filtered.json``), the sampling defaults
(``src/scripts/examples/eval-ProcessBench.sh`` lines 48-49: N=10, temperature 0.95;
``src/utils/inference.py`` line 84: top_p 0.95; ``generate-PRM-CoT.sh`` line 151: 4096 tokens) and
the verdict pass (``src/evaluate/GenPRM/evaluate-PRM-CoT.py`` lines 79-103).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from scoring.prm import ScorerError, TraceInput, build_scorer
from scoring.prm.backends.generative import (
    GenerativeParams,
    authors_prompt,
    previous_steps_text,
    step_prompt,
)

from .conftest import data_file

# gsm8k_filtered.json rows 0, 1 and 35, verbatim (the rows R-PRM's evaluation formats).
R_PRM_ROWS = [
    {"id": 0, "origin_id": "gsm8k-0",
     "previous_steps": "Since the Now Step is the first step, there are no Previous Steps.",
     "now_step": "Step 1: To find out how many more pink plastic flamingos were out than white plastic flamingos at noon on Sunday, we can break down the problem into steps. First, on Friday, the neighbors start with 18 pink plastic flamingos."},
    {"id": 1, "origin_id": "gsm8k-0",
     "previous_steps": "Step 1: To find out how many more pink plastic flamingos were out than white plastic flamingos at noon on Sunday, we can break down the problem into steps. First, on Friday, the neighbors start with 18 pink plastic flamingos.",
     "now_step": "Step 2: On Saturday, they take back one third of the flamingos. Since there were 18 flamingos, \\(1/3 \\times 18 = 6\\) flamingos are taken back. So, they have \\(18 - 6 = 12\\) flamingos left in their possession. Then, they paint these 6 flamingos white and put them back out on Sue's front yard. Now, Sue has the original 12 pink flamingos plus the 6 new white ones. Thus, by the end of Saturday, Sue has \\(12 + 6 = 18\\) pink flamingos and 6 white flamingos."},
    {"id": 35, "origin_id": "gsm8k-14",
     "previous_steps": "Step 1: To determine the current age of Shiloh's nephew, we can follow these steps: First, identify Shiloh's age today: Shiloh is currently 44 years old.\nStep 2: Second, determine Shiloh's age in 7 years: In 7 years, Shiloh will be \\( 44 + 7 = 51 \\) years old.\nStep 3: Third, set up the equation based on the given information: In 7 years, Shiloh will be three times as old as his nephew. Let \\( x \\) represent the nephew's current age.",
     "now_step": "Step 4: Fourth, express Shiloh's age in 7 years in terms of \\( x \\): Shiloh will be 51 years old in 7 years."},
]  # fmt: skip


def processbench(record_id: str) -> TraceInput:
    path = data_file("processbench/gsm8k.jsonl")
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["id"] == record_id:
            return TraceInput(record["problem"], record["steps"], key=record_id)
    raise AssertionError(record_id)


@pytest.mark.parametrize("row", R_PRM_ROWS, ids=lambda r: str(r["id"]))
def test_previous_and_now_step_are_written_as_r_prm_writes_them(row: dict[str, Any]) -> None:
    trace = processbench(row["origin_id"])
    index = int(row["now_step"].split(":")[0].removeprefix("Step ")) - 1
    assert previous_steps_text(trace, index) == row["previous_steps"]
    prompt = step_prompt(trace, index)
    question = f"Question: {trace.problem}\n"
    assert question + f"Previous Steps: {row['previous_steps']}\nNow Step: {row['now_step']}\n" in (
        prompt
    )


def test_the_prompt_is_the_evaluation_file_with_its_own_chat_markup() -> None:
    trace = TraceInput("What is 2+3?", ["2+3=5", "So \\boxed{5}"])
    text = authors_prompt(trace, 1)
    # The file's first three lines and last three, verbatim (its "\n" on the last line are a
    # backslash and an "n").
    assert text.startswith(
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "You are an excellent math teacher. Please verify the correctness of the Now Step.\n\n"
    )
    assert text.endswith(
        "Now Step: Step 2: So \\boxed{5}\n"
        "Please carefully analyze the correctness of the Now Step.\n"
        "Reply: <|im_end|>\\n<|im_start|>assistant\\n"
    )


def test_defaults_are_the_processbench_evaluation_settings() -> None:
    p = GenerativeParams()
    assert (p.k, p.temperature, p.top_p, p.max_new_tokens) == (10, 0.95, 0.95, 4096)
    assert p.prompt_format == "authors"


def test_greedy_with_several_critiques_is_a_clear_error(tiny_models: dict[str, Path]) -> None:
    path = str(tiny_models["causal_lm"])
    with pytest.raises(ScorerError, match=r"temperature=0 is greedy.*set k=1"):
        build_scorer("generative", model_path=path, params={"temperature": 0})
    greedy = build_scorer(
        "generative", model_path=path, params={"temperature": 0, "k": 1, "max_new_tokens": 4}
    )
    [result] = greedy.score([TraceInput("1+1?", ["1+1=2"])])
    assert len(result.steps[0].details["critiques"]) == 1


def test_p_yes_is_the_evaluation_scripts_verdict_pass(tiny_models: dict[str, Path]) -> None:
    """evaluate-PRM-CoT.py: cut (or extend) each critique, ``prompt.format(...) + response``,
    ``tokenizer.encode``, softmax over the " Yes" / " No" logits of the last token, mean."""
    from transformers import AutoModelForCausalLM

    path = tiny_models["causal_lm"]
    scorer = build_scorer(
        "generative", model_path=str(path), params={"k": 2, "max_new_tokens": 6, "seed": 3}
    )
    trace = processbench("gsm8k-0")
    trace = TraceInput(trace.problem, trace.steps[:2])
    [result] = scorer.score([trace])
    tokenizer = scorer.tokenizer
    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True).eval()
    yes_token_id = tokenizer.encode(" Yes", add_special_tokens=False)[0]
    no_token_id = tokenizer.encode(" No", add_special_tokens=False)[0]
    for index, step in enumerate(result.steps):
        expected = []
        for response in step.details["critiques"]:
            if "Is the step correct (Yes/No)?" in response:
                response = response.split("Is the step correct (Yes/No)?")[0]
                response += "Is the step correct (Yes/No)?"
            else:
                response = response + "\nBased on your analysis. Is the answer correct (Yes/No)?"
            formatted_prompt = authors_prompt(trace, index) + response
            input_ids = torch.tensor([tokenizer.encode(formatted_prompt)])
            with torch.no_grad():
                last_token_logits = model(input_ids).logits[0, -1, :]
            relevant_logits = last_token_logits[[yes_token_id, no_token_id]]
            expected.append(torch.softmax(relevant_logits, dim=-1).tolist()[0])
        assert step.details["p_yes"] == pytest.approx(expected, abs=1e-5)
        assert step.score == pytest.approx(sum(expected) / len(expected), abs=1e-5)


def test_a_prompt_longer_than_max_length_refuses_only_its_trace(
    tiny_models: dict[str, Path],
) -> None:
    from scoring.prm import score_each

    path = str(tiny_models["causal_lm"])
    short = TraceInput("1+1?", ["1+1=2"], key="short")
    long = TraceInput("1+1? " * 400, ["1+1=2"], key="long")
    probe = build_scorer("generative", model_path=path, params={"k": 1, "max_new_tokens": 2})
    limit = len(probe.tokenizer(authors_prompt(short, 0))["input_ids"]) + 10
    scorer = build_scorer(
        "generative", model_path=path, params={"k": 1, "max_new_tokens": 2, "max_length": limit}
    )
    done, refused = score_each(scorer, [long, short])
    assert [d.key for d in done] == ["short"]
    assert "step 1: the prompt is" in refused["long"]
    assert f"max_length={limit}" in refused["long"]
