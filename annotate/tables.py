"""A problem's table as data: the documented schema (docs/formats.md, "Tables"), read and checked.

A table is either an object ``{"header": [...], "rows": [[...], ...]}`` (cells are strings,
numbers, booleans or null; every row has one cell per header column) or a Markdown (GFM) table as
a string, the way TaTToo and TableBench put a table in a prompt. Both become the same `Table`:
what the page renders as a grid and what a scorer reads cells from.

>>> t = table_from({"header": ["quarter", "revenue"], "rows": [["Q3", 120], ["Q4", 110]]})
>>> t.header, t.rows
(['quarter', 'revenue'], [['Q3', '120'], ['Q4', '110']])
>>> table_from("| quarter | revenue |\\n|---|---:|\\n| Q3 | 120 |\\n| Q4 | 110 |") == t
True
>>> table_from({"header": ["a"], "rows": [["1", "2"]]})
Traceback (most recent call last):
...
annotate.tables.TableError: rows[0]: expected 1 cell (one per header column), got 2
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_CELLS = 10_000  # a table larger than this is refused at import (every cell is drawn)


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number" if isinstance(value, int | float) else "value")


class TableError(ValueError):
    """A value that does not follow the table schema; `field` is the JSON path inside it."""

    def __init__(self, message: str, *, field: str = "") -> None:
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]

    def as_json(self) -> dict[str, Any]:
        """The plain form a scorer receives (TraceInput.table)."""
        return {"header": list(self.header), "rows": [list(row) for row in self.rows]}


def _cell(value: Any, *, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise TableError(
        f"expected a string, a number, true/false or null, got {_json_type(value)}", field=field
    )


def _from_object(value: dict[str, Any]) -> Table:
    unknown = sorted(set(value) - {"header", "rows"})
    if unknown:
        raise TableError("unknown field (a table has 'header' and 'rows')", field=unknown[0])
    header, rows = value.get("header"), value.get("rows")
    if not isinstance(header, list) or not header:
        raise TableError("expected a non-empty list of column names", field="header")
    if not isinstance(rows, list):
        raise TableError("expected a list of rows (lists of cells)", field="rows")
    if len(header) * (len(rows) + 1) > MAX_CELLS:
        raise TableError(f"more than {MAX_CELLS} cells")
    names = [_cell(h, field=f"header[{i}]") for i, h in enumerate(header)]
    cells: list[list[str]] = []
    for r, row in enumerate(rows):
        if not isinstance(row, list):
            raise TableError("expected a list of cells", field=f"rows[{r}]")
        if len(row) != len(names):
            raise TableError(
                f"expected {len(names)} cell{'s' if len(names) != 1 else ''} "
                f"(one per header column), got {len(row)}",
                field=f"rows[{r}]",
            )
        cells.append([_cell(c, field=f"rows[{r}][{i}]") for i, c in enumerate(row)])
    return Table(header=names, rows=cells)


_DELIMITER_CELL = re.compile(r"^\s*:?-+:?\s*$")
_PIPE = re.compile(r"(?<!\\)\|")


def _split_row(line: str) -> list[str]:
    text = line.strip()
    if text.startswith("|"):
        text = text[1:]
    if text.endswith("|") and not text.endswith("\\|"):
        text = text[:-1]
    return [cell.strip().replace("\\|", "|") for cell in _PIPE.split(text)]


def _from_markdown(text: str) -> Table:
    """A GFM table: a header row, a delimiter row (``|---|:--:|``), then body rows; text before
    or after the table (a caption line) is not part of it."""
    lines = text.splitlines()
    for i in range(len(lines) - 1):
        if "|" not in lines[i]:
            continue
        delimiter = _split_row(lines[i + 1])
        if not delimiter or not all(_DELIMITER_CELL.match(c) for c in delimiter):
            continue
        header = _split_row(lines[i])
        if len(header) != len(delimiter):
            raise TableError(
                f"line {i + 2}: the delimiter row has {len(delimiter)} cells, the header "
                f"{len(header)}"
            )
        rows: list[list[str]] = []
        for line in lines[i + 2 :]:
            if "|" not in line or not line.strip():
                break
            cells = _split_row(line)
            # GFM: missing cells are empty, excess ones are dropped.
            rows.append((cells + [""] * len(header))[: len(header)])
            if len(header) * (len(rows) + 1) > MAX_CELLS:
                raise TableError(f"more than {MAX_CELLS} cells")
        return Table(header=header, rows=rows)
    raise TableError(
        "a string table must be a Markdown table: a header row, a delimiter row such as "
        "|---|---|, then the rows"
    )


def table_from(value: Any) -> Table | None:
    """The `Table` of a problem's `table` value (None for none); TableError if it follows
    neither form of the schema."""
    if value is None:
        return None
    if isinstance(value, str):
        return _from_markdown(value)
    if isinstance(value, dict):
        return _from_object(value)
    raise TableError(
        f'expected an object {{"header", "rows"}} or a Markdown table string, '
        f"got {_json_type(value)}"
    )


def table_or_none(value: Any) -> Table | None:
    """`table_from`, or None for a value stored before the schema (shown as it is instead)."""
    try:
        return table_from(value)
    except TableError:
        return None
