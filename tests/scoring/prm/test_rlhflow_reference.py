"""RLHFlow chat PRMs scored as RLHFlow's own evaluation scores them (issue 13, item 5).

Reference: RLHFlow/RLHF-Reward-Modeling, ``math-rm/prm_evaluate.py`` ``select_sample`` (lines
36-67, transcribed below): the answer split into steps, EACH STEP STRIPPED (line 50), the first
user turn ``prompt + " " + step`` (line 53), every assistant turn "+", and for each prefix
conversation the logits at position -3 (the token before "+<|eot_id|>", line 61), softmax over
["+", "-"], index 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from scoring.prm import TraceInput, build_scorer
from scoring.prm.formatting import rlhflow_messages

# Llama 3.1's layout in ChatML words: a turn ends with its end token and nothing after it, so
# "+" is the second-to-last token and position -3 predicts it, as in the reference.
END_TOKEN_LAST_TEMPLATE = (
    "{%- for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n\\n' + message['content'] + '<|im_end|>' }}"
    "{%- endfor %}"
)
PROBLEM = "Janet has 3 apples and buys 2 more. How many apples does she have?"
ANSWER = "  She starts with 3 apples. \n\nShe buys 2 more, so 3 + 2 = 5.\n\n The answer is: 5  "


def select_sample_scores(model: Any, tokenizer: Any, prompt: str, ans: str) -> list[float]:
    """prm_evaluate.py lines 42-64 for one answer, model_type "Deepseek" (steps split on a
    blank line)."""
    plus_tag_id = tokenizer.encode("+")[-1]
    minus_tag_id = tokenizer.encode("-")[-1]
    candidate_tokens = [plus_tag_id, minus_tag_id]
    single_step_score = []
    conversation = []
    ans_list = ans.split("\n\n")
    ans_list = [j.strip() for j in ans_list]
    for k in range(len(ans_list)):
        text = prompt + " " + ans_list[0] if k == 0 else ans_list[k]
        conversation.append({"content": text, "role": "user"})
        conversation.append({"content": "+", "role": "assistant"})
        input_ids = tokenizer.apply_chat_template(conversation, return_tensors="pt")
        if not isinstance(input_ids, torch.Tensor):  # transformers 5 returns a BatchEncoding
            input_ids = input_ids["input_ids"]
        with torch.no_grad():
            logits = model(input_ids).logits[:, -3, candidate_tokens]
            scores = logits.softmax(dim=-1)[:, 0]
            single_step_score.append(scores[0].item())
    return single_step_score


def test_steps_are_stripped_and_the_first_joined_to_the_problem_by_a_space() -> None:
    steps = ANSWER.split("\n\n")  # a splitter that keeps the whitespace around each step
    messages = rlhflow_messages(TraceInput(PROBLEM, steps))
    assert [m["content"] for m in messages] == [
        PROBLEM + " She starts with 3 apples.", "+",
        "She buys 2 more, so 3 + 2 = 5.", "+",
        "The answer is: 5", "+",
    ]  # fmt: skip


def test_scores_equal_rlhflow_prm_evaluate(tiny_models: dict[str, Path]) -> None:
    scorer = build_scorer(
        "token_tag", model_path=str(tiny_models["causal_lm"]), params={"style": "chat"}
    )
    scorer.tokenizer.chat_template = END_TOKEN_LAST_TEMPLATE
    [result] = scorer.score([TraceInput(PROBLEM, ANSWER.split("\n\n"))])
    expected = select_sample_scores(scorer.model, scorer.tokenizer, PROBLEM, ANSWER)
    assert result.scores == pytest.approx(expected, abs=1e-5)


def test_processbench_scripts_blank_line_is_a_param(tiny_models: dict[str, Path]) -> None:
    """ProcessBench's ``code/run_eval_prm_rlhflow.py`` line 40 joins problem and first step with
    a blank line; ``problem_joiner="\\n\\n"`` gives that layout."""
    messages = rlhflow_messages(TraceInput(PROBLEM, ["a", "b"]), problem_joiner="\n\n")
    assert messages[0]["content"] == PROBLEM + "\n\na"
    scorer = build_scorer(
        "token_tag",
        model_path=str(tiny_models["causal_lm"]),
        params={"style": "chat", "problem_joiner": "\n\n"},
    )
    assert PROBLEM + "\n\na" in scorer.tokenizer.decode(
        scorer.encode(TraceInput(PROBLEM, ["a"])).input_ids
    )
