"""Load test: simulated annotators against the production web server (gunicorn, DEBUG off) on loopback.

    python -m benchmarks.load million   [--clients 50] [--seconds 180]   # 1,000,000 steps
    python -m benchmarks.load processbench [--clients 10] [--seconds 20]  # the 3,320 ProcessBench traces

`million` uses the database of benchmarks/trace_page.py (build it once with
`python -m benchmarks.trace_page --keep`); `processbench` builds (or, with --keep, reuses) a
database holding data/processbench/*.jsonl. gunicorn runs config/gunicorn.conf.py with
GUNICORN_WORKERS / GUNICORN_THREADS from the command line, no access log.

Each simulated annotator logs in through the login form (CSRF cookie and token, like a browser),
then loops without think time until the time is up: "next" (GET /p/<slug>/next/, a redirect),
the trace page, one htmx label save per step, submit. `processbench` also runs two 20 s phases
as the Potato / Label Studio figures were taken: pages only (the trace page of random traces) and
saves only (label saves on random steps). The client is a small asyncio HTTP/1.1 client with
keep-alive (one connection per annotator); it shares the machine's cores with the server.
Prints p50 / p95 / p99 per request kind, throughput, errors, and a JSON line. Stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import runpy
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
MILLION_URL = "postgres://postgres@127.0.0.1:5432/steplens_bench_page"
PROCESSBENCH_URL = "postgres://postgres@127.0.0.1:5432/steplens_bench_load_pb"
PASSWORD = "bench-password-1"


# --- a small HTTP/1.1 client --------------------------------------------------------------------


class HttpError(Exception):
    pass


@dataclass
class Session:
    """One annotator's keep-alive connection and cookies."""

    host: str
    port: int
    cookies: dict[str, str] = field(default_factory=dict)
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        json_body: object = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """`form` goes as application/x-www-form-urlencoded, `json_body` (if not None) as JSON."""
        for attempt in (1, 2):  # a kept-alive connection the server closed: reconnect once
            if self.writer is None:
                await self._connect()
            try:
                return await self._send(method, path, form, headers or {}, json_body)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.writer = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _send(
        self, method: str, path: str, form: dict[str, str] | None, headers: dict[str, str], json_body: object = None
    ) -> tuple[int, dict[str, str], bytes]:
        assert self.reader is not None and self.writer is not None
        if json_body is not None:
            body = json.dumps(json_body).encode()
        else:
            body = urlencode(form).encode() if form is not None else b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if json_body is not None:
            lines.append("Content-Type: application/json")
        elif form is not None:
            lines.append("Content-Type: application/x-www-form-urlencoded")
        lines.append(f"Content-Length: {len(body)}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        response_headers: dict[str, str] = {}
        for line in header_lines:
            if not line:
                continue
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie":
                cookie = SimpleCookie(value)
                for key, morsel in cookie.items():
                    self.cookies[key] = morsel.value
            response_headers[name] = value
        if "content-length" in response_headers:
            content = await self.reader.readexactly(int(response_headers["content-length"]))
        elif response_headers.get("transfer-encoding") == "chunked":
            content = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                content += await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            content = await self.reader.read()
            self.writer = None
        if response_headers.get("connection") == "close":
            self.writer = None
        return status, response_headers, content

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# --- the scenarios ----------------------------------------------------------------------------------


@dataclass
class Stats:
    timings: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)

    def record(self, kind: str, started: float, ok: bool, detail: str = "") -> None:
        self.timings.setdefault(kind, []).append((time.perf_counter() - started) * 1000)
        if not ok:
            self.errors[kind] = self.errors.get(kind, 0) + 1
            if len(self.error_samples) < 10:
                self.error_samples.append(f"{kind}: {detail}")


_TRACE = re.compile(r"/t/(\d+)/$")
_STEPS = re.compile(rb'id="step-(\d+)-controls"')


async def log_in(session: Session, username: str) -> None:
    await session.request("GET", "/accounts/login/")
    status, headers, _ = await session.request(
        "POST",
        "/accounts/login/",
        {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        {"Referer": f"http://{session.host}:{session.port}/accounts/login/"},
    )
    if status != 302:
        raise HttpError(f"log-in of {username} answered {status}")


async def think(rng: random.Random, mean: float) -> None:
    """A person reading or deciding: uniform around the mean (0: no pause at all)."""
    if mean > 0:
        await asyncio.sleep(rng.uniform(0.5 * mean, 1.5 * mean))


async def annotator_loop(
    session: Session, slug: str, deadline: float, stats: Stats, rng: random.Random, pause: float = 0.0
) -> None:
    """next -> trace page -> a label save per step -> submit, until the deadline; `pause` seconds
    (on average) before each label and each submit, as a person reading the step."""
    htmx = {"HX-Request": "true"}
    await think(rng, pause)  # annotators do not all start in the same millisecond
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        status, headers, _ = await session.request("GET", f"/p/{slug}/next/")
        match = _TRACE.search(headers.get("location", ""))
        stats.record("next", t0, status == 302 and match is not None, f"{status} {headers.get('location')}")
        if not match:
            return  # the queue is empty
        trace = match.group(1)
        t0 = time.perf_counter()
        status, _, page = await session.request("GET", f"/t/{trace}/")
        stats.record("trace_page", t0, status == 200, str(status))
        steps = sorted({int(i) for i in _STEPS.findall(page)})
        token = {"X-CSRFToken": session.cookies.get("csrftoken", ""), **htmx}
        for index in steps:
            await think(rng, pause)
            if time.perf_counter() >= deadline:
                return
            t0 = time.perf_counter()
            status, _, _ = await session.request(
                "POST", f"/t/{trace}/steps/{index}/label/", {"value": rng.choice(["1", "-1"])}, token
            )
            stats.record("label_save", t0, status == 200, str(status))
        await think(rng, pause)
        if time.perf_counter() >= deadline:
            return
        t0 = time.perf_counter()
        status, _, _ = await session.request(
            "POST", f"/t/{trace}/submit/", {"finish_reason": "give_up"}, {"X-CSRFToken": session.cookies["csrftoken"]}
        )
        stats.record("submit", t0, status == 302, str(status))


async def pages_loop(session: Session, trace_ids: list[int], deadline: float, stats: Stats, rng: random.Random) -> None:
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        status, _, _ = await session.request("GET", f"/t/{rng.choice(trace_ids)}/")
        stats.record("trace_page", t0, status == 200, str(status))


async def saves_loop(
    session: Session, traces: list[tuple[int, int]], deadline: float, stats: Stats, rng: random.Random
) -> None:
    headers = {"X-CSRFToken": session.cookies["csrftoken"], "HX-Request": "true"}
    while time.perf_counter() < deadline:
        trace_id, steps = rng.choice(traces)
        t0 = time.perf_counter()
        status, _, _ = await session.request(
            "POST", f"/t/{trace_id}/steps/{rng.randrange(steps)}/label/", {"value": rng.choice(["1", "-1"])}, headers
        )
        stats.record("label_save", t0, status == 200, str(status))


async def run_phase(
    *, port: int, users: list[str], seconds: float, make_loop, seed: int  # type: ignore[no-untyped-def]
) -> tuple[Stats, float]:
    sessions = [Session("127.0.0.1", port) for _ in users]
    await asyncio.gather(*(log_in(s, u) for s, u in zip(sessions, users, strict=True)))
    stats = Stats()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(make_loop(s, deadline, stats, random.Random(seed + i)) for i, s in enumerate(sessions))
    )
    elapsed = time.perf_counter() - started
    for s in sessions:
        s.close()
    return stats, elapsed


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * len(values)) - 1))]


def report(name: str, stats: Stats, elapsed: float, clients: int) -> dict[str, object]:
    total = sum(len(v) for v in stats.timings.values())
    errors = sum(stats.errors.values())
    print(f"\n== {name}: {clients} clients, {elapsed:.1f} s, {total} requests, {errors} errors")
    result: dict[str, object] = {
        "phase": name,
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": total,
        "requests_per_s": round(total / elapsed, 1),
        "errors": errors,
    }
    for kind, values in stats.timings.items():
        p50, p95, p99 = _pct(values, 0.5), _pct(values, 0.95), _pct(values, 0.99)
        rate = len(values) / elapsed
        print(f"{kind:>11}: {rate:7.1f}/s   p50 {p50:6.1f} ms   p95 {p95:6.1f} ms   p99 {p99:6.1f} ms   n={len(values)}")
        result[kind] = {
            "per_s": round(rate, 1),
            "p50_ms": round(p50, 1),
            "p95_ms": round(p95, 1),
            "p99_ms": round(p99, 1),
            "n": len(values),
            "errors": stats.errors.get(kind, 0),
        }
    for sample in stats.error_samples:
        print("   error:", sample)
    return result


# --- the server -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gunicorn_shape(env: dict[str, str]) -> tuple[str, int, int]:
    """(worker class, workers, threads) that config/gunicorn.conf.py sets in this environment."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        conf = runpy.run_path(str(REPO / "config" / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return str(conf["worker_class"]), int(conf["workers"]), int(conf["threads"])


def server_env(database_url: str, var_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_DEBUG="0",
        DATABASE_URL=database_url,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        # Plain HTTP on loopback (production sits behind a TLS proxy): no redirect to https, and
        # cookies the client may send over http.
        SECURE_SSL_REDIRECT="0",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        STEPLENS_VAR_DIR=str(var_dir),
        LOG_LEVEL="WARNING",
        # As docker-compose runs it: sessions, login counts and throttles in Redis (a database
        # index of its own on the local server; nothing is flushed).
        CACHE_URL=os.environ.get("LOAD_CACHE_URL", "redis://127.0.0.1:6379/13"),
        GUNICORN_ACCESS_LOG="",
    )
    return env


class Gunicorn:
    """config/gunicorn.conf.py's server; `workers`, `threads`, `worker_class` override its
    defaults (None: the config's, as a deployment without GUNICORN_* variables gets them). The
    shape it runs is read back from the config with the same environment (`self.shape`)."""

    def __init__(
        self,
        database_url: str,
        *,
        workers: int | None = None,
        threads: int | None = None,
        worker_class: str | None = None,
    ) -> None:
        self.port = _free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="steplens-load-"))
        env = server_env(database_url, self.workdir)
        env["GUNICORN_BIND"] = f"127.0.0.1:{self.port}"
        for name, value in (("WORKERS", workers), ("THREADS", threads), ("WORKER_CLASS", worker_class)):
            if value:
                env[f"GUNICORN_{name}"] = str(value)
        self.worker_class, self.workers, self.threads = gunicorn_shape(env)
        self.shape = f"gunicorn {self.worker_class} {self.workers} x {self.threads}"
        self.log = open(self.workdir / "gunicorn.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi"],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
        self.stop()
        raise RuntimeError((self.workdir / "gunicorn.log").read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def errors_logged(self) -> list[str]:
        text = (self.workdir / "gunicorn.log").read_text(errors="replace")
        return [line for line in text.splitlines() if "Error" in line or "Traceback" in line]


# --- the databases ------------------------------------------------------------------------------------


def _django(database_url: str) -> None:
    os.environ.update(server_env(database_url, Path(tempfile.mkdtemp(prefix="steplens-load-setup-"))))
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def prepare_processbench(database_url: str, keep: bool, clients: int) -> None:
    """Migrate and import data/processbench/*.jsonl once (with --keep, reuse), and the annotators."""
    import psycopg

    from benchmarks.import_million_steps import _recreate_database

    ready = False
    if keep:
        try:
            with psycopg.connect(database_url) as conn:
                ready = conn.execute("SELECT count(*) FROM annotate_trace").fetchone()[0] >= 3320
        except Exception:
            ready = False
    if not ready:
        _recreate_database(database_url)
    _django(database_url)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from annotate import imports, services

    if not ready:
        call_command("migrate", verbosity=0)
        project, _ = imports.project_for_import(slug="processbench")
        for path in sorted((REPO / "data" / "processbench").glob("*.jsonl")):
            with path.open("rb") as stream:
                imports.traces_import(project=project, stream=stream, filename=path.name, format="processbench")
    from annotate.models import Project

    project = Project.objects.get(slug="processbench")
    User = get_user_model()
    for i in range(clients):
        user, created = User.objects.get_or_create(username=f"annotator{i}")
        if created:
            user.set_password(PASSWORD)
            user.save()
        services.membership_set(project=project, user=user, role="annotator")


def corpus_ids(database_url: str, slug: str) -> list[tuple[int, int]]:
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT t.id, count(s.id) FROM annotate_trace t JOIN annotate_project p ON p.id = t.project_id "
            "JOIN annotate_step s ON s.trace_id = t.id WHERE p.slug = %s GROUP BY t.id",
            (slug,),
        ).fetchall()
    return [(int(a), int(b)) for a, b in rows]


# --- main ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", choices=["million", "processbench"])
    parser.add_argument("--clients", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--workers", type=int, help="gunicorn worker processes (default: the config's)")
    parser.add_argument("--threads", type=int, help="threads per gunicorn worker (default: the config's)")
    parser.add_argument("--worker-class", help="gunicorn worker class (default: the config's)")
    parser.add_argument("--database-url")
    parser.add_argument("--keep", action="store_true", help="reuse the ProcessBench database")
    parser.add_argument("--phases", default="", help="comma-separated subset of: mixed,pages,saves")
    parser.add_argument(
        "--pause", type=float, default=0.0,
        help="mixed: mean seconds an annotator spends on a step before labelling it (0: none)",
    )
    args = parser.parse_args()
    million = args.corpus == "million"
    clients = args.clients or (50 if million else 10)
    seconds = args.seconds or (180 if million else 20)
    url = args.database_url or (MILLION_URL if million else PROCESSBENCH_URL)
    slug = "bench" if million else "processbench"
    phases = [p for p in (args.phases or ("mixed" if million else "mixed,pages,saves")).split(",") if p]
    seconds = min(seconds, 600)  # bounded, whatever is asked

    if million:
        from benchmarks.trace_page import _database_ready

        if not _database_ready(url):
            sys.exit(f"no 1M-step database at {url}: run `python -m benchmarks.trace_page --keep` first")
    else:
        prepare_processbench(url, args.keep, clients)
    # The schema may have moved on since the database was built: bring it up to date.
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env=server_env(url, Path(tempfile.mkdtemp(prefix="steplens-load-migrate-"))),
        check=True,
    )
    # Production runs autovacuum; this machine's PostgreSQL has it off, and earlier runs added
    # thousands of annotations: refresh the planner's statistics as autovacuum would have.
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    traces = corpus_ids(url, slug)
    users = [f"annotator{i}" for i in range(clients)]
    ids = [t for t, _ in traces]
    server = Gunicorn(url, workers=args.workers, threads=args.threads, worker_class=args.worker_class)
    print(f"{len(traces):,} traces, {sum(n for _, n in traces):,} steps; {server.shape}; {os.cpu_count()} cores shared with the client")
    results = []
    try:
        for phase in phases:
            if phase == "mixed":
                loop = lambda s, d, st, r: annotator_loop(s, slug, d, st, r, args.pause)  # noqa: E731
            elif phase == "pages":
                loop = lambda s, d, st, r: pages_loop(s, ids, d, st, r)  # noqa: E731
            else:
                loop = lambda s, d, st, r: saves_loop(s, traces, d, st, r)  # noqa: E731
            cpu0 = time.process_time()
            stats, elapsed = asyncio.run(
                run_phase(port=server.port, users=users, seconds=seconds, make_loop=loop, seed=len(results))
            )
            results.append(report(phase, stats, elapsed, clients))
            # The client shares the cores with the server: say how much of them it took.
            client_cpu = (time.process_time() - cpu0) / elapsed
            results[-1]["client_cpu_cores"] = round(client_cpu, 2)
            print(f"the load generator used {client_cpu:.2f} of the {os.cpu_count()} cores")
    finally:
        server.stop()
    logged = server.errors_logged()
    if logged:
        print(f"server log: {len(logged)} error lines, e.g. {logged[:3]}")
    print(json.dumps({"benchmark": "load", "corpus": args.corpus, "server": server.shape, "pause_s": args.pause, "results": results, "server_errors_logged": len(logged)}))


if __name__ == "__main__":
    main()
