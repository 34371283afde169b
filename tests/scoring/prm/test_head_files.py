"""Heads are read from either weight-file kind, and a head the backend needs that is not in the
checkpoint is refused, never initialised at random (issue 13, item 1).

Skywork-o1-Open-PRM's official repos ship ``pytorch_model.bin``; its reference code
(skywork-o1-prm-inference, ``model_utils/prm_model.py``: ``self.v_head = ValueHead(...)``,
``value = self.v_head(last_hidden_state)``, ``sigmoid``) reads the same ``v_head.summary``
tensors whatever the file kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from scoring.prm import TraceInput, build_scorer
from scoring.prm.contract import ModelLoadError

BIG_BUDGET = {"max_tokens": 1_000_000, "max_batch_size": 64}


@pytest.fixture(scope="module")
def skywork_bin(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> Path:
    from scoring.prm.tiny import save_tiny_model

    return save_tiny_model(
        tmp_path_factory.mktemp("skywork-bin") / "m",
        tokenizer,
        kind="v_head",
        seed=4,
        weights="bin",
    )


def skywork_reference(path: Path, enc: Any) -> list[float]:
    """Skywork's ``PRM_MODEL``: the decoder's last hidden state, ``v_head.summary`` (a Linear
    read straight out of ``pytorch_model.bin``), sigmoid, at each reward flag."""
    from transformers import Qwen2ForCausalLM

    tensors = torch.load(str(path / "pytorch_model.bin"), weights_only=True)
    decoder = Qwen2ForCausalLM.from_pretrained(str(path), local_files_only=True).eval()
    with torch.inference_mode():
        hidden = decoder.model(input_ids=torch.tensor([enc.input_ids])).last_hidden_state[0]
        value = hidden @ tensors["v_head.summary.weight"].T + tensors["v_head.summary.bias"]
    return torch.sigmoid(value[enc.positions, 0]).tolist()


def test_skywork_checkpoint_in_pytorch_model_bin_is_scored_with_its_v_head(
    skywork_bin: Path, traces: list[TraceInput]
) -> None:
    assert not list(skywork_bin.glob("*.safetensors"))
    assert (skywork_bin / "pytorch_model.bin").is_file()
    scorer = build_scorer("value_head", model_path=str(skywork_bin), params=BIG_BUDGET)
    for trace, result in zip(traces[:3], scorer.score(traces[:3]), strict=True):
        expected = skywork_reference(skywork_bin, scorer.encode(trace))
        assert result.scores == pytest.approx(expected, abs=1e-5)


def test_both_file_kinds_give_the_same_scores(
    skywork_bin: Path, tiny_models: dict[str, Path], traces: list[TraceInput]
) -> None:
    # Same seed, same tokenizer: the same tensors in the two file kinds.
    from_bin = build_scorer("value_head", model_path=str(skywork_bin), params=BIG_BUDGET)
    from_safetensors = build_scorer(
        "value_head", model_path=str(tiny_models["v_head"]), params=BIG_BUDGET
    )
    for a, b in zip(from_bin.score(traces), from_safetensors.score(traces), strict=True):
        assert a.scores == pytest.approx(b.scores, abs=1e-6)


@pytest.mark.parametrize(
    ("backend", "checkpoint", "params", "missing"),
    [
        # value_head, auto: no v_head and no token-classification head either
        ("value_head", "causal_lm", {}, ["score.weight", "v_head.summary.weight"]),
        ("value_head", "causal_lm", {"head": "v_head"}, ["v_head.summary.weight"]),
        ("value_head", "step_head", {"head": "v_head"}, ["v_head.summary.weight"]),
        # a causal LM read through a token-classification head it does not have
        ("step_head", "causal_lm", {"model_class": "token_classification"}, ["score.weight"]),
        # a token-classification checkpoint has no LM head for the good/bad or Yes/No logits
        ("token_tag", "step_head", {}, ["lm_head.weight"]),
        ("generative", "step_head", {}, ["lm_head.weight"]),
    ],
)
def test_a_backend_whose_head_is_not_in_the_checkpoint_refuses_to_load(
    tiny_models: dict[str, Path],
    backend: str,
    checkpoint: str,
    params: dict[str, Any],
    missing: list[str],
) -> None:
    path = tiny_models[checkpoint]
    with pytest.raises(ModelLoadError) as err:
        build_scorer(backend, model_path=str(path), params=params)
    message = str(err.value)
    assert str(path) in message
    for key in missing:
        assert key in message


def test_a_skywork_bin_checkpoint_without_its_head_names_the_file_it_read(
    tmp_path: Path, skywork_bin: Path
) -> None:
    import shutil

    bare = tmp_path / "no-head"
    shutil.copytree(skywork_bin, bare)
    tensors = torch.load(str(bare / "pytorch_model.bin"), weights_only=True)
    del tensors["v_head.summary.weight"], tensors["v_head.summary.bias"]
    torch.save(tensors, str(bare / "pytorch_model.bin"))
    with pytest.raises(ModelLoadError) as err:
        build_scorer("value_head", model_path=str(bare))
    assert "pytorch_model.bin" in str(err.value) and "v_head.summary.weight" in str(err.value)


def test_a_legacy_format_bin_and_a_repo_with_both_kinds_read_the_file_transformers_reads(
    tmp_path: Path, skywork_bin: Path, tiny_models: dict[str, Path], traces: list[TraceInput]
) -> None:
    import shutil

    # pytorch_model.bin in the pre-1.6 (non-zip) format: cannot be memory-mapped, still read.
    legacy = tmp_path / "legacy"
    shutil.copytree(skywork_bin, legacy)
    tensors = torch.load(str(legacy / "pytorch_model.bin"), weights_only=True)
    torch.save(tensors, str(legacy / "pytorch_model.bin"), _use_new_zipfile_serialization=False)
    expected = build_scorer("value_head", model_path=str(skywork_bin)).score(traces[:2])
    got = build_scorer("value_head", model_path=str(legacy)).score(traces[:2])
    for a, b in zip(got, expected, strict=True):
        assert a.scores == pytest.approx(b.scores, abs=1e-6)

    # Both kinds in one directory: transformers loads the safetensors, and so is the v_head read
    # (a stale .bin beside it with another head changes nothing).
    both = tmp_path / "both"
    shutil.copytree(tiny_models["v_head"], both)
    stale = dict(tensors)
    stale["v_head.summary.weight"] = -stale["v_head.summary.weight"]
    torch.save(stale, str(both / "pytorch_model.bin"))
    reference = build_scorer("value_head", model_path=str(tiny_models["v_head"]))
    for a, b in zip(
        build_scorer("value_head", model_path=str(both)).score(traces[:2]),
        reference.score(traces[:2]),
        strict=True,
    ):
        assert a.scores == pytest.approx(b.scores, abs=1e-6)
