"""Hostile text: every path that reads step or problem text runs in linear time, and an import
refuses text longer than the limits (issue "Hardening", item 6).

Step text is untrusted model output and problem text is scraped data. One imported step of
`\\[` repeated 80,000 times held a web worker past gunicorn's 60 s timeout: the renderer's math
regex rescanned the rest of the text from every unclosed opener. Here every opener a parser
knows is repeated to 200 KB (and followed by filler with no closer, and alternated with other
openers); each call runs in a child process, which is killed when it overruns, so that a
regression fails in seconds instead of hanging the suite.

The old patterns are kept below as oracles: on real data (and on short random text) the linear
scanners must find exactly what they found.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from annotate.formats.base import iter_records
from annotate.imports import ImportFileError, traces_import
from annotate.models import Problem, Step, Trace
from annotate.rendering import _protect_math, render_markdown
from benchmarks.hostile_text import BEFORE_MATH_RE
from scoring.prm import TraceInput, build_scorer
from scoring.prm.arith import MAX_TEXT, check_text
from scoring.prm.backends.tool import ToolParams, answers_match, find_final_answer, last_boxed
from scoring.prm.formatting import MATH_SHEPHERD_TAG, QWEN_PRM_SEPARATOR, clean_step
from tests.conftest import REPO_ROOT
from tests.factories import make_project

SIZE = 200_000
# A page must render long before gunicorn's 60 s timeout. 200 KB of the slowest linear Markdown
# (`![` repeated, markdown-it's link parser) takes 2.7 CPU seconds on the 2-core development
# machine; the quadratic paths this guards against took over 80 s (`\[`) or hours (`).
RENDER_BUDGET_S = 15.0
# One step must not take more than the tool scorer's whole time budget for a trace (2 s).
TOOL_BUDGET_S = ToolParams().time_budget_s
# The equation search and the answer comparison on all 200 KB (the scorer gives them less):
# about 0.5 CPU seconds.
ARITH_BUDGET_S = 5.0


def fill(unit: str, size: int = SIZE) -> str:
    """`unit` repeated to exactly `size` characters."""
    return (unit * (size // len(unit) + 1))[:size]


def backtick_runs(size: int = SIZE) -> str:
    """Runs of 1, 2, 3, ... backticks: no run has a partner of its own length."""
    parts, total, k = [], 0, 1
    while total < size:
        parts.append("`" * k + "a")
        total += k + 1
        k += 1
    return "".join(parts)[:size]


def _timed(func: Callable[[str], Any], text: str, queue: Any) -> None:
    start = time.process_time()
    func(text)
    queue.put(time.process_time() - start)


# A loaded machine stretches wall time, not CPU time: the budgets are CPU seconds of the child,
# and the wall-clock limit (which stops a runaway) is this many times the budget.
WALL_FACTOR = 6


def assert_finishes(func: Callable[[str], Any], text: str, budget_s: float) -> float:
    """Run func(text) in a child process; fail if it takes more than budget_s of CPU time (or
    WALL_FACTOR times that on the clock: then it is stopped)."""
    context = multiprocessing.get_context("fork")  # the child inherits the imported modules
    queue = context.Queue()
    child = context.Process(target=_timed, args=(func, text, queue), daemon=True)
    child.start()
    child.join(budget_s * WALL_FACTOR)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail(
            f"not done in {budget_s * WALL_FACTOR:g} s on {len(text):,} characters: not linear"
        )
    assert child.exitcode == 0, f"the call failed (exit code {child.exitcode})"
    cpu: float = queue.get(timeout=5)
    assert cpu <= budget_s, (
        f"{cpu:.1f} CPU seconds on {len(text):,} characters (budget {budget_s:g}): not linear"
    )
    return cpu


# --- the renderer: annotate/rendering.py (math delimiters, code, Markdown) ---------------------

RENDER_CASES = {
    # the math span scanner's openers
    "dollar": fill("$"),
    "dollar then letter": fill("$a"),
    "dollar, no closer": "$a" + fill(" b"),
    "dollar before digits": fill("$1"),
    "dollar per paragraph": fill("$a\n\n"),
    "dollar per line": fill("\n$"),
    "double dollar": fill("$$"),
    "double dollar, escaped closers": fill("$$\\"),
    "double dollar, no closer": "$$" + fill("a"),
    "escaped dollar": fill("\\$"),
    "paren": fill("\\("),
    "bracket (the reported step)": fill("\\["),
    "bracket, filler": fill("\\[ x "),
    "bracket and paren": fill("\\[\\("),
    "bracket and dollar": fill("\\[$"),
    "bracket, no closer": "\\[" + fill("a"),
    "boxed": fill("\\boxed{"),
    "boxed, nested braces": "\\boxed{" + fill("{a"),
    "begin environment": fill("\\begin{"),
    # code, which the scanner leaves alone
    "backtick": fill("`"),
    "backtick runs of every length": backtick_runs(),
    "backtick and dollar": fill("`$"),
    "code fence": fill("```\n"),
    "tilde fence": fill("~~~\n"),
    "fence, no closer": "```\n" + fill("a\n"),
    "indented fences": fill("  ```a\n"),
    # Markdown constructs
    "brace": fill("{"),
    "link": fill("["),
    "image": fill("!["),
    "link target": fill("]("),
    "emphasis": fill("*"),
    "emphasis, mixed": fill("_*"),
    "blockquote": fill(">"),
    "blockquote lines": fill("> \n"),
    "html": fill("<"),
    "entity": fill("&#"),
    "heading": fill("#"),
    "list": fill("- "),
    "table": "a|b\n-|-\n" + fill("a|b\n"),
}


@pytest.mark.parametrize("text", RENDER_CASES.values(), ids=RENDER_CASES.keys())
def test_rendering_is_linear_on_200_kb_of_each_opener(text: str) -> None:
    assert_finishes(render_markdown, text, RENDER_BUDGET_S)


# --- the tool backend: scoring/prm/arith.py and scoring/prm/backends/tool.py ------------------


def _score(text: str) -> None:
    build_scorer("tool").score([TraceInput("q", ["1 + 1 = 2", text], reference_answer="5")])


TOOL_CASES = {
    # arithmetic (scoring.prm.arith)
    "calculator": fill("<<"),
    "calculator, unclosed": fill("<<1="),
    "calculator, long": "<<" + fill("1+"),
    "frac": fill("\\frac{"),
    "sqrt": fill("\\sqrt["),
    "brace": fill("{"),
    "paren": fill("("),
    "text command": fill("\\text{"),
    "text command, no closer": "\\text{" + fill("a"),
    "equations": fill("1="),
    "thousands": fill("1,"),
    "sum": fill("1+"),
    "dollar": fill("$"),
    "latex paren": fill("\\("),
    "latex bracket": fill("\\["),
    # final answers (scoring.prm.backends.tool)
    "answer is": fill("answer is "),
    "answer is, spaces": "The answer is 5" + " " * SIZE + "x",
    "answer block": fill("# Answer\n"),
    "answer block, newlines": "# Answer" + "\n" * SIZE,
    "answer block, spaces": "# Answer\n\n5" + " " * SIZE + "x",
    "gsm8k answer": fill("####\n"),
    "gsm8k answer, spaces": "#### 5" + " " * SIZE + "x",
    "boxed": fill("\\boxed{"),
    "boxed, nested braces": "\\boxed{" + fill("{"),
    "refuting words": fill("does not "),
}


@pytest.mark.parametrize("text", TOOL_CASES.values(), ids=TOOL_CASES.keys())
def test_tool_scoring_is_linear_on_200_kb_of_each_opener(text: str) -> None:
    assert_finishes(_score, text, TOOL_BUDGET_S)


@pytest.mark.parametrize("text", TOOL_CASES.values(), ids=TOOL_CASES.keys())
def test_arithmetic_and_answer_comparison_are_linear_on_200_kb_of_each_opener(text: str) -> None:
    assert_finishes(lambda t: (check_text(t), answers_match(t, "5")), text, ARITH_BUDGET_S)


@pytest.mark.parametrize(
    "text",
    [fill("<extra_"), fill("<extra_0"), fill("к"), fill("кк и")],
    ids=["separator prefix", "separator, unclosed", "tag prefix", "tag prefixes and spaces"],
)
def test_formatting_cleans_200_kb_of_separator_prefixes_fast(text: str) -> None:
    assert_finishes(
        lambda t: clean_step(t, [QWEN_PRM_SEPARATOR, MATH_SHEPHERD_TAG]), text, TOOL_BUDGET_S
    )


def test_the_tool_scorer_says_when_a_step_is_too_long_to_check() -> None:
    """A wrong equation past the checked length would pass unseen: the step says it is skipped."""
    late_error = "x " * (MAX_TEXT // 2) + "so 2 + 2 = 5."
    [result] = build_scorer("tool").score([TraceInput("q", ["2 + 2 = 4", late_error])])
    assert result.steps[0].score == 0.9
    step = result.steps[1]
    assert step.score == 0.5 and step.details["checks"] == []
    assert step.details["skipped"] == f"longer than {MAX_TEXT} characters"
    assert check_text("2 + 2 = 5") != []  # short steps are still checked


# --- behaviour on real text is unchanged: the old patterns as oracles --------------------------

# The renderer's math pattern before the fix (kept in benchmarks.hostile_text, which times it).
_OLD_MATH_RE = BEFORE_MATH_RE
_OLD_ANSWER_IS = re.compile(
    r"answer is[:\s]*\$?(.+?)\$?\s*(?:\.\s*)?$", re.IGNORECASE | re.MULTILINE
)
_OLD_ANSWER_MARKERS = (
    re.compile(r"^#\s*Answer\s*\n+\s*\$?(.+?)\$?\s*$", re.IGNORECASE | re.MULTILINE),
    re.compile(r"^####\s*\$?(-?[0-9][0-9,./]*)\$?\s*$", re.MULTILINE),
)


def old_protect_math(text: str) -> tuple[str, list[tuple[str, bool, str]]]:
    found: list[tuple[str, bool, str]] = []

    def replace(m: re.Match[str]) -> str:
        if m.group("fence") or m.group("code") or m.group("escaped"):
            return m.group(0)
        for name, display in (("dollars2", True), ("bracket", True), ("paren", False)):
            if m.group(name) is not None:
                found.append((m.group(name), display, m.group(0)))
                break
        else:
            name = "boxed" if m.group("boxed") is not None else "dollar"
            found.append((m.group(name), False, m.group(0)))
        return f"mathphNONCEx{len(found) - 1}x"

    return _OLD_MATH_RE.sub(replace, text), found


def new_protect_math(text: str) -> tuple[str, list[tuple[str, bool, str]]]:
    protected, maths, nonce = _protect_math(text)
    return protected.replace(nonce, "NONCE"), [(m.tex, m.display, m.source) for m in maths]


def old_last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    while start != -1:
        depth, i = 0, start + len("\\boxed")
        for j in range(i, min(len(text), i + 2000)):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    return text[i + 1 : j].strip()
        start = text.rfind("\\boxed{", 0, start)
    return None


def old_final_answer(steps: list[str]) -> tuple[int, str] | None:
    for index in range(len(steps) - 1, -1, -1):
        boxed = old_last_boxed(steps[index])
        if boxed:
            return index, boxed
    for index in range(len(steps) - 1, -1, -1):
        for pattern in (*_OLD_ANSWER_MARKERS, _OLD_ANSWER_IS):
            matches = pattern.findall(steps[index])
            if matches and matches[-1].strip():
                return index, matches[-1].strip()
    return None


def _data_files() -> list[tuple[Path, str]]:
    base = REPO_ROOT / "data"
    if not (base / "processbench").is_dir():
        base = REPO_ROOT.parent / "shared" / "data"
    files = [(path, "processbench") for path in sorted((base / "processbench").glob("*.jsonl"))]
    files += [
        (base / "prm800k_sample.jsonl", "prm800k"),
        (base / "prmbench_sample.jsonl", "prmbench"),
        (base / "math_shepherd_sample.jsonl", "math_shepherd"),
    ]
    return [(path, fmt) for path, fmt in files if path.exists()]


def real_texts() -> list[str]:
    """Every problem, reference solution and step of the real data (about 30,000 texts)."""
    from annotate.formats import PARSERS

    texts: list[str] = []
    for path, fmt in _data_files():
        with path.open("rb") as stream:
            for _, record in iter_records(stream):
                trace = PARSERS[fmt](record)
                texts += [trace.problem.text, trace.problem.reference_solution]
                texts += [step.text for step in trace.steps]
    return [text for text in texts if text]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    found = real_texts()
    if len(found) < 20_000:
        pytest.skip("the real data files are not there")
    return found


def test_real_text_finds_exactly_the_math_the_old_pattern_found(texts: list[str]) -> None:
    differ = [text for text in texts if new_protect_math(text) != old_protect_math(text)]
    assert differ == []


def test_real_steps_give_exactly_the_final_answers_the_old_patterns_gave(
    texts: list[str],
) -> None:
    assert [last_boxed(t) for t in texts] == [old_last_boxed(t) for t in texts]
    assert [find_final_answer([t]) for t in texts] == [old_final_answer([t]) for t in texts]


# Short random text from each parser's own alphabet: where the old patterns still finish fast.
_MATH_ALPHABET = ["$", "$", "\\", "\\[", "\\]", "\\(", "\\)", "\\$", "\\boxed{", "{", "}", "a",
                  "1", " ", "\n", "\n\n", "\t", "```\n", "~~~", "\n```", "`"]  # fmt: skip
_ANSWER_ALPHABET = ["# Answer", "answer is", "ANSWER IS", "####", "#", " ", "\n", "\n\n", "$",
                    ".", ":", "5", "-", "a", "\\boxed{", "{", "}", "\t", ",", "/"]  # fmt: skip


def _random_texts(alphabet: list[str], count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(alphabet, k=rng.randint(1, 14))) for _ in range(count)]


def test_random_latex_finds_exactly_the_math_the_old_pattern_found() -> None:
    texts = [t for t in _random_texts(_MATH_ALPHABET, 20_000, seed=6) if "`" not in t]
    assert [t for t in texts if new_protect_math(t) != old_protect_math(t)] == []


def test_random_answers_are_found_exactly_as_the_old_patterns_found_them() -> None:
    texts = _random_texts(_ANSWER_ALPHABET, 20_000, seed=6)
    assert [t for t in texts if find_final_answer([t]) != old_final_answer([t])] == []


@pytest.mark.parametrize(
    ("text", "tex"),
    [
        ("`$a$` and $b$", ["b"]),
        ("``a ` $b$ ``", []),
        ("`unclosed $x$", ["x"]),
        ("`a\n\n$b$`", ["b"]),  # a code span ends with its paragraph
        ("```\n$x$\n```\n$y$", ["y"]),
        ("  ~~~ python\n$x$", []),  # a fence left open runs to the end
        # A backtick run closes only on a run of its own length, as CommonMark (and so
        # markdown-it) reads code spans; the old pattern took "`$x$`" out of "``$x$`" as code.
        ("``$x$`", ["x"]),
        ("`$x$``", ["x"]),
    ],
)
def test_code_spans_and_fences_keep_their_dollars(text: str, tex: list[str]) -> None:
    assert [math[0] for math in new_protect_math(text)[1]] == tex


def test_a_backtick_run_that_markdown_does_not_close_is_text() -> None:
    assert str(render_markdown("``$x$`")) == '<p>``<span class="math-inline">x</span>`</p>'
    assert str(render_markdown("`a``b`")) == "<p><code>a``b</code></p>"


# --- limits at import --------------------------------------------------------------------------


def _lines() -> list[str]:
    path = REPO_ROOT / "data" / "processbench_sample.jsonl"
    if not path.exists():
        path = REPO_ROOT.parent / "shared" / "data" / "processbench_sample.jsonl"
    return path.read_text(encoding="utf-8").splitlines()[:5]


def _import(lines: list[str]) -> None:
    traces_import(
        project=make_project(),
        stream=iter(line.encode() + b"\n" for line in lines),
        filename="hostile.jsonl",
        format="processbench",
    )


def _nothing_written() -> bool:
    return not (Trace.objects.exists() or Step.objects.exists() or Problem.objects.exists())


@pytest.mark.django_db
def test_an_import_with_one_over_long_step_is_refused_naming_line_and_field() -> None:
    lines = _lines()
    record = json.loads(lines[2])
    record["steps"][3] = "\\[" * 80_000  # the reported step: 160 KB
    lines[2] = json.dumps(record)
    with pytest.raises(ImportFileError) as refused:
        _import(lines)
    assert (refused.value.line, refused.value.field) == (3, "steps[3]")
    assert str(refused.value) == (
        "hostile.jsonl, line 3, field 'steps[3]': longer than 20000 characters (160000), "
        "the limit for a step (STEPLENS_MAX_STEP_CHARS)"
    )
    assert _nothing_written()


@pytest.mark.django_db
def test_an_import_with_an_over_long_problem_is_refused() -> None:
    lines = _lines()
    record = json.loads(lines[4])
    record["problem"] = "$" * 50_001
    lines[4] = json.dumps(record)
    with pytest.raises(ImportFileError) as refused:
        _import(lines)
    assert (refused.value.line, refused.value.field) == (5, "problem")
    assert refused.value.message == (
        "longer than 50000 characters (50001), the limit for a problem (STEPLENS_MAX_PROBLEM_CHARS)"
    )
    assert _nothing_written()


@pytest.mark.django_db
def test_the_limits_are_settings_and_text_at_the_limit_is_accepted(settings: Any) -> None:
    lines = _lines()
    longest_step = max(len(s) for line in lines for s in json.loads(line)["steps"])
    longest_problem = max(len(json.loads(line)["problem"]) for line in lines)
    settings.STEPLENS_MAX_STEP_CHARS = longest_step
    settings.STEPLENS_MAX_PROBLEM_CHARS = longest_problem
    _import(lines)
    assert Trace.objects.count() == 5
    settings.STEPLENS_MAX_STEP_CHARS = longest_step - 1
    with pytest.raises(ImportFileError, match="STEPLENS_MAX_STEP_CHARS"):
        _import(lines)
    settings.STEPLENS_MAX_STEP_CHARS = longest_step
    settings.STEPLENS_MAX_PROBLEM_CHARS = longest_problem - 1
    with pytest.raises(ImportFileError, match="STEPLENS_MAX_PROBLEM_CHARS"):
        _import(lines)
    assert Trace.objects.count() == 5


def test_the_real_data_is_far_below_the_default_limits() -> None:
    """Measured: the longest real step is 1,470 characters, the longest problem 4,415."""
    from django.conf import settings

    from annotate.formats import PARSERS

    if not _data_files():
        pytest.skip("the real data files are not there")
    steps, problems = [0], [0]
    for path, fmt in _data_files():
        with path.open("rb") as stream:
            for _, record in iter_records(stream):
                trace = PARSERS[fmt](record)
                steps += [len(step.text) for step in trace.steps]
                problems += [len(trace.problem.text), len(trace.problem.reference_solution)]
    assert max(steps) * 10 <= settings.STEPLENS_MAX_STEP_CHARS
    assert max(problems) * 10 <= settings.STEPLENS_MAX_PROBLEM_CHARS
