"""Tiny offline PRMs (random weights) for tests, benchmarks and demos; no hub access.

A byte-level BPE tokenizer is trained on the given texts with the ``tokenizers`` library, wrapped
as a PreTrainedTokenizerFast with a ChatML chat template and the PRM special tokens, and saved
with ``save_pretrained`` next to a few-layer Qwen2 model, so that the engine loads it through the
same ``from_pretrained`` path as a real checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<extra_0>"]
# Math-Shepherd's tag is an ordinary word piece in its tokenizer; here it is an added (not
# special) token so that encode("ки") equals the tag inside text, as the reference assumes.
TAG_TOKENS = ["ки"]
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)


def train_tokenizer(texts: Iterable[str], *, vocab_size: int = 1024) -> Any:
    """A byte-level BPE tokenizer trained on ``texts`` (a PreTrainedTokenizerFast)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in TAG_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<extra_0>"],
        chat_template=CHATML_TEMPLATE,
    )


def tiny_config(
    tokenizer: Any,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    num_labels: int = 2,
    initializer_range: float = 0.2,
) -> Any:
    """A Qwen2 config; a large ``initializer_range`` spreads the random scores over [0, 1],
    so that tests comparing scores can tell positions apart."""
    from transformers import Qwen2Config

    return Qwen2Config(  # type: ignore[call-arg]  # num_labels goes through **kwargs
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=16384,
        initializer_range=initializer_range,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        num_labels=num_labels,
    )


def save_tiny_model(
    directory: str | Path,
    tokenizer: Any,
    *,
    kind: str = "token_classification",
    seed: int = 0,
    **config_kwargs: Any,
) -> Path:
    """Save a random tiny model + tokenizer with ``save_pretrained``.

    ``kind``: ``token_classification`` (step head; ``num_labels=1`` for a scalar value head),
    ``causal_lm`` (token tag / generative), ``v_head`` (Skywork-o1-Open-PRM's layout:
    causal-LM weights plus ``v_head.summary`` in one file, architectures ``Qwen2ForPrmModel``),
    ``qwen2_prm`` (Qwen2.5-Math-PRM's layout: ``Qwen2ForProcessRewardModel`` with its
    ``score.0`` / ``score.2`` MLP head).
    """
    import transformers as tf
    from safetensors.torch import load_file, save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = tiny_config(tokenizer, **config_kwargs)
    torch.manual_seed(seed)
    model: Any
    if kind == "token_classification":
        model = tf.Qwen2ForTokenClassification(config)
    elif kind == "causal_lm":
        model = tf.Qwen2ForCausalLM(config)
    elif kind == "qwen2_prm":
        from scoring.prm.qwen_prm import process_reward_model_class

        model = process_reward_model_class()(config)
        for layer in (model.score[0], model.score[2]):  # spread the random scores over [0, 1]
            torch.nn.init.normal_(layer.weight, std=config.initializer_range)
    elif kind == "v_head":
        # Skywork-o1-Open-PRM's layout: the weights of a causal LM (``model.*``, ``lm_head.*``)
        # and ``v_head.summary.*`` in the same file, architectures ``Qwen2ForPrmModel``.
        model = tf.Qwen2ForCausalLM(config)
        head = torch.nn.Linear(config.hidden_size, 1)
        torch.nn.init.normal_(head.weight, std=0.5)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    model.eval()
    model.save_pretrained(str(directory))  # (writes architectures: its own class name)
    tokenizer.save_pretrained(str(directory))
    if kind == "v_head":
        config_file = directory / "config.json"
        saved = json.loads(config_file.read_text(encoding="utf-8"))
        saved["architectures"] = ["Qwen2ForPrmModel"]
        config_file.write_text(json.dumps(saved, indent=2), encoding="utf-8")
        weights = load_file(str(directory / "model.safetensors"))
        weights["v_head.summary.weight"] = head.weight.detach().clone()
        weights["v_head.summary.bias"] = head.bias.detach().clone()
        save_file(weights, str(directory / "model.safetensors"), metadata={"format": "pt"})
    return directory
