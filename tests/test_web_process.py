"""The web process must never import torch: a web deployment installs without the worker extra."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import sys
import django
django.setup()
from django.urls import get_resolver
import config.urls, config.wsgi
get_resolver().url_patterns  # every view and API module is imported
import scoring.tasks, scoring.engine, scoring.api, scoring.views, annotate.api, annotate.views
import review.api, review.views, snapshots.api, snapshots.views, snapshots.training
from scoring.prm.training import TrainParams
TrainParams.from_dict({"epochs": 2})  # the web checks a training request's parameters
from django.core.management import call_command
call_command("check")
heavy = sorted(m for m in ("torch", "transformers", "tokenizers") if m in sys.modules)
print("HEAVY:" + ",".join(heavy))
"""


def _run(script: str, env: dict[str, str]) -> str:
    """`script` in a fresh interpreter at the repository root; its standard output."""
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout


def test_web_process_does_not_import_torch():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "tests-only",
        "DJANGO_DEBUG": "0",
    }
    out = _run(SCRIPT, env)
    assert out.strip().splitlines()[-1] == "HEAVY:", out


FREEZE_SCRIPT = """
import gc, runpy, sys
import django
django.setup()
import config.wsgi
conf = runpy.run_path("config/gunicorn.conf.py")
before = gc.get_freeze_count()
conf["when_ready"](None)
print("FROZEN", before, gc.get_freeze_count())
"""


def _frozen(env_value: str | None) -> tuple[int, int]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "STEPLENS_ENV_FILE": ""}
    env.pop("GUNICORN_GC_FREEZE", None)
    env.pop("DATABASE_URL", None)
    if env_value is not None:
        env["GUNICORN_GC_FREEZE"] = env_value
    out = _run(FREEZE_SCRIPT, env)
    line = next(line for line in out.splitlines() if line.startswith("FROZEN"))
    before, after = line.split()[1:]
    return int(before), int(after)


def test_gunicorns_master_freezes_the_loaded_application_before_forking_workers():
    """config/gunicorn.conf.py's when_ready (the master, after preload_app, before any fork) moves
    the loaded application into the collector's permanent generation, so that a worker's full
    collection no longer scans it (~200 ms with the interpreter lock held, measured: see
    docs/benchmarks.md); GUNICORN_GC_FREEZE=0 leaves the collector alone."""
    before, after = _frozen(None)
    assert before == 0 and after > 50_000  # Django and the apps: some 110,000 objects
    assert _frozen("0") == (0, 0)


def _gunicorn_env(tmp_path: Path, port: int, **gunicorn: str) -> dict[str, str]:
    """A production-like environment for config/gunicorn.conf.py on `port`, SQLite, no access
    log; GUNICORN_* settings from `gunicorn` only (the machine's own are dropped)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUNICORN_")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        STEPLENS_ENV_FILE="",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_ACCESS_LOG="",
        **{f"GUNICORN_{name.upper()}": value for name, value in gunicorn.items()},
    )
    return env


def _log_in_page(sock: object) -> str | None:
    """GET the log-in page on an open connection; its Connection header."""
    import http.client

    sock.sendall(b"GET /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # type: ignore[attr-defined]
    response = http.client.HTTPResponse(sock)  # type: ignore[arg-type]
    response.begin()
    assert response.status == 200 and b"csrfmiddlewaretoken" in response.read()
    return response.getheader("Connection")


def test_gunicorn_closes_a_kept_alive_connection_after_keepalive_requests(tmp_path):
    """A connection stays on the worker that accepted it: 10 kept-alive clients over 3 workers
    stayed as placed (one worker with 5, one idle) and the busiest worker's clients set the p95
    (issue 16). config/gunicorn.conf.py answers every GUNICORN_KEEPALIVE_REQUESTS-th request of a
    connection "Connection: close" and closes it, so clients reconnect to the least busy worker."""
    import socket

    from tests.servers import free_port, gunicorn

    port = free_port()
    env = _gunicorn_env(  # a sync worker keeps no connection alive: gthread
        tmp_path, port, worker_class="gthread", workers="1", threads="1", keepalive_requests="3"
    )
    with gunicorn(env, port=port):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        with sock:
            said = [_log_in_page(sock) for _ in range(3)]
            assert said == ["keep-alive", "keep-alive", "close"]
            assert sock.recv(1) == b"", "the server kept the connection open"


def _shape(monkeypatch, **env: str) -> tuple[str, int, int]:
    import multiprocessing
    import runpy

    for name in ("GUNICORN_WORKER_CLASS", "GUNICORN_WORKERS", "GUNICORN_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(multiprocessing, "cpu_count", lambda: 2)
    conf = runpy.run_path(str(REPO_ROOT / "config" / "gunicorn.conf.py"))
    return conf["worker_class"], conf["workers"], conf["threads"]


def test_gunicorn_runs_sync_workers_two_per_core_unless_told_otherwise(monkeypatch):
    """The shape measured best on 2 cores (issue 16, docs/benchmarks.md): sync workers, two per
    core, one request each at a time; gthread keeps its own defaults (cores + 1, 4 threads)."""
    assert _shape(monkeypatch) == ("sync", 4, 1)
    assert _shape(monkeypatch, GUNICORN_WORKER_CLASS="gthread") == ("gthread", 3, 4)
    assert _shape(monkeypatch, GUNICORN_WORKERS="6") == ("sync", 6, 1)


def test_default_gunicorn_answers_each_request_on_its_own_connection(tmp_path):
    """With the default (sync) workers a connection carries one request and is closed, so the
    next request is accepted by whichever worker is idle: no client stays on a busy worker."""
    import socket

    from tests.servers import free_port, gunicorn

    port = free_port()
    with gunicorn(_gunicorn_env(tmp_path, port, workers="2"), port=port):
        for _ in range(2):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            with sock:
                assert _log_in_page(sock) == "close"
                assert sock.recv(1) == b"", "the server kept the connection open"
