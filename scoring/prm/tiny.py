"""Tiny offline PRMs (random weights) for tests, benchmarks and demos; no hub access.

A byte-level BPE tokenizer is trained on the given texts with the ``tokenizers`` library, wrapped
as a PreTrainedTokenizerFast with a ChatML chat template and the PRM special tokens, and saved
with ``save_pretrained`` next to a few-layer Qwen2 model, so that the engine loads it through the
same ``from_pretrained`` path as a real checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
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
    weights: str = "safetensors",
    **config_kwargs: Any,
) -> Path:
    """Save a random tiny model + tokenizer with ``save_pretrained``.

    ``kind``: ``token_classification`` (step head; ``num_labels=1`` for a scalar value head),
    ``causal_lm`` (token tag / generative), ``v_head`` (Skywork-o1-Open-PRM's layout:
    causal-LM weights plus ``v_head.summary`` in one file, architectures ``Qwen2ForPrmModel``),
    ``qwen2_prm`` (Qwen2.5-Math-PRM's layout: ``Qwen2ForProcessRewardModel`` with its
    ``score.0`` / ``score.2`` MLP head). ``weights="bin"`` writes the same tensors as one
    ``pytorch_model.bin`` instead of ``model.safetensors`` (Skywork's official repos ship that).
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
        tensors = load_file(str(directory / "model.safetensors"))
        tensors["v_head.summary.weight"] = head.weight.detach().clone()
        tensors["v_head.summary.bias"] = head.bias.detach().clone()
        save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    if weights == "bin":
        safetensors_file = directory / "model.safetensors"
        torch.save(load_file(str(safetensors_file)), str(directory / "pytorch_model.bin"))
        safetensors_file.unlink()
    elif weights != "safetensors":
        raise ValueError(f"unknown weights format {weights!r} (safetensors | bin)")
    return directory


# --- a tiny base to TRAIN from (scoring.prm.training, base "tiny") -------------------------------

# Bigger than the test models' default shape (hidden 64): enough capacity to learn step-level
# cues from a few thousand traces, still seconds per thousand steps on two CPU cores.
TRAIN_BASE_SHAPE: dict[str, int] = {
    "hidden_size": 128,
    "num_layers": 2,
    "num_heads": 4,
    "num_kv_heads": 2,
}
# A trained model starts from the usual small initialisation, not the test models' spread one.
TRAIN_INITIALIZER_RANGE = 0.02


def pack_lm_chunks(tokenizer: Any, texts: Iterable[str], *, seq_len: int) -> list[list[int]]:
    """Texts tokenised, each followed by the end-of-text id, concatenated and cut into chunks of
    ``seq_len`` ids (the last, shorter chunk is dropped unless it is the only one).

    >>> class Tok:
    ...     eos_token_id = 0
    ...     def __call__(self, text, add_special_tokens=False):
    ...         return {"input_ids": [ord(c) for c in text]}
    >>> pack_lm_chunks(Tok(), ["ab", "cde"], seq_len=3)
    [[97, 98, 0], [99, 100, 101]]
    """
    stream: list[int] = []
    for text in texts:
        stream.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        stream.append(tokenizer.eos_token_id)
    chunks = [stream[i : i + seq_len] for i in range(0, len(stream), seq_len)]
    if len(chunks) > 1 and len(chunks[-1]) < seq_len:
        chunks.pop()
    return chunks


def pretrain_causal_lm(
    model: Any,
    tokenizer: Any,
    texts: Iterable[str],
    *,
    epochs: float = 1.0,
    seq_len: int = 256,
    batch_rows: int = 32,
    learning_rate: float = 3e-3,
    seed: int = 0,
    should_stop: Any = None,
) -> list[float]:
    """Next-token pre-training of a tiny causal LM on ``texts`` (AdamW, linear decay after a
    short warm-up); returns the loss per step. ``should_stop()`` is checked every step."""
    chunks = pack_lm_chunks(tokenizer, texts, seq_len=seq_len)
    generator = torch.Generator().manual_seed(seed)
    batches_per_epoch = max(1, len(chunks) // batch_rows)
    total = max(1, round(epochs * batches_per_epoch))
    warmup = max(1, total // 20)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    model.train()
    losses: list[float] = []
    order = torch.randperm(len(chunks), generator=generator)
    for step in range(total):
        if should_stop is not None and should_stop():
            break
        start = (step % batches_per_epoch) * batch_rows
        if start == 0 and step > 0:
            order = torch.randperm(len(chunks), generator=generator)
        rows = [chunks[int(i)] for i in order[start : start + batch_rows]]
        width = min(len(r) for r in rows)
        input_ids = torch.tensor([r[:width] for r in rows], dtype=torch.long)  # (B, T)
        loss = model(input_ids=input_ids, labels=input_ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def save_train_base(
    directory: str | Path,
    texts: Sequence[str],
    *,
    kind: str = "token_classification",
    vocab_size: int = 4096,
    shape: dict[str, int] | None = None,
    lm_epochs: float = 0.0,
    sliding_window: int = 0,
    seed: int = 0,
    should_stop: Any = None,
) -> Path:
    """A tiny base for training, built from ``texts`` (the training corpus) with no download: a
    tokenizer trained on the texts, a Qwen2 model of ``shape`` (default TRAIN_BASE_SHAPE) with a
    fresh head of ``kind`` (``token_classification`` or ``qwen2_prm``), optionally pre-trained as
    a language model on the texts for ``lm_epochs`` first; saved with ``save_pretrained``.
    ``sliding_window`` > 0 makes the first layer attend to that many recent tokens only (Qwen2's
    own sliding-window attention, kept in config.json), a cheap view of how long a step is."""
    import transformers as tf

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    config = tiny_config(
        tokenizer, initializer_range=TRAIN_INITIALIZER_RANGE, **(shape or TRAIN_BASE_SHAPE)
    )
    if sliding_window > 0:
        config.use_sliding_window = True
        config.sliding_window = sliding_window
        config.layer_types = ["sliding_attention"] + ["full_attention"] * (
            config.num_hidden_layers - 1
        )
    torch.manual_seed(seed)
    model: Any
    if kind == "token_classification":
        model = tf.Qwen2ForTokenClassification(config)
    elif kind == "qwen2_prm":
        from scoring.prm.qwen_prm import process_reward_model_class

        model = process_reward_model_class()(config)
    else:
        raise ValueError(f"unknown kind {kind!r} (token_classification | qwen2_prm)")
    if lm_epochs > 0:
        lm = tf.Qwen2ForCausalLM(config)
        lm.model.load_state_dict(model.model.state_dict())
        pretrain_causal_lm(
            lm, tokenizer, texts, epochs=lm_epochs, seed=seed, should_stop=should_stop
        )
        model.model.load_state_dict(lm.model.state_dict())
    model.eval()
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<prm>"]


def save_tiny_vlm(directory: str | Path, texts: Iterable[str], *, seed: int = 0) -> Path:
    """A random tiny vision-language model in Qwen2-VL's layout, saved with ``save_pretrained``
    (``Qwen2VLForConditionalGeneration``, its image processor, a tokenizer trained on ``texts``
    with Qwen2-VL's vision tokens, MM-PRM's ``<prm>`` tag and ``Yes``/``No`` as single tokens),
    so that the vision backend loads it as it loads a real checkpoint. Images are resized to
    56x56 pixels: 16 patches of 14, 4 image tokens after the 2x2 merge."""
    import transformers as tf
    from tokenizers import AddedToken

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts)
    tokenizer.add_tokens(
        [AddedToken(t, normalized=False, special=True) for t in VISION_TOKENS],
        special_tokens=True,
    )
    tokenizer.add_tokens(["Yes", "No"])
    image_processor = tf.Qwen2VLImageProcessorPil(
        min_pixels=56 * 56, max_pixels=56 * 56, patch_size=14, merge_size=2, temporal_patch_size=2
    )
    config = tf.Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
            "initializer_range": 0.2,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": None,
            "eos_token_id": tokenizer.eos_token_id,
        },
        vision_config={
            "depth": 1,
            "embed_dim": 32,
            "hidden_size": 64,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "in_channels": 3,
            "initializer_range": 0.2,
        },
        image_token_id=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tokenizer.convert_tokens_to_ids("<|vision_end|>"),
    )
    torch.manual_seed(seed)
    model = tf.Qwen2VLForConditionalGeneration(config).eval()
    model.save_pretrained(str(directory))
    image_processor.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory
