"""Redis restarted with score runs queued, and a worker killed mid-batch and replaced: no run lost.

A PRIVATE redis-server on a free port (never the machine's shared one), a real Celery worker
process, the real ProcessBench sample. Two ways Redis comes back:
- restarted with its append-only file (docker-compose runs it so): the queued messages are still
  there and the worker scores every run;
- crashed without persistence (the messages are gone): the runs are still `queued` in the
  database, and the sweeper in the worker's heartbeat loop sends them again once their lease ends.
Either way every run finishes and every step is scored exactly once. And a worker killed
mid-batch whose replacement has another node name (a recreated container) loses nothing either.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import redis
from django.db.models import Count

from annotate import imports
from scoring import services
from scoring.models import RunQueue, RunStatus, ScoreRun, StepScore
from tests.conftest import _reset_broker_pools
from tests.factories import make_project
from tests.scoring.worker import Worker, wait_until
from tests.servers import free_port

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        shutil.which("redis-server") is None, reason="redis-server is not installed"
    ),
]


class PrivateRedis:
    """redis-server on its own port and directory, started and stopped by the test."""

    def __init__(self, directory: Path, *, appendonly: bool) -> None:
        self.port = free_port()
        self.directory = directory
        self.appendonly = appendonly
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--dir", str(self.directory), "--appendonly", "yes" if self.appendonly else "no"]
        args += ["--appendfsync", "always"] if self.appendonly else []
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        assert wait_until(up, timeout=10), (self.directory / "redis.log").read_text()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)

    def queued_messages(self) -> int:
        client = redis.Redis.from_url(self.url)
        return sum(client.llen(queue) for queue in ("bulk", "interactive"))


class WorkerOn(Worker):
    """The e2e worker, on the private Redis, with a short lease so that the sweeper acts soon."""

    def __init__(self, log_dir: Path, *, broker: str, lease_seconds: float) -> None:
        super().__init__(log_dir, name="redis-restart")
        self.broker = broker
        self.lease_seconds = lease_seconds

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            CELERY_BROKER_URL=self.broker,
            STEPLENS_RUN_LEASE_SECONDS=str(self.lease_seconds),
            # The sweeper runs every 12 beats: every 3 s here.
            STEPLENS_WORKER_HEARTBEAT_SECONDS="0.25",
        )
        return env


@pytest.fixture
def redis_server(tmp_path):
    servers: list[PrivateRedis] = []

    def make(*, appendonly: bool) -> PrivateRedis:
        server = PrivateRedis(tmp_path, appendonly=appendonly)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop(signal.SIGKILL)


@pytest.fixture
def send_to():
    """Point this process's Celery app at a broker (the suite otherwise runs tasks eagerly)."""
    from config.celery import app

    saved = (app.conf.task_always_eager, app.conf.broker_url, app.conf.broker_transport_options)

    def point(url: str) -> None:
        _reset_broker_pools(app)
        app.conf.task_always_eager = False
        app.conf.broker_url = url
        app.conf.broker_transport_options = {"visibility_timeout": 3}

    yield point
    _reset_broker_pools(app)
    app.conf.task_always_eager, app.conf.broker_url, app.conf.broker_transport_options = saved


@pytest.fixture
def queued_runs(repo_root):
    """The 80 real ProcessBench traces and a tool scorer; enqueue() queues one run per trace."""
    project = make_project()
    with open(repo_root / "data" / "processbench_sample.jsonl", "rb") as stream:
        imports.traces_import(
            project=project,
            stream=stream,
            filename="processbench_sample.jsonl",
            format="processbench",
        )
    scorer = services.scorer_create(name="tool", backend="tool", projects=[project])

    def enqueue() -> list[ScoreRun]:
        trace_ids = list(project.traces.values_list("pk", flat=True))
        return services.score_runs_enqueue(traces=trace_ids, scorers=[scorer], queue=RunQueue.BULK)

    return enqueue


def _every_step_scored_once(runs: list[ScoreRun]) -> None:
    assert not ScoreRun.objects.exclude(status=RunStatus.DONE).exists()
    steps = sum(run.trace.steps.count() for run in ScoreRun.objects.select_related("trace"))
    assert StepScore.objects.count() == steps
    assert not StepScore.objects.values("run", "step").annotate(n=Count("id")).filter(n__gt=1)
    assert ScoreRun.objects.count() == len(runs)


def test_redis_restarted_with_its_append_only_file_keeps_the_queue(
    tmp_path, redis_server, send_to, queued_runs
):
    server = redis_server(appendonly=True)
    server.start()
    send_to(server.url)
    runs = queued_runs()
    assert len(runs) == 80
    assert server.queued_messages() == 3  # 32 runs per task

    server.stop(signal.SIGTERM)  # a restart: the container is stopped and started again
    server.start()
    assert server.queued_messages() == 3, "the append-only file lost the queue"

    # A lease far longer than the test: the messages themselves must bring every run.
    worker = WorkerOn(tmp_path, broker=server.url, lease_seconds=600)
    worker.start()
    try:
        done = ScoreRun.objects.filter(status=RunStatus.DONE)
        assert wait_until(lambda: done.count() == 80, timeout=60), worker.log()
    finally:
        worker.stop()
    _every_step_scored_once(runs)


def test_redis_crashed_without_persistence_the_sweeper_sends_the_runs_again(
    tmp_path, redis_server, send_to, queued_runs
):
    server = redis_server(appendonly=False)
    server.start()
    send_to(server.url)
    runs = queued_runs()
    assert server.queued_messages() == 3

    server.stop(signal.SIGKILL)  # the machine died: every message is gone
    server.start()
    assert server.queued_messages() == 0
    assert ScoreRun.objects.filter(status=RunStatus.QUEUED).count() == 80

    worker = WorkerOn(tmp_path, broker=server.url, lease_seconds=2)
    worker.start()
    try:
        done = ScoreRun.objects.filter(status=RunStatus.DONE)
        assert wait_until(lambda: done.count() == 80, timeout=60), worker.log()
    finally:
        worker.stop()
    _every_step_scored_once(runs)
    assert "re-enqueued 80 stuck score runs" in worker.log()


def test_worker_killed_mid_batch_and_replaced_by_another_node(
    tmp_path, redis_server, send_to, queued_runs
):
    """docker-compose recreates a dead worker's container under a new host name, so the new node
    cannot take back the old one's runs by name (tests/scoring/test_worker_e2e.py covers the same
    name): the broker's redelivery and the lease sweeper must finish them, each step once."""
    server = redis_server(appendonly=True)
    server.start()
    send_to(server.url)
    runs = queued_runs()
    first = WorkerOn(tmp_path / "a", broker=server.url, lease_seconds=3)
    first.name = "old-container"
    first.log_dir.mkdir()
    first.start()
    done = ScoreRun.objects.filter(status=RunStatus.DONE)
    running = ScoreRun.objects.filter(status=RunStatus.RUNNING)
    # Mid-batch: some runs done and a batch claimed. Waiting for "done >= 5" alone could land
    # between two batches (nothing running; seen on CI, 2026-12-02), then the kill held nothing.
    assert wait_until(lambda: done.count() >= 5 and running.exists(), timeout=60), first.log()
    first.kill()
    held = list(ScoreRun.objects.filter(status=RunStatus.RUNNING).values_list("pk", flat=True))
    assert held, "the worker finished its batch before it could be killed"
    assert done.count() < 80

    second = WorkerOn(tmp_path / "b", broker=server.url, lease_seconds=3)
    second.name = "new-container"
    second.log_dir.mkdir()
    second.start()
    try:
        assert wait_until(lambda: done.count() == 80, timeout=60), second.log()
    finally:
        second.stop()
    _every_step_scored_once(runs)
    assert not ScoreRun.objects.filter(pk__in=held).exclude(claimed_by__startswith="new-container")
