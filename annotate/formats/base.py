"""What every import format shares: the parsed-record dataclasses, the record reader, field checks.

Pure Python (no Django), so a format can be parsed and tested without a database.
"""

from __future__ import annotations

import codecs
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

THINKING = "thinking"
RESPONSE = "response"
PARTS = (THINKING, RESPONSE)


class FormatError(ValueError):
    """A record (or the file) does not follow its format; `line` is 1-based, `field` a JSON path."""

    def __init__(self, message: str, *, field: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.line = line


@dataclass(slots=True)
class ParsedProblem:
    text: str
    reference_answer: str = ""
    reference_solution: str = ""
    images: list[str] = field(default_factory=list)
    table: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ParsedStep:
    text: str
    part: str = RESPONSE
    # Imported gold label (-1 / 0 / +1) or None for "no gold label on this step".
    gold: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ParsedStepLabel:
    step_index: int
    value: int | None
    flagged: bool = False


@dataclass(slots=True)
class ParsedAnnotation:
    """One person's finished pass over the trace, as recorded in the source (e.g. a PRM800K labeler)."""

    labeler: str
    finish_reason: str
    active_seconds: float
    submitted_at: str | None  # ISO 8601 as in the file; the service makes it a datetime
    labels: list[ParsedStepLabel]
    metadata: dict[str, Any]
    # sha256 of the raw record: tells a re-import of the same record from a second, different pass.
    record_sha256: str = ""
    record_json: str = ""


@dataclass(slots=True)
class ParsedTrace:
    external_id: str
    problem: ParsedProblem
    steps: list[ParsedStep]
    generator: str = ""
    final_answer: str = ""
    final_answer_correct: bool | None = None
    subset: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    annotations: list[ParsedAnnotation] = field(default_factory=list)
    line: int = field(default=0, compare=False)  # where the record starts in the file
    # True when the external id comes from the content, so a repeat in one file is the same trace
    # (skipped); an explicit id given twice in one file is an error instead.
    content_id: bool = False


# --- reading records ---------------------------------------------------------------------------

# The longest record (one line of JSON Lines, one element of a JSON array) an import reads; the
# text limits (STEPLENS_MAX_STEP_CHARS, ...) bound what it may hold once parsed.
MAX_RECORD_BYTES = 16 * 1024 * 1024


def iter_records(
    stream: IO[bytes] | Iterable[bytes], *, max_record_bytes: int = MAX_RECORD_BYTES
) -> Iterator[tuple[int, Any]]:
    """(1-based line, decoded JSON value) for each record of a JSON Lines file or a JSON array file.

    A file whose first non-blank character is `[` is read as one JSON array (the shape some
    upstreams ship, e.g. ProcessBench's dataset/*.json); the line of each record is where it starts.
    Either way the file is read as a stream: memory holds a record and a block, never the file,
    and a record longer than `max_record_bytes` is refused before it is read whole.
    """
    readline = getattr(stream, "readline", None)
    lines: Iterator[bytes] = (
        iter(lambda: readline(max_record_bytes + 1), b"") if readline else iter(stream)
    )
    first_line_no = 0
    first: bytes | None = None
    for first_line_no, raw in enumerate(lines, 1):  # noqa: B007 - the line number is used below
        if first_line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if raw.strip():
            first = raw
            break
    if first is None:
        return
    if first.lstrip().startswith(b"["):
        read = getattr(stream, "read", None)
        rest: Iterator[bytes] = iter(lambda: read(_READ_BYTES), b"") if read else lines
        reader = _ArrayReader(itertools.chain([first], rest), first_line_no, max_record_bytes)
        yield from reader.records()
        return
    for line_no, raw in itertools.chain(
        [(first_line_no, first)], enumerate(lines, first_line_no + 1)
    ):
        if len(raw) > max_record_bytes:
            raise FormatError(_too_long(max_record_bytes), line=line_no)
        if raw.strip():
            yield line_no, _loads(raw, line_no)


def _too_long(limit: int) -> str:
    return f"a record longer than {limit:,} bytes (STEPLENS_IMPORT_MAX_RECORD_BYTES)"


# A JSON array file is decoded a block at a time.
_READ_BYTES = 1 << 20
_NOT_WHITESPACE = re.compile(r"[^ \t\r\n]")


def _json_error(err: json.JSONDecodeError, column: int) -> str:
    # The decoder's messages read "Unterminated string starting at" or "Expecting value".
    return f"invalid JSON: {err.msg}{'' if err.msg.endswith(' at') else ' at'} column {column}"


def _loads(raw: bytes, line_no: int) -> Any:
    try:
        # Without the newline, a line cut inside a string reads "Unterminated string", not
        # "Invalid control character".
        value = json.loads(raw.rstrip(b"\r\n"))
    except UnicodeDecodeError as err:
        raise FormatError(f"not UTF-8 text ({err.reason})", line=line_no) from None
    except json.JSONDecodeError as err:
        raise FormatError(_json_error(err, err.colno), line=line_no) from None
    except RecursionError:
        raise FormatError("invalid JSON: nested too deeply", line=line_no) from None
    if b"\\u0000" in raw or _SURROGATE_ESCAPE.search(raw):  # rare: only then walk the record
        _refuse_nul(value, "", line_no)
    return value


# A \uD800-\uDFFF escape: JSON allows it alone, but a lone surrogate is not text (UTF-8 cannot
# encode it, so the database would fail on it mid-import).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _refuse_nul(value: Any, path: str, line_no: int) -> None:
    """A NUL character or a lone surrogate cannot be stored (PostgreSQL refuses them): say where."""
    if isinstance(value, str):
        if "\x00" in value:
            raise FormatError(
                "contains a NUL character (\\u0000), which cannot be stored",
                field=path or None,
                line=line_no,
            )
        if _LONE_SURROGATE.search(value):
            raise FormatError(
                "contains a lone surrogate escape (\\ud800-\\udfff), which is not text",
                field=path or None,
                line=line_no,
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key, path, line_no)
            _refuse_nul(item, f"{path}.{key}" if path else key, line_no)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _refuse_nul(item, f"{path}[{i}]", line_no)


class _ArrayReader:
    """The records of a JSON array, decoded from a stream of byte blocks.

    `text` holds what is not yet consumed (from `pos`); it is compacted each time a block is
    added, so it holds one record and a block at most. `line` is the line at `pos`; `line_start`
    the absolute offset of that line's first character (for error columns), `base` the absolute
    offset of text[0].
    """

    def __init__(self, blocks: Iterator[bytes], first_line_no: int, max_record_bytes: int) -> None:
        self.blocks = blocks
        self.max_record_bytes = max_record_bytes
        self.decode = codecs.getincrementaldecoder("utf-8")().decode
        self.decoder = json.JSONDecoder()
        self.text, self.pos, self.base = "", 0, 0
        self.line, self.line_start = first_line_no, 0
        self.eof = False

    def _more(self, at_least: int = 1) -> bool:
        """Append blocks until `at_least` more characters came (or the end); False at the end."""
        if self.eof:
            return False
        parts = []
        got = 0
        while got < at_least and not self.eof:
            block = next(self.blocks, None)
            try:
                new = self.decode(b"", final=True) if block is None else self.decode(block)
            except UnicodeDecodeError as err:
                raise FormatError(f"not UTF-8 text ({err.reason})", line=self.line) from None
            self.eof = block is None
            parts.append(new)
            got += len(new)
        self.base += self.pos
        self.text = self.text[self.pos :] + "".join(parts)
        self.pos = 0
        return True

    def _advance(self, end: int) -> None:
        newlines = self.text.count("\n", self.pos, end)
        if newlines:
            self.line += newlines
            self.line_start = self.base + self.text.rfind("\n", self.pos, end) + 1
        self.pos = end

    def _next_char(self) -> str | None:
        """The next character that is not whitespace (moved to), or None at the end of the file."""
        while True:
            found = _NOT_WHITESPACE.search(self.text, self.pos)
            if found:
                self._advance(found.start())
                return self.text[self.pos]
            self._advance(len(self.text))
            if not self._more():
                return None

    def _fail(self, message: str, pos: int) -> FormatError:
        line = self.line + self.text.count("\n", self.pos, pos)
        newline = self.text.rfind("\n", self.pos, pos)
        start = self.base + newline + 1 if newline >= 0 else self.line_start
        column = self.base + pos - start + 1
        return FormatError(_json_error(json.JSONDecodeError(message, "", 0), column), line=line)

    def _value(self) -> Any:
        while True:
            try:
                value, end = self.decoder.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as err:
                # A record cut at the end of the text read so far (an error within a literal's or
                # an escape's length of its end, or a string not closed yet) may go on in the
                # next blocks: read as much again and retry (doubling keeps a record that spans
                # many blocks linear to decode).
                cut = err.pos >= len(self.text) - 16 or err.msg.startswith("Unterminated string")
                if len(self.text) - self.pos > self.max_record_bytes:
                    raise FormatError(_too_long(self.max_record_bytes), line=self.line) from None
                if cut and self._more(at_least=max(_READ_BYTES, len(self.text) - self.pos)):
                    continue
                raise self._fail(err.msg, err.pos) from None
            except RecursionError:
                raise FormatError("invalid JSON: nested too deeply", line=self.line) from None
            if end == len(self.text) and self._more():
                continue  # a number cut at the block's end decodes short: read on
            if end - self.pos > self.max_record_bytes:
                raise FormatError(_too_long(self.max_record_bytes), line=self.line)
            chunk = self.text[self.pos : end]
            if "\\u0000" in chunk or _SURROGATE_ESCAPE.search(
                chunk.encode("utf-8", "surrogatepass")
            ):
                _refuse_nul(value, "", self.line)
            line = self.line
            self._advance(end)
            return line, value

    def records(self) -> Iterator[tuple[int, Any]]:
        self._next_char()
        self._advance(self.pos + 1)  # the opening '['
        if self._next_char() == "]":
            self._advance(self.pos + 1)
        else:
            while True:
                if self._next_char() is None:
                    raise self._fail("Expecting value", self.pos)
                yield self._value()
                after = self._next_char()
                if after == ",":
                    self._advance(self.pos + 1)
                    continue
                if after == "]":
                    self._advance(self.pos + 1)
                    break
                raise self._fail("Expecting ',' or ']' after a record", self.pos)
        if self._next_char() is not None:
            raise self._fail("Extra data after the closing ']'", self.pos)


# --- field checks ------------------------------------------------------------------------------

_JSON_TYPE_NAMES = {
    dict: "object",
    list: "list",
    str: "string",
    bool: "bool",
    int: "int",
    float: "float",
    type(None): "null",
}


def type_name(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def expect_object(record: Any, *, field: str | None = None) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise FormatError(f"expected a JSON object, got {type_name(record)}", field=field)
    return record


def _field_value(record: dict[str, Any], key: str, prefix: str) -> Any:
    try:
        return record[key]
    except KeyError:
        raise FormatError("missing field", field=prefix + key) from None


def _check_str(
    value: Any, field: str, *, nonempty: bool = False, max_length: int | None = None
) -> str:
    if not isinstance(value, str):
        raise FormatError(f"expected a string, got {type_name(value)}", field=field)
    if nonempty and not value.strip():
        raise FormatError("must not be empty", field=field)
    if max_length is not None and len(value) > max_length:
        raise FormatError(f"longer than {max_length} characters ({len(value)})", field=field)
    return value


def req_str(
    record: dict[str, Any],
    key: str,
    *,
    prefix: str = "",
    nonempty: bool = False,
    max_length: int | None = None,
) -> str:
    value = _field_value(record, key, prefix)
    return _check_str(value, prefix + key, nonempty=nonempty, max_length=max_length)


def opt_str(
    record: dict[str, Any], key: str, *, prefix: str = "", max_length: int | None = None
) -> str | None:
    """A string, or None when the field is missing or null."""
    value = record.get(key)
    if value is None:
        return None
    return _check_str(value, prefix + key, max_length=max_length)


def _check_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise FormatError(f"expected true or false, got {type_name(value)}", field=field)
    return value


def req_bool(record: dict[str, Any], key: str, *, prefix: str = "") -> bool:
    return _check_bool(_field_value(record, key, prefix), prefix + key)


def opt_bool(record: dict[str, Any], key: str, *, prefix: str = "") -> bool | None:
    value = record.get(key)
    return None if value is None else _check_bool(value, prefix + key)


def _check_int(value: Any, field: str) -> int:
    # bool is an int in Python, never in the data: `true` is not a step index.
    if not isinstance(value, int) or isinstance(value, bool):
        raise FormatError(f"expected an integer, got {type_name(value)}", field=field)
    return value


def req_int(record: dict[str, Any], key: str, *, prefix: str = "") -> int:
    return _check_int(_field_value(record, key, prefix), prefix + key)


def opt_int(record: dict[str, Any], key: str, *, prefix: str = "") -> int | None:
    value = record.get(key)
    return None if value is None else _check_int(value, prefix + key)


def opt_number(record: dict[str, Any], key: str, *, prefix: str = "") -> float | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FormatError(f"expected a number, got {type_name(value)}", field=prefix + key)
    return float(value)


def req_list(record: dict[str, Any], key: str, *, prefix: str = "") -> list[Any]:
    value = _field_value(record, key, prefix)
    if not isinstance(value, list):
        raise FormatError(f"expected a list, got {type_name(value)}", field=prefix + key)
    return value


def opt_list(record: dict[str, Any], key: str, *, prefix: str = "") -> list[Any] | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise FormatError(f"expected a list, got {type_name(value)}", field=prefix + key)
    return value


def req_str_list(
    record: dict[str, Any], key: str, *, prefix: str = "", nonempty: bool = False
) -> list[str]:
    value = _field_value(record, key, prefix)
    check_str_list(value, field=prefix + key, nonempty=nonempty)
    return value


def check_str_list(value: Any, *, field: str, nonempty: bool = False) -> list[str]:
    if not isinstance(value, list):
        raise FormatError(f"expected a list of strings, got {type_name(value)}", field=field)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise FormatError(f"expected a string, got {type_name(item)}", field=f"{field}[{i}]")
    if nonempty and not value:
        raise FormatError("must not be empty (a trace needs at least one step)", field=field)
    return value


def check_label(value: Any, *, field: str, allowed: tuple[int, ...] = (-1, 0, 1)) -> int | None:
    """A step label: one of `allowed` or null."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise FormatError(
            f"expected one of {', '.join(map(str, allowed))} or null, got {type_name(value)}",
            field=field,
        )
    if value not in allowed:
        raise FormatError(
            f"label {value} out of range (allowed: {', '.join(map(str, allowed))} or null)",
            field=field,
        )
    return value


# --- text limits -------------------------------------------------------------------------------

# The longest text an import accepts; annotate.imports passes the settings STEPLENS_MAX_STEP_CHARS
# and STEPLENS_MAX_PROBLEM_CHARS in. Far above the real data (the longest step of the ProcessBench,
# PRM800K, PRMBench and Math-Shepherd files is 1,470 characters, the longest problem 4,415), and
# the bound on how much text one record brings to a page or a scorer.
MAX_STEP_CHARS = 20_000
MAX_PROBLEM_CHARS = 50_000


def check_text_limits(
    trace: ParsedTrace,
    *,
    max_step_chars: int = MAX_STEP_CHARS,
    max_problem_chars: int = MAX_PROBLEM_CHARS,
) -> ParsedTrace:
    """Refuse a trace whose problem or step text is longer than the limits, naming the field:
    `problem`, `reference_answer`, `reference_solution` (the problem limit), `steps[i]` (the
    step's 0-based index in the trace) and `final_answer` (the step limit).

    >>> steps = [ParsedStep("2 + 2 = 4"), ParsedStep("so 2 + 2 = 5")]
    >>> check_text_limits(ParsedTrace("t", ParsedProblem("2 + 2?"), steps), max_step_chars=10)
    Traceback (most recent call last):
    ...
    annotate.formats.base.FormatError: longer than 10 characters (12), the limit for a step (STEPLENS_MAX_STEP_CHARS)
    """
    problem = trace.problem
    problem_texts = [
        ("problem", problem.text),
        ("reference_answer", problem.reference_answer),
        ("reference_solution", problem.reference_solution),
    ]
    step_texts = [(f"steps[{i}]", step.text) for i, step in enumerate(trace.steps)]
    step_texts.append(("final_answer", trace.final_answer))
    for texts, limit, what in (
        (problem_texts, max_problem_chars, "a problem (STEPLENS_MAX_PROBLEM_CHARS)"),
        (step_texts, max_step_chars, "a step (STEPLENS_MAX_STEP_CHARS)"),
    ):
        for name, text in texts:
            if len(text) > limit:
                raise FormatError(
                    f"longer than {limit} characters ({len(text)}), the limit for {what}",
                    field=name,
                )
    return trace


MAX_DEPTH = 20
MAX_METADATA_BYTES = 64 * 1024


def check_nesting(record: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Refuse a record whose JSON nests deeper than `max_depth` objects/lists, naming where.

    >>> check_nesting({"metadata": {"a": [[{"b": 1}]]}}, max_depth=4)
    Traceback (most recent call last):
    ...
    annotate.formats.base.FormatError: nested deeper than 4 levels (STEPLENS_IMPORT_MAX_DEPTH)
    """
    stack: list[tuple[Any, str, int]] = [(record, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict):
            items: Iterable[tuple[str, Any]] = (
                (f"{path}.{k}" if path else str(k), v) for k, v in value.items()
            )
        elif isinstance(value, list):
            items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
        else:
            continue
        if depth > max_depth:
            raise FormatError(
                f"nested deeper than {max_depth} levels (STEPLENS_IMPORT_MAX_DEPTH)",
                field=path or None,
            )
        stack.extend((v, p, depth + 1) for p, v in items if isinstance(v, dict | list))


def check_metadata_limits(trace: ParsedTrace, *, max_bytes: int = MAX_METADATA_BYTES) -> None:
    """Refuse metadata (the trace's, the problem's, a step's) longer than `max_bytes` as JSON."""
    kept = [("metadata", trace.metadata), ("problem metadata", trace.problem.metadata)]
    kept += [(f"steps[{i}].metadata", s.metadata) for i, s in enumerate(trace.steps) if s.metadata]
    for name, metadata in kept:
        if metadata:
            size = len(json.dumps(metadata, ensure_ascii=False).encode("utf-8", "surrogatepass"))
            if size > max_bytes:
                raise FormatError(
                    f"{size:,} bytes of metadata, more than {max_bytes:,} "
                    "(STEPLENS_IMPORT_MAX_METADATA_BYTES)",
                    field=name,
                )


def sha256_of(*parts: str) -> str:
    """A stable content id: parts joined with NUL, which no text field contains meaningfully."""
    digest = hashlib.sha256()
    for i, part in enumerate(parts):
        if i:
            digest.update(b"\x00")
        digest.update(part.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def record_json(record: Any) -> str:
    """A decoded record as JSON text, key order kept.

    Kept as text, not as a JSON value, where a record must come back exactly: PostgreSQL's jsonb
    reorders the keys of every object.
    """
    return json.dumps(record, ensure_ascii=False)


# parse_record(record, subset=...) of each format module.
RecordParser = Callable[..., ParsedTrace]
