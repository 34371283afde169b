"""What every import format shares: the parsed-record dataclasses, the record reader, field checks.

Pure Python (no Django), so a format can be parsed and tested without a database.
"""

from __future__ import annotations

import hashlib
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


def iter_records(stream: IO[bytes] | Iterable[bytes]) -> Iterator[tuple[int, Any]]:
    """(1-based line, decoded JSON value) for each record of a JSON Lines file or a JSON array file.

    A file whose first non-blank character is `[` is read as one JSON array (the shape some
    upstreams ship, e.g. ProcessBench's dataset/*.json); the line of each record is where it starts.
    """
    lines = iter(stream)
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
        yield from _iter_array(first + b"".join(lines), first_line_no)
        return
    yield first_line_no, _loads(first, first_line_no)
    for line_no, raw in enumerate(lines, first_line_no + 1):
        if raw.strip():
            yield line_no, _loads(raw, line_no)


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


def _iter_array(data: bytes, first_line_no: int) -> Iterator[tuple[int, Any]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(f"not UTF-8 text ({err.reason})", line=first_line_no) from None
    decoder = json.JSONDecoder()
    ws = " \t\r\n"

    def skip(pos: int) -> int:
        while pos < len(text) and text[pos] in ws:
            pos += 1
        return pos

    def line_of(pos: int) -> int:
        return first_line_no + text.count("\n", 0, pos)

    def fail(err: json.JSONDecodeError) -> FormatError:
        column = err.pos - text.rfind("\n", 0, err.pos)
        return FormatError(_json_error(err, column), line=line_of(err.pos))

    pos = skip(text.index("[") + 1)
    line, counted_to = first_line_no, 0
    if pos < len(text) and text[pos] == "]":
        pos += 1
    else:
        while True:
            # Count newlines incrementally: counting from the start each time would be quadratic.
            line += text.count("\n", counted_to, pos)
            counted_to = pos
            try:
                value, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as err:
                raise fail(err) from None
            if "\\u0000" in text[pos:end] or _SURROGATE_ESCAPE.search(text[pos:end].encode()):
                _refuse_nul(value, "", line)
            yield line, value
            pos = skip(end)
            if pos < len(text) and text[pos] == ",":
                pos = skip(pos + 1)
                continue
            if pos < len(text) and text[pos] == "]":
                pos += 1
                break
            raise fail(json.JSONDecodeError("Expecting ',' or ']' after a record", text, pos))
    if skip(pos) != len(text):
        raise fail(json.JSONDecodeError("Extra data after the closing ']'", text, skip(pos)))


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
