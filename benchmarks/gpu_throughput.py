"""Step-head PRM throughput on a GPU against the arithmetic bound.

    python -m benchmarks.gpu_throughput                       # CUDA, bf16, Qwen2.5-1.5B shape
    python -m benchmarks.gpu_throughput --shape tiny --device cpu --dtype fp32   # smoke run

A Qwen2.5-Math-PRM-shaped model (``Qwen2ForProcessRewardModel``: the Qwen2 decoder + the
``score`` MLP head) with the Qwen2.5-1.5B decoder's dimensions and random weights (speed does
not depend on the values) is saved with ``save_pretrained`` and loaded through the engine
(``build_scorer("step_head")``), then scores real ProcessBench traces in token-budget
micro-batches. Reported:

- the measured matrix-multiply rate (a square ``dtype`` matmul, median of repeats);
- the bound: that rate / (2 x non-embedding parameters) tokens per second (an embedding row is
  a lookup, not a matmul; attention's own FLOPs are not in the bound, so long traces can only
  lower the fraction);
- tokens per second of the engine (real tokens, padding not counted) and its fraction of the
  bound (target: 50% or more);
- the same traces scored one step prefix at a time (the naive way), for the batched/naive ratio.

The last line printed is a JSON object with all of it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.scoring_throughput import load_sample, max_abs_diff, naive_scores

SHAPES: dict[str, dict[str, Any]] = {
    # Qwen2.5-1.5B (and Qwen2.5-Math-1.5B): the decoder dimensions of its config.json.
    "qwen2.5-1.5b": {
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
    },
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 4096,
        "max_position_embeddings": 16384,
    },
}


def sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: Any, dtype: Any, size: int, repeats: int) -> float:
    """FLOP/s of one square matmul of ``size``, median over ``repeats`` timed runs."""
    import torch

    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        sync(device)
        times.append((time.perf_counter() - start) / 10)
    return 2 * size**3 / statistics.median(times)


def save_model(
    directory: Path, shape: dict[str, Any], tokenizer: Any, device: Any, dtype: Any
) -> int:
    """Save a random PRM of ``shape``; return its non-embedding parameter count."""
    import torch
    from transformers import Qwen2Config

    from scoring.prm.qwen_prm import process_reward_model_class

    config = Qwen2Config(  # type: ignore[call-arg]
        **shape,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        num_labels=2,
    )
    with torch.device(device):
        model = process_reward_model_class()(config).to(dtype)
    params = sum(p.numel() for p in model.parameters())
    non_embedding = params - model.model.embed_tokens.weight.numel()
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    del model
    return non_embedding


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-1.5b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    parser.add_argument(
        "--per-subset", type=int, default=100, help="ProcessBench traces per subset"
    )
    parser.add_argument("--max-tokens", type=int, default=32768, help="batch token budget")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-traces", type=int, default=40, help="traces for the naive way")
    parser.add_argument("--matmul-size", type=int, default=8192)
    args = parser.parse_args(argv)

    import torch

    from scoring.prm import TraceInput, build_scorer
    from scoring.prm.loading import DTYPES
    from scoring.prm.tiny import train_tokenizer

    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    records, corpus = load_sample(args.per_subset)
    traces = [TraceInput(r["problem"], r["steps"], key=r["id"]) for r in records]
    rate = matmul_rate(device, dtype, args.matmul_size, args.repeats)

    with tempfile.TemporaryDirectory(prefix="steplens-gpu-bench-") as tmp:
        tokenizer = train_tokenizer(corpus, vocab_size=2048)
        non_embedding = save_model(Path(tmp) / "prm", SHAPES[args.shape], tokenizer, device, dtype)
        scorer: Any = build_scorer(
            "step_head",
            model_path=str(Path(tmp) / "prm"),
            device=args.device,
            dtype=args.dtype,
            params={"max_tokens": args.max_tokens},
        )
        tokens = sum(len(scorer.encode(t)) for t in traces)
        scorer.score(traces[:8])  # warm-up: kernels, allocator
        sync(device)
        timings, results = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            results = scorer.score(traces)
            sync(device)
            timings.append(time.perf_counter() - start)
        batched_s = statistics.median(timings)

        subset = traces[: args.naive_traces]
        start = time.perf_counter()
        subset_batched = [r.scores for r in scorer.score(subset)]
        sync(device)
        subset_batched_s = time.perf_counter() - start
        start = time.perf_counter()
        naive = naive_scores(scorer, subset)
        sync(device)
        naive_s = time.perf_counter() - start

    diff = max_abs_diff(subset_batched, naive)
    tokens_per_s = tokens / batched_s
    bound = rate / (2 * non_embedding)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"device {name}, {args.dtype}; shape {args.shape}: {non_embedding / 1e9:.3f} B non-embedding params"
    )
    print(f"matmul {args.matmul_size}^3: {rate / 1e12:.1f} TFLOP/s -> bound {bound:,.0f} tokens/s")
    print(f"{len(traces)} traces, {tokens:,} tokens: median {batched_s:.3f} s over {args.repeats}"
          f" = {tokens_per_s:,.0f} tokens/s, {100 * tokens_per_s / bound:.1f}% of the bound")  # fmt: skip
    print(f"naive on {len(subset)} traces: {naive_s:.2f} s vs batched {subset_batched_s:.2f} s"
          f" = {naive_s / subset_batched_s:.2f}x; max |diff| {diff:.2e} ({args.dtype})")  # fmt: skip
    print(
        json.dumps(
            {
                "benchmark": "gpu_throughput",
                "device": name,
                "dtype": args.dtype,
                "shape": args.shape,
                "non_embedding_params": non_embedding,
                "matmul_tflops": round(rate / 1e12, 2),
                "bound_tokens_per_s": round(bound, 1),
                "traces": len(traces),
                "tokens": tokens,
                "batched_seconds": round(batched_s, 4),
                "tokens_per_s": round(tokens_per_s, 1),
                "fraction_of_bound": round(tokens_per_s / bound, 4),
                "naive_traces": len(subset),
                "naive_seconds": round(naive_s, 4),
                "batched_seconds_naive_sample": round(subset_batched_s, 4),
                "batched_vs_naive_ratio": round(naive_s / subset_batched_s, 2),
                "max_abs_diff": diff,
                "max_tokens": args.max_tokens,
                "steps_scored": sum(len(r.steps) for r in results),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
