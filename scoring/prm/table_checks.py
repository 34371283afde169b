"""Numbers a step reads from the problem's table, checked against the table (the `tool` backend).

TaTToo's point (tool-grounded verification of tabular reasoning) in its simplest, deterministic
form: where a step names a row and a column of the table and then states a number ("Q4 revenue
is 140", "the revenue in Q4 was 110", "Q4 costs were $95M"), that number is compared with the
cell. A clause names a cell when, between the last number before it and the stated number, it
mentions one row label (the row's first non-numeric cell) and one column header (its words,
units in parentheses left out), and nothing but linking words ("is", "was", "=", "of", ":")
stands between the later of the two and the number. A number followed by an operator (``140 -
120``) is an operand of a calculation, not a reading, and is left to the equation checks.

>>> table = {"header": ["quarter", "revenue ($M)"], "rows": [["Q3", "120"], ["Q4", "110"]]}
>>> [(c.expression, c.ok) for c in check_table_reads("Q4 revenue is 140.", table)]
[('table[Q4, revenue ($M)] = 140', False)]
>>> [(c.expression, c.ok) for c in check_table_reads("In Q3 the revenue was $120M", table)]
[('table[Q3, revenue ($M)] = 120', True)]
>>> check_table_reads("So 140 - 120 = 20.", table)
[]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from scoring.prm.arith import Check

MAX_STEP_CHARS = 20_000  # a longer step is not read (linear anyway; this bounds the work)
# A number as a step writes it: 1,250 / 110 / 12.5 / $95 (then anything: "$95M", "12%").
_NUMBER = re.compile(r"(?<![\w.])-?\$?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?!\.?\d)")
_OPERATOR_AFTER = re.compile(r"\s*%?\s*(?:[-+*/×÷^]|\\times|\\cdot|minus\b|plus\b|times\b)", re.I)
_OPERATOR_BEFORE = re.compile(r"[-+*/×÷]\s*$")
_LINKING = re.compile(
    r"^(?:\s|[=:,$(]|\b(?:is|was|were|are|of|equals?|at|to|reads?|shows?|stands?|be|"
    r"about|exactly|the|value|amount|total|in|for|has|had|m|million|k|thousand|usd)\b)*$",
    re.IGNORECASE,
)
_UNITS = re.compile(r"\([^)]*\)")


@dataclass(frozen=True)
class _Cell:
    row: str
    column: str
    value: Decimal
    text: str


def _number(text: str) -> Decimal | None:
    cleaned = text.strip().replace(",", "").replace("$", "").rstrip("%").strip()
    try:
        return Decimal(cleaned) if re.fullmatch(r"-?\d+(?:\.\d+)?", cleaned) else None
    except InvalidOperation:
        return None


def _key(text: str) -> str:
    return " ".join(re.findall(r"\w+", text)).lower()


@dataclass(frozen=True)
class _Finder:
    """Where a text names any of a set of names (row labels, or column headers): one regex."""

    pattern: re.Pattern[str] | None
    names: dict[str, str]  # the name's words, lowercased -> the name

    @classmethod
    def of(cls, names: Iterable[str]) -> _Finder:
        by_key: dict[str, str] = {}
        for name in names:
            key = _key(_UNITS.sub(" ", name))  # "revenue ($M)" is named by "revenue"
            if key:
                by_key.setdefault(key, name)
        if not by_key:
            return cls(None, {})
        # Longest first: "Q1 2023" before "Q1". Words may be joined by any non-word run.
        alternatives = (
            r"\W+".join(map(re.escape, k.split())) for k in sorted(by_key, key=len, reverse=True)
        )
        pattern = re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)
        return cls(pattern, by_key)

    def hits(self, text: str) -> list[tuple[int, int, str]]:
        if self.pattern is None:
            return []
        return [
            (m.start(), m.end(), self.names[_key(m.group())]) for m in self.pattern.finditer(text)
        ]


def _cells(table: Mapping[str, Any]) -> tuple[dict[tuple[str, str], _Cell], _Finder, _Finder]:
    """The numeric cells by (row label, column), and finders of row labels and column headers."""
    header: Sequence[str] = table.get("header") or []
    cells: dict[tuple[str, str], _Cell] = {}
    labels: list[str] = []
    for row in table.get("rows") or []:
        label_at = next((i for i, c in enumerate(row) if _number(str(c)) is None and str(c)), None)
        if label_at is None:
            continue
        label = str(row[label_at])
        labels.append(label)
        for i, (name, cell) in enumerate(zip(header, row, strict=False)):
            value = _number(str(cell))
            if i != label_at and value is not None:
                cells[(label, str(name))] = _Cell(label, str(name), value, str(cell).strip())
    numeric = {column for _, column in cells}  # the label column is no column a step reads
    return cells, _Finder.of(labels), _Finder.of(n for n in map(str, header) if n in numeric)


def _agrees(stated: str, value: Decimal) -> bool:
    """The stated number is the cell's value as written, or rounded to the stated decimals."""
    number = _number(stated)
    if number is None:
        return False
    exponent = number.as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return abs(value - number) <= Decimal(5) * Decimal(10) ** (-(decimals + 1))


def table_reader(table: Mapping[str, Any] | None) -> Callable[[str], list[Check]]:
    """The checks of one table, built once for a trace's steps: a step's text -> one check per
    number it reads from a named cell of `table`."""
    if not table:
        return lambda text: []
    cells, rows, columns = _cells(table)
    if not cells:
        return lambda text: []
    return lambda text: _reads(text, cells, rows, columns)


def check_table_reads(text: str, table: Mapping[str, Any] | None) -> list[Check]:
    """One check per number the step reads from a named cell of `table`."""
    return table_reader(table)(text)


def _reads(
    text: str, cells: dict[tuple[str, str], _Cell], rows: _Finder, columns: _Finder
) -> list[Check]:
    if len(text) > MAX_STEP_CHARS:
        return []
    row_hits = rows.hits(text)
    column_hits = columns.hits(text)
    checks: list[Check] = []
    previous_number_end = 0
    for match in _NUMBER.finditer(text):
        start, end = match.start(), match.end()
        window_start, previous_number_end = previous_number_end, end
        if _OPERATOR_AFTER.match(text, end) or _OPERATOR_BEFORE.search(text[window_start:start]):
            continue  # an operand of a calculation: the equation checks have it
        row = [h for h in row_hits if window_start <= h[0] and h[1] <= start]
        column = [h for h in column_hits if window_start <= h[0] and h[1] <= start]
        # A row label inside a column's name ("Q" in "Quarter") is not a second mention.
        row = [h for h in row if not any(c[0] <= h[0] and h[1] <= c[1] for c in column)]
        if len({h[2] for h in row}) != 1 or len({h[2] for h in column}) != 1:
            continue
        later = max(row[-1][1], column[-1][1])
        if not _LINKING.match(text[later:start]):
            continue
        cell = cells.get((row[-1][2], column[-1][2]))
        if cell is None:
            continue
        stated = match.group(0).replace("$", "")
        checks.append(
            Check(
                expression=f"table[{cell.row}, {cell.column}] = {stated}",
                expected=cell.text,
                computed=stated,
                ok=_agrees(stated, cell.value),
                source="table",
            )
        )
    return checks
