"""Shared fixtures: paths to the real data shipped with the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


def _reset_broker_pools(app) -> None:  # type: ignore[no-untyped-def]
    """Drop the app's cached connections, so that the next send uses the broker now configured."""
    from kombu import pools

    pools.reset()  # kombu keeps connection and producer pools in process-wide registries
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def celery_on_redis():  # type: ignore[no-untyped-def]
    """Send tasks from this test process to Redis (the suite otherwise runs tasks eagerly)."""
    from config.celery import app
    from tests.scoring.worker import REDIS_URL, flush_broker

    saved = (app.conf.task_always_eager, app.conf.broker_url, app.conf.broker_transport_options)
    flush_broker()
    _reset_broker_pools(app)
    app.conf.task_always_eager = False
    app.conf.broker_url = REDIS_URL
    app.conf.broker_transport_options = {"visibility_timeout": 3}
    yield app
    _reset_broker_pools(app)
    app.conf.task_always_eager, app.conf.broker_url, app.conf.broker_transport_options = saved
    flush_broker()


@pytest.fixture
def worker(tmp_path, celery_on_redis):  # type: ignore[no-untyped-def]
    """A real Celery worker process on Redis (not started yet: call .start())."""
    from tests.scoring.worker import Worker

    w = Worker(tmp_path)
    yield w
    w.stop()
