"""Export snapshots: creation (checked, versioned), the streaming build (files, sha256, card), reads.

A snapshot is immutable once built: its files are written into a temporary folder and moved into
VAR_DIR/exports/<project>/<name>/v<version>/ in one rename, with a SHA256SUMS file and a dataset
card (README.md) beside them. The build reads the database as a few streams ordered by
(problem, trace) with `.iterator()`, so memory stays flat however many steps there are, and hands
the records of one problem at a time to the format's exporter (annotate.formats.exporters).
Rows go to `test` or `train` by a seeded hash of their problem's sha256: no problem is in both.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, cast

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.text import slugify

from annotate.formats.exporters import EXPORTERS
from annotate.formats.exporters.base import (
    IMAGES,
    IMAGES_PARQUET,
    LABEL_SOURCES,
    LABEL_SOURCES_PARQUET,
    NEUTRAL_CHOICES,
    TABLE_PARQUET,
    ExportRecord,
    ExportRow,
)
from annotate.models import (
    Annotation,
    AnnotationStatus,
    GoldLabel,
    Problem,
    Project,
    Step,
    StepLabel,
    Trace,
)
from annotate.selectors import UserLike
from config.celery import task_send_on_commit
from review.selectors import problem_best_of_n
from scoring.models import Scorer
from scoring.prm.aggregate import AGGREGATIONS
from scoring.selectors import scorers_for_project

from .media import IMAGES_DIR, SnapshotMedia, carried_columns
from .models import (
    ExportFileFormat,
    ExportFormat,
    ExportSnapshot,
    ExportStatus,
    LabelPolicy,
)
from .selectors import CARD, SUMS, exports_root

# The build task's name (snapshots.tasks): the name it had in annotate.tasks, so that messages
# queued before the move still run, and the exports route in config/settings.py still applies.
EXPORT_BUILD_TASK = "annotate.tasks.export_snapshot_build_task"
# Rows fetched per round trip (server-side cursor on PostgreSQL).
CHUNK = 5000
# Rows per Parquet row group: bounded memory, and big enough for fast reads.
PARQUET_BATCH = 10_000
# Progress is written at most this often (seconds), so a big export does not spend its time on it.
PROGRESS_EVERY_S = 0.5
PARQUET_FORMATS = tuple(name for name, mod in EXPORTERS.items() if mod.PARQUET_SCHEMA)


# --- creation ---------------------------------------------------------------------------------


def _traces(project: Project, filters: dict[str, Any], prefix: str = "") -> Q:
    """The traces an export covers, as a Q on a model reaching Trace through `prefix`."""
    q = Q(**{f"{prefix}project": project})
    if filters.get("subsets"):
        q &= Q(**{f"{prefix}subset__in": filters["subsets"]})
    if filters.get("sources"):
        q &= Q(**{f"{prefix}source__in": filters["sources"]})
    if filters.get("traces"):
        q &= Q(**{f"{prefix}pk__in": filters["traces"]})
    if not filters.get("include_flagged"):
        q &= Q(**{f"{prefix}problem__flagged": False})  # a flagged problem is a bad problem
    return q


def neutral_label_count(*, project: Project, labels: str, filters: dict[str, Any]) -> int:
    """How many neutral (0) labels the export would read under this label policy."""
    if labels == LabelPolicy.GOLD:
        return GoldLabel.objects.filter(_traces(project, filters, "step__trace__"), value=0).count()
    return StepLabel.objects.filter(
        _traces(project, filters, "annotation__trace__"),
        annotation__status=AnnotationStatus.SUBMITTED,
        value=0,
    ).count()


def _clean_filters(filters: dict[str, Any] | None) -> dict[str, Any]:
    filters = dict(filters or {})
    unknown = sorted(set(filters) - {"subsets", "sources", "include_flagged", "traces"})
    if unknown:
        raise ValidationError(
            {
                "filters": f"Unknown filter {unknown[0]!r} (subsets, sources, include_flagged, "
                "traces)."
            }
        )
    clean: dict[str, Any] = {}
    for key in ("subsets", "sources"):
        values = filters.get(key) or []
        if isinstance(values, str):
            values = [v.strip() for v in values.split(",") if v.strip()]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValidationError({"filters": f"{key}: expected a list of names."})
        if values:
            clean[key] = sorted(set(values))
    if filters.get("include_flagged"):
        clean["include_flagged"] = True
    traces = filters.get("traces") or []
    if not isinstance(traces, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) and t > 0 for t in traces
    ):
        raise ValidationError({"filters": "traces: expected a list of trace ids."})
    if traces:  # picked in the data browser (a selection or a whole filter)
        clean["traces"] = sorted(set(traces))
    return clean


def _names(values: Iterable[str]) -> str:
    return ", ".join(repr(v) for v in sorted(set(values))) or "none"


def _check_rows(
    *,
    project: Project,
    labels: str,
    filters: dict[str, Any],
    test_fraction: float,
    seed: int,
    by_scorer: bool = False,
) -> None:
    """Refuse, before anything is recorded, an export that would hold no rows (or a split without
    rows: `datasets.load_dataset` cannot read an empty file), saying why and which option gives
    rows. A few counts, no build; what only the build can tell is caught there (EmptyExportError)."""
    traces = Trace.objects.filter(_traces(project, filters))
    if not traces.exists():
        everything = Trace.objects.filter(project=project)
        if not everything.exists():
            raise ValidationError(
                {"filters": f"Project {project.slug} has no traces yet: import some first."}
            )
        subsets = set(everything.values_list("subset", flat=True).distinct())
        sources = set(everything.values_list("source", flat=True).distinct())
        flagged = everything.filter(problem__flagged=True).count()
        message = (
            f"No trace of {project.slug} matches this export's filters, so it would hold no rows. "
            f"The project's subsets: {_names(subsets)}; its sources: {_names(sources)}"
        )
        if flagged and not filters.get("include_flagged"):
            message += (
                f"; {flagged} trace{'s' if flagged != 1 else ''} of flagged problems are left out "
                "unless --include-flagged (include_flagged)"
            )
        key = (
            "subsets"
            if filters.get("subsets")
            else "sources"
            if filters.get("sources")
            else "filters"
        )
        raise ValidationError({key: message + "."})
    if by_scorer:
        return  # sft chosen by a PRM's scores: rows need scores, not labels (checked in the build)
    gold = GoldLabel.objects.filter(_traces(project, filters, "step__trace__"))
    submitted = Annotation.objects.filter(
        _traces(project, filters, "trace__"), status=AnnotationStatus.SUBMITTED
    )
    if labels == LabelPolicy.GOLD:
        labelled = gold
        if not gold.exists():
            count = submitted.count()
            hint = (
                f"{count} submitted annotation{'s' if count != 1 else ''} are there: --labels all "
                "(every annotator's pass) or --labels majority (the per-step majority) gives rows "
                "(the `labels` field in the API and on the page)"
                if count
                else "adjudicate gold labels on the review pages, or label the traces first"
            )
            raise ValidationError(
                {
                    "labels": f"There is no gold label on the {traces.count()} traces of this "
                    f"export, so --labels gold would write no rows: {hint}."
                }
            )
    else:
        labelled = StepLabel.objects.filter(
            _traces(project, filters, "annotation__trace__"),
            annotation__status=AnnotationStatus.SUBMITTED,
        )
        if not labelled.exists():
            count = gold.count()
            hint = (
                f"--labels gold gives rows from the {count} gold label{'s' if count != 1 else ''} "
                "there"
                if count
                else "label the traces first"
            )
            raise ValidationError(
                {
                    "labels": f"No annotators' labels are submitted on this export's traces, so "
                    f"--labels {labels} would write no rows: {hint}."
                }
            )
    if test_fraction <= 0:
        return
    field = "step__trace__problem__content_sha256"
    if labels != LabelPolicy.GOLD:
        field = "annotation__trace__problem__content_sha256"
    shas = list(labelled.values_list(field, flat=True).distinct())
    tests = sum(is_test(sha, seed=seed, fraction=test_fraction) for sha in shas)
    where = f"at test fraction {test_fraction} and seed {seed}"
    if tests == 0:
        raise ValidationError(
            {
                "test_fraction": f"The test split would hold no rows: none of the {len(shas)} "
                f"labelled problems falls in it {where}. Raise --split test=FRACTION (the "
                "`test_fraction` field), try another --seed, or set it to 0 for no test split."
            }
        )
    if tests == len(shas):
        raise ValidationError(
            {
                "test_fraction": f"The train split would hold no rows: all {len(shas)} labelled "
                f"problems fall in the test split {where}. Lower --split test=FRACTION (the "
                "`test_fraction` field) or try another --seed."
            }
        )


def _clean_options(format: str, options: dict[str, Any] | None, project: Project) -> dict[str, Any]:
    options = dict(options or {})
    if format != ExportFormat.SFT:
        if options:
            raise ValidationError({"options": f"The {format} format takes no options."})
        return {}
    select = options.get("select") or "labels"
    if select not in ("labels", "scorer"):
        raise ValidationError({"options": "sft: select is 'labels' or 'scorer'."})
    clean: dict[str, Any] = {"select": select}
    top_k = options.get("top_k")
    if top_k not in (None, ""):
        try:
            top_k = int(top_k)
        except (TypeError, ValueError):
            top_k = 0
        if top_k < 1:
            raise ValidationError({"options": "sft: top_k is a whole number, 1 or more."})
        clean["top_k"] = top_k
    if select == "scorer":
        name = options.get("scorer") or ""
        if not scorers_for_project(project=project).filter(name=name).exists():
            raise ValidationError(
                {"options": f"sft: no scorer {name!r} in this project (set options.scorer)."}
            )
        aggregation = options.get("aggregation") or "min"
        if aggregation not in AGGREGATIONS:
            raise ValidationError(
                {"options": f"sft: aggregation is one of {', '.join(AGGREGATIONS)}."}
            )
        clean.update(scorer=name, aggregation=aggregation, top_k=clean.get("top_k", 1))
    return clean


def export_snapshot_create(
    *,
    project: Project,
    user: UserLike | None,
    name: str,
    format: str,
    file_format: str = ExportFileFormat.JSONL,
    labels: str = LabelPolicy.GOLD,
    min_agreement: float = 0.0,
    neutral: str = "",
    test_fraction: float = 0.0,
    seed: int = 0,
    filters: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    identities: bool = False,
    enqueue: bool = True,
) -> ExportSnapshot:
    """Check an export request, record it as the next version of `name`, and queue its build.

    Refused (ValidationError, with what to change) before anything is written: an unknown format or
    policy, Parquet for a format without a fixed schema, neutral labels with no mapping, and an
    export (or a split of it) that would hold no rows.
    """
    errors: dict[str, str] = {}
    if format not in EXPORTERS:
        errors["format"] = f"Unknown format {format!r} (one of: {', '.join(EXPORTERS)})."
    if file_format not in ExportFileFormat.values:
        errors["file_format"] = "jsonl or parquet."
    elif file_format == ExportFileFormat.PARQUET and format not in PARQUET_FORMATS:
        errors["file_format"] = f"Parquet is written for {', '.join(PARQUET_FORMATS)}; use jsonl."
    if labels not in LabelPolicy.values:
        errors["labels"] = "gold, majority or all."
    if neutral not in NEUTRAL_CHOICES:
        errors["neutral"] = "positive, negative or drop."
    if not 0.0 <= min_agreement <= 1.0:
        errors["min_agreement"] = "A fraction between 0 and 1."
    elif min_agreement > 0 and labels == LabelPolicy.GOLD:
        errors["min_agreement"] = "Applies to annotators' labels: use --labels majority or all."
    if not 0.0 <= test_fraction < 1.0:
        errors["test_fraction"] = "A fraction from 0 (no test split) up to, not including, 1."
    if slugify(name) != name or not name:
        errors["name"] = "Letters, digits, - and _ only (a slug), e.g. prm-train."
    if errors:
        raise ValidationError(errors)
    filters = _clean_filters(filters)
    options = _clean_options(format, options, project)
    if options.get("select") == "scorer" and (user is None or not user.is_authenticated):
        raise ValidationError(
            {"options": "sft by scorer reads scores with a person's permissions: give --user."}
        )
    _check_rows(
        project=project,
        labels=labels,
        filters=filters,
        test_fraction=test_fraction,
        seed=seed,
        by_scorer=options.get("select") == "scorer",
    )
    if not neutral and EXPORTERS[format].needs_neutral_mapping(options):
        count = neutral_label_count(project=project, labels=labels, filters=filters)
        if count:
            raise ValidationError(
                {
                    "neutral": (
                        f"This export contains {count} neutral (0) label{'s' if count != 1 else ''} "
                        f"and the {format} format has no neutral value: choose how they map with "
                        "--neutral positive|negative|drop (the `neutral` field in the API and "
                        "on the page)."
                    )
                }
            )
    with transaction.atomic():
        # Lock the project row so two exports of the same name get different versions.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        latest = ExportSnapshot.objects.filter(project=project, name=name).aggregate(
            v=Max("version")
        )
        snapshot = ExportSnapshot.objects.create(
            project=project,
            name=name,
            version=(latest["v"] or 0) + 1,
            format=format,
            file_format=file_format,
            labels=labels,
            min_agreement=min_agreement,
            neutral=neutral,
            test_fraction=test_fraction,
            seed=seed,
            filters=filters,
            options=options,
            identities=identities,
            created_by=cast(Any, user) if user is not None and user.is_authenticated else None,
        )
        if enqueue:
            # By name: snapshots.tasks imports this module, so this one never imports it.
            task_send_on_commit(EXPORT_BUILD_TASK, snapshot.pk)
    return snapshot


# --- reading the corpus as records ---------------------------------------------------------------


class _Aligned:
    """Rows of a stream ordered like the traces (problem, trace), taken one trace at a time."""

    def __init__(self, rows: Iterable[tuple[Any, ...]]) -> None:
        self._rows = iter(rows)
        self._head = next(self._rows, None)

    def take(self, trace_id: int) -> list[tuple[Any, ...]]:
        taken = []
        while self._head is not None and self._head[0] == trace_id:
            taken.append(self._head)
            self._head = next(self._rows, None)
        return taken


def pseudonym(user_id: int) -> str:
    """A stable pseudonym for an annotator: the same in every export, meaningless outside it."""
    key = settings.SECRET_KEY.encode()
    return (
        "annotator-" + hmac.new(key, f"export:{user_id}".encode(), hashlib.sha256).hexdigest()[:12]
    )


@dataclass
class _Tally:
    """What the dataset card reports."""

    traces: int = 0
    records: int = 0
    records_without_rows: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    steps: int = 0
    balance: Counter[str] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)
    multi_labelled_steps: int = 0
    agreement_sum: float = 0.0
    unanimous_steps: int = 0
    below_min_agreement: int = 0
    ties: int = 0

    def agreement(self, values: list[int]) -> tuple[int | None, float]:
        """The majority value of one step's labels (None on a tie) and the share that gave it."""
        counts = Counter(values).most_common()
        top, n = counts[0]
        share = n / len(values)
        if len(values) > 1:
            self.multi_labelled_steps += 1
            self.agreement_sum += share
            self.unanimous_steps += share == 1.0
        if len(counts) > 1 and counts[1][1] == n:
            self.ties += 1
            return None, share
        return top, share


def _records(snapshot: ExportSnapshot, tally: _Tally) -> Iterator[list[ExportRecord]]:
    """The export's records, grouped by problem, in (problem id, trace id) order."""
    project, filters = snapshot.project, snapshot.filters
    exporter = EXPORTERS[snapshot.format]
    trace_q = _traces(project, filters)
    traces = (
        Trace.objects.filter(trace_q)
        .order_by("problem_id", "id")
        .values_list(
            "id",
            "problem_id",
            "external_id",
            "source",
            "subset",
            "generator",
            "final_answer",
            "final_answer_correct",
            "metadata",
        )
        .iterator(chunk_size=CHUNK)
    )
    problem_q = (
        Q(project=project) if filters.get("include_flagged") else Q(project=project, flagged=False)
    )
    problems = iter(
        Problem.objects.filter(problem_q)
        .order_by("id")
        .values_list("id", "text", "content_sha256", "reference_answer", "images", "table")
        .iterator(chunk_size=CHUNK)
    )
    step_fields = ["trace_id", "text", "part", "gold__value"]
    if exporter.NEEDS_STEP_METADATA:
        step_fields.append("metadata")
    steps = _Aligned(
        Step.objects.filter(_traces(project, filters, "trace__"))
        .order_by("trace__problem_id", "trace_id", "index")
        .values_list(*step_fields)
        .iterator(chunk_size=CHUNK)
    )
    by_annotators = snapshot.labels != LabelPolicy.GOLD
    if by_annotators:
        submitted = Q(annotation__status=AnnotationStatus.SUBMITTED)
        labels = _Aligned(
            StepLabel.objects.filter(_traces(project, filters, "annotation__trace__"), submitted)
            .order_by(
                "annotation__trace__problem_id",
                "annotation__trace_id",
                "annotation_id",
                "step__index",
            )
            .values_list(
                "annotation__trace_id", "annotation_id", "step__index", "value", "flagged", "source"
            )
            .iterator(chunk_size=CHUNK)
        )
        annotation_fields = [
            "trace_id",
            "id",
            "annotator_id",
            "finish_reason",
            "submitted_at",
            "active_seconds",
            "imported",
        ]
        if snapshot.format == ExportFormat.PRM800K:
            annotation_fields.append("metadata")  # the raw imported record
        annotations = _Aligned(
            Annotation.objects.filter(
                _traces(project, filters, "trace__"), status=AnnotationStatus.SUBMITTED
            )
            .order_by("trace__problem_id", "trace_id", "id")
            .values_list(*annotation_fields)
            .iterator(chunk_size=CHUNK)
        )
    scores = _scores_for(snapshot)

    problem: tuple[Any, ...] | None = None
    group: list[ExportRecord] = []
    group_problem: int | None = None
    for tid, pid, external_id, source, subset, generator, final_answer, correct, meta in traces:
        if pid != group_problem:
            if group:
                yield group
            group, group_problem = [], pid
            while problem is None or problem[0] != pid:
                problem = next(problems)
        assert problem is not None
        tally.traces += 1
        step_rows = steps.take(tid)
        texts = [row[1] for row in step_rows]
        parts = [row[2] for row in step_rows]
        base: dict[str, Any] = dict(
            trace_id=tid,
            external_id=external_id,
            source=source,
            subset=subset,
            generator=generator,
            final_answer=final_answer,
            final_answer_correct=correct,
            trace_metadata=meta,
            problem=problem[1],
            problem_sha256=problem[2],
            reference_answer=problem[3],
            problem_images=problem[4],
            problem_table=problem[5],
            steps=texts,
            parts=parts,
            step_metadata=[row[4] for row in step_rows] if exporter.NEEDS_STEP_METADATA else [],
            aggregate=scores(pid, tid) if scores else None,
        )
        if not by_annotators:
            group.append(
                ExportRecord(labels=[row[3] for row in step_rows], annotator="gold", **base)
            )
            continue
        group.extend(
            _annotator_records(
                snapshot, tally, base, len(step_rows), annotations.take(tid), labels.take(tid)
            )
        )
    if group:
        yield group


def _annotator_records(
    snapshot: ExportSnapshot,
    tally: _Tally,
    base: dict[str, Any],
    step_count: int,
    annotation_rows: list[tuple[Any, ...]],
    label_rows: list[tuple[Any, ...]],
) -> list[ExportRecord]:
    """The majority record of a trace, or one record per submitted annotation ("all")."""
    per_annotation: dict[int, tuple[list[int | None], list[bool], list[str]]] = {}
    per_step: list[list[int]] = [[] for _ in range(step_count)]
    for _, annotation_id, index, value, flagged, source in label_rows:
        values, flags, sources = per_annotation.setdefault(
            annotation_id, ([None] * step_count, [False] * step_count, [""] * step_count)
        )
        values[index], flags[index] = value, flagged
        sources[index] = source if value is not None else ""
        if value is not None:
            per_step[index].append(value)
    # A step is kept when the share of annotators agreeing on its majority value is high enough.
    majority: list[int | None] = []
    kept_step: list[bool] = []
    for step_values in per_step:
        if not step_values:
            majority.append(None)
            kept_step.append(True)
            continue
        top, share = tally.agreement(step_values)
        ok = share >= snapshot.min_agreement
        tally.below_min_agreement += not ok
        majority.append(top if ok else None)
        kept_step.append(ok)
    if snapshot.labels == LabelPolicy.MAJORITY:
        return [ExportRecord(labels=majority, annotator="majority", **base)] if label_rows else []
    records = []
    for row in annotation_rows:
        _, annotation_id, annotator_id, finish_reason, submitted_at, seconds, imported = row[:7]
        if not imported and not snapshot.identities:
            # Withheld unless the export opts in: when and how long a person worked on it.
            # Imported annotations keep what their source published (PRM800K's own fields).
            submitted_at, seconds = None, None
        values, flags, sources = per_annotation.get(
            annotation_id, ([None] * step_count, [False] * step_count, [""] * step_count)
        )
        records.append(
            ExportRecord(
                labels=[v if keep else None for v, keep in zip(values, kept_step, strict=True)],
                flagged=flags,
                label_sources=[
                    s if keep else "" for s, keep in zip(sources, kept_step, strict=True)
                ],
                annotator=pseudonym(annotator_id),
                annotation={
                    "finish_reason": finish_reason,
                    "submitted_at": submitted_at.replace(tzinfo=None).isoformat()
                    if submitted_at
                    else None,
                    "active_seconds": seconds,
                    "imported": imported,
                    "metadata": row[7] if len(row) > 7 else {},
                },
                **base,
            )
        )
    return records


def _scores_for(snapshot: ExportSnapshot) -> Callable[[int, int], float | None] | None:
    """For PRM-selected sft exports: (problem id, trace id) -> the trace's aggregate score.

    Scores are read through scoring's selector (the Best-of-N ranking of a problem), with the
    permissions of the person who asked for the export.
    """
    if snapshot.format != ExportFormat.SFT or snapshot.options.get("select") != "scorer":
        return None

    scorer = Scorer.objects.get(name=snapshot.options["scorer"])
    cache: dict[int, dict[int, float]] = {}

    def score(problem_id: int, trace_id: int) -> float | None:
        if problem_id not in cache:
            cache.clear()  # one problem at a time: memory stays flat
            _, ranked = problem_best_of_n(
                user=snapshot.created_by or AnonymousUser(),
                problem_id=problem_id,
                scorer=scorer,
                how=snapshot.options.get("aggregation", "min"),
            )
            cache[problem_id] = {r.trace.pk: r.aggregate for r in ranked if r.aggregate is not None}
        return cache[problem_id].get(trace_id)

    return score


# --- writing ----------------------------------------------------------------------------------


def is_test(problem_sha256: str, *, seed: int, fraction: float) -> bool:
    """Whether a problem goes to the test split: a seeded hash, so the split is stable.

    >>> is_test("ab" * 32, seed=0, fraction=0.0), is_test("ab" * 32, seed=0, fraction=0.999999)
    (False, True)
    """
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"{seed}:{problem_sha256}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


class _JsonlWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._hash = hashlib.sha256()
        self.rows = 0

    def write(self, row: dict[str, Any]) -> None:
        # ensure_ascii=False and the default separators: the way the upstream files are written.
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        self._hash.update(line)
        self._file.write(line)
        self.rows += 1

    def close(self) -> str:
        self._file.close()
        return self._hash.hexdigest()


def _arrow_type(name: str) -> Any:
    import pyarrow as pa

    return {
        "string": pa.string(),
        "bool": pa.bool_(),
        "int": pa.int64(),
        "list<string>": pa.list_(pa.string()),
        "list<bool>": pa.list_(pa.bool_()),
        "messages": pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
        "table": pa.struct(
            [("header", pa.list_(pa.string())), ("rows", pa.list_(pa.list_(pa.string())))]
        ),
    }[name]


class _ParquetWriter:
    def __init__(self, path: Path, schema: dict[str, str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path = path
        self._schema = pa.schema([(name, _arrow_type(kind)) for name, kind in schema.items()])
        self._writer = pq.ParquetWriter(path, self._schema, compression="zstd")
        self._batch: list[dict[str, Any]] = []
        self.rows = 0

    def write(self, row: dict[str, Any]) -> None:
        self._batch.append(row)
        self.rows += 1
        if len(self._batch) >= PARQUET_BATCH:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._batch:
            self._writer.write_table(pa.Table.from_pylist(self._batch, schema=self._schema))
            self._batch = []

    def close(self) -> str:
        self._flush()
        self._writer.close()
        digest = hashlib.sha256()
        with open(self.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


class EmptyExportError(ValueError):
    """The build read the corpus and the format gave a split no row: nothing is written (an empty
    file is a snapshot `datasets.load_dataset` cannot read)."""


def _check_built_rows(snapshot: ExportSnapshot, tally: Any, splits: list[str]) -> None:
    empty = [split for split in splits if not tally.rows.get(split, 0)]
    if not empty:
        return
    what = f"{tally.records} record{'s' if tally.records != 1 else ''} under --labels {snapshot.labels}"
    if len(empty) == len(splits):
        reason = (
            f"The {snapshot.format} format made no rows of the {what} (its rows need labelled "
            "steps from the first step on"
            + (
                ", and neutral labels dropped by --neutral drop leave gaps"
                if snapshot.neutral == "drop"
                else ""
            )
            + "): label or adjudicate the first steps, or choose --labels all / majority / gold."
        )
    else:
        reason = (
            f"The {empty[0]} split has no rows (the {what} fell in the other split): change "
            "--split test=FRACTION or --seed."
        )
    raise EmptyExportError(
        f"This export holds no rows in {', '.join(empty)}; datasets.load_dataset cannot read an "
        f"empty file, so nothing was written. {reason}"
    )


class ExportCancelled(Exception):
    """The snapshot was cancelled while it was being built."""


# A running build that has not written its progress for this long lost its worker.
EXPORT_STALE_AFTER_S = 300


def _progress(snapshot_id: int, done: int, total: int) -> None:
    written = ExportSnapshot.objects.filter(pk=snapshot_id, status=ExportStatus.RUNNING).update(
        progress_done=done, progress_total=total, heartbeat_at=timezone.now()
    )
    if not written:  # cancelled (or swept) meanwhile: stop, and leave nothing behind
        raise ExportCancelled(f"export {snapshot_id} was cancelled")


def export_snapshot_cancel(*, snapshot: ExportSnapshot, user: UserLike | None) -> ExportSnapshot:
    """Stop a queued or running build: it ends as failed ("cancelled"), with no files left."""
    who = user.get_username() if user is not None and user.is_authenticated else "a command"
    cancelled = ExportSnapshot.objects.filter(
        pk=snapshot.pk, status__in=[ExportStatus.QUEUED, ExportStatus.RUNNING]
    ).update(status=ExportStatus.FAILED, error=f"Cancelled by {who}.", finished_at=timezone.now())
    if not cancelled:
        raise ValidationError({"status": f"The export is {snapshot.status}: nothing to cancel."})
    snapshot.refresh_from_db()
    return snapshot


def export_snapshot_retry(*, snapshot: ExportSnapshot) -> ExportSnapshot:
    """Build a failed (or cancelled) snapshot again, as the same version, on the exports queue."""
    with transaction.atomic():
        retried = ExportSnapshot.objects.filter(pk=snapshot.pk, status=ExportStatus.FAILED).update(
            status=ExportStatus.QUEUED, error="", progress_done=0, finished_at=None
        )
        if not retried:
            raise ValidationError(
                {"status": f"The export is {snapshot.status}: only a failed one is retried."}
            )
        task_send_on_commit(EXPORT_BUILD_TASK, snapshot.pk)
    snapshot.refresh_from_db()
    return snapshot


def export_snapshots_sweep(*, now: Any = None) -> int:
    """Builds whose worker died (no progress for EXPORT_STALE_AFTER_S) become failed, with the
    reason and a retry on the page; their temporary folders, and any other stale one, go."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=EXPORT_STALE_AFTER_S)
    swept = ExportSnapshot.objects.filter(
        status=ExportStatus.RUNNING, heartbeat_at__lt=stale
    ).update(
        status=ExportStatus.FAILED,
        error=f"The worker stopped while building this export (no progress for "
        f"{EXPORT_STALE_AFTER_S} s): retry it.",
        finished_at=now,
    )
    root = exports_root()
    if root.is_dir():
        for tmp in root.glob("*/*/.v*.tmp"):
            try:
                if tmp.stat().st_mtime < stale.timestamp():
                    shutil.rmtree(tmp, ignore_errors=True)
            except FileNotFoundError:
                continue
    return swept


def export_snapshot_build(*, snapshot_id: int) -> ExportSnapshot:
    """Build a snapshot's files; safe to call twice (a finished snapshot is left as it is).

    A failure is recorded on the snapshot (status failed, with the error) and leaves no files.
    """
    snapshot = ExportSnapshot.objects.select_related("project", "created_by").get(pk=snapshot_id)
    if snapshot.status == ExportStatus.DONE:
        return snapshot
    total = Trace.objects.filter(_traces(snapshot.project, snapshot.filters)).count()
    claimed = ExportSnapshot.objects.filter(
        pk=snapshot.pk, status__in=[ExportStatus.QUEUED, ExportStatus.RUNNING]
    ).update(
        status=ExportStatus.RUNNING,
        progress_done=0,
        progress_total=total,
        error="",
        heartbeat_at=timezone.now(),
    )
    if not claimed:  # cancelled before it started (or failed): left as it is
        snapshot.refresh_from_db()
        return snapshot
    relative = Path(snapshot.project.slug) / snapshot.name / f"v{snapshot.version}"
    final = exports_root() / relative
    tmp = final.parent / f".v{snapshot.version}.{uuid.uuid4().hex}.tmp"
    tmp.mkdir(parents=True)
    try:
        result = _write_files(snapshot, tmp, total)
        if final.exists():  # a build that died after its rename and before its status update
            shutil.rmtree(final)
        os.replace(tmp, final)
    except ExportCancelled:
        shutil.rmtree(tmp, ignore_errors=True)
        snapshot.refresh_from_db()
        return snapshot
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        ExportSnapshot.objects.filter(pk=snapshot.pk).update(
            status=ExportStatus.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            finished_at=timezone.now(),
        )
        raise
    done = ExportSnapshot.objects.filter(pk=snapshot.pk, status=ExportStatus.RUNNING).update(
        status=ExportStatus.DONE,
        path=str(relative),
        progress_done=total,
        finished_at=timezone.now(),
        **result,
    )
    if not done:  # cancelled in the last instant: its files go too
        shutil.rmtree(final, ignore_errors=True)
    snapshot.refresh_from_db()
    return snapshot


def _carries_label_sources(snapshot: ExportSnapshot) -> bool:
    """Whether the rows say who chose each label: annotators' rows, in a format with room for it."""
    return snapshot.labels == LabelPolicy.ALL and EXPORTERS[snapshot.format].CARRIES_LABEL_SOURCES


def _write_files(snapshot: ExportSnapshot, folder: Path, total: int) -> dict[str, Any]:
    exporter = EXPORTERS[snapshot.format]
    ext = snapshot.file_format
    splits = ["train", "test"] if snapshot.test_fraction > 0 else ["train"]
    images, tables = carried_columns(traces=_traces(snapshot.project, snapshot.filters))
    media = SnapshotMedia(folder=folder, project=snapshot.project, images=images, tables=tables)

    def open_writer(split: str) -> _JsonlWriter | _ParquetWriter:
        path = folder / f"{split}.{ext}"
        if ext == ExportFileFormat.PARQUET:
            schema = dict(exporter.PARQUET_SCHEMA)
            if _carries_label_sources(snapshot):
                schema.update(LABEL_SOURCES_PARQUET)
            if media.images:
                schema.update(IMAGES_PARQUET)
            if media.tables:
                schema.update(TABLE_PARQUET)
            return _ParquetWriter(path, schema)
        return _JsonlWriter(path)

    writers = {split: open_writer(split) for split in splits}
    tally = _Tally()
    last = time.monotonic()
    try:
        for group in _records(snapshot, tally):
            sha = group[0].problem_sha256
            split = (
                "test"
                if is_test(sha, seed=snapshot.seed, fraction=snapshot.test_fraction)
                else "train"
            )
            wrote = False
            # One problem per group: its rows share its images and table (none: no columns),
            # written at its first row (a problem without rows leaves no file in the snapshot).
            carried: dict[str, Any] | None = None
            rows_by_record = _rows(exporter, group, snapshot)
            for row in rows_by_record:
                if carried is None:
                    carried = media.columns(group[0]) if media.images or media.tables else {}
                writers[split].write({**row.data, **carried} if carried else row.data)
                tally.rows[split] += 1
                tally.steps += len(row.labels)
                for value in row.labels:
                    tally.balance[{1: "positive", -1: "negative", 0: "neutral"}[value]] += 1
                wrote = True
            tally.records += len(group)
            if wrote:
                tally.problems[split] += 1
            if time.monotonic() - last > PROGRESS_EVERY_S:
                _progress(snapshot.pk, tally.traces, total)
                last = time.monotonic()
    finally:
        digests = {split: writer.close() for split, writer in writers.items()}
    _check_built_rows(snapshot, tally, splits)
    files = [
        {
            "name": writers[split].path.name,
            "split": split,
            "rows": writers[split].rows,
            "bytes": writers[split].path.stat().st_size,
            "sha256": digests[split],
        }
        for split in splits
    ]
    sums = "".join(f"{f['sha256']}  {f['name']}\n" for f in files) + media.sums_lines()
    (folder / SUMS).write_text(sums, encoding="utf-8")
    sha256 = hashlib.sha256(sums.encode()).hexdigest()
    stats = {
        "traces": tally.traces,
        "records": tally.records,
        "steps": tally.steps,
        "label_balance": {k: tally.balance.get(k, 0) for k in ("positive", "negative", "neutral")},
        "problems": {split: tally.problems.get(split, 0) for split in splits},
        "agreement": {
            "steps_with_2_or_more_labels": tally.multi_labelled_steps,
            "mean_agreement": round(tally.agreement_sum / tally.multi_labelled_steps, 4)
            if tally.multi_labelled_steps
            else None,
            "unanimous_steps": tally.unanimous_steps,
            "ties": tally.ties,
            "below_min_agreement": tally.below_min_agreement,
        },
        **media.summary(),
    }
    row_counts = {split: tally.rows.get(split, 0) for split in splits}
    card = render_card(
        snapshot,
        files=files,
        stats=stats,
        row_counts=row_counts,
        sha256=sha256,
        image_files=sorted(media.files.items()),
    )
    (folder / CARD).write_text(card, encoding="utf-8")
    return {
        "files": files,
        "stats": stats,
        "row_counts": row_counts,
        "sha256": sha256,
        "card": card,
    }


def _rows(
    exporter: Any, group: list[ExportRecord], snapshot: ExportSnapshot
) -> Iterator[ExportRow]:
    return exporter.rows(group, neutral=snapshot.neutral, options=snapshot.options)


# --- the dataset card --------------------------------------------------------------------------


def _card_label_sources(snapshot: ExportSnapshot) -> list[str]:
    """The card's line on label provenance, for the rows that carry it."""
    if not _carries_label_sources(snapshot):
        return []
    where = (
        "`source` in each step's completion (passes labelled in steplens; a record imported "
        "from PRM800K and written back as it was has none)"
        if snapshot.format == ExportFormat.PRM800K
        else f"`{LABEL_SOURCES}` (one entry per step of the row, null where the step has no label; "
        "an extra field the format's readers ignore)"
    )
    return [
        f"- who chose each label: {where}: `hand` (set by the annotator), `first_error` (the step "
        "the annotator marked as the first wrong one), `filled` (filled in by first-error / "
        "all-correct, not judged one by one)"
    ]


def _card_media(stats: dict[str, Any]) -> list[str]:
    """The card's section on the images and tables the rows carry (none: no section)."""
    images, tables = stats.get("images"), stats.get("tables")
    if not images and not tables:
        return []
    lines = ["", "## Images and tables"]
    if images:
        remote = (
            f", or an https URL of a host the project loads images from ({images['remote_urls']} "
            "such addresses, not copied)"
            if images["remote_urls"]
            else ""
        )
        lines += [
            f"- `{IMAGES}`: every row lists its problem's images (an empty list for a problem "
            f"without), as paths relative to this folder, `{IMAGES_DIR}/<sha256>.<ext>` (the "
            f"sha256 of the file's bytes){remote}; {images['files']} files, {images['bytes']} "
            "bytes, listed below and in SHA256SUMS.",
            "- `datasets` reads the column as a list of strings, and its JSON and Parquet "
            "loaders would open a relative path from the working directory, so join the folder "
            "before casting to images:",
            "",
            "```python",
            "import os",
            "from datasets import Image, List, load_dataset",
            "",
            'folder = "path/to/this/folder"',
            "ds = load_dataset(folder)",
            "ds = ds.map(lambda row: {",
            f'    "{IMAGES}": [p if "://" in p else os.path.join(folder, p) for p in row["{IMAGES}"]]',
            f'}}).cast_column("{IMAGES}", List(Image()))',
            "```",
        ]
        for reason, count in images["left_out"].items():
            lines.append(
                f"- left out of the rows: {count} image address{'es' if count != 1 else ''} "
                f"that steplens never shows ({reason})"
            )
    if tables:
        lines.append(
            '- `table`: every row holds its problem\'s table as `{"header": [...], "rows": '
            "[[...], ...]}` (cells as strings, a Markdown table read into the same form), null "
            "for a problem without one"
            + (
                f"; null also for the {tables['left_out']} problems whose stored table follows "
                "neither form of the schema"
                if tables["left_out"]
                else ""
            )
        )
    return lines


def render_card(
    snapshot: ExportSnapshot,
    *,
    files: list[dict[str, Any]],
    stats: dict[str, Any],
    row_counts: dict[str, int],
    sha256: str,
    image_files: list[tuple[str, tuple[str, int]]] | None = None,
) -> str:
    """README.md beside the files: a Hugging Face dataset card (YAML header names the splits)."""
    project = snapshot.project
    header = ["---", "configs:", "- config_name: default", "  data_files:"]
    for f in files:
        header += [f"  - split: {f['split']}", f"    path: {f['name']}"]
    header.append("---")
    balance = stats["label_balance"]
    labelled = sum(balance.values()) or 1
    agreement = stats["agreement"]
    neutral = {
        "": "not mapped (kept as 0, or there were none)",
        "positive": "neutral (0) counts as correct",
        "negative": "neutral (0) counts as wrong",
        "drop": "neutral (0) counts as unlabelled (a trace's labelled prefix ends before it)",
    }[snapshot.neutral]
    if not snapshot.identities:
        who = "a reviewer (names withheld: identities not included)"
    else:
        who = (
            snapshot.created_by.get_username()
            if snapshot.created_by
            else "manage.py export_dataset"
        )
    lines = [
        *header,
        "",
        f"# {project.slug}/{snapshot.name} v{snapshot.version}",
        "",
        f"Exported by steplens from project `{project.slug}` ({project.name}) by {who} "
        f"at {timezone.localtime(snapshot.created_at).isoformat(timespec='seconds')}.",
        "",
        "## Source and filters",
        f"- format: `{snapshot.format}` ({snapshot.get_format_display()}), file: {snapshot.file_format}",
        f"- filters: `{json.dumps(snapshot.filters, sort_keys=True)}`"
        + (" (flagged problems excluded)" if not snapshot.filters.get("include_flagged") else ""),
        "- identities: "
        + (
            "included (the exporter's name; annotators' submission times and active seconds)"
            if snapshot.identities
            else "withheld (annotators are pseudonyms; no names, submission times or active "
            "seconds of steplens annotators; imported annotations keep their source's fields)"
        ),
    ]
    if snapshot.options:
        lines.append(f"- options: `{json.dumps(snapshot.options, sort_keys=True)}`")
    lines += [
        "",
        "## Label policy",
        f"- labels: `{snapshot.labels}` ({snapshot.get_labels_display()})",
        f"- minimum agreement: {snapshot.min_agreement:g}",
        f"- neutral: {neutral}",
        "- only labelled steps are exported: a trace stops at its first unlabelled step",
        *_card_label_sources(snapshot),
        "",
        "## Split",
        f"- test fraction {snapshot.test_fraction:g}, seed {snapshot.seed}: by problem "
        "(sha256 of the seed and the problem text's sha256), so no problem is in two splits",
        "",
        "## Counts",
        "| split | rows | problems |",
        "|---|---|---|",
        *(
            f"| {split} | {rows} | {stats['problems'].get(split, 0)} |"
            for split, rows in row_counts.items()
        ),
        "",
        f"- traces read: {stats['traces']}, label records: {stats['records']}, "
        f"labelled steps exported: {stats['steps']}",
        f"- label balance: {balance['positive']} positive ({100 * balance['positive'] / labelled:.1f}%), "
        f"{balance['negative']} negative ({100 * balance['negative'] / labelled:.1f}%), "
        f"{balance['neutral']} neutral ({100 * balance['neutral'] / labelled:.1f}%)",
        "",
        "## Agreement",
    ]
    if agreement["steps_with_2_or_more_labels"]:
        lines += [
            f"- steps labelled by 2 or more annotators: {agreement['steps_with_2_or_more_labels']}",
            f"- mean agreement (share giving the majority value): {agreement['mean_agreement']}",
            f"- unanimous steps: {agreement['unanimous_steps']}, ties: {agreement['ties']}, "
            f"below the minimum agreement: {agreement['below_min_agreement']}",
        ]
    else:
        lines.append("- no step was labelled by two or more annotators in this export")
    lines += _card_media(stats)
    lines += [
        "",
        "## Files",
        "| file | rows | bytes | sha256 |",
        "|---|---|---|---|",
        *(f"| {f['name']} | {f['rows']} | {f['bytes']} | `{f['sha256']}` |" for f in files),
        *(f"| {path} | | {size} | `{sha}` |" for path, (sha, size) in image_files or []),
        "",
        f"Snapshot sha256 (of {SUMS}): `{sha256}`",
        "",
    ]
    return "\n".join(lines)
