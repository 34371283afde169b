"""Aggregations, thought grouping, and the doctests of the pure engine modules."""

from __future__ import annotations

import doctest
import importlib

import pytest

from scoring.prm.aggregate import aggregate_all, group_thoughts

PURE_MODULES = [
    "scoring.prm.formatting",
    "scoring.prm.batching",
    "scoring.prm.aggregate",
    "scoring.prm.arith",
    "scoring.prm.backends.tool",
    "scoring.prm.backends.generative",
]


@pytest.mark.parametrize("name", PURE_MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_best_of_n_ranking_by_min_prefers_the_trace_without_a_bad_step():
    steady = [0.8, 0.8, 0.8]
    one_bad = [0.99, 0.1, 0.99]
    assert aggregate_all(steady)["min"] > aggregate_all(one_bad)["min"]
    assert aggregate_all(one_bad)["mean"] < aggregate_all(steady)["mean"]
    assert aggregate_all([0.5, 0.5, 0.5])["product"] == pytest.approx(0.125)


def test_thoughts_split_on_verdict_and_part():
    thoughts = group_thoughts(
        [0.9, 0.8, 0.2, 0.3, 0.9],
        parts=["thinking", "thinking", "thinking", "response", "response"],
    )
    assert [(t.start, t.end, t.verdict, t.part) for t in thoughts] == [
        (0, 1, "good", "thinking"),
        (2, 2, "bad", "thinking"),
        (3, 3, "bad", "response"),
        (4, 4, "good", "response"),
    ]
    assert thoughts[0].mean_score == pytest.approx(0.85)
