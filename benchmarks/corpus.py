"""Synthetic trace corpora in steplens' generic JSON Lines format, for benchmarks at any size.

    python -m benchmarks.corpus OUT.jsonl --traces 125000 --steps 8 [--seed 0] [--no-labels]

Step and problem lengths are drawn from the real ProcessBench files in data/ (mean ~240
characters a step), so rows weigh what real ones do; the text itself is math-flavoured filler.
Several traces share each problem (as N sampled solutions do), a trace's gold labels are +1 up to
an optional first wrong step (-1) and unlabelled after it, as in ProcessBench. Deterministic for
a seed. From Python: `write_corpus(path, traces=..., steps_per_trace=...)` or `iter_traces(...)`.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
_WORDS = [
    "we", "let", "the", "so", "then", "since", "thus", "hence", "note", "that", "compute",
    "substitute", "solve", "simplify", "factor", "expand", "divide", "multiply", "add",
    "subtract", "both", "sides", "equation", "gives", "value", "of", "is", "are", "and", "for",
    "each", "number", "total", "sum", "product", "ratio", "area", "length", "angle", "triangle",
    "circle", "square", "root", "prime", "integer", "remainder", "when", "by", "with", "from",
    "into", "which", "where", "because", "therefore",
]
_MATH = ["$x = 3$", "$2x + 5 = 11$", "$\\frac{a}{b}$", "$n^2 - 1$", "$\\sqrt{2}$",
         "$3 \\cdot 4 = 12$", "$\\pi r^2$", "$a_n = a_{n-1} + 2$", "$12 + 7 = 19$", "$\\binom{5}{2}$"]


def real_lengths() -> tuple[list[int], list[int]]:
    """(step lengths, problem lengths) of the ProcessBench files shipped in data/."""
    steps: list[int] = []
    problems: list[int] = []
    for path in sorted((REPO / "data" / "processbench").glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                problems.append(len(record["problem"]))
                steps.extend(len(step) for step in record["steps"])
    if not steps:  # data/ missing: a log-normal close to ProcessBench's (median ~200)
        rng = random.Random(1)
        steps = [max(20, int(rng.lognormvariate(5.3, 0.7))) for _ in range(10_000)]
        problems = [max(40, int(rng.lognormvariate(5.3, 0.8))) for _ in range(2_000)]
    return steps, problems


class _Filler:
    """Text of a requested length, cut from a long pre-built string (fast: no per-word work)."""

    def __init__(self, rng: random.Random, size: int = 1 << 20) -> None:
        parts: list[str] = []
        total = 0
        while total < size:
            piece = rng.choice(_MATH) if rng.random() < 0.12 else rng.choice(_WORDS)
            parts.append(piece)
            total += len(piece) + 1
        self.text = " ".join(parts)
        self.rng = rng

    def __call__(self, length: int) -> str:
        length = min(length, len(self.text) - 1)
        start = self.rng.randrange(0, len(self.text) - length)
        return self.text[start : start + length].strip() or "step"


def iter_traces(
    *,
    traces: int,
    steps_per_trace: int = 8,
    traces_per_problem: int = 8,
    labels: bool = True,
    error_rate: float = 0.6,
    seed: int = 0,
) -> Iterator[dict[str, Any]]:
    """Records of the generic format (docs/formats.md), `traces` of them."""
    rng = random.Random(seed)
    step_lengths, problem_lengths = real_lengths()
    filler = _Filler(rng)
    problem = ""
    for t in range(traces):
        if t % traces_per_problem == 0:
            n = t // traces_per_problem
            problem = f"Problem {n}: " + filler(rng.choice(problem_lengths))
        steps = [filler(rng.choice(step_lengths)) for _ in range(steps_per_trace)]
        record: dict[str, Any] = {
            "id": f"synthetic-{seed}-{t}",
            "problem": problem,
            "steps": steps,
            "generator": "synthetic",
            "final_answer": str(rng.randrange(1000)),
        }
        if labels:
            wrong = rng.randrange(steps_per_trace) if rng.random() < error_rate else -1
            record["labels"] = [
                1 if wrong == -1 or i < wrong else (-1 if i == wrong else None)
                for i in range(steps_per_trace)
            ]
            record["final_answer_correct"] = wrong == -1
        yield record


def write_corpus(path: Path, **kwargs: Any) -> dict[str, int]:
    """Write iter_traces(**kwargs) to `path` as JSON Lines; returns the counts written."""
    counts = {"traces": 0, "steps": 0, "gold_labels": 0, "bytes": 0}
    with path.open("w", encoding="utf-8") as f:
        for record in iter_traces(**kwargs):
            line = json.dumps(record, ensure_ascii=False) + "\n"
            f.write(line)
            counts["traces"] += 1
            counts["steps"] += len(record["steps"])
            counts["gold_labels"] += sum(v is not None for v in record.get("labels", []))
    counts["bytes"] = path.stat().st_size
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--traces", type=int, default=125_000)
    parser.add_argument("--steps", type=int, default=8, help="steps per trace")
    parser.add_argument("--traces-per-problem", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-labels", action="store_true")
    args = parser.parse_args()
    counts = write_corpus(
        args.out,
        traces=args.traces,
        steps_per_trace=args.steps,
        traces_per_problem=args.traces_per_problem,
        labels=not args.no_labels,
        seed=args.seed,
    )
    print(json.dumps({"file": str(args.out), **counts}))


if __name__ == "__main__":
    main()
