"""Safe checking of the arithmetic written inside a reasoning step (untrusted text).

Nothing here calls ``eval``, ``sympify`` or ``parse_expr`` (sympy's parser runs ``eval`` on
the text it builds): a small lexer turns plain text, LaTeX and GSM8K calculator annotations
into tokens, a recursive-descent parser accepts numbers, + - * / ^, parentheses / braces,
``\\frac``, ``\\sqrt``, ``!`` and ``%`` only, and builds exact sympy numbers. Every operation is
bounded (digits of literals and results, exponent and factorial size), so "9**9**9**9" is
refused in microseconds instead of hanging. Anything else (variables, functions, words that
are not units) makes an equation "not checkable", never an error.

>>> [(c.expression, c.ok) for c in check_text("She has 16 - 3 = 13 eggs, and 2 + 2 = 5.")]
[('16 - 3 = 13', True), ('2 + 2 = 5', False)]
>>> check_text("x - 3 = 5 and f(2) = 7")
[]
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import sympy

MAX_LITERAL_DIGITS = 60
MAX_RESULT_DIGITS = 2000
MAX_EXPONENT = 5000
MAX_FACTORIAL = 500
MAX_SIDE_TOKENS = 120
MAX_CHECKS = 64
MAX_TEXT = 20_000


class NotCheckable(Exception):
    """The text is not plain arithmetic we can evaluate safely (never shown to users)."""


class TooLarge(NotCheckable):
    """A number past the size bounds (a huge power or factorial): refused, not computed."""


@dataclass(frozen=True)
class Check:
    """One equation found in a step and what it evaluates to."""

    expression: str  # the equation as written (normalised spacing)
    expected: str  # the right-hand side as written
    computed: str  # the left-hand side's value
    ok: bool
    source: str = "equation"  # equation | calculator | answer

    def as_dict(self) -> dict[str, object]:
        return {
            "expression": self.expression,
            "expected": self.expected,
            "computed": self.computed,
            "ok": self.ok,
            "source": self.source,
        }


# --- lexing -------------------------------------------------------------------------------

NUM, OP, LP, RP, FRAC, SQRT, FACT, PCT, EQ, APPROX, WORD, SEP = (
    "NUM", "OP", "LP", "RP", "FRAC", "SQRT", "FACT", "PCT", "EQ", "APPROX", "WORD", "SEP",
)  # fmt: skip
ARITH = {NUM, OP, LP, RP, FRAC, SQRT, FACT, PCT}


@dataclass(frozen=True)
class Tok:
    kind: str
    text: str
    space_before: bool


# Math delimiters and line breaks end an expression: "$9-16=-7$ $-7+9=2$" is two equations.
BREAK = "\ue000"
_REPLACEMENTS = [
    (re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![a-zA-Z])"), ""),
    (re.compile(r"\\[,;:! ]|~|\\q?quad(?![a-zA-Z])"), " "),
    (re.compile(r"\{,\}"), ""),
    (re.compile(r"\\\$|\$(?=\s?\d)"), " "),  # currency: "\$12", "$18.00"
    (re.compile(r"\$|\\[()\[\]]|\n"), BREAK),  # math delimiters, new lines
    (re.compile(r"\\%"), "%"),
    (re.compile(r"\\(?:times|cdot|ast)(?![a-zA-Z])|[×·⋅∗]"), "*"),
    (re.compile(r"\\div(?![a-zA-Z])|÷"), "/"),
    (re.compile(r"−"), "-"),
    (re.compile(r"\\approx(?![a-zA-Z])|≈"), "≈"),
    (re.compile(r"\*\*"), "^"),
    # "2 x 4" between numbers is a multiplication; "2x" stays a variable.
    (re.compile(r"(?<=\d)\s+x\s+(?=\d)"), " * "),
]
_TOKEN = re.compile(
    r"""
    (?P<num>\d+(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+(?:\.\d+)?|\.\d+)
  | (?P<text>\\(?:text|mathrm|textbf|mbox|textrm|operatorname)\s*\{[^{}]*\})
  | (?P<frac>\\[dt]?frac(?![a-zA-Z]))
  | (?P<sqrt>\\sqrt(?![a-zA-Z])|√)
  | (?P<cmd>\\[a-zA-Z]+)
  | (?P<word>[^\W\d_]+)
  | (?P<op>[-+*/^])
  | (?P<lp>[({\[])
  | (?P<rp>[)}\]])
  | (?P<fact>!)
  | (?P<pct>%)
  | (?P<approx>≈)
  | (?P<eq>=)
  | (?P<other>\S)
    """,
    re.VERBOSE,
)
_KIND = {
    "num": NUM, "text": WORD, "frac": FRAC, "sqrt": SQRT, "cmd": WORD, "word": WORD, "op": OP,
    "lp": LP, "rp": RP, "fact": FACT, "pct": PCT, "approx": APPROX, "eq": EQ, "other": SEP,
}  # fmt: skip


def normalise(text: str) -> str:
    for pattern, repl in _REPLACEMENTS:
        text = pattern.sub(repl, text)
    return text


def lex(text: str) -> list[Tok]:
    """Tokens of normalised text.

    >>> [t.kind for t in lex(normalise("\\\\(3 \\\\times 22 = 66\\\\)"))]
    ['SEP', 'NUM', 'OP', 'NUM', 'EQ', 'NUM', 'SEP']
    """
    tokens: list[Tok] = []
    last_end = 0
    for m in _TOKEN.finditer(text):
        kind = _KIND[m.lastgroup or "other"]
        value = m.group()
        # "=" next to "<", ">", "!" is a comparison (<=, >=, !=, ==), not an equation.
        if kind == EQ and (text[m.start() - 1 : m.start()] in "<>=" and m.start() > 0):
            kind = SEP
        if kind == EQ and text[m.end() : m.end() + 1] == "=":
            kind = SEP
        tokens.append(Tok(kind, value, m.start() > last_end))
        last_end = m.end()
    return tokens


# --- parsing and evaluation (exact, bounded) ----------------------------------------------


def _digits(value: sympy.Expr) -> float:
    """Rough decimal size of a number (numerator or denominator, whichever is larger)."""
    if isinstance(value, sympy.Rational):
        return max(abs(int(value.p)).bit_length(), abs(int(value.q)).bit_length()) * 0.30103 + 1
    try:
        magnitude = abs(float(value.evalf(15)))
    except (TypeError, OverflowError, ValueError):
        raise TooLarge("value too large") from None
    return math.log10(magnitude) + 1 if magnitude > 0 else 1


def _bounded(value: sympy.Expr) -> sympy.Expr:
    if value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        raise NotCheckable("undefined")
    if _digits(value) > MAX_RESULT_DIGITS:
        raise TooLarge("value too large")
    return value


def _number(text: str) -> sympy.Rational:
    digits = text.replace(",", "")
    if len(digits) > MAX_LITERAL_DIGITS:
        raise TooLarge("literal too long")
    return sympy.Rational(digits)


class _Parser:
    """expr := term (("+" | "-") term)*; term := unary (("*" | "/" | implicit) unary)*;
    unary := ("-" | "+") unary | power; power := postfix ("^" unary)?;
    postfix := atom ("!" | "%")*; atom := NUM | "(" expr ")" | \\frac g g | \\sqrt g."""

    def __init__(self, tokens: list[Tok]) -> None:
        self.tokens = tokens
        self.i = 0

    def parse(self) -> sympy.Expr:
        if not self.tokens or len(self.tokens) > MAX_SIDE_TOKENS:
            raise NotCheckable("empty or too long")
        value = self.expr()
        if self.i != len(self.tokens):
            raise NotCheckable("trailing tokens")
        return value

    def peek(self) -> Tok | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Tok:
        tok = self.peek()
        if tok is None:
            raise NotCheckable("unexpected end")
        self.i += 1
        return tok

    def expr(self) -> sympy.Expr:
        value = self.term()
        while (tok := self.peek()) is not None and tok.kind == OP and tok.text in "+-":
            self.take()
            rhs = self.term()
            value = _bounded(value + rhs if tok.text == "+" else value - rhs)
        return value

    def term(self) -> sympy.Expr:
        value = self.implicit()
        while (tok := self.peek()) is not None and tok.kind == OP and tok.text in "*/":
            self.take()
            rhs = self.implicit()
            if tok.text == "/":
                if rhs == 0:
                    raise NotCheckable("division by zero")
                value = _bounded(value / rhs)
            else:
                value = _bounded(value * rhs)
        return value

    def implicit(self) -> sympy.Expr:
        """Juxtaposition written without a space binds tighter than * and /, as people read
        it: 2(3+4), (1)(2), 4\\sqrt{3} / 6\\sqrt{3}; an integer glued to a numeric \\frac is
        a mixed number (4\\frac{5}{8} = 4 + 5/8)."""
        start = self.peek()
        value = self.unary()
        while (tok := self.peek()) is not None and not tok.space_before:
            if (
                tok.kind == FRAC
                and start is not None
                and start.kind == NUM
                and self.i == self._after(start)
            ):
                frac = self.atom()
                if value.is_Integer and frac.is_Rational and 0 < frac < 1:
                    value = value + frac if value >= 0 else value - frac
                    continue
                raise NotCheckable("number next to a fraction")
            if tok.kind in (LP, SQRT) or (tok.kind == NUM and self._prev_kind() == RP):
                value = _bounded(value * self.postfix())
            else:
                break
        return value

    def _after(self, tok: Tok) -> int:
        return self.tokens.index(tok) + 1

    def _prev_kind(self) -> str | None:
        return self.tokens[self.i - 1].kind if self.i > 0 else None

    def unary(self) -> sympy.Expr:
        tok = self.peek()
        if tok is not None and tok.kind == OP and tok.text in "+-":
            self.take()
            value = self.unary()
            return -value if tok.text == "-" else value
        return self.power()

    def power(self) -> sympy.Expr:
        base = self.postfix()
        tok = self.peek()
        if tok is not None and tok.kind == OP and tok.text == "^":
            self.take()
            exponent = self.unary()
            return _power(base, exponent)
        return base

    def postfix(self) -> sympy.Expr:
        value = self.atom()
        while (tok := self.peek()) is not None and tok.kind in (FACT, PCT):
            self.take()
            if tok.kind == PCT:
                value = value / 100
            else:
                if not (value.is_Integer and 0 <= value <= MAX_FACTORIAL):
                    raise TooLarge("factorial out of range")
                value = sympy.factorial(value)
        return value

    def atom(self) -> sympy.Expr:
        tok = self.take()
        if tok.kind == NUM:
            return _number(tok.text)
        if tok.kind == LP:
            value = self.expr()
            close = self.take()
            if close.kind != RP or _PAIRS[tok.text] != close.text:
                raise NotCheckable("unbalanced")
            return value
        if tok.kind == FRAC:
            num = self.group()
            den = self.group()
            if den == 0:
                raise NotCheckable("division by zero")
            return _bounded(num / den)
        if tok.kind == SQRT:
            index = sympy.Integer(2)
            nxt = self.peek()
            if nxt is not None and nxt.text == "[":  # \sqrt[3]{x}
                self.take()
                index = self.expr()
                if self.take().text != "]" or not (index.is_Integer and 2 <= index <= 12):
                    raise NotCheckable("root index")
            arg = self.group()
            if arg.is_negative or _digits(arg) > MAX_LITERAL_DIGITS:
                raise NotCheckable("root out of range")
            return sympy.sqrt(arg) if index == 2 else sympy.root(arg, index)
        raise NotCheckable(f"unexpected {tok.text!r}")

    def group(self) -> sympy.Expr:
        """A \\frac / \\sqrt argument: {expr}, or one digit as in \\frac12."""
        tok = self.peek()
        if tok is not None and tok.kind == NUM and tok.text.isdigit():
            self.take()
            if len(tok.text) == 1:
                return sympy.Integer(tok.text)
            # \frac12 lexes as one number "12": split it into the two one-digit arguments.
            if len(tok.text) == 2:
                self.tokens.insert(self.i, Tok(NUM, tok.text[1], False))
                return sympy.Integer(tok.text[0])
            raise NotCheckable("ambiguous \\frac argument")
        return self.atom()


_PAIRS = {"(": ")", "{": "}", "[": "]"}


def _power(base: sympy.Expr, exponent: sympy.Expr) -> sympy.Expr:
    if not exponent.is_Rational:
        raise NotCheckable("irrational exponent")
    # roots of small rationals only: 8^(1/3), 16^(3/4)
    if not exponent.is_Integer and (exponent.q > 4 or _digits(base) > 30 or base.is_negative):
        raise NotCheckable("fractional exponent")
    if abs(exponent) > MAX_EXPONENT:
        raise TooLarge("exponent too large")
    if base == 0 and exponent.is_negative:
        raise NotCheckable("division by zero")
    if base not in (0, 1, -1) and float(abs(exponent)) * max(_digits(base), 1) > MAX_RESULT_DIGITS:
        raise TooLarge("result too large")
    return _bounded(sympy.Pow(base, exponent))


def evaluate(tokens: list[Tok]) -> sympy.Expr:
    """Exact value of an arithmetic token run, or NotCheckable.

    >>> evaluate(lex(normalise("2\\\\cdot5!\\\\cdot5!")))
    28800
    >>> evaluate(lex("9^9^9^9"))
    Traceback (most recent call last):
    ...
    scoring.prm.arith.TooLarge: exponent too large
    """
    return _Parser(list(tokens)).parse()


# --- finding equations in prose -----------------------------------------------------------

# Words that continue an expression ("20% of 50", "x times 3"): the numbers after them are not
# the whole left-hand side, so the equation is not checked.
_JOINING_WORDS = {
    "of", "by", "times", "than", "per", "over", "plus", "minus", "divided", "multiplied", "into",
    "from", "mod", "modulo", "choose", "squared", "cubed", "pmod", "bmod",
}  # fmt: skip


_TEXT_COMMANDS = ("\\text", "\\mathrm", "\\mbox", "\\textbf", "\\textrm", "\\operatorname")
# LaTeX commands that end an expression like punctuation does.
_SEPARATOR_COMMANDS = {
    "\\implies", "\\Rightarrow", "\\rightarrow", "\\Longrightarrow", "\\iff", "\\therefore",
    "\\because", "\\end", "\\begin", "\\hline", "\\qquad", "\\quad", "\\text", "\\mathrm",
    "\\mbox", "\\textbf", "\\textrm", "\\boxed",
}  # fmt: skip
# Integer division and modular arithmetic: "23 / 4 = 5 remainder 3", "2 + 2 = 0 (mod 4)".
_MODULAR_WORDS = {"r", "rem", "mod", "modulo", "\\pmod", "\\bmod", "\\mod", "\\equiv"}
_MODULAR_STEMS = ("remain", "quotient", "modul")


def _is_text_command(tok: Tok) -> bool:
    return tok.kind == WORD and tok.text.startswith(_TEXT_COMMANDS)


def _word(tok: Tok) -> str:
    """The plain word of a WORD token (\\text{ hours} -> hours)."""
    return re.sub(r"^\\[a-zA-Z]+\s*\{|\}$", "", tok.text).strip().lower()


def _is_unit(tok: Tok, *, glued_ok: bool = False) -> bool:
    if tok.kind != WORD:
        return False
    if tok.text.startswith("\\") and not _is_text_command(tok):
        return False
    if not (tok.space_before or glued_ok or _is_text_command(tok)):
        return False  # "3xy" is a product of variables, not a unit
    word = _word(tok)
    shortest = 1 if _is_text_command(tok) else 2  # \\mathrm{g} is a unit, a bare "g" a variable
    return len(word) >= shortest and word.isalpha() and word not in _JOINING_WORDS | _MODULAR_WORDS


def _strip_units(tokens: list[Tok]) -> list[Tok]:
    """Drop a unit word after a number when arithmetic goes on after it:
    "3 plates * 6.00/plate = 18.00" -> "3 * 6.00 = 18.00". Before "=", only when the left
    side is a computation: "4 hours = 4 * 60 minutes" is a conversion, not 4 = 240."""
    out: list[Tok] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        prev = out[-1] if out else None
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if prev is not None and prev.kind in (NUM, PCT) and _is_unit(tok) and nxt is not None:
            if nxt.kind in (OP, RP, PCT):
                i += 1
                continue
            if nxt.kind in (EQ, APPROX) and _side_has_operator(out):
                i += 1
                continue
        # "/plate" after a number, before more arithmetic or "=": a per-unit, drop both
        if (
            tok.kind == OP
            and tok.text == "/"
            and prev is not None
            and prev.kind == NUM
            and nxt is not None
            and _is_unit(nxt, glued_ok=True)
        ):
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


def _side_has_operator(out: list[Tok]) -> bool:
    for tok in reversed(out):
        if tok.kind not in ARITH:
            return False
        if tok.kind == OP:
            return True
    return False


def _modular_near(tokens: list[Tok], start: int, stop: int) -> bool:
    window = tokens[max(start, 0) : max(stop, 0)]
    return any(
        t.kind == WORD
        and (
            _word(t) in _MODULAR_WORDS
            or t.text in _MODULAR_WORDS
            or any(stem in _word(t) for stem in _MODULAR_STEMS)
        )
        for t in window
    )


def _is_break(tok: Tok) -> bool:
    return tok.kind == SEP and tok.text == BREAK


def _left_run(tokens: list[Tok], eq: int) -> list[Tok] | None:
    start = eq
    while start > 0 and tokens[start - 1].kind in ARITH:
        start -= 1
    run = tokens[start:eq]
    if not run or _modular_near(tokens, start - 6, start):
        return None
    at_line_start = start == 0 or _is_break(tokens[start - 1])
    if (
        at_line_start
        and len(run) > 1
        and run[0].kind == OP
        and run[0].text in "-+*"
        and run[1].space_before
    ):
        run = run[1:]  # "- 10 = 2 * 5": a list bullet, not a minus sign
    first = run[0]
    if first.kind in (RP, FACT, PCT) or (first.kind == OP and first.text not in "-+"):
        return None  # continues a non-numeric expression: "x^2 = 4", "a + 3 = 5"
    # what comes before, looking through math delimiters: "10% of $\\$1.50 = ..."
    back = start - 1
    while back >= 0 and _is_break(tokens[back]):
        back -= 1
    if back >= 0:
        before = tokens[back]
        if before.kind == WORD and first.kind == OP:
            return None  # "\\text{Age} - 4 = 6", "x - 3 = 5": the minus belongs to a word
        if before.kind == WORD:
            if before.text.startswith("\\"):
                if not before.text.startswith(tuple(_SEPARATOR_COMMANDS)):
                    return None  # "\\sin 30 = 0.5", "\\pi r^2"
            elif not first.space_before or len(before.text) == 1 or first.kind == OP:
                return None  # "f(3) = 7", "x - 3 = 5"
            elif _word(before) in _JOINING_WORDS:
                return None  # "20% of 50 = 10"
        elif before.kind == SEP and before.text in "<>|_'^.":
            return None
    return run


def _right_run(tokens: list[Tok], eq: int) -> list[Tok] | None:
    end = eq + 1
    while end < len(tokens) and tokens[end].kind in ARITH:
        end += 1
    run = tokens[eq + 1 : end]
    if not run or run[-1].kind == OP or _modular_near(tokens, end, end + 4):
        return None
    if end < len(tokens):
        after = tokens[end]
        if after.kind == WORD:
            if after.text.startswith("\\"):
                if not after.text.startswith(tuple(_SEPARATOR_COMMANDS)):
                    return None  # "= 50 - 50 \\cos A", "= 2\\pi"
            elif not after.space_before or len(after.text) == 1:
                return None  # "= 5x", "= 3 x + 1"
        if after.kind == SEP and after.text in "_'^":
            return None
        following = tokens[end + 1] if end + 1 < len(tokens) else None
        if (
            after.text == "."
            and following is not None
            and following.kind in (NUM, WORD)
            and not following.space_before
        ):
            return None  # "= 0.\\overline{6}": the number goes on
    return run


def _decimals(run: list[Tok]) -> int | None:
    """Decimal places of a side that is a single literal (its rounding tolerance)."""
    core = [t for t in run if not (t.kind == OP and t.text in "+-")]
    if len(core) == 1 and core[0].kind == NUM:
        text = core[0].text
        return len(text.split(".")[1]) if "." in text else 0
    if len(core) == 2 and core[0].kind == NUM and core[1].kind == PCT:
        text = core[0].text
        return (len(text.split(".")[1]) if "." in text else 0) + 2
    return None


def _show(tokens: list[Tok]) -> str:
    """The tokens with their original spacing (LaTeX operators already normalised)."""
    return "".join((" " if t.space_before and i else "") + t.text for i, t in enumerate(tokens))


def _format(value: sympy.Expr) -> str:
    if isinstance(value, sympy.Integer):
        return str(value)
    if isinstance(value, sympy.Rational):
        as_float = float(value)
        return f"{value} ≈ {as_float:.6g}" if abs(value.q) > 1 else str(value)
    return f"{float(value.evalf(15)):.10g}"


def compare(lhs: sympy.Expr, rhs: sympy.Expr, *, decimals: int | None, approx: bool) -> bool:
    """Equal, exactly for integers and fractions; within the rounding of a decimal literal
    (truncation allowed: 1 unit of its last place); within 0.5% (or that rounding) for "≈".

    >>> compare(sympy.Rational(10, 3), sympy.Rational("3.33"), decimals=2, approx=False)
    True
    >>> compare(sympy.Integer(4500), sympy.Integer(3500), decimals=0, approx=False)
    False
    """
    diff = abs(lhs - rhs)
    if diff == 0:
        return True
    tolerance = sympy.Rational(1, 10**decimals) if decimals else sympy.Integer(0)
    if approx:
        tolerance = max(tolerance, abs(rhs) * sympy.Rational(5, 1000), sympy.Rational(1, 100))
    if isinstance(diff, sympy.Rational):
        if decimals == 0 and not approx and lhs.is_Rational and rhs.is_Rational:
            return False
        return bool(diff <= tolerance)
    value = float(diff.evalf(30))
    scale = max(abs(float(lhs.evalf(30))), abs(float(rhs.evalf(30))), 1.0)
    return value <= float(tolerance) + 1e-9 * scale


def _is_quotient(left: list[Tok], lhs: sympy.Expr, rhs: sympy.Expr) -> bool:
    """``a / b = floor(a / b)`` with integer literals: a quotient, written with "=" in prose."""
    kinds = [t.kind for t in left]
    return (
        kinds == [NUM, OP, NUM]
        and left[1].text == "/"
        and lhs.is_Rational
        and rhs.is_Integer
        and sympy.floor(lhs) == rhs
    )


_CALCULATOR = re.compile(r"<<([^<>=]{1,200})=([^<>=]{1,60})>>")


def check_text(text: str) -> list[Check]:
    """Every checkable equation of one step (GSM8K ``<<a=b>>`` annotations first)."""
    text = text[:MAX_TEXT]
    checks: list[Check] = []
    for m in _CALCULATOR.finditer(text):
        check = _check_pair(
            lex(normalise(m.group(1))),
            lex(normalise(m.group(2))),
            approx=False,
            source="calculator",
        )
        if check is not None:
            checks.append(check)
    tokens = _strip_units(lex(normalise(_CALCULATOR.sub(" ", text))))
    for k, tok in enumerate(tokens):
        if len(checks) >= MAX_CHECKS:
            break
        if tok.kind not in (EQ, APPROX):
            continue
        left = _left_run(tokens, k)
        right = _right_run(tokens, k)
        if left is None or right is None:
            continue
        # a bare "a = b" of two numbers is usually a label or a value, not a computation
        if not any(t.kind in (OP, FRAC, SQRT, FACT, PCT) for t in left + right):
            continue
        check = _check_pair(left, right, approx=tok.kind == APPROX, source="equation")
        if check is not None:
            checks.append(check)
    return checks


def _check_pair(left: list[Tok], right: list[Tok], *, approx: bool, source: str) -> Check | None:
    try:
        lhs = evaluate(left)
        rhs = evaluate(right)
        decimals = _decimals(right)
        if decimals is None:
            decimals = _decimals(left)
        ok = compare(lhs, rhs, decimals=decimals, approx=approx)
        if not ok and _is_quotient(left, lhs, rhs):
            return None  # "2250 / 360 = 6 full rotations (and 90 degrees)": integer division
        if not ok and right[-1].kind == PCT:
            # "0.2 * 100 = 20%": the percent sign written after an already-scaled number
            ok = compare(lhs, rhs * 100, decimals=decimals, approx=approx)
    except NotCheckable:
        return None
    except (ArithmeticError, ValueError, TypeError, RecursionError):
        return None
    sign = "≈" if approx else "="
    return Check(
        expression=f"{_show(left)} {sign} {_show(right)}",
        expected=_show(right),
        computed=_format(lhs),
        ok=ok,
        source=source,
    )
