"""Exporters: one pure module per export format (records of one problem in, rows out; no ORM)."""

from __future__ import annotations

from types import ModuleType

from . import math_shepherd, pairs, prm800k, processbench, sft, trl

# ExportFormat value -> module with rows(), needs_neutral_mapping(), PARQUET_SCHEMA, NEEDS_STEP_METADATA,
# CARRIES_LABEL_SOURCES (its rows say who chose each label: hand, first_error, filled).
EXPORTERS: dict[str, ModuleType] = {
    "trl": trl,
    "prm800k": prm800k,
    "processbench": processbench,
    "math_shepherd": math_shepherd,
    "pairs": pairs,
    "sft": sft,
}
