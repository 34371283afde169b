"""PRM training throughput on a GPU against the arithmetic bound.

    python -m benchmarks.train_throughput                    # CUDA, bf16, Qwen2.5-1.5B shape
    python -m benchmarks.train_throughput --tiny             # smoke run (automatic without CUDA)

A Qwen2.5-1.5B-shaped token-classification PRM (random weights: speed does not depend on the
values) is trained for ``--steps`` optimizer steps on random token rows, with a label every
``--label-every`` tokens, through the engine's own training step
(``scoring.prm.training.make_trainer``: TRL's PRMTrainer, token-budget batches, bf16 mixed
precision on CUDA). Reported:

- the measured matrix-multiply rate (a square ``dtype`` matmul, median of repeats);
- the bound: that rate / (6 x non-embedding parameters) tokens per second (forward 2, backward
  4 FLOPs per parameter per token; an embedding row is a lookup, not a matmul; attention's own
  FLOPs and the optimizer are not in the bound, so they can only lower the fraction);
- tokens per second over the timed steps (the first ``--warmup`` steps are not timed) and the
  fraction of the bound (target: 40% or more).

The last line printed is a JSON object with all of it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.gpu_throughput import SHAPES, matmul_rate, sync


def random_rows(n: int, length: int, vocab: int, label_every: int, seed: int) -> list[Any]:
    """``n`` rows of ``length`` random ids, a random 0/1 label every ``label_every`` tokens."""
    from scoring.prm.training import IGNORE_INDEX, TokenizedRow

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        ids = [rng.randrange(vocab) for _ in range(length)]
        labels = [
            rng.randrange(2) if (i + 1) % label_every == 0 else IGNORE_INDEX for i in range(length)
        ]
        rows.append(TokenizedRow(ids, labels, length // label_every, False))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shape on the CPU (smoke run)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default=None)
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --tiny")
    parser.add_argument("--dtype", default=None, choices=["bf16", "fp32"])
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--batch-tokens", type=int, default=32768)
    parser.add_argument("--label-every", type=int, default=64)
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args(argv)

    import torch
    import transformers

    from scoring.prm.loading import DTYPES
    from scoring.prm.training import TrainParams, make_trainer

    tiny = args.tiny or not torch.cuda.is_available()
    shape_name = args.shape or ("tiny" if tiny else "qwen2.5-1.5b")
    device_name = args.device or ("cpu" if tiny else "cuda")
    dtype_name = args.dtype or ("fp32" if device_name == "cpu" else "bf16")
    if tiny and args.matmul_size == parser.get_default("matmul_size"):
        args.matmul_size = 256
    if tiny and args.seq_len == parser.get_default("seq_len"):
        args.seq_len, args.batch_tokens = 256, 1024
    device = torch.device(device_name)
    transformers.utils.logging.disable_progress_bar()

    rate = matmul_rate(device, DTYPES[dtype_name], args.matmul_size, args.repeats)
    shape = SHAPES[shape_name]
    config = transformers.Qwen2Config(  # type: ignore[call-arg]
        **shape, tie_word_embeddings=False, pad_token_id=0, num_labels=2
    )
    config._attn_implementation = "sdpa"
    with torch.device(device):
        model = transformers.Qwen2ForTokenClassification(config)  # fp32 master weights
    params_total = sum(p.numel() for p in model.parameters())
    non_embedding = params_total - model.model.embed_tokens.weight.numel()

    steps = args.warmup + args.steps
    rows_per_step = max(1, args.batch_tokens // args.seq_len)
    rows = random_rows(
        rows_per_step * steps, args.seq_len, shape["vocab_size"], args.label_every, seed=0
    )
    params = TrainParams(
        epochs=1.0,
        learning_rate=1e-5,
        batch_tokens=args.batch_tokens,
        max_length=args.seq_len,
        device="cpu" if device.type == "cpu" else "cuda",
        dtype=dtype_name,
        gradient_checkpointing=args.gradient_checkpointing,
    )
    stamps: list[tuple[float, int]] = []
    losses: list[float] = []

    def on_progress(point: dict[str, Any]) -> None:
        sync(device)  # the loss was read already; wait for the optimizer step too
        stamps.append((time.perf_counter(), point["tokens_seen"]))
        losses.append(point["loss"])

    with tempfile.TemporaryDirectory(prefix="steplens-train-bench-") as tmp:
        trainer, _ = make_trainer(
            model,
            rows,
            params,
            device=params.device,
            scratch=Path(tmp),
            pad_id=0,
            on_progress=on_progress,
            max_steps=steps,
        )
        trainer.train()
    if len(stamps) <= args.warmup:
        raise SystemExit(f"only {len(stamps)} steps ran")
    first = max(args.warmup, 1) - 1  # timing starts when this step has finished
    (t0, tok0), (t1, tok1) = stamps[first], stamps[-1]
    timed_steps = len(stamps) - 1 - first
    tokens_per_s = (tok1 - tok0) / (t1 - t0)
    bound = rate / (6 * non_embedding)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak_gib = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    print(
        f"device {name}, {dtype_name}; shape {shape_name}: {non_embedding / 1e9:.3f} B non-embedding params"
    )
    print(
        f"matmul {args.matmul_size}^3: {rate / 1e12:.2f} TFLOP/s -> bound {bound:,.0f} tokens/s (6 x params)"
    )
    print(f"{timed_steps} timed steps of {rows_per_step} x {args.seq_len} tokens: {tokens_per_s:,.0f} tokens/s"
          f" = {100 * tokens_per_s / bound:.1f}% of the bound")  # fmt: skip
    print(
        json.dumps(
            {
                "benchmark": "train_throughput",
                "device": name,
                "dtype": dtype_name,
                "shape": shape_name,
                "params": params_total,
                "non_embedding_params": non_embedding,
                "matmul_tflops": round(rate / 1e12, 3),
                "bound_tokens_per_s": round(bound, 1),
                "seq_len": args.seq_len,
                "rows_per_step": rows_per_step,
                "timed_steps": timed_steps,
                "timed_seconds": round(t1 - t0, 4),
                "tokens_per_s": round(tokens_per_s, 1),
                "fraction_of_bound": round(tokens_per_s / bound, 4),
                "gradient_checkpointing": args.gradient_checkpointing,
                "peak_memory_gib": round(peak_gib, 2) if peak_gib is not None else None,
                "final_loss": losses[-1],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
