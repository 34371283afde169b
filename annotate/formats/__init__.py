"""External trace formats: one pure module per format (no Django), each with parse_record()."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import jsonl, math_shepherd, prm800k, prmbench, processbench, trl
from .base import RecordParser

# name -> parse_record(record, *, subset="") -> ParsedTrace; the name is also Trace.source.
PARSERS: dict[str, RecordParser] = {
    "processbench": processbench.parse_record,
    "prm800k": prm800k.parse_record,
    "prmbench": prmbench.parse_record,
    "math_shepherd": math_shepherd.parse_record,
    "trl": trl.parse_record,
    "jsonl": jsonl.parse_record,
}

# name -> a pass over the file's (line, record) pairs that joins the rows of a format spread over
# several lines (PRM800K's stepwise-critique form) into one record each; other formats read a
# record per line.
RowGrouper = Callable[[Iterable[tuple[int, Any]]], Iterator[tuple[int, Any]]]
ROW_GROUPERS: dict[str, RowGrouper] = {"prm800k": prm800k.group_records}
