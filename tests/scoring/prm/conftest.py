"""Tiny offline PRMs built once per session from real ProcessBench text, and the traces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scoring.prm import TraceInput

REPO_ROOT = Path(__file__).resolve().parents[3]


def data_file(name: str) -> Path:
    """A file of the real data: the repo's copy (data/) if shipped, else ../shared/data."""
    for base in (REPO_ROOT / "data", REPO_ROOT.parent / "shared" / "data"):
        if (base / name).exists():
            return base / name
    pytest.skip(f"real data file {name} not found")


def processbench_records() -> list[dict[str, Any]]:
    path = data_file("processbench_sample.jsonl")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def to_trace(record: dict[str, Any]) -> TraceInput:
    return TraceInput(problem=record["problem"], steps=record["steps"], key=record["id"])


@pytest.fixture(scope="session")
def records() -> list[dict[str, Any]]:
    return processbench_records()


@pytest.fixture(scope="session")
def traces(records: list[dict[str, Any]]) -> list[TraceInput]:
    """Six real traces of different lengths (2 to 11 steps), from all four subsets."""
    chosen = [records[i] for i in (0, 3, 21, 30, 43, 71)]
    return [to_trace(r) for r in chosen]


@pytest.fixture(scope="session")
def tokenizer(records: list[dict[str, Any]]) -> Any:
    from scoring.prm.tiny import train_tokenizer

    shepherd = data_file("math_shepherd_sample.jsonl").read_text(encoding="utf-8")
    texts = [r["problem"] for r in records] + [s for r in records for s in r["steps"]]
    return train_tokenizer([*texts, shepherd], vocab_size=800)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> dict[str, Path]:
    """Directories saved with save_pretrained: step head, scalar head, causal LM, v_head."""
    from scoring.prm.tiny import save_tiny_model

    root = tmp_path_factory.mktemp("tiny-prms")
    return {
        "step_head": save_tiny_model(root / "step_head", tokenizer, seed=1),
        "value_tc": save_tiny_model(root / "value_tc", tokenizer, num_labels=1, seed=2),
        "causal_lm": save_tiny_model(root / "causal_lm", tokenizer, kind="causal_lm", seed=3),
        "v_head": save_tiny_model(root / "v_head", tokenizer, kind="v_head", seed=4),
    }
