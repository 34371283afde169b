"""ReasonFlux-PRM's trajectory-level reward, as its authors compute it (issue 13, item 6).

ReasonFlux (github.com/Gen-Verse/ReasonFlux), ``ReasonFlux_PRM/Application/verl/workers/
fsdp_workers.py``: ``_switch_chat_template`` (lines 1274-1277) writes the chat
``[user: prompt, assistant: "<extra_0>".join([response]) + "<extra_0>"]``, tokenised without
extra special tokens; ``compute_rm_score`` (lines 1358-1373) reads ``make_step_rewards`` at the
``<extra_0>`` token: softmax, class 1, the first (only) value. ReasonFlux-PRM-7B's README (lines
85-95) has no system turn and splits an answer into steps on "\\n\\n".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from scoring.prm import ScorerError, TraceInput, build_scorer


@pytest.fixture(scope="module")
def reasonflux_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> Path:
    """ReasonFlux-PRM-7B's layout is Qwen2.5-Math-PRM's (Qwen2ForProcessRewardModel)."""
    from scoring.prm.tiny import save_tiny_model

    return save_tiny_model(
        tmp_path_factory.mktemp("reasonflux") / "m", tokenizer, kind="qwen2_prm", seed=11
    )


def make_step_rewards(logits: torch.Tensor, token_masks: torch.Tensor) -> list[list[float]]:
    """fsdp_workers.py lines 1358-1367 (and ReasonFlux_PRM/utils/rm_utils.py lines 7-16)."""
    probabilities = torch.nn.functional.softmax(logits, dim=-1)
    probabilities = probabilities * token_masks.unsqueeze(-1)
    all_scores_res = []
    for i in range(probabilities.size(0)):
        sample = probabilities[i]
        positive_probs = sample[sample != 0].view(-1, 2)[:, 1]
        non_zero_elements_list = positive_probs.cpu().tolist()
        all_scores_res.append(non_zero_elements_list)
    return all_scores_res


def reasonflux_trajectory_reward(model: Any, tokenizer: Any, prompt: str, response: str) -> float:
    chat = [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": "<extra_0>".join([response]) + "<extra_0>"},
    ]
    text = tokenizer.apply_chat_template(chat, add_generation_prompt=False, tokenize=False)
    input_ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        rm_score = model(input_ids=input_ids)
    step_sep_id = tokenizer.encode("<extra_0>")[0]
    token_masks = input_ids == step_sep_id
    return make_step_rewards(rm_score[0], token_masks)[0][0]


def test_trajectory_reward_is_reasonflux_s(reasonflux_dir: Path, traces: list[TraceInput]) -> None:
    scorer = build_scorer(
        "step_head",
        model_path=str(reasonflux_dir),
        params={"system_prompt": None, "trajectory": True, "max_batch_size": 8},
    )
    plain = build_scorer(
        "step_head", model_path=str(reasonflux_dir), params={"system_prompt": None}
    )
    results = scorer.score(traces[:4])
    for trace, result, steps_only in zip(traces[:4], results, plain.score(traces[:4]), strict=True):
        expected = reasonflux_trajectory_reward(
            scorer.model, scorer.tokenizer, trace.problem, "\n\n".join(trace.steps)
        )
        assert result.trajectory_score == pytest.approx(expected, abs=1e-5)
        assert result.scores == pytest.approx(steps_only.scores, abs=1e-5)
        assert steps_only.trajectory_score is None
    # A trajectory reward of its own, not the last step's score under another name.
    assert any(abs(r.trajectory_score - r.scores[-1]) > 1e-3 for r in results if r.trajectory_score)


def test_empty_trace_has_no_trajectory_reward(reasonflux_dir: Path) -> None:
    scorer = build_scorer("step_head", model_path=str(reasonflux_dir), params={"trajectory": True})
    [result] = scorer.score([TraceInput("q", [])])
    assert (result.steps, result.trajectory_score) == ([], None)


def test_value_head_says_it_has_no_trajectory_score(tiny_models: dict[str, Path]) -> None:
    with pytest.raises(ScorerError, match="value_head has no trajectory-level score"):
        build_scorer(
            "value_head", model_path=str(tiny_models["v_head"]), params={"trajectory": True}
        )


def test_response_score_is_the_response_part_alone(reasonflux_dir: Path) -> None:
    """A trajectory-response trace (thinking steps, then the final response): beside the
    trajectory reward (the whole output as one step, as fsdp_workers scores a policy's output),
    the response-level score is the same reading of the response part alone. A trace without a
    thinking part (all response: the response IS the trajectory), or without parts, has none."""
    scorer = build_scorer(
        "step_head",
        model_path=str(reasonflux_dir),
        params={"system_prompt": None, "trajectory": True},
    )
    mixed = TraceInput(
        "What is 2 + 3?",
        ["I add 2 and 3.", "That is 5.", "2 + 3 = 5.", "The answer is 5."],
        parts=["thinking", "thinking", "response", "response"],
        key="mixed",
    )
    thinking_only = TraceInput("q", ["a", "b"], parts=["thinking", "thinking"], key="t")
    plain = TraceInput("What is 2 + 3?", ["2 + 3 = 5.", "The answer is 5."], key="plain")
    all_response = TraceInput(
        "What is 2 + 3?", ["2 + 3 = 5.", "The answer is 5."], parts=["response"] * 2, key="r"
    )
    results = {r.key: r for r in scorer.score([mixed, thinking_only, plain, all_response])}
    expected = reasonflux_trajectory_reward(
        scorer.model, scorer.tokenizer, mixed.problem, "2 + 3 = 5.\n\nThe answer is 5."
    )
    assert results["mixed"].response_score == pytest.approx(expected, abs=1e-5)
    whole = reasonflux_trajectory_reward(
        scorer.model, scorer.tokenizer, mixed.problem, "\n\n".join(mixed.steps)
    )
    assert results["mixed"].trajectory_score == pytest.approx(whole, abs=1e-5)
    assert abs(results["mixed"].response_score - results["mixed"].trajectory_score) > 1e-4
    assert [results[k].response_score for k in ("t", "plain", "r")] == [None, None, None]
    assert results["r"].trajectory_score is not None
