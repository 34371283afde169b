"""Safe rendering of untrusted Markdown + LaTeX (problems, steps, guidelines) to HTML for KaTeX."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
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

_BRACES = r"\{(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*\}"  # balanced braces, three levels deep
_MATH_RE = re.compile(
    r"""
      (?P<fence>^[ \t]*(?P<ticks>`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]*(?P=ticks)[ \t]*$|\Z))
    | (?P<code>(?P<bt>`+)(?:[^\n]|\n(?!\s*\n))+?(?P=bt))
    | (?P<escaped>\\\$)
    | \$\$(?P<dollars2>(?:\\.|[^\\])+?)\$\$
    | \\\[(?P<bracket>.+?)\\\]
    | \\\((?P<paren>.+?)\\\)
    # Pandoc's rule, so that prices ("$6.00 each and $5.00") are not math: the opening $ is
    # followed by a non-space, the closing $ preceded by a non-space and not followed by a digit.
    # A backslash escapes the next character, so `$\$5$` is math holding a dollar sign.
    | \$(?P<dollar>(?:\\.|[^\s$\\])(?:\\.|[^$\\\n]|\n(?!\s*\n))*?)(?<!\s)\$(?!\d)
    # Reasoning traces often box the final answer outside any math delimiters.
    | (?P<boxed>\\boxed<BRACES>)
    """.replace("<BRACES>", _BRACES),
    re.DOTALL | re.MULTILINE | re.VERBOSE,
)


@dataclass(frozen=True)
class _Math:
    tex: str
    display: bool
    source: str  # the original text, delimiters included, for places math cannot go (code, URLs)


def _protect_math(text: str) -> tuple[str, list[_Math], str]:
    """Replace every math span with an inert alphanumeric placeholder; code is left untouched."""
    nonce = secrets.token_hex(4)
    found: list[_Math] = []

    def replace(match: re.Match[str]) -> str:
        if match.group("fence") or match.group("code") or match.group("escaped"):
            return match.group(0)
        if match.group("dollars2") is not None:
            math = _Math(match.group("dollars2"), True, match.group(0))
        elif match.group("bracket") is not None:
            math = _Math(match.group("bracket"), True, match.group(0))
        elif match.group("paren") is not None:
            math = _Math(match.group("paren"), False, match.group(0))
        elif match.group("boxed") is not None:
            math = _Math(match.group("boxed"), False, match.group(0))
        else:
            math = _Math(match.group("dollar"), False, match.group(0))
        found.append(math)
        return f"mathph{nonce}x{len(found) - 1}x"

    return _MATH_RE.sub(replace, text), found, nonce


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
