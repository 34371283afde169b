"""Rendered HTML kept by content: each text is rendered (annotate.rendering) once, then read back.

Step and problem text never change after import, yet every page view rendered Markdown and
sanitised it again (about 0.4 ms a step on this machine). A page now asks for the HTML of its
texts here: one query for those already rendered by this renderer version, a render and one insert
for the rest. Rendering at import instead would add some 400 s to a million-step import.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from django.template.defaultfilters import truncatechars
from django.utils.safestring import SafeString, mark_safe

from annotate import rendering
from annotate.models import Problem, RenderedHtml
from annotate.rendering import render_markdown, table_markdown
from annotate.tables import table_or_none

# The excerpts pages show are texts of their own (their HTML differs from the whole text's): the
# queue's problem column, the data browser's preview, Best-of-N's final-answer column. The
# templates truncate by the same numbers (truncatechars), so each excerpt is found here.
QUEUE_EXCERPT_CHARS = 140
PREVIEW_CHARS = 160
ANSWER_EXCERPT_CHARS = 80


def html_digest(text: str) -> str:
    """The key of a text's HTML: its content and the renderer's version (a new version, a new
    key: the old rows are simply no longer read)."""
    hasher = hashlib.blake2b(digest_size=16)
    hasher.update(f"{rendering.RENDERER_VERSION}\0".encode())
    hasher.update(text.encode("utf-8", "surrogatepass"))
    return hasher.hexdigest()


def html_many(texts: Iterable[str]) -> dict[str, SafeString]:
    """{text: sanitised HTML} for these texts, rendering only those never rendered by this version
    of the renderer (and storing them for the next view). The empty text is empty HTML."""
    by_digest = {html_digest(text): text for text in set(texts) if text}
    html: dict[str, SafeString] = {"": mark_safe("")}
    if not by_digest:
        return html
    for digest, stored in RenderedHtml.objects.filter(pk__in=list(by_digest)).values_list(
        "digest", "html"
    ):
        # Only this module writes these rows, from render_markdown's sanitised output.
        html[by_digest.pop(digest)] = mark_safe(stored)  # noqa: S308
    fresh = [
        RenderedHtml(digest=digest, html=render_markdown(text), version=rendering.RENDERER_VERSION)
        for digest, text in by_digest.items()
    ]
    if fresh:
        # Two first views at once render the same text: the second insert is skipped, not an error.
        RenderedHtml.objects.bulk_create(fresh, ignore_conflicts=True)
        for row in fresh:
            html[by_digest[row.digest]] = mark_safe(row.html)  # noqa: S308
    return html


def excerpt(text: str, chars: int) -> str:
    """The first `chars` characters of a text as a page's `truncatechars` filter gives them."""
    return str(truncatechars(text, chars))


def problem_texts(problem: Problem, *, reference_solution: bool = True) -> list[str]:
    """The texts a page shows whole for a problem: its text, reference answer and solution, and
    its table's cells (rendered as one GFM table, annotate.rendering.render_table)."""
    texts = [problem.text, problem.reference_answer]
    if reference_solution:
        texts.append(problem.reference_solution)
    grid = table_or_none(problem.table) if problem.table is not None else None
    if grid is not None:
        texts.append(table_markdown(grid.header, grid.rows))
    return texts

