"""A steplens step that holds several lines is read where Skywork's own code reads its last line
(issue 13, item 4).

Skywork-o1-Open-PRM's ``prepare_input`` (skywork-o1-prm-inference, ``model_utils/io_utils.py``
lines 4-23, transcribed below) splits the response on every step token ("\\n"), encodes each line
alone, follows it with the step token and flags that token; a line is its "step".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from scoring.prm import TraceInput, build_scorer


def prepare_input(problem: str, response: str, tokenizer: Any, step_token: str) -> Any:
    """skywork-o1-prm-inference/model_utils/io_utils.py lines 4-23, verbatim but for the BOS
    (the tiny tokenizer has none; the engine writes ``bos_token or ""``)."""
    prompt_ids = tokenizer.encode((tokenizer.bos_token or "") + problem + "\n")
    response_ids = []
    steps = []
    reward_flags = [0] * len(prompt_ids)
    step_token_id = tokenizer.encode(step_token)[-1]
    for _idx, step in enumerate(response.split(step_token)):
        if step != "":  # noqa: SIM108 (verbatim)
            step_ids = tokenizer.encode(step)
        else:
            step_ids = []
        step_ids += [step_token_id]
        step = step + step_token
        flag = [0] * len(step_ids)
        flag[-1] = 1
        response_ids.extend(step_ids)
        reward_flags.extend(flag)
        steps.append(step)
    input_ids = prompt_ids + response_ids
    return input_ids, steps, reward_flags


# Skywork's README example response (its first data row), as steplens steps: a header line and
# the lines under it are one step; one step holds an empty line.
README_STEPS = [
    "To determine how much money Janet makes every day at the farmers' market, we need to follow these steps:",
    "1. **Calculate the total number of eggs laid by the ducks per day.**\n   Janet's ducks lay 16 eggs per day.",
    "2. **Determine the number of eggs Janet uses each day.**\n   - She eats 3 eggs for breakfast every morning.\n   - She bakes muffins for her friends every day with 4 eggs.\n   So, the total number of eggs used per day is:\n   \\[\n   3 + 4 = 7 \\text{ eggs}\n   \\]",
    "3. **Calculate the number of eggs Janet sells.**\n\n   16 - 7 = 9 eggs",
    "Therefore, the amount of money Janet makes every day at the farmers' market is \\(\\boxed{18}\\).",
]  # fmt: skip
PROBLEM = "Janet\u2019s ducks lay 16 eggs per day. How much in dollars does she make every day?"


@pytest.fixture(scope="module")
def skywork_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Skywork-layout PRM whose tokenizer (loaded as Qwen2's, as Skywork's is) has, like
    Qwen2.5's, one token for a blank line ("\\n\\n"), so that a step holding a blank line
    encoded whole and line by line give different ids."""
    from scoring.prm.tiny import save_tiny_model, train_tokenizer

    corpus = [PROBLEM, *["\n".join(README_STEPS)] * 50, *["so.\n\n Then"] * 200]
    tokenizer = train_tokenizer(corpus, vocab_size=600)
    return save_tiny_model(tmp_path_factory.mktemp("skywork-lines") / "m", tokenizer, kind="v_head")


def test_multi_line_steps_are_laid_out_and_read_as_skywork_reads_their_last_line(
    skywork_dir: Path,
) -> None:
    path = skywork_dir
    scorer = build_scorer("value_head", model_path=str(path))
    trace = TraceInput(PROBLEM, README_STEPS)
    input_ids, lines, flags = prepare_input(
        PROBLEM, "\n".join(README_STEPS), scorer.tokenizer, "\n"
    )
    tokenizer = scorer.tokenizer
    newline = tokenizer.encode("\n")
    prompt_ids = tokenizer.encode(PROBLEM + "\n")
    whole = [i for step in README_STEPS for i in [*tokenizer.encode(step), *newline]]
    assert prompt_ids + whole != input_ids  # encoding a step whole is not Skywork's layout
    enc = scorer.encode(trace)
    assert enc.input_ids == input_ids
    flagged = [i for i, f in enumerate(flags) if f == 1]
    assert len(flagged) == len(lines) == sum(s.count("\n") + 1 for s in README_STEPS)
    last_line = []
    seen = 0
    for step in README_STEPS:
        seen += step.count("\n") + 1
        last_line.append(flagged[seen - 1])
    assert enc.positions == last_line

    # Skywork's derive_step_rewards on its own layout, at each step's last line.
    tensors = _v_head(path)
    with torch.inference_mode():
        hidden = scorer.model(input_ids=torch.tensor([input_ids])).last_hidden_state[0]
        rewards = torch.sigmoid(hidden @ tensors["weight"].T + tensors["bias"])[:, 0]
    [result] = scorer.score([trace])
    assert result.scores == pytest.approx(rewards[last_line].tolist(), abs=1e-5)


def _v_head(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    tensors = load_file(str(path / "model.safetensors"))
    return {k.split("v_head.summary.")[1]: v for k, v in tensors.items() if "v_head.summary." in k}
