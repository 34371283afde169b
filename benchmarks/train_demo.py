"""The training loop end to end on ProcessBench, on the CPU: base ``tiny`` -> trained PRM -> audit.

    python -m benchmarks.train_demo                  # all of data/processbench, 2 threads
    python -m benchmarks.train_demo --limit 200 --epochs 1     # a quick look
    python -m benchmarks.train_demo --learning-curve  # also 25/50/75/100% of the train split

The ProcessBench records become TRL rows with the exporter's first-error policy (True before the
earliest wrong step, False at it, later steps dropped), split by problem 90/10 with a fixed seed.
``train_prm(base="tiny")`` builds the tiny base from the train split's text and trains it; the
untrained base (the same build) and the trained checkpoint are scored on the held-out problems
through the engine's backend. Printed: wall time of the run, step AUROC (and ProcessBench /
PRMBench figures) of base vs trained; the last line is a JSON object with all of it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scoring.prm.demo_params import TINY_DEMO_PARAMS

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_processbench(data_dir: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The records of data/processbench/*.jsonl (``limit`` per file when given)."""
    records: list[dict[str, Any]] = []
    for path in sorted(data_dir.glob("*.jsonl")):
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        records += [json.loads(line) for line in lines[:limit]]
    if not records:
        raise SystemExit(f"no ProcessBench files in {data_dir}")
    return records


def main(argv: list[str] | None = None) -> int:
    from scoring.prm.training import TrainParams

    defaults = TINY_DEMO_PARAMS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "data" / "processbench")
    parser.add_argument("--limit", type=int, default=None, help="records per subset file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument(
        "--head", default=defaults["head"], choices=["token_classification", "qwen_extra0"]
    )
    parser.add_argument("--epochs", type=float, default=defaults["epochs"])
    parser.add_argument("--learning-rate", type=float, default=defaults["learning_rate"])
    parser.add_argument("--batch-tokens", type=int, default=defaults["batch_tokens"])
    parser.add_argument("--max-length", type=int, default=defaults["max_length"])
    parser.add_argument("--seed", type=int, default=defaults["seed"])
    parser.add_argument("--vocab-size", type=int, default=defaults["tiny_vocab_size"])
    parser.add_argument("--hidden-size", type=int, default=defaults["tiny_hidden_size"])
    parser.add_argument("--layers", type=int, default=defaults["tiny_num_layers"])
    parser.add_argument("--lm-epochs", type=float, default=defaults["lm_pretrain_epochs"])
    parser.add_argument("--sliding-window", type=int, default=defaults["tiny_sliding_window"])
    parser.add_argument("--heads", type=int, default=defaults["tiny_num_heads"])
    parser.add_argument("--wrong-class-weight", type=float, default=defaults["wrong_class_weight"])
    parser.add_argument("--warmup-ratio", type=float, default=defaults["warmup_ratio"])
    parser.add_argument("--weight-decay", type=float, default=defaults["weight_decay"])
    parser.add_argument("--scheduler", default=defaults["lr_scheduler"])
    parser.add_argument("--step-separator", default=defaults["step_separator"])
    parser.add_argument(
        "--dtype", default="auto", choices=["auto", "fp32", "bf16"], help="bf16: mixed precision"
    )
    parser.add_argument("--learning-curve", action="store_true")
    parser.add_argument(
        "--eval-train", type=int, default=0, help="also score this many train rows (overfitting)"
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the checkpoint here")
    args = parser.parse_args(argv)

    import torch
    import transformers

    from scoring.prm.training import (
        evaluate_rows,
        learning_curve,
        processbench_rows,
        save_tiny_base,
        scorer_spec,
        split_by_problem,
        train_prm,
        write_model_card,
    )

    torch.set_num_threads(args.threads)
    transformers.utils.logging.disable_progress_bar()
    params = TrainParams(
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_tokens=args.batch_tokens,
        max_length=args.max_length,
        seed=args.seed,
        head=args.head,
        step_separator=args.step_separator,
        warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay,
        lr_scheduler=args.scheduler,
        device="cpu",
        dtype=args.dtype,
        tiny_vocab_size=args.vocab_size,
        tiny_hidden_size=args.hidden_size,
        tiny_num_layers=args.layers,
        lm_pretrain_epochs=args.lm_epochs,
        tiny_sliding_window=args.sliding_window,
        tiny_num_heads=args.heads,
        wrong_class_weight=args.wrong_class_weight,
    )
    records = load_processbench(args.data, args.limit)
    rows = processbench_rows(records)
    train, test = split_by_problem(rows, test_fraction=args.test_fraction, seed=args.split_seed)
    backend, scorer_params = scorer_spec(params)

    def progress(point: dict[str, Any]) -> None:
        if point["step"] % 50 == 0 or point["step"] == point["total_steps"]:
            print(
                f"  step {point['step']}/{point['total_steps']} epoch {point['epoch']:.2f} "
                f"loss {point['loss']:.4f} tokens {point['tokens_seen']:,}",
                flush=True,
            )

    with tempfile.TemporaryDirectory(prefix="steplens-train-demo-") as tmp:
        out = args.keep or Path(tmp) / "trained"
        print(f"{len(train)} train rows, {len(test)} held-out rows ({len(records)} records)")
        started = time.perf_counter()
        result = train_prm(
            rows=train, base="tiny", output_dir=out, params=params, on_progress=progress
        )
        wall = time.perf_counter() - started
        trained = evaluate_rows(out, test, backend=backend, scorer_params=scorer_params)
        base_dir = save_tiny_base(Path(tmp) / "base", train, params)
        untrained = evaluate_rows(base_dir, test, backend=backend, scorer_params=scorer_params)
        write_model_card(out, metrics={"held_out": trained, "held_out_untrained_base": untrained})
        seen = None
        if args.eval_train:
            seen = evaluate_rows(
                out, train[: args.eval_train], backend=backend, scorer_params=scorer_params
            )
            print(f"train rows: step AUROC {seen['step_auroc']:.4f}")
        curve = None
        if args.learning_curve:
            curve = learning_curve(
                rows=train,
                eval_rows=test,
                base="tiny",
                output_root=Path(tmp) / "curve",
                params=params,
            )

    print(
        f"trained in {wall:.1f} s wall ({result.train_seconds:.1f} s in the loop, "
        f"{result.optimizer_steps} steps, {result.tokens_per_second:,.0f} tokens/s); "
        f"{result.truncated_rows} rows cut to max_length, {result.skipped_rows} skipped"
    )
    for name, m in (("untrained base", untrained), ("trained", trained)):
        print(
            f"{name:>15}: step AUROC {m['step_auroc']:.4f}, PRMBench {m['prmbench_score']}, "
            f"ProcessBench F1@0.5 {m['processbench_f1']}, best F1 {m['processbench_best_f1']}"
        )
    for point in curve or []:
        print(
            f"  {point['fraction']:.0%} ({point['train_rows']} rows): AUROC {point['step_auroc']:.4f}"
        )
    print(
        json.dumps(
            {
                "benchmark": "train_demo",
                "records": len(records),
                "train_rows": len(train),
                "test_rows": len(test),
                "threads": args.threads,
                "params": params.as_dict(),
                "wall_seconds": round(wall, 1),
                "train_seconds": result.train_seconds,
                "optimizer_steps": result.optimizer_steps,
                "tokens_seen": result.tokens_seen,
                "tokens_per_second": result.tokens_per_second,
                "final_loss": result.loss_curve[-1]["loss"] if result.loss_curve else None,
                "untrained": untrained,
                "trained": trained,
                "auroc_gain": round(trained["step_auroc"] - untrained["step_auroc"], 4),
                "train_sample": seen,
                "learning_curve": curve,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
