"""A real Celery worker process on Redis, started by tests against the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
from django.db import connection

REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("STEPLENS_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


def test_database_url() -> str:
    """The URL of the database this test run uses, for a worker in another process."""
    s = connection.settings_dict
    if s["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def flush_broker() -> None:
    redis.Redis.from_url(REDIS_URL).flushdb()


class Worker:
    """`celery -A config worker` with a fixed node name, so a restart is the same node."""

    def __init__(
        self, log_dir: Path, *, name: str = "e2e", queues: str = "interactive,bulk"
    ) -> None:
        self.log_dir = log_dir
        self.name = name
        self.queues = queues
        self.env_extra: dict[str, str] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            SECRET_KEY="tests-only-not-a-secret",
            DJANGO_DEBUG="0",
            DATABASE_URL=test_database_url(),
            CELERY_BROKER_URL=REDIS_URL,
            CELERY_TASK_ALWAYS_EAGER="0",
            CELERY_VISIBILITY_TIMEOUT="3",
            STEPLENS_WORKER_HEARTBEAT_SECONDS="0.5",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.env_extra)
        return env

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_dir / f"worker-{self.starts}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-n",
                f"{self.name}@%h",
                "-Q",
                self.queues,
                "--pool=solo",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=REPO_ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        """SIGKILL: the worker gets no chance to finish, ack or clean up."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def log(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-3000:] for p in sorted(self.log_dir.glob("worker-*.log"))
        )


def wait_until(predicate, *, timeout: float, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
