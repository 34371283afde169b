"""The lease sweep beside a worker that claims at the same moment (seen in tests/reliability on
PostgreSQL, about 1 run in 9: a run held by the replacement worker ended done with no
`claimed_by`). The sweep read the stuck runs' ids, a worker claimed one of them and committed, then
the sweep's UPDATE by id put it back in the queue under the worker that was scoring it."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from scoring import services
from scoring.models import RunStatus, ScoreRun
from tests.factories import make_project, make_trace

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite serialises every write: no row locks to see"
)
def test_a_run_claimed_while_the_sweep_runs_is_never_handed_back(monkeypatch) -> None:
    from scoring import tasks

    monkeypatch.setattr(tasks.score_runs, "apply_async", lambda *args, **kwargs: None)
    project = make_project("sweep-race")
    scorer = services.scorer_create(name="tool", backend="tool", projects=[project])
    trace = make_trace(project, steps=["a", "b"])
    run = services.score_runs_enqueue(traces=[trace], scorers=[scorer])[0]
    services.score_runs_claim(run_ids=[run.pk], worker="old-container#1")
    ScoreRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(hours=1))

    claimed: list[list[int]] = []
    errors: list[BaseException] = []

    def claim_elsewhere() -> None:
        try:
            runs = services.score_runs_claim(run_ids=[run.pk], worker="new-container#1")
            claimed.append([r.pk for r in runs])
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    def claim_before_the_sweep_writes(execute, sql, params, many, context):
        # Just before the sweep writes, another worker claims the run on its own connection.
        if sql.startswith('UPDATE "scoring_scorerun"') and not claimed and not errors:
            other = threading.Thread(target=claim_elsewhere)
            other.start()
            other.join(timeout=10)
            assert not other.is_alive(), "the other worker's claim waited on the sweep"
        return execute(sql, params, many, context)

    with connection.execute_wrapper(claim_before_the_sweep_writes):
        handed_back = services.score_runs_sweep()
    assert not errors, errors
    run.refresh_from_db()
    # One of the two has the run, never both: either the worker claimed it (and it stays its
    # own) or the sweep re-queued it (and the worker's claim found it locked and took nothing).
    if claimed == [[run.pk]]:
        assert handed_back == 0
        assert (run.status, run.claimed_by) == (RunStatus.RUNNING, "new-container#1")
    else:
        assert claimed == [[]]
        assert handed_back == 1
        assert (run.status, run.claimed_by) == (RunStatus.QUEUED, "")
