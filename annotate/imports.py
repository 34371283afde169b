"""Import of trace files: every record is parsed and checked first, then all are written in one transaction.

The formats (annotate/formats/) turn records into plain dataclasses; this service is the one place
that turns those into rows. All or nothing: a malformed record anywhere raises ImportFileError
before anything is written. Importing the same file again adds nothing: traces are matched on
(project, source, external id), problems on the sha256 of what they show (text, images' content,
table: problem_content_sha256), imported annotations on (trace, labeler).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import connections, router, transaction
from django.db.models import F, Field, Max, Model, QuerySet
from django.db.models.fields.json import KT
from django.utils import timezone

from config.celery import task_send_on_commit

from . import bundles, counts, rendered, services, signals
from .formats import PARSERS, ROW_GROUPERS
from .formats.base import (
    FormatError,
    ParsedAnnotation,
    ParsedTrace,
    check_metadata_limits,
    check_nesting,
    check_text_limits,
    iter_records,
)
from .formats.prm800k import username_for
from .models import (
    Annotation,
    AnnotationStatus,
    GoldLabel,
    GoldSource,
    LabelSource,
    Problem,
    Project,
    Step,
    StepLabel,
    Trace,
)

FORMATS: tuple[str, ...] = ("processbench", "prm800k", "prmbench", "math_shepherd", "trl", "jsonl")
assert set(FORMATS) == set(PARSERS), "every format needs a parser in annotate.formats.PARSERS"

# Rows per INSERT (PostgreSQL; SQLite's bound on query parameters makes Django use fewer) and ids
# per `IN (...)` lookup (under SQLite's historical limit of 999 parameters).
_BATCH = 2000
_LOOKUP_CHUNK = 900
# Existing keys are read in one query when a project holds fewer rows than this (plus 4 per key).
_READ_ALL_BELOW = 10_000
# The write pass holds this many traces, or about this much of their text, at a time: what
# bounds an import's memory.
_TRACE_CHUNK = 5000
_CHUNK_BYTES = 8 * 1024 * 1024

T = TypeVar("T")


class ImportFileError(ValueError):
    """Raised for a malformed file; nothing was written."""

    def __init__(
        self, *, file: str, message: str, line: int | None = None, field: str | None = None
    ) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def as_dict(self) -> dict[str, Any]:
        """The refusal as the API and an import job give it: detail, file, line, field."""
        return {"detail": str(self), "file": self.file, "line": self.line, "field": self.field}

    def __str__(self) -> str:
        where = [self.file]
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.message}"


@dataclass(frozen=True)
class ImportResult:
    project: Project
    format: str
    traces_created: int
    traces_skipped: int  # already imported (same source + external id), or repeated in the file
    problems_created: int
    steps_created: int
    annotations_created: int
    gold_labels_created: int
    # Problems of the new traces that the project held already (same text, images and table).
    problems_shared: int = 0

    def summary(self) -> str:
        parts = [
            f"{self.format}: {self.traces_created} traces ({self.traces_skipped} already there)",
            f"{self.steps_created} steps",
            f"{self.gold_labels_created} gold labels",
            f"{self.problems_created} new problem{'' if self.problems_created == 1 else 's'}, "
            f"{self.problems_shared} shared",
        ]
        if self.format == "prm800k" or self.annotations_created:
            parts.append(f"{self.annotations_created} annotations")
        return ", ".join(parts)


def project_for_import(*, slug: str) -> tuple[Project, bool]:
    """The project to import into, created (with defaults) if missing; True when created."""
    project = Project.objects.filter(slug=slug).first()
    if project is not None:
        return project, False
    return services.project_create(slug=slug), True


# PostgreSQL plans queries on table statistics that autovacuum refreshes only some time after a
# bulk load (or never, where it is off); a stale plan made the labelling page 2.5x slower after an
# import of ProcessBench. A large import refreshes them itself, once committed.
ANALYZE_AFTER_STEPS = 1000
_CORPUS_TABLES = (Problem, Trace, Step, GoldLabel, Annotation, StepLabel)


def _analyze_corpus_tables() -> None:
    connection = connections[router.db_for_write(Trace)]
    with connection.cursor() as cursor:
        for model in _CORPUS_TABLES:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


# Progress of an import: (phase, done, total); phase "check" counts bytes, "write" records.
Progress = Callable[[str, int, int], None]


def traces_import(
    *,
    project: Project,
    stream: IO[bytes] | Iterable[bytes],
    filename: str,
    format: str,
    subset: str = "",
    progress: Progress | None = None,
) -> ImportResult:
    """Import every record of `stream` (JSON Lines, or a JSON array) in `format` into `project`.

    Two passes over the file: the first parses and checks every record and keeps only an index
    of their ids; the second parses them again and writes them a chunk at a time, in one
    transaction. Memory is a chunk and the index, whatever the size of the file.
    """
    if format not in PARSERS:
        raise ImportFileError(
            file=filename, message=f"unknown format {format!r} (one of: {', '.join(FORMATS)})"
        )
    if len(subset) > 100:
        raise ImportFileError(file=filename, message="subset: longer than 100 characters")
    with (
        _rewindable(stream) as (rewindable, file_start, file_size),
        _records_file(
            rewindable, start=file_start, size=file_size, project=project, filename=filename
        ) as (seekable, start, size, resolve),
    ):
        index = _check_file(
            stream=seekable, filename=filename, format=format, subset=subset,
            progress=progress, start=start, size=size, resolve=resolve,
        )  # fmt: skip
        seekable.seek(start)
        with transaction.atomic():
            _import_lock(project)
            last_trace_id = Trace.objects.filter(project=project).aggregate(last=Max("pk"))["last"]
            result = _write_file(
                project=project, stream=seekable, filename=filename, format=format,
                subset=subset, index=index, progress=progress, resolve=resolve,
            )  # fmt: skip
            if result["traces"]:
                # The project's kept count, in this transaction (the row locked until it ends).
                Project.objects.filter(pk=project.pk).update(
                    trace_count=F("trace_count") + result["traces"]
                )
            if result.get("annotations"):  # submitted passes (PRM800K) may fill traces
                counts.project_filled_recount(project_id=project.pk)
            vendor = connections[router.db_for_write(Trace)].vendor
            if vendor == "postgresql" and result["steps"] >= ANALYZE_AFTER_STEPS:
                transaction.on_commit(_analyze_corpus_tables)
            if result["traces"]:
                # New traces need their labelling-queue rows (review makes them, off this request).
                signals.traces_imported.send(sender=Trace, project=project)
                # Their texts' HTML, rendered off the import and off the first page views.
                task_send_on_commit(
                    rendered.FILL_TASK, project.pk, last_trace_id or 0, queue="bulk"
                )
    return ImportResult(
        project=project,
        format=format,
        traces_created=result["traces"],
        traces_skipped=result["traces_skipped"] + index.repeated,
        problems_created=result["problems"],
        problems_shared=result["problems_shared"],
        steps_created=result["steps"],
        annotations_created=result["annotations"],
        gold_labels_created=result["gold"],
    )


# pg_advisory_xact_lock's first key: what the lock is for (the second is the project's id).
IMPORT_LOCK_CLASS = 0x53_4C_49  # "SLI": steplens import


def _import_lock(project: Project) -> None:
    """One import into a project at a time: a second one (the same file sent twice at once) waits
    here, then finds the first one's traces and adds nothing. On PostgreSQL an advisory lock held
    to the end of the import's transaction, not the project's row: an import writes for minutes,
    and the row is what a submission counts its filled trace on, so annotators submitting in the
    project meanwhile waited for the import's end. The import takes the row only at its end, for
    its counts (trace_count; project_filled_recount). SQLite has one writer at a time anyway."""
    db = connections[router.db_for_write(Trace)]
    if db.vendor == "postgresql":
        with db.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [IMPORT_LOCK_CLASS, project.pk])
    else:
        Project.objects.select_for_update().filter(pk=project.pk).first()


# --- the first pass: check ---------------------------------------------------------------------


@contextmanager
def _rewindable(
    stream: IO[bytes] | Iterable[bytes],
) -> Iterator[tuple[IO[bytes], int, int | None]]:
    """(a stream that can be read twice, where it starts, its size if known).

    A file or an upload is read where it is; anything else (a pipe, an iterable of lines) is
    first copied to a temporary file on disk, a block at a time.
    """
    seekable = getattr(stream, "seekable", None)
    if seekable is not None and seekable():
        start = stream.tell()
        size = stream.seek(0, os.SEEK_END) - start
        stream.seek(start)
        yield stream, start, size
        return
    with tempfile.TemporaryFile(dir=settings.VAR_DIR) as copy:
        if hasattr(stream, "read"):
            shutil.copyfileobj(stream, copy, 1 << 20)
        else:  # an iterable of byte blocks or lines
            copy.writelines(stream)
        size = copy.tell()
        copy.seek(0)
        yield copy, 0, size


@contextmanager
def _records_file(
    stream: IO[bytes], *, start: int, size: int | None, project: Project, filename: str
) -> Iterator[tuple[IO[bytes], int, int | None, Callable[[str], str] | None]]:
    """(the records' stream, where they start, their size, how image paths resolve): the file
    itself, or the records file inside an image bundle (a zip, annotate/bundles.py)."""
    if not bundles.is_zip(stream, start):
        yield stream, start, size, None
        return
    try:
        with bundles.open_bundle(stream, project_id=project.pk) as (records, size, resolve):
            yield records, 0, size, resolve
    except bundles.BundleError as err:
        raise ImportFileError(file=filename, message=str(err)) from None


@dataclass
class _Index:
    """What the check pass keeps of a file: the line of the first record of each external id,
    no record itself."""

    first: dict[str, int] = field(default_factory=dict)
    repeated: int = 0  # records dropped as repeats of an earlier one
    records: int = 0


def _records(
    *,
    stream: IO[bytes],
    filename: str,
    format: str,
    subset: str,
    resolve: Callable[[str], str] | None = None,
) -> Iterator[ParsedTrace]:
    """Each record of the file parsed and checked, with its line; a bad one raises ImportFileError."""
    parse = PARSERS[format]
    group = ROW_GROUPERS.get(format)
    max_step, max_problem = settings.STEPLENS_MAX_STEP_CHARS, settings.STEPLENS_MAX_PROBLEM_CHARS
    line: int | None = None
    try:
        records = iter_records(stream, max_record_bytes=settings.STEPLENS_IMPORT_MAX_RECORD_BYTES)
        for line, record in group(records) if group else records:
            check_nesting(record, max_depth=settings.STEPLENS_IMPORT_MAX_DEPTH)
            trace = parse(record, subset=subset)
            if resolve is not None:
                trace.problem.images = _resolved(trace.problem.images, resolve)
            check_text_limits(trace, max_step_chars=max_step, max_problem_chars=max_problem)
            check_metadata_limits(trace, max_bytes=settings.STEPLENS_IMPORT_MAX_METADATA_BYTES)
            trace.line = line
            yield trace
    except FormatError as err:
        raise ImportFileError(
            file=filename,
            line=err.line if err.line is not None else line,
            field=err.field,
            message=err.message,
        ) from None


def _resolved(images: list[str], resolve: Callable[[str], str]) -> list[str]:
    out = []
    for i, address in enumerate(images):
        try:
            out.append(resolve(address))
        except FormatError as err:
            raise FormatError(err.message, field=f"images[{i}]") from None
    return out


_PROGRESS_EVERY = 1000  # records


def _check_file(
    *,
    stream: IO[bytes],
    filename: str,
    format: str,
    subset: str,
    progress: Progress | None,
    start: int,
    size: int | None,
    resolve: Callable[[str], str] | None = None,
) -> _Index:
    """Every record parsed and checked; one trace per external id: a repeat of a content-derived
    id is dropped (or, with annotations, kept as another labeler's pass over the same solution);
    an explicit id given twice must be the same record, or the file is refused."""
    index = _Index()
    twice: list[tuple[int, int]] = []  # (line, line of the first record with its id)
    for trace in _records(
        stream=stream, filename=filename, format=format, subset=subset, resolve=resolve
    ):
        index.records += 1
        if progress is not None and index.records % _PROGRESS_EVERY == 0:
            progress("check", stream.tell() - start, size or 0)
        first = index.first.setdefault(trace.external_id, trace.line)
        if first == trace.line or (trace.annotations and trace.content_id):
            continue
        index.repeated += 1
        if not trace.content_id:
            twice.append((trace.line, first))
    if not index.first:
        raise ImportFileError(file=filename, message="no records: the file is empty")
    if twice:
        stream.seek(start)
        _check_repeats(
            stream=stream, filename=filename, format=format, subset=subset, twice=twice,
            resolve=resolve,
        )  # fmt: skip
    if progress is not None:
        progress("check", size or 0, size or 0)
    return index


def _check_repeats(
    *,
    stream: IO[bytes],
    filename: str,
    format: str,
    subset: str,
    twice: list[tuple[int, int]],
    resolve: Callable[[str], str] | None,
) -> None:
    """An explicit id given twice: the same record again is a repeat; different content is an
    error. The records concerned are read again (rare: the usual file has no repeats)."""
    wanted = {line for pair in twice for line in pair}
    # A digest of each, not the record: a file concatenated twice would otherwise be held whole.
    seen = {
        trace.line: (
            trace.external_id,
            hashlib.blake2b(repr(dataclasses.replace(trace, line=0)).encode()).digest(),
        )
        for trace in _records(
            stream=stream, filename=filename, format=format, subset=subset, resolve=resolve
        )
        if trace.line in wanted
    }
    for line, first in sorted(twice):
        external_id, content = seen[line]
        if content != seen[first][1]:
            raise ImportFileError(
                file=filename,
                line=line,
                field="id",
                message=f"duplicate id {external_id!r} with different content "
                f"(first on line {first})",
            )


# --- the second pass: write, a chunk at a time -------------------------------------------------


def _size(trace: ParsedTrace) -> int:
    """About the memory a parsed trace holds, for bounding a chunk."""
    return (
        len(trace.problem.text)
        + sum(len(s.text) + 200 for s in trace.steps)
        + sum(len(a.record_json) + 100 * len(a.labels) for a in trace.annotations)
        + 500
    )


def _write_file(
    *,
    project: Project,
    stream: IO[bytes],
    filename: str,
    format: str,
    subset: str,
    index: _Index,
    progress: Progress | None,
    resolve: Callable[[str], str] | None = None,
) -> dict[str, int]:
    counts = dict.fromkeys(
        ("traces", "traces_skipped", "problems", "steps", "gold", "annotations"), 0
    )
    problems = _ProblemsSeen()
    chunk: dict[str, ParsedTrace] = {}  # first records, by id
    later: list[ParsedTrace] = []  # passes over a solution whose first record is in a past chunk
    chunk_bytes = done = 0

    def flush() -> None:
        nonlocal chunk_bytes
        written = _write(
            project=project, source=format, traces=[*chunk.values(), *later], problems=problems
        )
        # A later pass's trace is "already there" (written by this import): not a skip.
        written["traces_skipped"] -= len(later)
        for key, value in written.items():
            counts[key] += value
        chunk.clear()
        later.clear()
        chunk_bytes = 0

    for trace in _records(
        stream=stream, filename=filename, format=format, subset=subset, resolve=resolve
    ):
        done += 1
        if progress is not None and done % _PROGRESS_EVERY == 0:
            progress("write", done, index.records)
        if index.first[trace.external_id] == trace.line:
            chunk[trace.external_id] = trace
        elif trace.annotations and trace.content_id:
            first = chunk.get(trace.external_id)
            if first is not None:
                first.annotations.extend(trace.annotations)
            else:
                later.append(trace)
        else:
            continue  # a repeat, counted by the check pass
        chunk_bytes += _size(trace)
        if chunk_bytes >= _CHUNK_BYTES or len(chunk) + len(later) >= _TRACE_CHUNK:
            flush()
    if chunk or later:
        flush()
    if progress is not None:
        progress("write", index.records, index.records)
    counts["problems_shared"] = len(problems.shared)
    return counts


# --- writing -----------------------------------------------------------------------------------


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _image_identity(image: str) -> str:
    """What identifies an image: the bytes of a data: URL (however its base64 is spelt), else
    the address as given (a bundled file's address holds its content hash)."""
    if image.startswith("data:") and "," in image:
        head, _, payload = image.partition(",")
        try:
            raw = (
                base64.b64decode("".join(payload.split()), validate=True)
                if head.endswith(";base64")
                else payload.encode()
            )
        except (binascii.Error, ValueError):
            return image
        return "sha256:" + hashlib.sha256(raw).hexdigest()
    return image


def problem_content_sha256(*, text: str, images: Sequence[str], table: Any) -> str:
    """The identity of a problem: the sha256 of its text, images' content and table.

    A problem with no images and no table keeps the sha256 of its text alone, as before figures
    and tables counted (so its key, and the export split drawn on it, did not change).

    >>> problem_content_sha256(text="1+1?", images=[], table=None) == hashlib.sha256(b"1+1?").hexdigest()
    True
    >>> a = problem_content_sha256(text="Find $x$.", images=["data:image/png;base64,AAAA"], table=None)
    >>> a == problem_content_sha256(text="Find $x$.", images=["data:image/png;base64,AAAB"], table=None)
    False
    """
    encoded = text.encode("utf-8", "surrogatepass")
    if not images and table is None:
        return hashlib.sha256(encoded).hexdigest()
    shown = json.dumps(
        {"images": [_image_identity(i) for i in images], "table": table},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(encoded + b"\x00" + shown.encode("utf-8", "surrogatepass")).hexdigest()


def _problem_key(trace: ParsedTrace) -> str:
    p = trace.problem
    return problem_content_sha256(text=p.text, images=p.images, table=p.table)


def _lookup(queryset: QuerySet[Any], key: str, wanted: Sequence[str]) -> dict[str, int]:
    """key -> id for the rows of `queryset` whose `key` is in `wanted`.

    When the queryset is not much bigger than the list, one query reads it all: cheaper than
    hundreds of `IN (...)` lookups, which is what a second file into the same project would cost.
    """
    if not wanted:
        return {}
    total = queryset.count()
    if total == 0:
        return {}  # a first import into this project: nothing to look up
    if total <= 4 * len(wanted) + _READ_ALL_BELOW:
        wanted_set = set(wanted)
        return {k: pk for k, pk in queryset.values_list(key, "id") if k in wanted_set}
    found: dict[str, int] = {}
    for chunk in _chunks(wanted, _LOOKUP_CHUNK):
        found.update(queryset.filter(**{f"{key}__in": chunk}).values_list(key, "id"))
    return found


def _field(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    assert isinstance(field, Field), f"{model.__name__}.{name} is not a concrete field"
    return field


def _column(model: type[Model], name: str) -> str:
    column = _field(model, name).column
    assert column is not None
    return column


class _Inserter:
    """Multi-row INSERTs of plain tuples, with the new ids back (RETURNING) when asked for.

    Why not bulk_create: building and compiling a Model instance per row is most of the time of an
    import (3 of 4 seconds for ProcessBench on SQLite); the rows here are already checked, so
    they go straight to the database. Values are adapted the way the model fields would
    (JSON, datetimes), through the connection's own adapters.
    """

    def __init__(self) -> None:
        self.connection = connections[router.db_for_write(Trace)]
        if not self.connection.features.can_return_rows_from_bulk_insert:
            raise NotImplementedError(
                "imports need INSERT ... RETURNING (SQLite 3.35+, PostgreSQL)"
            )
        self.max_params = self._max_params()
        self.now = timezone.now()
        self._statements: dict[tuple[str, int, bool], str] = {}

    def _max_params(self) -> int:
        if self.connection.vendor == "sqlite":
            import sqlite3

            self.connection.ensure_connection()
            raw = self.connection.connection
            # The compiled-in limit (32766 since SQLite 3.32), not Django's conservative 999.
            return int(raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        return 65535  # PostgreSQL's bind-parameter limit per statement

    @staticmethod
    def json(value: Any) -> str:
        # JSON text suits both paths: SQLite stores it as is, PostgreSQL's COPY parses it into
        # jsonb (psycopg's Jsonb wrapper would serialise again on every row).
        return json.dumps(value)

    def timestamp(self, model: type[Model], field: str, value: datetime | None = None) -> Any:
        """`value` (default: the import's time) as the database stores `model.field`."""
        return _field(model, field).get_db_prep_value(
            self.now if value is None else value, self.connection
        )

    def insert(
        self,
        model: type[Model],
        fields: Sequence[str],
        rows: list[tuple[Any, ...]],
        *,
        returning: bool = False,
    ) -> list[int]:
        """Insert `rows` (values in the order of `fields`); their new ids if `returning`."""
        if not rows:
            return []
        if self.connection.vendor == "postgresql":
            return self._copy(model, fields, rows, returning)
        ids: list[int] = []
        per_statement = max(1, min(_BATCH, self.max_params // len(fields)))
        with self.connection.cursor() as cursor:
            for batch in _chunks(rows, per_statement):
                sql = self._statement(model, fields, len(batch), returning)
                cursor.execute(sql, [value for row in batch for value in row])
                if returning:
                    ids.extend(row[0] for row in cursor.fetchall())
        return ids

    def _copy(
        self,
        model: type[Model],
        fields: Sequence[str],
        rows: list[tuple[Any, ...]],
        returning: bool,
    ) -> list[int]:
        """PostgreSQL: COPY, with ids drawn from the table's sequence first when they are needed.

        psycopg re-parses a statement's placeholders on every execute (ten seconds for a million
        steps as multi-row INSERTs); COPY streams rows with no statement to parse at all.
        """
        qn = self.connection.ops.quote_name
        table = model._meta.db_table
        columns = [_column(model, f) for f in fields]
        ids: list[int] = []
        with self.connection.cursor() as wrapper:
            cursor = wrapper.cursor  # the psycopg cursor: Django's wrapper has no copy()
            if returning:
                pk = _column(model, "pk")
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                    [qn(table), pk, len(rows)],
                )
                ids = [row[0] for row in cursor.fetchall()]
                columns.insert(0, pk)
            statement = f"COPY {qn(table)} ({', '.join(map(qn, columns))}) FROM STDIN"
            with cursor.copy(statement) as copy:
                if returning:
                    for pk_value, row in zip(ids, rows, strict=True):
                        copy.write_row((pk_value, *row))
                else:
                    for row in rows:
                        copy.write_row(row)
        return ids

    def _statement(self, model: type[Model], fields: Sequence[str], n: int, returning: bool) -> str:
        key = (f"{model._meta.db_table}:{','.join(fields)}", n, returning)
        if key not in self._statements:
            qn = self.connection.ops.quote_name
            columns = ", ".join(qn(_column(model, f)) for f in fields)
            row = "(" + ", ".join(["%s"] * len(fields)) + ")"
            sql = f"INSERT INTO {qn(model._meta.db_table)} ({columns}) VALUES " + ", ".join(
                [row] * n
            )
            if returning:
                sql += f" RETURNING {qn(_column(model, 'pk'))}"
            self._statements[key] = sql
        return self._statements[key]


@dataclass
class _ProblemsSeen:
    """The problems one import created, and those it found already in the project (shared)."""

    created: set[int] = field(default_factory=set)
    shared: set[int] = field(default_factory=set)


def _problem_ids(
    *, project: Project, traces: list[ParsedTrace], db: _Inserter, seen: _ProblemsSeen
) -> tuple[dict[str, int], int]:
    """content sha256 -> problem id for the problems of `traces`, creating the missing ones."""
    wanted: dict[str, ParsedTrace] = {}
    for trace in traces:
        wanted.setdefault(_problem_key(trace), trace)
    ids = _lookup(Problem.objects.filter(project=project), "content_sha256", list(wanted))
    seen.shared.update(pk for pk in ids.values() if pk not in seen.created)
    missing = [sha for sha in wanted if sha not in ids]
    rows = []
    for sha in missing:
        p = wanted[sha].problem
        rows.append(
            (
                project.pk,
                sha,
                p.text,
                p.reference_answer,
                p.reference_solution,
                db.json(p.images),
                db.json(p.table) if p.table is not None else None,
                db.json(p.metadata),
                False,
            )
        )
    new_ids = db.insert(
        Problem,
        (
            "project",
            "content_sha256",
            "text",
            "reference_answer",
            "reference_solution",
            "images",
            "table",
            "metadata",
            "flagged",
        ),
        rows,
        returning=True,
    )
    ids.update(zip(missing, new_ids, strict=True))
    seen.created.update(new_ids)
    return ids, len(missing)


def _write(
    *, project: Project, source: str, traces: list[ParsedTrace], problems: _ProblemsSeen
) -> dict[str, int]:
    counts = dict.fromkeys(
        ("traces", "traces_skipped", "problems", "steps", "gold", "annotations"), 0
    )
    db = _Inserter()
    existing = _lookup(
        Trace.objects.filter(project=project, source=source),
        "external_id",
        [t.external_id for t in traces],
    )
    new_traces = [t for t in traces if t.external_id not in existing]
    counts["traces_skipped"] = len(traces) - len(new_traces)
    problem_ids, counts["problems"] = _problem_ids(
        project=project, traces=new_traces, db=db, seen=problems
    )

    empty = db.json({})  # most steps: adapted once, not per row
    created_at = db.timestamp(Trace, "created_at")
    gold_updated_at = db.timestamp(GoldLabel, "updated_at")
    # (trace id, step ids by index) of every trace that brings annotations, new or already there.
    annotated: list[tuple[ParsedTrace, int, list[int]]] = []
    for chunk in _chunks(new_traces, _TRACE_CHUNK):
        trace_ids = db.insert(
            Trace,
            (
                "project",
                "problem",
                "generator",
                "final_answer",
                "final_answer_correct",
                "source",
                "subset",
                "external_id",
                "metadata",
                "created_at",
            ),
            [
                (
                    project.pk,
                    problem_ids[_problem_key(t)],
                    t.generator,
                    t.final_answer,
                    t.final_answer_correct,
                    source,
                    t.subset,
                    t.external_id,
                    db.json(t.metadata) if t.metadata else empty,
                    created_at,
                )
                for t in chunk
            ],
            returning=True,
        )
        step_ids = db.insert(
            Step,
            ("trace", "index", "text", "part", "metadata"),
            [
                (trace_id, i, s.text, s.part, db.json(s.metadata) if s.metadata else empty)
                for t, trace_id in zip(chunk, trace_ids, strict=True)
                for i, s in enumerate(t.steps)
            ],
            returning=True,
        )
        golds = [
            (step_id, s.gold, GoldSource.IMPORTED, "", gold_updated_at)
            for s, step_id in zip((s for t in chunk for s in t.steps), step_ids, strict=True)
            if s.gold is not None
        ]
        db.insert(GoldLabel, ("step", "value", "source", "rationale", "updated_at"), golds)
        counts["traces"] += len(trace_ids)
        counts["steps"] += len(step_ids)
        counts["gold"] += len(golds)
        position = 0
        for t, trace_id in zip(chunk, trace_ids, strict=True):
            if t.annotations:
                annotated.append((t, trace_id, step_ids[position : position + len(t.steps)]))
            position += len(t.steps)

    old_annotated = [t for t in traces if t.annotations and t.external_id in existing]
    if old_annotated:
        old_ids = [existing[t.external_id] for t in old_annotated]
        old_steps = _step_ids(old_ids)
        annotated.extend(
            (t, trace_id, old_steps.get(trace_id, []))
            for t, trace_id in zip(old_annotated, old_ids, strict=True)
        )
    if annotated:
        counts["annotations"] = _write_annotations(annotated, db=db)
    return counts


def _step_ids(trace_ids: list[int]) -> dict[int, list[int]]:
    by_trace: dict[int, list[int]] = {}
    for chunk in _chunks(trace_ids, _LOOKUP_CHUNK):
        for trace_id, step_id in (
            Step.objects.filter(trace_id__in=chunk)
            .order_by("trace_id", "index")
            .values_list("trace_id", "id")
        ):
            by_trace.setdefault(trace_id, []).append(step_id)
    return by_trace


def _imported_users(labelers: Iterable[str]) -> dict[str, int]:
    """labeler -> id of the inactive user standing for them (created on first import)."""
    User = get_user_model()
    usernames = {username_for(labeler): labeler for labeler in labelers}
    ids: dict[str, int] = {}
    for chunk in _chunks(list(usernames), _LOOKUP_CHUNK):
        ids.update(User.objects.filter(username__in=chunk).values_list("username", "id"))
    missing = [name for name in usernames if name not in ids]
    # Never able to log in: inactive and an unusable password.
    new = [User(username=name, is_active=False, password=make_password(None)) for name in missing]
    User.objects.bulk_create(new, batch_size=_BATCH)
    ids.update((user.get_username(), user.pk) for user in new)
    return {usernames[name]: user_id for name, user_id in ids.items()}


def _submitted_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    # PRM800K's timestamps carry no zone; they are taken as UTC.
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


def _write_annotations(
    annotated: list[tuple[ParsedTrace, int, list[int]]], *, db: _Inserter
) -> int:
    """Imported passes (PRM800K labelers) with their step labels; returns how many were created.

    The same labeler on the same trace again is the same pass when the raw record is the same
    (a re-import: nothing to do); a different record (a second session) is kept beside the first
    in its metadata, so that no record of the file is lost.
    """
    user_ids = _imported_users({a.labeler for t, _, _ in annotated for a in t.annotations})
    seen: dict[tuple[int, int], tuple[int | None, set[str]]] = {}
    trace_ids = [trace_id for _, trace_id, _ in annotated]
    for chunk in _chunks(trace_ids, _LOOKUP_CHUNK):
        for pk, trace_id, user_id, sha, more in Annotation.objects.filter(
            trace_id__in=chunk, annotator_id__in=set(user_ids.values())
        ).values_list(
            "id",
            "trace_id",
            "annotator_id",
            KT("metadata__prm800k__record_sha256"),
            KT("metadata__prm800k__more_record_sha256s"),
        ):
            shas = {sha} | set(json.loads(more) if more else [])
            seen[(trace_id, user_id)] = (pk, shas)

    new: list[tuple[Annotation, ParsedAnnotation, list[int]]] = []
    pending: dict[tuple[int, int], Annotation] = {}
    extra_for_existing: dict[int, list[ParsedAnnotation]] = {}
    for trace, trace_id, step_ids in annotated:
        for parsed in trace.annotations:
            key = (trace_id, user_ids[parsed.labeler])
            if key in seen:
                pk, shas = seen[key]
                if parsed.record_sha256 in shas:
                    continue
                shas.add(parsed.record_sha256)
                if pk is None:
                    _keep_more(pending[key].metadata, parsed)
                else:
                    extra_for_existing.setdefault(pk, []).append(parsed)
                continue
            row = Annotation(
                trace_id=trace_id,
                annotator_id=key[1],
                status=AnnotationStatus.SUBMITTED,
                finish_reason=parsed.finish_reason,
                active_seconds=parsed.active_seconds,
                imported=True,
                metadata=parsed.metadata,
                submitted_at=_submitted_at(parsed.submitted_at),
            )
            seen[key] = (None, {parsed.record_sha256})
            pending[key] = row
            new.append((row, parsed, step_ids))
    Annotation.objects.bulk_create([row for row, _, _ in new], batch_size=_BATCH)
    updated_at = db.timestamp(StepLabel, "updated_at")
    db.insert(
        StepLabel,
        ("annotation", "step", "value", "source", "flagged", "note", "updated_at"),
        [
            # Imported labels were judged by their labelers: "hand".
            (
                row.pk,
                step_ids[label.step_index],
                label.value,
                LabelSource.HAND,
                label.flagged,
                "",
                # The labeler's time (the source's), not the import's, where the source has one.
                db.timestamp(StepLabel, "updated_at", row.submitted_at)
                if row.submitted_at
                else updated_at,
            )
            for row, parsed, step_ids in new
            for label in parsed.labels
        ],
    )
    for pk, more in extra_for_existing.items():
        row = Annotation.objects.get(pk=pk)
        for parsed in more:
            _keep_more(row.metadata, parsed)
        row.save(update_fields=["metadata", "updated_at"])
    return len(new)


def _keep_more(metadata: dict[str, Any], parsed: ParsedAnnotation) -> None:
    kept = metadata.setdefault("prm800k", {})
    kept.setdefault("more_records_json", []).append(parsed.record_json)
    kept.setdefault("more_record_sha256s", []).append(parsed.record_sha256)
