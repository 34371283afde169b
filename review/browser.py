"""The data browser: every trace of a project, filtered, searched, sorted and paged.

A filter is a URL query (shareable, and the API's query parameters): `TraceFilterSerializer`
parses both, `trace_filter` turns it into one queryset. The PRM filters read the stored
per-trace verdicts of `TracePriority` (refreshed when scores change), never the step scores, so
that a filter over a million steps is an indexed query. Full-text search reads one GIN-indexed
`to_tsvector('english')` document per trace (problem and steps, review/migrations/0003) on
PostgreSQL and falls back to a case-insensitive LIKE on SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.http import QueryDict
from django.utils.safestring import SafeString
from rest_framework import serializers

from annotate.models import (
    Annotation,
    AnnotationStatus,
    GoldLabel,
    GoldSource,
    Project,
    Step,
    StepLabel,
    Trace,
)
from annotate.rendered import PREVIEW_CHARS, excerpt, html_many

from . import fts
from .models import Assignment, AssignmentStatus, TracePriority

PAGE_SIZE = 50
COUNT_CAP = 10_000
CHOICES_SECONDS = 60

STATUS_CHOICES = [
    ("unlabelled", "Unlabelled"),
    ("in_progress", "In progress"),
    ("submitted", "Submitted"),
    ("adjudicated", "Adjudicated"),
    ("gold", "Has gold labels"),
]
YES_NO = [("yes", "Yes"), ("no", "No")]
CORRECT_CHOICES = [("yes", "Correct"), ("no", "Wrong"), ("unknown", "Unknown")]
PRM_CHOICES = [
    ("wrong", "Some step at or below threshold"),
    ("right", "No step below"),
    ("none", "Not scored"),
]
SORTS = {
    "id": ("id",),
    "-id": ("-id",),
    "prm_min": ("priority__prm_min", "id"),
    "-prm_min": ("-priority__prm_min", "id"),
    "disagreement": ("-priority__committee", "id"),
}


class TraceFilterSerializer(serializers.Serializer):
    """The data browser's filter: each field a URL query parameter (all optional)."""

    q = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="Words in the problem or a step.",
    )
    subset = serializers.CharField(required=False, allow_blank=True, max_length=100)
    generator = serializers.CharField(required=False, allow_blank=True, max_length=200)
    source = serializers.CharField(required=False, allow_blank=True, max_length=50)
    status = serializers.ChoiceField(choices=STATUS_CHOICES, required=False, allow_blank=True)
    flagged = serializers.ChoiceField(choices=YES_NO, required=False, allow_blank=True)
    skipped = serializers.ChoiceField(choices=YES_NO, required=False, allow_blank=True)
    disagreement = serializers.ChoiceField(
        choices=YES_NO,
        required=False,
        allow_blank=True,
        help_text="Annotators gave one step different labels.",
    )
    prm = serializers.ChoiceField(
        choices=PRM_CHOICES,
        required=False,
        allow_blank=True,
        help_text="The project's scorers: some step at or below a scorer's threshold (wrong), none "
        "above (right), or not scored yet.",
    )
    prm_min_gte = serializers.FloatField(
        required=False, min_value=0.0, max_value=1.0, help_text="Lowest step score at least this."
    )
    prm_min_lte = serializers.FloatField(
        required=False, min_value=0.0, max_value=1.0, help_text="Lowest step score at most this."
    )
    committee_gte = serializers.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        help_text="Scorer disagreement: two scorers' scores of a step differ by at least this.",
    )
    correct = serializers.ChoiceField(
        choices=CORRECT_CHOICES,
        required=False,
        allow_blank=True,
        help_text="Final answer against the reference.",
    )
    steps_gte = serializers.IntegerField(required=False, min_value=0)
    steps_lte = serializers.IntegerField(required=False, min_value=0)
    sort = serializers.ChoiceField(
        choices=[(k, k) for k in SORTS], required=False, allow_blank=True
    )
    page = serializers.IntegerField(required=False, min_value=1, default=1)

    class Meta:
        ref_name = "TraceFilter"


def filter_parse(params: Any) -> dict[str, Any]:
    """Validated filter values from a query dict; empty values are dropped.

    Raises rest_framework's ValidationError naming the parameter that is wrong.
    """
    data = {k: v for k, v in params.items() if k in TraceFilterSerializer().fields and v != ""}
    parsed = TraceFilterSerializer(data=data)
    parsed.is_valid(raise_exception=True)
    return {k: v for k, v in parsed.validated_data.items() if v not in ("", None)}


def filter_query(values: dict[str, Any], **override: Any) -> str:
    """The URL query of a filter (what a link to it carries), without the page unless asked."""
    merged = {**{k: v for k, v in values.items() if k != "page"}, **override}
    return urlencode({k: v for k, v in merged.items() if v not in ("", None)})


def _search(q: str) -> Q:
    if connection.vendor == "postgresql":
        # One document per trace, GIN-indexed (review/migrations/0003_trace_search.py).
        return Q(pk__in=RawSQL(fts.MATCHING, [q]))
    return Q(problem__text__icontains=q) | Exists(
        Step.objects.filter(trace_id=OuterRef("pk"), text__icontains=q)
    )


# A filter of these alone is answered by the stored verdicts (TracePriority) alone.
PRIORITY_ONLY = frozenset({"prm", "prm_min_gte", "prm_min_lte", "committee_gte", "sort", "page"})


def _priority_conditions(values: dict[str, Any]) -> dict[str, Any]:
    """The filter's conditions on the trace's stored verdicts, as TracePriority lookups."""
    conditions: dict[str, Any] = {}
    prm = values.get("prm")
    if prm in ("wrong", "right"):
        conditions["prm_wrong"] = prm == "wrong"
    for name, lookup in (
        ("prm_min_gte", "prm_min__gte"),
        ("prm_min_lte", "prm_min__lte"),
        ("committee_gte", "committee__gte"),
    ):
        if name in values:
            conditions[lookup] = values[name]
    return conditions


def trace_filter(*, project: Project, values: dict[str, Any]) -> QuerySet[Trace]:
    """The project's traces that pass the filter, sorted; the caller has checked the role."""
    traces = Trace.objects.filter(project=project)
    for name in ("subset", "generator", "source"):
        if values.get(name):
            traces = traces.filter(**{name: values[name]})
    if values.get("q"):
        traces = traces.filter(_search(values["q"]))
    annotations = Annotation.objects.filter(trace_id=OuterRef("pk"))
    status = values.get("status")
    if status == "unlabelled":  # imported labelers' passes are labels too (issue 15, item 7)
        traces = traces.exclude(Exists(annotations))
    elif status == "in_progress":
        traces = traces.filter(Exists(annotations.filter(status=AnnotationStatus.IN_PROGRESS)))
    elif status == "submitted":
        traces = traces.filter(Exists(annotations.filter(status=AnnotationStatus.SUBMITTED)))
    elif status == "adjudicated":
        traces = traces.filter(
            Exists(
                GoldLabel.objects.filter(
                    step__trace_id=OuterRef("pk"), source=GoldSource.ADJUDICATED
                )
            )
        )
    elif status == "gold":
        traces = traces.filter(Exists(GoldLabel.objects.filter(step__trace_id=OuterRef("pk"))))
    # Flagged, skipped and disagreed-on traces are few: their ids are gathered first (each from
    # its own small table), so that neither "yes" nor "no" tests every trace of the project.
    marked = {
        "flagged": lambda: [
            Trace.objects.filter(project=project, problem__flagged=True).values_list(
                "pk", flat=True
            ),
            StepLabel.objects.filter(flagged=True, step__trace__project=project).values_list(
                "step__trace_id", flat=True
            ),
        ],
        "skipped": lambda: [
            TracePriority.objects.filter(project=project, held_out=True).values_list(
                "trace_id", flat=True
            ),
            Assignment.objects.filter(project=project, status=AssignmentStatus.SKIPPED).values_list(
                "trace_id", flat=True
            ),
        ],
        "disagreement": lambda: [
            StepLabel.objects.filter(value__isnull=False, step__trace__project=project)
            .values("step_id", "step__trace_id")
            .annotate(n=Count("value", distinct=True))
            .filter(n__gt=1)
            .values_list("step__trace_id", flat=True)
        ],
    }
    for name, sources in marked.items():
        if values.get(name) in ("yes", "no"):
            ids = {trace_id for source in sources() for trace_id in source}
            condition = Q(pk__in=sorted(ids))
            traces = traces.filter(condition if values[name] == "yes" else ~condition)
    priority = _priority_conditions(values)
    if "prm_min_gte" in values or "prm_min_lte" in values:
        # The priority row's own project (always the trace's): with it the score range and the
        # sort by it are one walk of the (project, prm_min, trace) index, a page read in order,
        # instead of a scan of every priority row and a sort of the matches (docs/benchmarks.md).
        priority["project"] = project
    if priority:
        traces = traces.filter(**{f"priority__{k}": v for k, v in priority.items()})
    if values.get("prm") == "none":
        traces = traces.exclude(
            Exists(TracePriority.objects.filter(trace_id=OuterRef("pk"), prm_wrong__isnull=False))
        )
    correct = values.get("correct")
    if correct:
        traces = traces.filter(
            final_answer_correct={"yes": True, "no": False, "unknown": None}[correct]
        )
    # A trace's steps are numbered 0..n-1 (imports number them so), so "n steps or more" is
    # "a step numbered n-1 exists": one probe of the (trace, index) unique index, never a count.
    if values.get("steps_gte"):
        traces = traces.filter(
            Exists(Step.objects.filter(trace_id=OuterRef("pk"), index=values["steps_gte"] - 1))
        )
    if "steps_lte" in values:
        traces = traces.exclude(
            Exists(Step.objects.filter(trace_id=OuterRef("pk"), index=values["steps_lte"]))
        )
    return traces.order_by(*SORTS[values.get("sort") or "id"])


@dataclass
class BrowserRow:
    trace: Trace
    steps: int
    prm_min: float | None
    prm_wrong: bool | None
    status: str
    skipped: bool
    preview: SafeString | str = ""


@dataclass
class BrowserPage:
    rows: list[BrowserRow]
    total: int  # exact up to COUNT_CAP; beyond it, COUNT_CAP + 1 and `exact` is False
    page: int
    pages: int
    exact: bool = True
    has_next: bool = False


def trace_page(*, project: Project, values: dict[str, Any], size: int = PAGE_SIZE) -> BrowserPage:
    """One page of the filtered traces, with what the table shows of each (a few queries).

    The count stops at COUNT_CAP (the page says "more than 10,000"): counting every match of a
    broad filter over a million steps costs more than the page itself; a bulk action on the
    whole filter still takes every match.
    """
    traces = trace_filter(project=project, values=values)
    total = _count(project=project, values=values, traces=traces)
    exact = total <= COUNT_CAP
    pages = max(1, -(-total // size))
    page = values.get("page", 1)
    if exact:
        page = min(page, pages)
    chosen = list(traces.select_related("problem")[(page - 1) * size : page * size + 1])
    has_next = len(chosen) > size
    chosen = chosen[:size]
    ids = [t.pk for t in chosen]
    steps = dict(
        Step.objects.filter(trace_id__in=ids)
        .values("trace_id")
        .annotate(n=Count("pk"))
        .values_list("trace_id", "n")
    )
    verdicts = {
        row[0]: row[1:]
        for row in TracePriority.objects.filter(trace_id__in=ids).values_list(
            "trace_id", "prm_min", "prm_wrong", "held_out"
        )
    }
    status: dict[int, str] = {}
    for trace_id, st in Annotation.objects.filter(trace_id__in=ids).values_list(
        "trace_id", "status"
    ):
        if status.get(trace_id) != AnnotationStatus.SUBMITTED:
            status[trace_id] = st
    gold = set(
        GoldLabel.objects.filter(step__trace_id__in=ids).values_list("step__trace_id", flat=True)
    )
    skipped = set(
        Assignment.objects.filter(trace_id__in=ids, status=AssignmentStatus.SKIPPED).values_list(
            "trace_id", flat=True
        )
    )
    rows = []
    for trace in chosen:
        prm_min, prm_wrong, held_out = verdicts.get(trace.pk, (None, None, False))
        label = {"submitted": "submitted", "in_progress": "in progress"}.get(
            status.get(trace.pk, ""), "unlabelled"
        )
        if trace.pk in gold:
            label += ", gold"
        rows.append(
            BrowserRow(
                trace=trace,
                steps=steps.get(trace.pk, 0),
                prm_min=prm_min,
                prm_wrong=prm_wrong,
                status=label,
                skipped=held_out or trace.pk in skipped,
            )
        )
    _previews(rows)
    return BrowserPage(
        rows=rows, total=total, page=page, pages=pages, exact=exact, has_next=has_next
    )


def _count(*, project: Project, values: dict[str, Any], traces: QuerySet[Trace]) -> int:
    """The filter's matches, up to COUNT_CAP + 1, unsorted (which rows are counted does not
    change the count; sorting every match first was most of a sorted filter's time). A filter
    of stored verdicts alone is counted on TracePriority alone (one row per trace, the trace's
    project): an index-only walk instead of a join with 10,000 traces (docs/benchmarks.md)."""
    priority = _priority_conditions(values)
    if priority and set(values) <= PRIORITY_ONLY and values.get("prm") != "none":
        rows = TracePriority.objects.filter(project=project, **priority).order_by()
        return rows[: COUNT_CAP + 1].count()
    return traces.order_by()[: COUNT_CAP + 1].count()


def _previews(rows: list[BrowserRow]) -> None:
    """Each row's problem preview (its first characters, Markdown and LaTeX rendered and
    sanitised), rendered once and kept (annotate.rendered): one query for the page."""
    excerpts = [excerpt(row.trace.problem.text, PREVIEW_CHARS) for row in rows]
    fragments = html_many(excerpts)
    for row, text in zip(rows, excerpts, strict=True):
        row.preview = fragments[text]


def filter_choices(*, project: Project) -> dict[str, list[str]]:
    """The values the subset, generator and source filters offer (distinct, sorted); kept for
    CHOICES_SECONDS, since reading them scans every trace of the project."""
    key = f"data-choices:{project.pk}"
    choices = cache.get(key)
    if choices is None:
        rows = (
            Trace.objects.filter(project=project)
            .order_by()
            .values_list("subset", "generator", "source")
            .distinct()
        )
        found: dict[str, set[str]] = {"subset": set(), "generator": set(), "source": set()}
        for subset, generator, source in rows:
            found["subset"].add(subset)
            found["generator"].add(generator)
            found["source"].add(source)
        choices = {name: sorted(v for v in values if v) for name, values in found.items()}
        cache.set(key, choices, timeout=CHOICES_SECONDS)
    return choices


def bulk_targets(
    *, project: Project, query: str, trace_ids: list[int], whole_filter: bool
) -> list[int]:
    """The traces a bulk action applies to: every trace of the filter in `query`, or the picked
    ids that belong to the project (others are ignored, never touched)."""
    if whole_filter:
        values = filter_parse(QueryDict(query))
        return list(trace_filter(project=project, values=values).values_list("pk", flat=True))
    return list(
        Trace.objects.filter(project=project, pk__in=trace_ids).values_list("pk", flat=True)
    )
