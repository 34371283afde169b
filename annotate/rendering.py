"""Safe rendering of untrusted Markdown + LaTeX (problems, steps, guidelines) to HTML for KaTeX."""

from __future__ import annotations

import re
import secrets
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from html import escape
from typing import Any

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.token import Token

# Step text is model output and problem text is scraped data: both are untrusted. The pipeline is
# (1) cut the LaTeX out, so that Markdown cannot mangle `_`, `*` or `\` inside it, (2) Markdown
# with raw HTML off, (3) put the math back as escaped text in a span KaTeX renders in the browser,
# (4) nh3 as the last word on which tags and attributes survive.

# Math spans and the code they must not be taken from, found in ONE left-to-right pass: at each
# position the first of these that matches wins (fence, code, \$, $$, \[, \(, $, \boxed), and
# every closer is looked for with str.find or a bounded pattern, never by rescanning the rest of
# the text from each opener, so text of any length is scanned in linear time. (One step of `\[`
# repeated 80,000 times held a web worker past gunicorn's 60 s timeout: a regex with `.+?` up to
# `\]` read the whole remainder again from every unclosed opener.)
_TRIGGER = re.compile(r"^[ \t]*(?:```|~~~)|[`$\\]", re.MULTILINE)
# Possessive (*+): a line of 200,000 backticks and no newline fails once, not once per backtick.
_FENCE_OPEN = re.compile(r"[ \t]*+(`{3,}+|~{3,}+)[^\n]*+\n")
_BACKTICKS = re.compile(r"`+")
# A newline that ends a paragraph (the next line is blank): code spans and $...$ stop there.
_PARAGRAPH_END = re.compile(r"\n(?=[^\S\n]*\n)")
_BRACES = r"\{(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*\}"  # balanced braces, three levels deep
# Reasoning traces often box the final answer outside any math delimiters. A failed match stops
# at the end or at a fourth level of unclosed braces, so no character is read by more than three
# failed openers.
_BOXED = re.compile(r"\\boxed" + _BRACES)
_ESCAPE_OR_DOUBLE_DOLLAR = re.compile(r"\\.|\$\$", re.DOTALL)
_DIGIT = re.compile(r"\d")
_DOLLAR_STOP = re.compile(r"[$\\\n]")  # where $...$ content needs a decision


@dataclass(frozen=True)
class _Math:
    tex: str
    display: bool
    source: str  # the original text, delimiters included, for places math cannot go (code, URLs)


class _MathScanner:
    """The math spans of one text. Each method tries one kind of span at `start` and returns
    where the scan goes on (None: no such span there, the next kind is tried)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.found: list[tuple[int, int, _Math]] = []  # (start, end, math): code is not listed
        self._breaks: list[int] | None = None
        self._runs: dict[int, list[int]] | None = None
        self._last_closer: dict[str, int] = {}
        self._no_double_dollar_after = len(text)

    def scan(self) -> list[tuple[int, int, _Math]]:
        text, pos = self.text, 0
        while (trigger := _TRIGGER.search(text, pos)) is not None:
            start = trigger.start()
            end = self._match_at(start)
            pos = start + 1 if end is None else end
        return self.found

    def _match_at(self, start: int) -> int | None:
        text = self.text
        if start == 0 or text[start - 1] == "\n":
            end = self._fence(start)
            if end is not None:
                return end
        char = text[start]
        if char == "`":
            return self._code(start)
        if text.startswith("\\$", start):
            return start + 2  # an escaped dollar is text
        if text.startswith("$$", start) and (end := self._double_dollar(start)) is not None:
            return end
        if text.startswith("\\[", start) and (end := self._closed(start, "\\]", True)) is not None:
            return end
        if text.startswith("\\(", start) and (end := self._closed(start, "\\)", False)) is not None:
            return end
        if char == "$":
            return self._dollar(start)
        if text.startswith("\\boxed", start) and (boxed := _BOXED.match(text, start)):
            self.found.append((start, boxed.end(), _Math(boxed.group(), False, boxed.group())))
            return boxed.end()
        return None

    def _fence(self, start: int) -> int | None:
        """A fenced code block: to a line of the same fence alone, or to the end of the text."""
        opening = _FENCE_OPEN.match(self.text, start)
        if opening is None:
            return None
        closing = _fence_close(opening.group(1)).search(self.text, opening.end())
        return len(self.text) if closing is None else closing.end()

    def _code(self, start: int) -> int:
        """A code span (CommonMark): a run of n backticks closed by the next run of exactly n,
        within the paragraph; a run without one is plain text."""
        text = self.text
        run = _BACKTICKS.match(text, start)
        assert run is not None, "called at a backtick"
        after = run.end()
        length = after - start
        runs = self._backtick_runs().get(length, [])
        k = bisect_right(runs, start)
        if k < len(runs) and runs[k] < self._paragraph_end(after):
            return runs[k] + length
        return after

    def _double_dollar(self, start: int) -> int | None:
        """$$...$$: the first $$ not escaped by a backslash, after at least one character."""
        text = self.text
        if start >= self._no_double_dollar_after:
            return None  # an earlier $$ found no closer: no later one can
        pos = start + 2
        if pos >= len(text) or (text[pos] == "\\" and pos + 1 >= len(text)):
            return None
        pos += 2 if text[pos] == "\\" else 1
        for found in _ESCAPE_OR_DOUBLE_DOLLAR.finditer(text, pos):
            if found.group() == "$$":
                tex = text[start + 2 : found.start()]
                self.found.append((start, found.end(), _Math(tex, True, text[start : found.end()])))
                return found.end()
        self._no_double_dollar_after = start
        return None

    def _closed(self, start: int, closer: str, display: bool) -> int | None:
        """\\[...\\] and \\(...\\): the first closer after at least one character."""
        text = self.text
        if closer not in self._last_closer:
            self._last_closer[closer] = text.rfind(closer)
        if self._last_closer[closer] < start + 3:
            return None  # no closer after this opener (found once per text, not per opener)
        close = text.find(closer, start + 3)
        end = close + len(closer)
        self.found.append((start, end, _Math(text[start + 2 : close], display, text[start:end])))
        return end

    def _dollar(self, start: int) -> int | None:
        """$...$ by Pandoc's rule, so that prices ("$6.00 each and $5.00") are not math: the
        opening $ is followed by a non-space, the closing $ preceded by a non-space and not
        followed by a digit; a backslash escapes the next character ($\\$5$ is math holding a
        dollar sign); no $ inside, and no blank line."""
        text, n = self.text, len(self.text)
        pos = start + 1
        if pos >= n or text[pos].isspace() or text[pos] == "$":
            return None
        pos += 2 if text[pos] == "\\" else 1
        while pos < n and (stop := _DOLLAR_STOP.search(text, pos)) is not None:
            pos = stop.start()
            char = text[pos]
            if char == "$":
                if text[pos - 1].isspace() or _DIGIT.match(text, pos + 1):
                    return None  # not a closer, and a $ cannot be inside
                tex = text[start + 1 : pos]
                self.found.append((start, pos + 1, _Math(tex, False, text[start : pos + 1])))
                return pos + 1
            if char == "\\":
                pos += 2
            elif pos == self._paragraph_end(pos):
                return None
            else:
                pos += 1
        return None

    def _paragraph_end(self, pos: int) -> int:
        """The first newline at or after `pos` that ends a paragraph (or the text's length)."""
        if self._breaks is None:
            self._breaks = [m.start() for m in _PARAGRAPH_END.finditer(self.text)]
        k = bisect_left(self._breaks, pos)
        return self._breaks[k] if k < len(self._breaks) else len(self.text)

    def _backtick_runs(self) -> dict[int, list[int]]:
        """Start positions of the backtick runs of the text, by run length."""
        if self._runs is None:
            self._runs = {}
            for run in _BACKTICKS.finditer(self.text):
                self._runs.setdefault(run.end() - run.start(), []).append(run.start())
        return self._runs


@lru_cache(maxsize=32)
def _fence_close(fence: str) -> re.Pattern[str]:
    return re.compile(rf"^[ \t]*{re.escape(fence)}[ \t]*$", re.MULTILINE)


def _protect_math(text: str) -> tuple[str, list[_Math], str]:
    """Replace every math span with an inert alphanumeric placeholder; code is left untouched."""
    nonce = secrets.token_hex(4)
    found: list[_Math] = []
    out: list[str] = []
    pos = 0
    for start, end, math in _MathScanner(text).scan():
        out.append(text[pos:start])
        out.append(f"mathph{nonce}x{len(found)}x")
        found.append(math)
        pos = end
    out.append(text[pos:])
    return "".join(out), found, nonce


def _math_html(math: _Math) -> str:
    css = "math-display" if math.display else "math-inline"
    return f'<span class="{css}">{escape(math.tex.strip(), quote=True)}</span>'


def _render_text(
    self: Any, tokens: Sequence[Token], idx: int, options: Any, env: dict[str, Any]
) -> str:
    """Text tokens: escape, and turn placeholders back into math spans (only here, in text)."""
    content = tokens[idx].content
    placeholder: re.Pattern[str] | None = env.get("math_re")
    if placeholder is None:
        return escape(content, quote=True)
    parts = placeholder.split(content)
    out: list[str] = []
    # split() with one capturing group alternates text, index, text, index, ...
    for i, part in enumerate(parts):
        if i % 2:
            out.append(_math_html(env["math"][int(part)]))
        else:
            out.append(escape(part, quote=True))
    return "".join(out)


def _render_image(
    self: Any, tokens: Sequence[Token], idx: int, options: Any, env: dict[str, Any]
) -> str:
    """Images in untrusted text become links: no request leaves the annotator's browser on load."""
    token = tokens[idx]
    src = escape(str(token.attrGet("src") or ""), quote=True)
    alt = escape(token.content or "image", quote=True)
    return f'<a href="{src}">[image: {alt}]</a>'


def _make_markdown() -> MarkdownIt:
    # "breaks": a newline inside a step is a line break: models write one statement per line.
    md = MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("text", _render_text)
    md.add_render_rule("image", _render_image)
    return md


_MD = _make_markdown()

# Bump on any change to what render_markdown outputs for a given text (this module, or an
# upgrade of markdown-it-py or nh3 that changes their output): the HTML kept by annotate.rendered
# is keyed by it, so every text is rendered again on its next view.
RENDERER_VERSION = 1

_ALLOWED_TAGS = {
    "p", "br", "hr", "em", "strong", "del", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
    "a", "table", "thead", "tbody", "tr", "th", "td", "span", "div",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "span": set(), "div": set()}
_ALLOWED_CLASSES = {"span": {"math-inline", "math-display"}, "div": {"math-display"}}
_DISPLAY_PARAGRAPH_RE = re.compile(r'<p><span class="math-display">([^<]*)</span></p>')


def render_markdown(text: str) -> SafeString:
    """Untrusted Markdown with LaTeX to sanitised HTML; math is left in spans for KaTeX.

    >>> str(render_markdown("Let $a_1 = *b*$ and **c**."))
    '<p>Let <span class="math-inline">a_1 = *b*</span> and <strong>c</strong>.</p>'
    >>> str(render_markdown("<script>alert(1)</script>"))
    '<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>'
    """
    if not text:
        return mark_safe("")
    protected, maths, nonce = _protect_math(text)
    env: dict[str, Any] = {"math": maths, "math_re": re.compile(rf"mathph{nonce}x(\d+)x")}
    html = _MD.render(protected, env)
    # Placeholders that did not land in a text token (inside code, or a link's URL) get their
    # original source back, escaped: math cannot be rendered there, but nothing is lost.
    html = env["math_re"].sub(lambda m: escape(maths[int(m.group(1))].source, quote=True), html)
    html = _DISPLAY_PARAGRAPH_RE.sub(r'<div class="math-display">\1</div>', html)
    clean = nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        allowed_classes=_ALLOWED_CLASSES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return mark_safe(clean.strip())  # noqa: S308 - sanitised by nh3 just above


def _table_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> SafeString:
    """A table's cells (untrusted Markdown with LaTeX) as one sanitised HTML <table>.

    The cells are written as one GFM table and rendered once (render_markdown), not once per
    cell: 10,000 cells in about a second rather than four.

    >>> print(render_table(["x", "a|b"], [["$1$", "<b>2</b>"]]).replace("\\n", ""))
    <table><thead><tr><th>x</th><th>a|b</th></tr></thead><tbody><tr><td><span class="math-inline">1</span></td><td>&lt;b&gt;2&lt;/b&gt;</td></tr></tbody></table>
    """
    return render_markdown(table_markdown(header, rows))


def table_markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table's cells as the one GFM table render_table renders (and annotate.rendered keeps)."""
    lines = [
        "| " + " | ".join(_table_cell(name) or " " for name in header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(_table_cell(cell) for cell in row) + " |" for row in rows),
    ]
    return "\n".join(lines)


SHORT_ID_CHARS = 12


def short_trace_id(external_id: str) -> str:
    """A trace's id as a page shows it: the source's id when short, else its first characters
    and an ellipsis (PRM800K's 64-hex ids no longer push a header onto two lines).

    >>> short_trace_id("gsm8k-12")
    'gsm8k-12'
    >>> short_trace_id("1f3a9c" * 10 + "abcd")
    '1f3a9c1f…abcd'
    """
    if len(external_id) <= SHORT_ID_CHARS:
        return external_id
    return f"{external_id[:8]}…{external_id[-4:]}"
