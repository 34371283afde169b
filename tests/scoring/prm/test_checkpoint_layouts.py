"""Qwen2.5-Math-PRM checkpoints (``Qwen2ForProcessRewardModel``: a Qwen2 decoder + an MLP head
saved as ``score.0`` / ``score.2``) load with their head and score like the model card, with or
without the checkpoint's own modelling code; a checkpoint loaded without its head is refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from scoring.prm import TraceInput, build_scorer
from scoring.prm.contract import ModelLoadError
from scoring.prm.formatting import prefix_trace

BIG_BUDGET = {"max_tokens": 1_000_000, "max_batch_size": 64}


@pytest.fixture(scope="module")
def qwen_prm_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> Path:
    from scoring.prm.tiny import save_tiny_model

    return save_tiny_model(
        tmp_path_factory.mktemp("qwen-prm") / "m", tokenizer, kind="qwen2_prm", seed=5
    )


def head_by_hand(path: Path, input_ids: torch.Tensor) -> torch.Tensor:
    """The checkpoint's logits computed without the engine's class: the decoder loaded as a
    plain Qwen2Model, the head applied from the tensors read straight out of the file."""
    from safetensors.torch import load_file
    from transformers import Qwen2Model

    decoder = Qwen2Model.from_pretrained(str(path), local_files_only=True).eval()
    tensors = load_file(str(path / "model.safetensors"))
    with torch.inference_mode():
        hidden = decoder(input_ids=input_ids).last_hidden_state
        inner = torch.relu(hidden @ tensors["score.0.weight"].T + tensors["score.0.bias"])
        return inner @ tensors["score.2.weight"].T + tensors["score.2.bias"]


def model_card_scores(scorer: Any, path: Path, trace: TraceInput) -> list[float]:
    """What the model card computes: softmax at the <extra_0> tokens, class 1, from one pass
    over the whole conversation -- here checked prefix by prefix with the hand-built head."""
    out = []
    for i in range(len(trace.steps)):
        enc = scorer.encode(prefix_trace(trace, i + 1))
        logits = head_by_hand(path, torch.tensor([enc.input_ids]))[0]
        out.append(torch.softmax(logits[enc.positions[-1]], dim=-1)[1].item())
    return out


def test_checkpoint_names_the_qwen_architecture_and_head_weights(qwen_prm_dir):
    config = json.loads((qwen_prm_dir / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForProcessRewardModel"]
    assert config["model_type"] == "qwen2"
    from safetensors import safe_open

    with safe_open(str(qwen_prm_dir / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    assert {"score.0.weight", "score.0.bias", "score.2.weight", "score.2.bias"} <= keys
    assert "model.embed_tokens.weight" in keys


def test_loads_with_its_head_without_remote_code_and_scores_like_the_model_card(
    qwen_prm_dir, traces
):
    scorer = build_scorer("step_head", model_path=str(qwen_prm_dir), params=BIG_BUDGET)
    assert type(scorer.model).__name__ == "Qwen2ForProcessRewardModel"
    results = scorer.score(traces[:3])
    all_scores = []
    for trace, result in zip(traces[:3], results, strict=True):
        expected = model_card_scores(scorer, qwen_prm_dir, trace)
        assert result.scores == pytest.approx(expected, abs=1e-5)
        all_scores += result.scores
    # The head's weights were loaded, not freshly initialised: the hand-built head (from the
    # file's tensors) agrees, and the random scores are spread out so positions are told apart.
    assert max(all_scores) - min(all_scores) > 0.2


def test_a_checkpoint_loaded_without_its_head_is_refused(qwen_prm_dir):
    with pytest.raises(ModelLoadError) as err:
        build_scorer("step_head", model_path=str(qwen_prm_dir), params={"model_class": "base"})
    message = str(err.value)
    assert str(qwen_prm_dir) in message
    assert "Qwen2Model" in message and "without a scoring head" in message


REMOTE_CODE = '''"""A checkpoint's own modelling file, loaded by AutoModel with trust_remote_code."""
from scoring.prm.qwen_prm import process_reward_model_class

Qwen2ForProcessRewardModel = process_reward_model_class()
'''


def test_trust_remote_code_loads_the_checkpoints_own_file(qwen_prm_dir, tmp_path, traces):
    import shutil

    remote = tmp_path / "with-remote-code"
    shutil.copytree(qwen_prm_dir, remote)
    config = json.loads((remote / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_prm_remote.Qwen2ForProcessRewardModel"}
    (remote / "config.json").write_text(json.dumps(config))
    (remote / "modeling_prm_remote.py").write_text(REMOTE_CODE)

    built_in = build_scorer("step_head", model_path=str(qwen_prm_dir))
    own_code = build_scorer("step_head", model_path=str(remote), params={"trust_remote_code": True})
    # AutoModel went through the checkpoint's auto_map and imported its file.
    assert any(name.endswith("modeling_prm_remote") for name in sys.modules)
    for ours, theirs in zip(own_code.score(traces[:2]), built_in.score(traces[:2]), strict=True):
        assert ours.scores == pytest.approx(theirs.scores, abs=1e-6)


def test_skywork_layout_loads_decoder_and_v_head_from_one_file(tiny_models, traces):
    """Skywork-o1-Open-PRM: ``model.*`` + ``lm_head.*`` + ``v_head.summary.*`` in one file,
    architectures Qwen2ForPrmModel. The decoder's weights are the file's (not a fresh init) and
    the score is sigmoid(v_head(hidden)) at each step's flag token."""
    from safetensors.torch import load_file
    from transformers import Qwen2ForCausalLM

    path = tiny_models["v_head"]
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForPrmModel"]
    tensors = load_file(str(path / "model.safetensors"))
    assert "model.embed_tokens.weight" in tensors and "v_head.summary.weight" in tensors

    scorer = build_scorer("value_head", model_path=str(path), params=BIG_BUDGET)
    reference = Qwen2ForCausalLM.from_pretrained(str(path), local_files_only=True).eval()
    trace = traces[1]
    enc = scorer.encode(trace)
    ids = torch.tensor([enc.input_ids])
    with torch.inference_mode():
        ours = scorer.model(input_ids=ids).last_hidden_state[0]
        theirs = reference.model(input_ids=ids).last_hidden_state[0]
        assert torch.allclose(ours, theirs, atol=1e-5)
        by_hand = torch.sigmoid(
            theirs[enc.positions] @ tensors["v_head.summary.weight"].T
            + tensors["v_head.summary.bias"]
        )[:, 0].tolist()
    [result] = scorer.score([trace])
    assert result.scores == pytest.approx(by_hand, abs=1e-5)
