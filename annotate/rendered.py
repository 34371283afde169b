"""Rendered HTML kept by content: each text is rendered (annotate.rendering) once, then read back.

Step and problem text never change after import, yet every page view rendered Markdown and
sanitised it again (about 0.4 ms a step on this machine). A page now asks for the HTML of its
texts here: one query for those already rendered by this renderer version, a render and one insert
for the rest. Rendering inside the import would add some 400 s to a million-step import: instead
`html_fill` renders what a project's pages will show, off the request (the `render_html` command,
and a bulk-queue task after each import commits), and `html_prune` drops old renderer versions.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.template.defaultfilters import truncatechars
from django.utils.safestring import SafeString, mark_safe

from annotate import rendering
from annotate.models import Problem, Project, RenderedHtml, Step, Trace
from annotate.rendering import render_markdown, table_markdown
from annotate.tables import table_or_none

# The excerpts pages show are texts of their own (their HTML differs from the whole text's): the
# queue's problem column, the data browser's preview, Best-of-N's final-answer column. The
# templates truncate by the same numbers (truncatechars), so each excerpt is found here.
QUEUE_EXCERPT_CHARS = 140
PREVIEW_CHARS = 160
ANSWER_EXCERPT_CHARS = 80
# Sent after each import commits (annotate.imports), on the bulk queue: its texts' HTML.
FILL_TASK = "annotate.tasks.html_fill_task"
# SQLite's default limit on a statement's parameters is 999.
_IN_CHUNK = 900


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


# --- filling the store off the request ---------------------------------------------------------

FillProgress = Callable[[int, int, int], None]  # (traces done, traces in all, texts rendered)


def html_fill(
    *,
    project: Project | None = None,
    after_trace_id: int = 0,
    batch: int = 200,
    progress: FillProgress | None = None,
) -> dict[str, Any]:
    """Render and store every text the pages show for `project`'s traces (every project's if
    None) with an id above `after_trace_id` that this renderer version has not rendered yet: the
    problem (whole, its table, its excerpts), the steps, the final answer and its excerpt, the
    guidelines. `batch` traces a round, each round committed on its own: a run stopped half-way
    keeps what it stored, and the next run renders only the rest."""
    if batch < 1:
        raise ValueError(f"batch: must be 1 or more, not {batch}")
    started = time.monotonic()
    traces = Trace.objects.filter(pk__gt=after_trace_id)
    if project is not None:
        traces = traces.filter(project=project)
    total = traces.count()
    summary = {"traces": 0, "checked": 0, "rendered": 0}
    projects = Project.objects.filter(pk=project.pk) if project is not None else Project.objects
    _fill_round(set(projects.values_list("guidelines", flat=True)), summary)
    seen_problems: set[int] = set()
    last = after_trace_id
    while True:
        rows = list(
            traces.filter(pk__gt=last)
            .order_by("pk")
            .values_list("pk", "problem_id", "final_answer")[:batch]
        )
        if not rows:
            break
        last = rows[-1][0]
        texts: set[str] = set()
        for _, _, answer in rows:
            texts.update((answer, excerpt(answer, ANSWER_EXCERPT_CHARS)))
        new_problems = {problem_id for _, problem_id, _ in rows} - seen_problems
        seen_problems |= new_problems
        for problem in Problem.objects.filter(pk__in=new_problems).only(
            "text", "reference_answer", "reference_solution", "table"
        ):
            texts.update(problem_texts(problem))
            texts.update(excerpt(problem.text, n) for n in (QUEUE_EXCERPT_CHARS, PREVIEW_CHARS))
        texts.update(
            Step.objects.filter(trace_id__in=[pk for pk, _, _ in rows]).values_list(
                "text", flat=True
            )
        )
        _fill_round(texts, summary)
        summary["traces"] += len(rows)
        if progress is not None:
            progress(summary["traces"], total, summary["rendered"])
    return {
        "renderer_version": rendering.RENDERER_VERSION,
        **summary,
        "seconds": round(time.monotonic() - started, 1),
    }


def _fill_round(texts: set[str], summary: dict[str, int]) -> None:
    """Store the HTML of those of `texts` not stored yet (counted into `summary`)."""
    by_digest = {html_digest(text): text for text in texts if text}
    summary["checked"] += len(by_digest)  # a text in two batches counts twice
    digests = list(by_digest)
    for start in range(0, len(digests), _IN_CHUNK):
        chunk = digests[start : start + _IN_CHUNK]
        for digest in RenderedHtml.objects.filter(pk__in=chunk).values_list("pk", flat=True):
            del by_digest[digest]
    fresh = [
        RenderedHtml(digest=digest, html=render_markdown(text), version=rendering.RENDERER_VERSION)
        for digest, text in by_digest.items()
    ]
    RenderedHtml.objects.bulk_create(fresh, batch_size=500, ignore_conflicts=True)
    summary["rendered"] += len(fresh)


def html_prune(*, batch: int = 1000) -> int:
    """Delete the HTML kept for other renderer versions than this one (no page reads it any
    more); `batch` rows a statement, walking the key, so a stopped run loses nothing. Returns how
    many rows went."""
    pruned, last = 0, ""
    while True:
        rows = list(
            RenderedHtml.objects.filter(pk__gt=last)
            .order_by("pk")
            .values_list("pk", "version")[:batch]
        )
        if not rows:
            return pruned
        last = rows[-1][0]
        old = [digest for digest, version in rows if version != rendering.RENDERER_VERSION]
        if old:
            pruned += RenderedHtml.objects.filter(pk__in=old).delete()[0]
