"""A worker keeps one built engine per scorer version, and never hands a scorer an engine built
for other settings: a scorer id can come back (SQLite reuses the id of a rolled-back insert; a
restore from a backup), and a full test run once scored with another test's tool settings
(every step "no check")."""

from __future__ import annotations

from scoring import engine
from scoring.models import Scorer


def test_an_engine_is_reused_only_for_the_same_settings(monkeypatch) -> None:
    monkeypatch.setattr(engine, "_ENGINES", {})
    first = Scorer(pk=7, name="tool", backend="tool", params={"time_budget_s": 0.0}, version=1)
    built = engine.engine_for(first)
    assert built.params.time_budget_s == 0.0
    assert engine.engine_for(first) is built  # loaded once per worker

    # The same id and version, other settings: another scorer, so another engine.
    again = Scorer(pk=7, name="tool", backend="tool", params={"time_budget_s": 60.0}, version=1)
    rebuilt = engine.engine_for(again)
    assert rebuilt is not built and rebuilt.params.time_budget_s == 60.0
    assert len(engine._ENGINES) == 1  # the stale one is dropped
