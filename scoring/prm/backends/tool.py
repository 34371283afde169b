"""Tool backend: deterministic checks, no model, CPU only (the demo's default scorer).

The rule, per step:
- every equation written in the step (plain text, LaTeX, GSM8K ``<<a=b>>`` annotations) that is
  plain arithmetic is evaluated exactly with sympy (scoring.prm.arith; untrusted text is never
  ``eval``-ed) and recorded in ``details["checks"]`` as {expression, expected, computed, ok};
- every number a step reads from a named cell of the problem's table ("Q4 revenue is 140") is
  compared with the cell (scoring.prm.table_checks, TaTToo-style) and recorded as a check with
  ``source="table"``; a wrong lookup fails the step that reads it;
- the final answer (the last ``\\boxed{...}``, else PRM800K's "# Answer" block, GSM8K's
  "#### X" or "The answer is: X") is checked against the
  trace's ``reference_answer`` with math-verify; it is one more check of the step that holds it,
  and sets ``trajectory_score`` (1.0 right, 0.0 wrong or no answer found, None without a
  reference or when the answer cannot be compared);
- score: ``false_score`` (0.05) if any check fails, ``pass_score`` (0.9) if at least one check
  ran and all passed, ``neutral_score`` (0.5) if nothing was checkable. A failed equation in a
  step that itself says it is refuting something ("contradiction", "does not equal", "\\neq")
  is kept in the details but scores neutral: the step is showing the equation is false. A
  neutral score is no verdict: ``details["verdict"] = "unknown"`` says so (contract.StepScoreOut).
Never raises on step text; linear in its length, and bounded in time (``time_budget_s`` per
trace; steps after it stay neutral with ``details["skipped"] = "time budget"``). The equations
of a step longer than ``arith.MAX_TEXT`` (20,000 characters) are not checked either, and
``details["skipped"] = "longer than 20000 characters"`` says so (its final answer still is).
A step whose check raised stays neutral too, with ``details["skipped"] = "check failed: ..."``
naming the exception.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from scoring.prm.arith import (
    MAX_TEXT,
    Check,
    NotCheckable,
    TooLarge,
    check_text,
    compare,
    evaluate,
    lex,
    normalise,
)
from scoring.prm.contract import StepScoreOut, TraceInput, TraceScores, parse_params
from scoring.prm.params import ToolParams
from scoring.prm.table_checks import table_reader

_REFUTING = re.compile(
    r"contradict|\bnot (?:equal|true|possible|valid|correct)|does(?: not|n't) (?:equal|equate|hold|work|satisfy)"
    r"|is(?: not|n't) (?:equal|true|correct)|\\neq\b|≠|impossible|incorrect|mistake",
    re.IGNORECASE,
)
# GSM8K's "#### 42" (linear as it is: no two of its quantifiers can take the same characters).
_GSM8K_ANSWER = re.compile(r"^####\s*\$?(-?[0-9][0-9,./]*)\$?\s*$", re.MULTILINE)
# PRM800K's last step: "# Answer", a blank line, the answer; and "The answer is: X".
_ANSWER_BLOCK = re.compile(r"^#\s*Answer", re.IGNORECASE | re.MULTILINE)
_ANSWER_IS = re.compile(r"answer is", re.IGNORECASE)
_SPACES = re.compile(r"\s*")
_COLONS_AND_SPACES = re.compile(r"[:\s]*")
_BOXED_OPEN = re.compile(r"\\boxed\{")
_BRACE = re.compile(r"[{}]")
MAX_BOXED = 2000  # a \boxed{...} answer closes within this many characters of its "{"


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (braces matched) that closes within MAX_BOXED
    characters, or None.

    >>> last_boxed("so \\\\boxed{\\\\frac{1}{2}} and \\\\boxed{7}.")
    '7'
    >>> last_boxed("\\\\boxed{\\\\frac{a}{b}")
    """
    # One pass pairs every "{" with its "}" (a stack), rather than counting braces again from
    # each "\boxed{" (2,000 characters read per opener: seconds for a step of "\boxed{"s).
    opens = [m.end() - 1 for m in _BOXED_OPEN.finditer(text)]
    if not opens:
        return None
    closes: dict[int, int] = {}
    stack: list[int] = []
    for brace in _BRACE.finditer(text, opens[0]):
        if brace.group() == "{":
            stack.append(brace.start())
        elif stack:
            closes[stack.pop()] = brace.start()
    for start in reversed(opens):
        end = closes.get(start)
        if end is not None and end - start < MAX_BOXED:
            return text[start + 1 : end].strip()
    return None


def _answer_span(text: str, gap_start: int, gap_end: int, *, dot: bool) -> tuple[int, int] | None:
    """Where ``\\$?(.+?)\\$?\\s*(?:\\.\\s*)?$`` (the dot part when `dot`) captures after a gap of
    whitespace (and colons) text[gap_start:gap_end], in one pass.

    The patterns this replaces backtracked through runs of spaces or newlines, cubic in the
    worst case ("# Answer" and 2,000 newlines: 25 s). Same result, derived from them: the capture
    starts after the gap and an optional "$" (at the gap's last non-newline character when the
    gap runs to the end of the text), and ends where the rest of its line is only an optional
    "$", whitespace and (`dot`) one ".".
    """
    n = len(text)
    if gap_end < n:
        start = gap_end
        if text[start] == "$" and start + 1 < n and text[start + 1] != "\n":
            start += 1
    else:
        start = gap_end - 1
        while start >= gap_start and text[start] == "\n":
            start -= 1
        if start < gap_start:
            return None
    line_end = text.find("\n", start)
    line = text[start : n if line_end == -1 else line_end]
    tail = len(line.rstrip())  # the tail of the line that may follow the capture
    if dot and tail and line[tail - 1] == ".":
        tail = len(line[: tail - 1].rstrip())
    end = tail - 1 if tail >= 2 and line[tail - 1] == "$" else max(tail, 1)
    return start, start + end


def _run_end(run: re.Pattern[str], text: str, pos: int) -> int:
    match = run.match(text, pos)
    return pos if match is None else match.end()


def _answers_after_block(text: str) -> list[str]:
    """Every PRM800K "# Answer" block's answer: ``^#\\s*Answer\\s*\\n+\\s*\\$?(.+?)\\$?\\s*$``."""
    found: list[str] = []
    pos = 0
    while (marker := _ANSWER_BLOCK.search(text, pos)) is not None:
        gap_end = _run_end(_SPACES, text, marker.end())
        first_newline = text.find("\n", marker.end(), gap_end)
        span = None
        if first_newline != -1:
            span = _answer_span(text, first_newline + 1, gap_end, dot=False)
        if span is None:
            pos = marker.start() + 1
            continue
        found.append(text[span[0] : span[1]])
        pos = span[1]
    return found


def _answers_after_is(text: str) -> list[str]:
    """Every "The answer is: X": ``answer is[:\\s]*\\$?(.+?)\\$?\\s*(?:\\.\\s*)?$``."""
    found: list[str] = []
    pos = 0
    while (marker := _ANSWER_IS.search(text, pos)) is not None:
        gap_end = _run_end(_COLONS_AND_SPACES, text, marker.end())
        span = _answer_span(text, marker.end(), gap_end, dot=True)
        if span is None:
            pos = marker.start() + 1
            continue
        found.append(text[span[0] : span[1]])
        pos = span[1]
    return found


_ANSWER_FINDERS = (_answers_after_block, _GSM8K_ANSWER.findall, _answers_after_is)


def find_final_answer(steps: Sequence[str]) -> tuple[int, str] | None:
    """(step index, answer) of the final answer: the last boxed one, else the last step with
    PRM800K's "# Answer" block, GSM8K's "####" or "The answer is".

    >>> find_final_answer(["2 x 60 = 120", "# Answer\\n\\n7200"])
    (1, '7200')
    >>> find_final_answer(["so 18 + 12 = 30", "#### 30"]), find_final_answer(["no answer here"])
    ((1, '30'), None)
    """
    for index in range(len(steps) - 1, -1, -1):
        boxed = last_boxed(steps[index])
        if boxed:
            return index, boxed
    for index in range(len(steps) - 1, -1, -1):
        for finder in _ANSWER_FINDERS:
            matches = finder(steps[index])
            if matches and matches[-1].strip():
                return index, matches[-1].strip()
    return None


def _plain(answer: str) -> str:
    """Answer text without presentation: $, \\text{}, spaces, \\left/\\right, degrees, trailing dot."""
    s = answer.strip().strip("$").strip()
    s = re.sub(r"\\(?:text|mathrm|textbf|mbox)\s*\{([^{}]*)\}", r"\1", s)
    s = re.sub(r"\\(?:left|right|displaystyle|!|,|;|:)|\s+|\^\s*\{?\\circ\}?|°", "", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\%", "%")
    return s.rstrip(".").lower()


def answers_match(predicted: str, reference: str) -> bool | None:
    """True / False when the answers can be compared, None when they cannot (then no check).

    >>> answers_match("\\\\frac{1}{2}", "0.5"), answers_match("35", "180"), answers_match("9^{9^{9^{9}}}", "1")
    (True, False, None)
    """
    if _plain(predicted) == _plain(reference):
        return True
    try:
        a = evaluate(lex(normalise(predicted)))
        b = evaluate(lex(normalise(reference)))
        return compare(a, b, decimals=None, approx=False) or bool(
            abs(float((a - b).evalf(30))) <= 1e-6 * max(1.0, abs(float(b.evalf(30))))
        )
    except TooLarge:
        return None  # never hand a huge power to a parser that would try to compute it
    except (NotCheckable, ArithmeticError, ValueError, TypeError, RecursionError):
        pass
    return _math_verify(predicted, reference)


# A power whose exponent is itself a power (9^9^9, 2^{3^{4}}) or has 4+ digits: a parser that
# simplifies it would compute a huge integer in C, where no timeout can interrupt it.
_RISKY_POWER = re.compile(
    r"\^\s*(?:\{[^{}]*[\^{]|\(?\s*[\w.]*\s*\^|\{?\(?\s*\d{4,}|\{[^{}]*\}\s*\^|\([^()]*\)\s*\^)"
)


def _math_verify(predicted: str, reference: str) -> bool | None:
    """math-verify's verdict, or None when it cannot parse or the text is risky.

    >>> _math_verify("a^2 + b^2 + c^2 - 12R^2", "3R^2"), _math_verify("9^9^9", "1")
    (False, None)
    """
    if len(predicted) > 300 or len(reference) > 300:
        return None
    if _RISKY_POWER.search(predicted) or _RISKY_POWER.search(reference):
        return None
    try:
        from math_verify import parse, verify
    except ImportError:  # the sympy-only checks above are the fallback
        return None
    # math-verify's timeouts use SIGALRM, which only the main thread may set.
    main = threading.current_thread() is threading.main_thread()
    timeout = 3 if main else None
    if not main and ("^" in predicted + reference or "!" in predicted + reference):
        return None  # no timeout available: do not risk a huge power
    try:
        gold = parse(f"${reference}$", parsing_timeout=timeout) or parse(
            reference, parsing_timeout=timeout
        )
        pred = parse(f"\\boxed{{{predicted}}}", parsing_timeout=timeout)
        if not gold or not pred:
            return None
        return bool(verify(gold, pred, timeout_seconds=timeout))
    except Exception:  # math-verify raises assorted parser errors on odd text; never fatal here
        return None


class ToolScorer:
    """Arithmetic and answer checks; no model, no torch."""

    name = "tool"

    def __init__(
        self,
        model_path: str | None = None,
        *,
        device: str = "cpu",
        dtype: str = "auto",
        params: Mapping[str, Any] | None = None,
    ) -> None:
        # model_path / device / dtype are accepted for a uniform registry and ignored.
        self.params = parse_params(ToolParams, params, self.name)

    def score(self, traces: Sequence[TraceInput]) -> list[TraceScores]:
        return [self.score_trace(t) for t in traces]

    def score_trace(self, trace: TraceInput) -> TraceScores:
        p = self.params
        deadline = time.monotonic() + p.time_budget_s
        per_step: list[list[Check]] = []
        read_table = table_reader(trace.table)  # built once per trace, not per step
        skipped: list[str | None] = []  # why a step's arithmetic was not checked
        for step in trace.steps:
            if time.monotonic() > deadline:
                per_step.append([])
                skipped.append("time budget")
                continue
            if len(step) > MAX_TEXT:
                # Checking only a prefix would pass a wrong equation further on: say so instead.
                per_step.append([])
                skipped.append(f"longer than {MAX_TEXT} characters")
                continue
            try:
                per_step.append(check_text(step) + read_table(step))
            except Exception as exc:  # a step's text must never fail a whole batch: say why
                per_step.append([])
                skipped.append(f"check failed: {type(exc).__name__}: {exc}"[:300])
                continue
            skipped.append(None)

        trajectory: float | None = None
        answer_index: int | None = None
        answer_detail: dict[str, Any] | None = None
        if p.check_answer and trace.reference_answer and trace.steps:
            found = find_final_answer(trace.steps)
            if found is None:
                trajectory = 0.0
                answer_detail = {"found": None, "reference": trace.reference_answer, "ok": False}
                answer_index = len(trace.steps) - 1
            else:
                answer_index, answer = found
                ok = answers_match(answer, trace.reference_answer)
                if ok is not None:
                    trajectory = 1.0 if ok else 0.0
                    per_step[answer_index].append(
                        Check(
                            expression=f"{answer} vs reference {trace.reference_answer}",
                            expected=trace.reference_answer,
                            computed=answer,
                            ok=ok,
                            source="answer",
                        )
                    )
                answer_detail = {"found": answer, "reference": trace.reference_answer, "ok": ok}

        steps = []
        for index, (text, checks) in enumerate(zip(trace.steps, per_step, strict=True)):
            details: dict[str, Any] = {"checks": [c.as_dict() for c in checks]}
            failed = [c for c in checks if not c.ok]
            refuted = bool(failed) and all(c.source != "answer" for c in failed)
            refuted = refuted and bool(_REFUTING.search(text))
            if failed and not refuted:
                score = p.false_score
            elif checks and not failed:
                score = p.pass_score
            else:
                score = p.neutral_score
                details["verdict"] = "unknown"
            if refuted:
                details["refuted"] = True
            if skipped[index] is not None:
                details["skipped"] = skipped[index]
            if index == answer_index and answer_detail is not None:
                details["answer"] = answer_detail
            steps.append(StepScoreOut(score, details))
        return TraceScores(trace.key, steps, trajectory)
