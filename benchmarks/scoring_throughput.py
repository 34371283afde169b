"""Scoring throughput: the engine's one-pass batched scoring vs one forward pass per prefix.

    python -m benchmarks.scoring_throughput [--quick]

Scores a deterministic sample of real ProcessBench traces with a tiny offline step-head PRM
(random weights, Qwen2 architecture, built into a temporary directory and loaded through the
engine's from_pretrained path), fp32 on CPU, both ways, with the same model:
- batched: ``scorer.score(traces)`` (one pass per trace, token-budget micro-batches);
- naive: for every step, the prefix ``steps[: i + 1]`` formatted alone and run alone, reading the
  last separator (what many reference scripts do).
Prints the timings (median of the repeats) and, as its last line, a JSON object with
``batched_vs_naive_ratio``, ``max_abs_diff`` (between the two ways' scores), ``naive_tokens`` and
``token_ratio`` (tokens the naive way processes over tokens the batched way processes: the bound
the speed-up meets on a compute-bound device, so the ratio can be read on any machine).
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

REPO_ROOT = Path(__file__).resolve().parent.parent
SUBSETS = ("gsm8k", "math", "olympiadbench", "omnimath")


def processbench_dir() -> Path:
    for candidate in (
        REPO_ROOT / "data" / "processbench",
        REPO_ROOT.parent / "shared" / "data" / "processbench",
    ):
        if all((candidate / f"{s}.jsonl").exists() for s in SUBSETS):
            return candidate
    raise SystemExit(
        "ProcessBench data not found (data/processbench or ../shared/data/processbench)"
    )


def load_sample(per_subset: int, min_steps: int = 1) -> tuple[list[dict[str, Any]], list[str]]:
    """Every k-th record (of those with at least ``min_steps`` steps) of each subset: a
    deterministic sample; and text to train the tokenizer on."""
    chosen: list[dict[str, Any]] = []
    corpus: list[str] = []
    for subset in SUBSETS:
        lines = (processbench_dir() / f"{subset}.jsonl").read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line]
        eligible = [r for r in records if len(r["steps"]) >= min_steps]
        stride = max(1, len(eligible) // per_subset)
        chosen.extend(eligible[::stride][:per_subset])
        for r in records[:100]:
            corpus.append(r["problem"])
            corpus.extend(r["steps"])
    return chosen, corpus


def naive_scores(scorer: Any, traces: list[Any]) -> list[list[float]]:
    """For every step, the prefix ``steps[: i + 1]`` formatted alone and run alone, reading its
    last separator (what many reference scripts do)."""
    import torch

    from scoring.prm.formatting import prefix_trace

    out = []
    with torch.inference_mode():
        for trace in traces:
            scores = []
            for i in range(len(trace.steps)):
                enc = scorer.encode(prefix_trace(trace, i + 1))
                ids = torch.tensor([enc.input_ids], device=scorer.device)
                logits = scorer.model(input_ids=ids).logits[0]
                scores.append(torch.softmax(logits[enc.positions[-1]].float(), dim=-1)[1].item())
            out.append(scores)
    return out


def naive_token_count(scorer: Any, traces: list[Any]) -> int:
    """Tokens the naive way processes: every prefix ``steps[: i + 1]`` formatted alone."""
    from scoring.prm.formatting import prefix_trace

    return sum(
        len(scorer.encode(prefix_trace(trace, i + 1)))
        for trace in traces
        for i in range(len(trace.steps))
    )


def max_abs_diff(a: list[list[float]], b: list[list[float]]) -> float:
    return max(abs(p - q) for x, y in zip(a, b, strict=True) for p, q in zip(x, y, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a smaller sample, one repeat (< 1 min)"
    )
    parser.add_argument(
        "--per-subset", type=int, default=None, help="traces per ProcessBench subset"
    )
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=4096, help="batch token budget")
    parser.add_argument(
        "--min-steps", type=int, default=1, help="only traces with at least this many steps"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: stable on a shared box)"
    )
    args = parser.parse_args(argv)
    per_subset = args.per_subset or (3 if args.quick else 10)
    repeats = args.repeats or (1 if args.quick else 3)

    import torch

    torch.set_num_threads(args.threads)
    from scoring.prm import TraceInput, build_scorer
    from scoring.prm.tiny import save_tiny_model, train_tokenizer

    records, corpus = load_sample(per_subset, args.min_steps)
    traces = [TraceInput(r["problem"], r["steps"], key=r["id"]) for r in records]
    with tempfile.TemporaryDirectory(prefix="steplens-bench-") as tmp:
        tokenizer = train_tokenizer(corpus, vocab_size=2048)
        path = save_tiny_model(
            Path(tmp) / "step_head",
            tokenizer,
            hidden_size=args.hidden,
            num_layers=args.layers,
            num_heads=4,
            num_kv_heads=2,
            seed=0,
        )
        scorer: Any = build_scorer(
            "step_head", model_path=str(path), device="cpu", dtype="fp32",
            params={"max_tokens": args.max_tokens},
        )  # fmt: skip
        lengths = [len(scorer.encode(t)) for t in traces]
        steps = sum(len(t.steps) for t in traces)
        naive_tokens = naive_token_count(scorer, traces)

        def batched() -> list[list[float]]:
            return [r.scores for r in scorer.score(traces)]

        def naive() -> list[list[float]]:
            return naive_scores(scorer, traces)

        scorer.score(traces[:2])  # warm-up (allocator, kernels)
        timings: dict[str, list[float]] = {"batched": [], "naive": []}
        results: dict[str, list[list[float]]] = {}
        for _ in range(repeats):
            for name, fn in (("batched", batched), ("naive", naive)):
                start = time.perf_counter()
                results[name] = fn()
                timings[name].append(time.perf_counter() - start)

    diff = max_abs_diff(results["batched"], results["naive"])
    batched_s = statistics.median(timings["batched"])
    naive_s = statistics.median(timings["naive"])
    print(f"traces {len(traces)}, steps {steps}, tokens {sum(lengths)} (longest {max(lengths)})")
    print(f"model: Qwen2 step head, hidden {args.hidden}, {args.layers} layers, fp32, CPU, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print(f"batched (one pass per trace): median {batched_s:.3f} s over {repeats}")
    print(f"naive (one pass per prefix):  median {naive_s:.3f} s over {repeats}")
    print(f"ratio {naive_s / batched_s:.2f}x, max |batched - naive| = {diff:.2e}")
    # On a compute-bound device the speed-up cannot pass this bound (tokens each way processes).
    print(f"tokens: naive {naive_tokens}, batched {sum(lengths)}, "
          f"token_ratio {naive_tokens / sum(lengths):.2f}x")  # fmt: skip
    print(
        json.dumps(
            {
                "benchmark": "scoring_throughput",
                "quick": args.quick,
                "traces": len(traces),
                "steps": steps,
                "tokens": sum(lengths),
                "batched_seconds": round(batched_s, 4),
                "naive_seconds": round(naive_s, 4),
                "batched_vs_naive_ratio": round(naive_s / batched_s, 2),
                "naive_tokens": naive_tokens,
                "token_ratio": round(naive_tokens / sum(lengths), 2),
                "max_abs_diff": diff,
                "steps_per_second_batched": round(steps / batched_s, 1),
                "hidden": args.hidden,
                "layers": args.layers,
                "max_tokens": args.max_tokens,
                "min_steps": args.min_steps,
                "threads": args.threads,
                "device": "cpu",
                "dtype": "float32",
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
