"""External trace formats: one pure module per format (no Django), each with parse_record()."""

from __future__ import annotations

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
