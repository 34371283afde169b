"""Time the text paths on hostile step text: rendering and tool scoring at 25 to 200 KB.

    .venv/bin/python -m benchmarks.hostile_text [--runs 5] [--before]

Each input is one opener a parser knows, repeated (or followed by filler with no closer), at
25, 50, 100 and 200 KB. Timed: `annotate.rendering.render_markdown` (the math scanner, Markdown,
nh3), and the tool scorer on a trace holding the text as one step (past 20,000 characters a
step's equations are skipped, so this is the final-answer search); `scoring.prm.arith.check_text`
(the equation search) up to its own cap, at 2.5 to 20 KB. Prints the fastest of --runs runs per
size (on a shared machine, noise only adds time) and the ratio of the largest size's time to the
one before: about 2 where the time is linear, 4 where it is quadratic. --before also times the
renderer's math pattern as it was before the fix, on 10, 20 and 40 KB of `\\[`. Ends with one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable

from annotate.rendering import render_markdown
from scoring.prm import TraceInput, build_scorer
from scoring.prm.arith import check_text

SIZES_KB = (25.0, 50.0, 100.0, 200.0)
ARITH_SIZES_KB = (2.5, 5.0, 10.0, 20.0)


def fill(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


RENDER_INPUTS: dict[str, Callable[[int], str]] = {
    "\\[": lambda n: fill("\\[", n),
    "\\(": lambda n: fill("\\(", n),
    "\\[ and filler, no closer": lambda n: "\\[" + fill("a", n - 2),
    "$": lambda n: fill("$", n),
    "$$": lambda n: fill("$$", n),
    "`": lambda n: fill("`", n),
    "```\\n": lambda n: fill("```\n", n),
    "\\boxed{": lambda n: fill("\\boxed{", n),
    "[": lambda n: fill("[", n),
    "![": lambda n: fill("![", n),
}
TOOL_INPUTS: dict[str, Callable[[int], str]] = {
    "\\[": lambda n: fill("\\[", n),
    "<<": lambda n: fill("<<", n),
    "\\frac{": lambda n: fill("\\frac{", n),
    "\\boxed{": lambda n: fill("\\boxed{", n),
    "# Answer and newlines": lambda n: "# Answer" + "\n" * (n - 8),
    "answer is 5, spaces, x": lambda n: "The answer is 5" + " " * (n - 16) + "x",
    "####\\n": lambda n: fill("####\n", n),
}
ARITH_INPUTS: dict[str, Callable[[int], str]] = {
    "<<": lambda n: fill("<<", n),
    "<<1=": lambda n: fill("<<1=", n),
    "\\frac{": lambda n: fill("\\frac{", n),
    "(": lambda n: fill("(", n),
    "1=": lambda n: fill("1=", n),
    "1+1=2 ": lambda n: fill("1+1=2 ", n),
}

# annotate/rendering.py's math pattern before the fix: `.+?` up to a closer, retried from every
# opener, so text of unclosed openers took quadratic time.
_BEFORE_BRACES = r"\{(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*\}"
BEFORE_MATH_RE = re.compile(
    r"""
      (?P<fence>^[ \t]*(?P<ticks>`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]*(?P=ticks)[ \t]*$|\Z))
    | (?P<code>(?P<bt>`+)(?:[^\n]|\n(?!\s*\n))+?(?P=bt))
    | (?P<escaped>\\\$)
    | \$\$(?P<dollars2>(?:\\.|[^\\])+?)\$\$
    | \\\[(?P<bracket>.+?)\\\]
    | \\\((?P<paren>.+?)\\\)
    | \$(?P<dollar>(?:\\.|[^\s$\\])(?:\\.|[^$\\\n]|\n(?!\s*\n))*?)(?<!\s)\$(?!\d)
    | (?P<boxed>\\boxed<BRACES>)
    """.replace("<BRACES>", _BEFORE_BRACES),
    re.DOTALL | re.MULTILINE | re.VERBOSE,
)


def best_seconds(func: Callable[[str], object], text: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func(text)
        times.append(time.perf_counter() - start)
    return min(times)


def score_one_step(text: str) -> None:
    build_scorer("tool").score([TraceInput("q", [text], reference_answer="5")])


def measure(
    name: str,
    func: Callable[[str], object],
    inputs: dict[str, Callable[[int], str]],
    runs: int,
    sizes_kb: tuple[float, ...] = SIZES_KB,
) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    print(f"\n{name}: seconds, fastest of {runs} runs")
    print(f"{'input':26} " + " ".join(f"{kb:>7g} KB" for kb in sizes_kb) + "   ratio")
    for label, make in inputs.items():
        row = {f"{kb:g}KB": best_seconds(func, make(int(kb * 1000)), runs) for kb in sizes_kb}
        row["ratio"] = row[f"{sizes_kb[-1]:g}KB"] / row[f"{sizes_kb[-2]:g}KB"]
        results[label] = row
        cells = " ".join(f"{row[f'{kb:g}KB']:10.4f}" for kb in sizes_kb)
        print(f"{label:26} {cells}   {row['ratio']:5.2f}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", action="store_true", help="also time the pre-fix pattern")
    args = parser.parse_args()
    report: dict[str, object] = {
        "render": measure("render_markdown", render_markdown, RENDER_INPUTS, args.runs),
        "tool": measure("tool scorer, one step", score_one_step, TOOL_INPUTS, args.runs),
        "arith": measure("check_text", check_text, ARITH_INPUTS, args.runs, ARITH_SIZES_KB),
    }
    if args.before:
        before = {
            f"{kb}KB": best_seconds(
                lambda text: BEFORE_MATH_RE.sub("", text), fill("\\[", kb * 1000), 1
            )
            for kb in (10, 20, 40)
        }
        print("\nbefore the fix, the math pattern on \\[ repeated:", before)
        report["before_math_pattern_bracket"] = before
    print(json.dumps(report))


if __name__ == "__main__":
    main()
