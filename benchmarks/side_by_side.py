"""steplens, Potato 2.12.1 and Label Studio 1.23.2 measured side by side, one tool at a time, by
one client (issue 16).

    python -m benchmarks.side_by_side [--tools steplens,potato,labelstudio,labelstudio-pg]
        [--seconds 20] [--clients 10] [--traces 0] [--out var/side_by_side/results]

For each tool, alone on the machine: start-up (process start to the first answer), import of the
3,320 ProcessBench traces of data/processbench/, then two phases with `--clients` kept-alive
clients (benchmarks.load's asyncio client): pages only (random traces) and saves only (one step
label on a random step of a random trace). Per phase: rate, p50/p95/p99, errors, CPU-seconds per
server process (read from /proc) and the machine's busy share. Saves are checked by reading them
back from each tool's own storage: the last value each client sent for each step must be the
stored one.

What each tool's requests are (docs/benchmarks.md says the same):
- steplens (gunicorn + PostgreSQL + Redis, as docker-compose.yml): page = GET /t/<id>/ (the trace
  page's HTML, steps included); save = POST /api/traces/<id>/changes/ with one change, what the
  page's script (static/steplens/keyboard.js) posts when a step's label is clicked (the htmx
  form POST /t/<id>/steps/<i>/label/ is the page's path without its script; measured before
  2026-12-01 22:00, it is lighter).
- Potato (its own `potato start`, Flask's threaded server, data loaded from JSONL at start-up,
  `process_reward` schema in `per_step` mode): page = GET /annotate?instance_id=<id> (the
  annotation page's HTML, the instance's steps embedded); save = POST /updateinstance with the
  JSON its page posts when a step's Correct/Wrong button is clicked (the whole per-step state of
  the item, as Potato's process_reward widget sends it). Read back from
  <output_annotation_dir>/<user>/user_state.json.
- Label Studio (`label-studio start`, SQLite: "labelstudio"; or gunicorn + PostgreSQL:
  "labelstudio-pg"): a project whose config shows the problem and, with a Repeater, each step as
  Text with its own Choices (correct / incorrect); tasks imported through POST
  /api/projects/<id>/import (timed); page = GET /projects/<p>/data?task=<id> (the labelling
  view's HTML) followed by GET /api/tasks/<id>/ (the task JSON that page fetches), timed as one
  page; save = POST /api/tasks/<id>/annotations/ (as its frontend submits), the annotation holding
  every step label the client has set on that task. Read back from the database: each user's
  latest annotation of each task.

Potato and Label Studio are installed into throwaway virtual environments under `--venvs`
(never project dependencies). With root and `unshare`, each tool runs in a network namespace of
its own with loopback only (the client runs there too); PostgreSQL is reached through its Unix
socket and steplens gets a Redis of its own inside the namespace. Without root the servers bind
127.0.0.1 only and the run says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from benchmarks import load

REPO = Path(__file__).resolve().parent.parent
VERSIONS = {"potato": "potato-annotation==2.12.1", "labelstudio": "label-studio==1.23.2"}
# Installed next to Label Studio in its venv, for the gunicorn + PostgreSQL shape.
EXTRA = {"labelstudio": ["gunicorn==23.0.0"]}
DATABASE_URL = "postgres://postgres@127.0.0.1:5432/steplens_bench_side_by_side"
PG_SOCKET_DIR = "/var/run/postgresql"
TOOLS = ("steplens", "potato", "labelstudio", "labelstudio-pg")
# Nothing phones home: every tool's own switches, on top of the network namespace.
QUIET_ENV = {
    "COLLECT_ANALYTICS": "false",
    "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
    "LATEST_VERSION_CHECK": "false",
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "SENTRY_RATE": "0",
    "POTATO_TELEMETRY": "0",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "PIP_NO_INDEX": "1",
}


def install(tool: str, venvs: Path) -> Path:
    """A virtual environment of its own for Potato or Label Studio (made once, then reused)."""
    venv = venvs / tool
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    name, version = VERSIONS[tool].split("==")
    probe = subprocess.run(
        [str(python), "-m", "pip", "show", name, *(e.split("==")[0] for e in EXTRA.get(tool, []))],
        capture_output=True,
        text=True,
    )
    if f"Version: {version}" not in probe.stdout or probe.returncode != 0:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", VERSIONS[tool], *EXTRA.get(tool, [])],
            check=True,
        )
    return venv


# --- processes and CPU ------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU-seconds of one process (/proc/<pid>/stat, fields 14 and 15)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        path = task / "children"
        if path.exists():
            found += [int(p) for p in path.read_text().split()]
    return found


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def process_name(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return "?"
    words = [Path(a.decode(errors="replace")).name for a in argv[:3] if a]
    return " ".join(words)[:60]


def named_pids(root: int) -> dict[str, int]:
    """A server's processes by name: the one started, and any it forked (gunicorn's workers)."""
    pids = descendants(root)
    if len(pids) == 1:
        return {process_name(root): root}
    return {f"{process_name(root)} (master)": root} | {
        f"worker {i}": pid for i, pid in enumerate(sorted(pids[1:]), 1)
    }


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(port: int, path: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    """Until GET path answers (any status below 500), or the process dies, or time runs out."""
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"no answer on {port}{path} in {timeout:.0f} s: {log.read_text()[-3000:]}")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def processbench_records(limit: int) -> list[dict]:
    records = []
    for path in sorted((REPO / "data" / "processbench").glob("*.jsonl")):
        with path.open() as stream:
            records += [json.loads(line) for line in stream if line.strip()]
    return records[:limit] if limit else records


# --- the client ---------------------------------------------------------------------------------


class JsonSession(load.Session):
    """load.Session with a JSON POST (Potato's and Label Studio's saves)."""

    async def send_json(self, method: str, path: str, payload: object, headers: dict[str, str]):  # type: ignore[no-untyped-def]
        return await self.request(method, path, None, headers, json_body=payload)


class Seen:
    """The last value each client sent for each (user, trace, step), to read back after."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, str, int], int] = {}


def compare(seen: Seen, stored: dict[tuple[str, str, int], int | None]) -> dict[str, object]:
    wrong = [(k, v, stored.get(k)) for k, v in seen.last.items() if stored.get(k) != v]
    return {
        "saves_checked": len(seen.last),
        "saves_not_stored": len(wrong),
        **({"not_stored_examples": [str(w) for w in wrong[:3]]} if wrong else {}),
    }


# --- the tools ----------------------------------------------------------------------------------


class Tool:
    name = ""
    shape = ""
    port = 0
    traces: list[tuple[str, int]]
    state: dict[tuple[str, str], dict[int, int]]

    def prepare(self) -> dict[str, object]:
        raise NotImplementedError

    def pids(self) -> dict[str, int]:
        raise NotImplementedError

    async def log_in(self, session: JsonSession, user: str) -> None:
        raise NotImplementedError

    async def page(self, session: JsonSession, stats: load.Stats, rng: random.Random) -> None:
        raise NotImplementedError

    async def save(
        self, session: JsonSession, user: str, stats: load.Stats, rng: random.Random, seen: Seen
    ) -> None:
        raise NotImplementedError

    def read_back(self, seen: Seen) -> dict[str, object]:
        raise NotImplementedError

    def pick(self, user: str, rng: random.Random) -> tuple[str, int, int, int, dict[int, int]]:
        """A random trace, step and value (1 or -1), and the labels this client has set on that
        trace so far, the new one included (Potato and Label Studio save them all at once)."""
        trace, steps = rng.choice(self.traces)
        index, value = rng.randrange(steps), rng.choice([1, -1])
        state = self.state.setdefault((user, trace), {})
        state[index] = value
        return trace, steps, index, value, state

    def stop(self) -> None:
        raise NotImplementedError


class Steplens(Tool):
    name = "steplens"

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.url = args.database_url
        self.shape = "gunicorn (config/gunicorn.conf.py), PostgreSQL, Redis"
        self.server: load.Gunicorn | None = None
        self.seq: dict[str, int] = {}  # each client's change numbers (the page's change log)

    def prepare(self) -> dict[str, object]:
        url = self.url
        started = time.perf_counter()
        load.prepare_processbench(url, keep=False, clients=self.args.clients)  # fresh: timed
        import_s = time.perf_counter() - started
        # What a worker does after each import: the pages' HTML of the new texts, kept
        # (annotate.tasks.html_fill_task), and the new traces' labelling-queue rows
        # (review.receivers._on_imported: queue_priorities_sync_task). Timed apart; without them
        # every page would be a first view and every first label would build its trace's row.
        from django.core.management import call_command

        started = time.perf_counter()
        with open(os.devnull, "w") as quiet:
            call_command("render_html", "--project", "processbench", stdout=quiet, stderr=quiet)
        html_fill_s = time.perf_counter() - started
        started = time.perf_counter()
        with open(os.devnull, "w") as quiet:
            call_command("queue_refresh", "--project", "processbench", stdout=quiet, stderr=quiet)
        queue_rows_s = time.perf_counter() - started
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")  # as load.py: autovacuum is off on this machine
        traces = load.corpus_ids(url, "processbench")
        if self.args.traces:
            traces = sorted(traces)[: self.args.traces]
        self.traces = [(str(t), n) for t, n in traces]
        t0 = time.perf_counter()
        self.server = load.Gunicorn(
            url,
            workers=self.args.workers,
            threads=self.args.threads,
            worker_class=self.args.worker_class,
        )
        self.shape = f"{self.server.shape}, PostgreSQL, Redis"
        startup_s = time.perf_counter() - t0
        self.port = self.server.port
        deadline = time.monotonic() + 30
        while len(children(self.server.process.pid)) < self.server.workers:
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start its workers")
            time.sleep(0.1)
        return {
            "import_s": round(import_s, 2),
            "import_what": "create database, migrate, import 3,320 traces (manage.py's importer)",
            "html_fill_s": round(html_fill_s, 2),
            "queue_rows_s": round(queue_rows_s, 2),
            "startup_s": round(startup_s, 2),
            "traces": len(self.traces),
        }

    def pids(self) -> dict[str, int]:
        assert self.server is not None
        master = self.server.process.pid
        return {"gunicorn master": master} | {
            f"gunicorn worker {i + 1}": pid for i, pid in enumerate(sorted(children(master)))
        }

    async def log_in(self, session: JsonSession, user: str) -> None:
        await load.log_in(session, user)

    async def page(self, session: JsonSession, stats: load.Stats, rng: random.Random) -> None:
        trace, _ = rng.choice(self.traces)
        t0 = time.perf_counter()
        status, _, body = await session.request("GET", f"/t/{trace}/")
        stats.record("page", t0, status == 200 and b'id="step-0-controls"' in body, str(status))

    async def save(self, session, user, stats, rng, seen):  # type: ignore[no-untyped-def]
        trace, steps = rng.choice(self.traces)
        index, value = rng.randrange(steps), rng.choice([1, -1])
        # What the labelling page's script (static/steplens/keyboard.js, send()) posts when a
        # step's label is clicked: one change of its change log, numbered per page.
        self.seq[user] = self.seq.get(user, 0) + 1
        payload = {
            "client": f"bench-{user}",
            "changes": [{"seq": self.seq[user], "op": "label", "index": index, "value": value}],
        }
        headers = {"X-CSRFToken": session.cookies["csrftoken"], "Accept": "application/json"}
        t0 = time.perf_counter()
        status, _, body = await session.send_json(
            "POST", f"/api/traces/{trace}/changes/", payload, headers
        )
        ok = status == 200 and f'"applied":[{self.seq[user]}]'.encode() in body
        stats.record("save", t0, ok, f"{status} {body[:200]!r}")
        if ok:
            seen.last[(user, trace, index)] = value

    def read_back(self, seen: Seen) -> dict[str, object]:
        import psycopg

        with psycopg.connect(self.url) as conn:
            rows = conn.execute(
                "SELECT u.username, a.trace_id, s.index, l.value FROM annotate_steplabel l "
                "JOIN annotate_annotation a ON a.id = l.annotation_id "
                "JOIN auth_user u ON u.id = a.annotator_id "
                "JOIN annotate_step s ON s.id = l.step_id"
            ).fetchall()
        return compare(seen, {(u, str(t), int(i)): v for u, t, i, v in rows})

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


class Potato(Tool):
    name = "potato"
    shape = "potato start (Flask threaded server, one process), JSONL data, state on disk"
    SCHEMA = "step_rewards"

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.venv = args.venvs / "potato"
        self.task = args.venvs / "potato-task"
        self.process: subprocess.Popen | None = None
        self.state: dict[tuple[str, str], dict[int, int]] = {}

    def prepare(self) -> dict[str, object]:
        shutil.rmtree(self.task, ignore_errors=True)
        (self.task / "data").mkdir(parents=True)
        records = processbench_records(self.args.traces)
        with (self.task / "data" / "processbench.jsonl").open("w") as out:
            for r in records:
                out.write(
                    json.dumps({"id": r["id"], "problem": r["problem"], "steps": r["steps"]}) + "\n"
                )
        self.traces = [(r["id"], len(r["steps"])) for r in records]
        config = {
            "annotation_task_name": "ProcessBench step labels",
            "task_dir": str(self.task),
            "output_annotation_dir": str(self.task / "annotation_output"),
            "data_files": ["data/processbench.jsonl"],
            "item_properties": {"id_key": "id", "text_key": "problem"},
            "annotation_schemes": [
                {
                    "annotation_type": "process_reward",
                    "name": self.SCHEMA,
                    "description": "Is each step correct?",
                    "steps_key": "steps",
                    "mode": "per_step",
                }
            ],
            # log-in by name only, every annotator gets every trace, in file order (so that
            # /annotate?instance_id=<id> opens any trace for any annotator)
            "user_config": {"allow_all_users": True},
            "require_password": False,
            "assignment_strategy": "fixed_order",
            "max_annotations_per_user": len(records),
        }
        # JSON is YAML: no YAML library needed here
        (self.task / "config.yaml").write_text(json.dumps(config, indent=1))
        self.port = free_port()
        log = self.task / "server.log"
        t0 = time.perf_counter()
        self.process = subprocess.Popen(
            [
                str(self.venv / "bin" / "potato"),
                "start",
                "config.yaml",
                "-p",
                str(self.port),
                "--host",
                "127.0.0.1",
            ],
            cwd=self.task,
            env={**os.environ, **QUIET_ENV},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_http(self.port, "/", self.process, log, 300)
        startup_s = time.perf_counter() - t0
        return {
            "import_s": None,
            "import_what": "none apart: Potato reads the JSONL at start-up (in startup_s)",
            "startup_s": round(startup_s, 2),
            "traces": len(self.traces),
        }

    def pids(self) -> dict[str, int]:
        assert self.process is not None
        return named_pids(self.process.pid)

    async def log_in(self, session: JsonSession, user: str) -> None:
        status, _, _ = await session.request("POST", "/auth", {"email": user, "pass": ""})
        if status != 302:
            raise load.HttpError(f"potato log-in of {user} answered {status}")
        status, _, _ = await session.request("GET", "/annotate")  # the first view sets the user up
        if status != 200:
            raise load.HttpError(f"potato /annotate for {user} answered {status}")

    async def page(self, session: JsonSession, stats: load.Stats, rng: random.Random) -> None:
        trace, _ = rng.choice(self.traces)
        t0 = time.perf_counter()
        status, _, body = await session.request("GET", f"/annotate?instance_id={trace}")
        ok = (
            status == 200
            and f'id="instance_id" name="instance_id" type="hidden" value="{trace}"'.encode()
            in body
        )
        stats.record("page", t0, ok, f"{status} {trace}")

    async def save(self, session, user, stats, rng, seen):  # type: ignore[no-untyped-def]
        trace, steps, index, value, state = self.pick(user, rng)
        # what Potato's process_reward widget puts in its hidden input (saveState()) and
        # annotation.js posts (saveAnnotations()), captured from its page in Chromium
        blob = {
            "steps": [
                {
                    "index": i,
                    "reward": state.get(i, 0),
                    "source": "human" if i in state else None,
                    "verified": i in state,
                    "ai_reward": None,
                    "ai_reasoning": "",
                    "confidence": None,
                }
                for i in range(steps)
            ],
            "mode": "per_step",
        }
        payload = {
            "instance_id": trace,
            "annotations": {
                f"{self.SCHEMA}:{self.SCHEMA}": json.dumps(blob, separators=(",", ":"))
            },
            "cleared_schemas": [],
            "span_annotations": [],
            "client_timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "response_time_seconds": 1.0,
        }
        t0 = time.perf_counter()
        status, _, body = await session.send_json("POST", "/updateinstance", payload, {})
        ok = status == 200 and b'"status": "error"' not in body and b'"status":"error"' not in body
        stats.record("save", t0, ok, f"{status} {body[:200]!r}")
        if ok:
            seen.last[(user, trace, index)] = value

    def read_back(self, seen: Seen) -> dict[str, object]:
        stored: dict[tuple[str, str, int], int | None] = {}
        for user in {u for u, _, _ in seen.last}:
            state = json.loads(
                (self.task / "annotation_output" / user / "user_state.json").read_text()
            )
            for trace, labels in state.get("instance_id_to_label_to_value", {}).items():
                for label, value in labels:
                    if label.get("schema") == self.SCHEMA:
                        for step in json.loads(value)["steps"]:
                            stored[(user, trace, int(step["index"]))] = step["reward"]
        return compare(seen, stored)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


LABEL_CONFIG = """<View>
  <Header value="Problem"/>
  <Text name="problem" value="$problem"/>
  <Repeater on="$steps" indexFlag="{{idx}}">
    <Text name="step_{{idx}}" value="$steps[{{idx}}].text"/>
    <Choices name="label_{{idx}}" toName="step_{{idx}}" choice="single-radio" showInline="true">
      <Choice value="correct"/>
      <Choice value="incorrect"/>
    </Choices>
  </Repeater>
</View>"""
LS_PASSWORD = "bench-password-1"
LS_VALUE = {1: "correct", -1: "incorrect"}


class LabelStudio(Tool):
    def __init__(self, args: argparse.Namespace, postgres: bool) -> None:
        self.args = args
        self.postgres = postgres
        self.name = "labelstudio-pg" if postgres else "labelstudio"
        # Label Studio's gunicorn keeps the old gthread shape unless --workers/--threads say
        self.workers = args.workers or 3
        self.threads = args.threads or 4
        self.shape = (
            f"gunicorn {self.workers} x {self.threads} (its core.wsgi), PostgreSQL"
            if postgres
            else "label-studio start (its default: Django's server, SQLite)"
        )
        self.venv = args.venvs / "labelstudio"
        self.data = args.venvs / f"{self.name}-data"
        self.process: subprocess.Popen | None = None
        self.state: dict[tuple[str, str], dict[int, int]] = {}
        db = urllib.parse.urlsplit(args.database_url).path.lstrip("/") + "_labelstudio"
        self.pg_name = db

    def env(self) -> dict[str, str]:
        env = {**os.environ, **QUIET_ENV}
        env.update(
            LABEL_STUDIO_BASE_DATA_DIR=str(self.data),
            DJANGO_SETTINGS_MODULE="core.settings.label_studio",
            DEBUG="false",
            LOG_LEVEL="WARNING",
            DJANGO_DB="default" if self.postgres else "sqlite",
            LABEL_STUDIO_ALLOW_ORGANIZATION_WEBHOOKS="false",
        )
        if self.postgres:
            env.update(
                POSTGRE_NAME=self.pg_name,
                POSTGRE_USER="postgres",
                POSTGRE_PASSWORD="",
                POSTGRE_HOST=self.args.pg_host,
                POSTGRE_PORT="5432",
            )
        return env

    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def ls_path(self) -> Path:
        return next((self.venv / "lib").glob("python3*/site-packages/label_studio"))

    def prepare(self) -> dict[str, object]:
        shutil.rmtree(self.data, ignore_errors=True)
        self.data.mkdir(parents=True)
        env = self.env()
        if self.postgres:
            import psycopg
            from psycopg import sql

            with psycopg.connect(self.args.admin_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(self.pg_name)
                    )
                )
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.pg_name)))
        t0 = time.perf_counter()
        subprocess.run(
            [self.python(), str(self.ls_path() / "manage.py"), "migrate", "--noinput", "-v", "0"],
            env=env,
            check=True,
            cwd=self.data,
        )
        migrate_s = time.perf_counter() - t0
        # users (an admin and the annotators, in one organization) and the project
        users = ["admin"] + [f"annotator{i}" for i in range(self.args.clients)]
        script = f"""
import django; django.setup()
from users.models import User
from organizations.models import Organization
admin = User.objects.create_superuser(email="admin@bench.local", password={LS_PASSWORD!r})
org = Organization.create_organization(created_by=admin, title="bench")
admin.active_organization = org; admin.save()
for name in {users[1:]!r}:
    u = User.objects.create_user(email=name + "@bench.local", password={LS_PASSWORD!r}, username=name)
    org.add_user(u); u.active_organization = org; u.save()
"""
        # run from the package's own directory, which its server.py puts on sys.path
        subprocess.run([self.python(), "-c", script], env=env, check=True, cwd=self.ls_path())
        self.port = free_port()
        log = self.data / "server.log"
        if self.postgres:
            argv = [
                str(self.venv / "bin" / "gunicorn"),
                "core.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--threads",
                str(self.threads),
                "--worker-class",
                "gthread",
                "--keep-alive",
                "75",
                "--log-level",
                "warning",
                "--chdir",
                str(self.ls_path()),
            ]
        else:
            argv = [
                str(self.venv / "bin" / "label-studio"),
                "start",
                "--no-browser",
                "--internal-host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data),
                "--username",
                "admin@bench.local",
                "--password",
                LS_PASSWORD,
            ]
        t0 = time.perf_counter()
        self.process = subprocess.Popen(
            argv, cwd=self.data, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
        )
        wait_http(self.port, "/user/login/", self.process, log, 300)
        startup_s = time.perf_counter() - t0
        # the import, through the API, as the admin
        records = processbench_records(self.args.traces)
        tasks = [
            {
                "data": {
                    "ref": r["id"],
                    "problem": r["problem"],
                    "steps": [{"text": s} for s in r["steps"]],
                }
            }
            for r in records
        ]
        admin = JsonSession("127.0.0.1", self.port)

        async def do_import() -> tuple[float, int, bytes]:
            await self._login(admin, "admin@bench.local")
            # the project through the API, which checks the labelling config
            status, _, body = await admin.send_json(
                "POST",
                "/api/projects/",
                {"title": "ProcessBench", "label_config": LABEL_CONFIG},
                self._headers(admin),
            )
            if status != 201:
                raise RuntimeError(f"label studio project: {status} {body[:500]!r}")
            self.project = json.loads(body)["id"]
            t = time.perf_counter()
            status, _, body = await admin.send_json(
                "POST", f"/api/projects/{self.project}/import", tasks, self._headers(admin)
            )
            elapsed = time.perf_counter() - t
            admin.close()
            return elapsed, status, body

        import_s, status, body = asyncio.run(do_import())
        if status != 201:
            raise RuntimeError(f"label studio import answered {status}: {body[:500]!r}")
        self.traces = self._task_ids(records)
        return {
            "import_s": round(import_s, 2),
            "import_what": f"POST /api/projects/<id>/import of {len(tasks)} tasks; answer {body[:120].decode(errors='replace')}",
            "migrate_s": round(migrate_s, 2),
            "startup_s": round(startup_s, 2),
            "traces": len(self.traces),
        }

    def _sql(self, query: str) -> list[tuple]:
        if self.postgres:
            import psycopg

            url = self.args.admin_url.rsplit("/", 1)[0] + "/" + self.pg_name
            with psycopg.connect(url) as conn:
                return conn.execute(query).fetchall()
        import sqlite3

        with sqlite3.connect(self.data / "label_studio.sqlite3") as conn:
            return conn.execute(query).fetchall()

    def _task_ids(self, records: list[dict]) -> list[tuple[str, int]]:
        steps = {r["id"]: len(r["steps"]) for r in records}
        rows = self._sql(f"SELECT id, data FROM task WHERE project_id = {self.project}")
        out = []
        for task_id, data in rows:
            data = json.loads(data) if isinstance(data, str) else data
            out.append((str(task_id), steps[data["ref"]]))
        if len(out) != len(records):
            raise RuntimeError(f"label studio holds {len(out)} tasks, {len(records)} were imported")
        return sorted(out)

    def pids(self) -> dict[str, int]:
        assert self.process is not None
        return named_pids(self.process.pid)

    @staticmethod
    def _headers(session: JsonSession) -> dict[str, str]:
        return {
            "X-CSRFToken": session.cookies.get("csrftoken", ""),
            "Referer": f"http://{session.host}:{session.port}/",
        }

    async def _login(self, session: JsonSession, email: str) -> None:
        await session.request("GET", "/user/login/")
        status, headers, _ = await session.request(
            "POST",
            "/user/login/",
            {
                "email": email,
                "password": LS_PASSWORD,
                "csrfmiddlewaretoken": session.cookies.get("csrftoken", ""),
            },
            {"Referer": f"http://{session.host}:{session.port}/user/login/"},
        )
        if status != 302 or "sessionid" not in session.cookies:
            raise load.HttpError(
                f"label studio log-in of {email} answered {status} {headers.get('location')}"
            )

    async def log_in(self, session: JsonSession, user: str) -> None:
        await self._login(session, f"{user}@bench.local")

    async def page(self, session: JsonSession, stats: load.Stats, rng: random.Random) -> None:
        task, _ = rng.choice(self.traces)
        t0 = time.perf_counter()
        status, _, body = await session.request("GET", f"/projects/{self.project}/data?task={task}")
        ok = status == 200 and b"<html" in body.lower()
        status2, _, body2 = await session.request("GET", f"/api/tasks/{task}/")
        ok = ok and status2 == 200 and f'"id":{task},'.encode() in body2.replace(b" ", b"")
        stats.record("page", t0, ok, f"{status} {status2} {task}")

    async def save(self, session, user, stats, rng, seen):  # type: ignore[no-untyped-def]
        task, steps, index, value, state = self.pick(user, rng)
        result = [
            {
                "id": f"s{i}",
                "from_name": f"label_{i}",
                "to_name": f"step_{i}",
                "type": "choices",
                "origin": "manual",
                "value": {"choices": [LS_VALUE[v]]},
            }
            for i, v in sorted(state.items())
        ]
        payload = {"result": result, "lead_time": 1.0, "project": str(self.project)}
        t0 = time.perf_counter()
        status, _, body = await session.send_json(
            "POST", f"/api/tasks/{task}/annotations/", payload, self._headers(session)
        )
        stats.record("save", t0, status == 201, f"{status} {body[:200]!r}")
        if status == 201:
            seen.last[(user, task, index)] = value

    def read_back(self, seen: Seen) -> dict[str, object]:
        rows = self._sql(
            "SELECT u.username, a.task_id, a.result FROM task_completion a "
            "JOIN htx_user u ON u.id = a.completed_by_id "
            "WHERE a.id IN (SELECT max(id) FROM task_completion GROUP BY completed_by_id, task_id)"
        )
        stored: dict[tuple[str, str, int], int | None] = {}
        back = {v: k for k, v in LS_VALUE.items()}
        for user, task, result in rows:
            result = json.loads(result) if isinstance(result, str) else result
            for region in result:
                index = int(region["from_name"].split("_")[1])
                stored[(user, str(task), index)] = back[region["value"]["choices"][0]]
        return compare(seen, stored)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


# --- one tool, measured -------------------------------------------------------------------------


async def run_phase(
    tool: Tool, users: list[str], seconds: float, phase: str, seen: Seen, seed: int
):  # type: ignore[no-untyped-def]
    sessions = [JsonSession("127.0.0.1", tool.port) for _ in users]
    await asyncio.gather(*(tool.log_in(s, u) for s, u in zip(sessions, users, strict=True)))
    stats = load.Stats()

    async def loop(session: JsonSession, user: str, rng: random.Random, deadline: float) -> None:
        while time.perf_counter() < deadline:
            if phase == "pages":
                await tool.page(session, stats, rng)
            else:
                await tool.save(session, user, stats, rng, seen)

    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(
            loop(s, u, random.Random(seed + i), deadline)
            for i, (s, u) in enumerate(zip(sessions, users, strict=True))
        )
    )
    elapsed = time.perf_counter() - started
    for s in sessions:
        s.close()
    return stats, elapsed


def measure(tool: Tool, args: argparse.Namespace) -> dict[str, object]:
    users = [f"annotator{i}" for i in range(args.clients)]
    result: dict[str, object] = {"tool": tool.name, "shape": tool.shape}
    try:
        result.update(tool.prepare())
        result["shape"] = tool.shape  # as started (steplens reads its gunicorn's back)
        print(f"== {tool.name}: {json.dumps(result)}", flush=True)
        phases = []
        for n, phase in enumerate(("pages", "saves")):
            seen = Seen()
            pids = tool.pids()
            cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            busy0, total0 = machine_cpu()
            client0 = time.process_time()
            stats, elapsed = asyncio.run(run_phase(tool, users, args.seconds, phase, seen, 7 + n))
            busy1, total1 = machine_cpu()
            row = load.report(f"{tool.name} {phase}", stats, elapsed, args.clients)
            row["cpu_s_per_process"] = {
                name: round(cpu_seconds(pid) - cpu0[name], 2) for name, pid in pids.items()
            }
            row["client_cpu_s"] = round(time.process_time() - client0, 2)
            row["machine_busy_share"] = round((busy1 - busy0) / max(1, total1 - total0), 3)
            if phase == "saves":
                row.update(tool.read_back(seen))
            print(json.dumps(row), flush=True)
            phases.append(row)
        result["phases"] = phases
    finally:
        tool.stop()
    return result


def make_tool(name: str, args: argparse.Namespace) -> Tool:
    if name == "steplens":
        return Steplens(args)
    if name == "potato":
        return Potato(args)
    return LabelStudio(args, postgres=name == "labelstudio-pg")


# --- the run: each tool in a network namespace of its own ---------------------------------------


def netns_usable() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return False
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True)
    return probe.returncode == 0


def socket_url(url: str, socket_dir: str) -> str:
    """The same database through PostgreSQL's Unix socket (reachable from a network namespace)."""
    parts = urllib.parse.urlsplit(url)
    user = parts.username or "postgres"
    return f"postgres://{user}@{urllib.parse.quote(socket_dir, safe='')}{parts.path}"


def run_inner(args: argparse.Namespace) -> None:
    """One tool, in this process (inside the namespace when the outer run made one)."""
    redis = None
    if args.own_redis:
        # the namespace has no route to the machine's Redis: steplens gets one of its own
        redis = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        os.environ["LOAD_CACHE_URL"] = "redis://127.0.0.1:6379/0"
    try:
        result = measure(make_tool(args.tools, args), args)
    finally:
        if redis is not None:
            stop_process(redis)
    Path(args.inner_out).write_text(json.dumps(result))


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def markdown(results: list[dict], meta: dict[str, object]) -> str:
    lines = [
        f"Side by side, {meta['clients']} kept-alive clients, {meta['seconds']} s a phase, "
        f"{meta['traces']} traces, {meta['when']}, network: {meta['network']}",
        "",
        "| | " + " | ".join(f"{r['tool']} ({r['shape']})" for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]

    def cell(r: dict, phase: str, what: str) -> str:
        if "error" in r:
            return "failed"
        row = next(p for p in r["phases"] if p["phase"].endswith(phase))
        kind = row.get(what, {})
        return f"{kind.get('per_s', 0)}/s; p50 {kind.get('p50_ms')} / p95 {kind.get('p95_ms')} / p99 {kind.get('p99_ms')} ms; {row['errors']} errors"

    lines.append("| start-up s | " + " | ".join(str(r.get("startup_s")) for r in results) + " |")
    lines.append(
        "| import s | "
        + " | ".join(
            "failed"
            if "error" in r
            else str(r["import_s"] if r["import_s"] is not None else "in start-up")
            for r in results
        )
        + " |"
    )
    lines.append(
        "| HTML of the texts kept, s (steplens: a worker's job after an import) | "
        + " | ".join(str(r.get("html_fill_s", "")) for r in results)
        + " |"
    )
    lines.append(
        "| queue rows made, s (steplens: a worker's job after an import) | "
        + " | ".join(str(r.get("queue_rows_s", "")) for r in results)
        + " |"
    )
    lines.append(
        "| migrate s (Label Studio, apart) | "
        + " | ".join(str(r.get("migrate_s", "")) for r in results)
        + " |"
    )
    lines.append("| pages | " + " | ".join(cell(r, "pages", "page") for r in results) + " |")
    lines.append("| saves | " + " | ".join(cell(r, "saves", "save") for r in results) + " |")
    lines.append(
        "| saves read back | "
        + " | ".join(
            "failed"
            if "error" in r
            else f"{r['phases'][1].get('saves_checked')} checked, {r['phases'][1].get('saves_not_stored')} not stored"
            for r in results
        )
        + " |"
    )
    for phase in ("pages", "saves"):
        lines.append(
            f"| CPU-s per process ({phase}) | "
            + " | ".join(
                "failed"
                if "error" in r
                else "; ".join(
                    f"{k}: {v}"
                    for k, v in next(p for p in r["phases"] if p["phase"].endswith(phase))[
                        "cpu_s_per_process"
                    ].items()
                )
                for r in results
            )
            + " |"
        )
    if meta.get("ratios"):
        lines += ["", "Ratios (steplens / other, same run): " + json.dumps(meta["ratios"])]
    return "\n".join(lines) + "\n"


def ratios(results: list[dict]) -> dict[str, dict[str, float | None]]:
    ok = {r["tool"]: r for r in results if "phases" in r}
    if "steplens" not in ok:
        return {}

    def rate(r: dict, phase: str, kind: str) -> float | None:
        return next(p for p in r["phases"] if p["phase"].endswith(phase)).get(kind, {}).get("per_s")

    def p95(r: dict, phase: str, kind: str) -> float | None:
        return (
            next(p for p in r["phases"] if p["phase"].endswith(phase)).get(kind, {}).get("p95_ms")
        )

    me = ok["steplens"]
    out = {}
    for name, other in ok.items():
        if name == "steplens":
            continue
        out[f"steplens/{name}"] = {
            "pages_per_s": ratio(rate(me, "pages", "page"), rate(other, "pages", "page")),
            "saves_per_s": ratio(rate(me, "saves", "save"), rate(other, "saves", "save")),
            "pages_p95": ratio(p95(me, "pages", "page"), p95(other, "pages", "page")),
            "saves_p95": ratio(p95(me, "saves", "save"), p95(other, "saves", "save")),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument(
        "--traces", type=int, default=0, help="only the first N traces (0: all 3,320)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="gunicorn workers (steplens: 0, the config's default; labelstudio-pg: 0 = 3)",
    )
    parser.add_argument("--threads", type=int, default=0, help="as --workers (labelstudio-pg: 4)")
    parser.add_argument(
        "--worker-class", default="", help="steplens's gunicorn worker class (config's default)"
    )
    parser.add_argument("--venvs", type=Path, default=REPO / "var" / "side_by_side")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "side_by_side" / "results")
    parser.add_argument("--database-url", default=DATABASE_URL)
    parser.add_argument("--no-netns", action="store_true", help="do not make network namespaces")
    # internal: one tool, inside its namespace
    parser.add_argument("--inner-out", help=argparse.SUPPRESS)
    parser.add_argument("--own-redis", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pg-host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--admin-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.seconds = min(args.seconds, 120)
    args.venvs = args.venvs.resolve()
    if args.inner_out:
        run_inner(args)
        return

    tools = [t for t in args.tools.split(",") if t]
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        sys.exit(f"--tools: unknown {unknown}; known: {', '.join(TOOLS)}")
    for tool in {"labelstudio" if t.startswith("labelstudio") else t for t in tools} - {"steplens"}:
        print(f"installing {VERSIONS[tool]} into {install(tool, args.venvs)}", flush=True)
    netns = not args.no_netns and netns_usable()
    network = (
        "each tool (and the client) in a network namespace of its own, loopback only (unshare -n)"
        if netns
        else "no namespace (not root, or unshare/ip missing, or --no-netns): servers bind 127.0.0.1"
    )
    print(network, flush=True)
    results = []
    for name in tools:
        out = Path(tempfile.mkdtemp(prefix="side-by-side-")) / "result.json"
        db_url = socket_url(args.database_url, PG_SOCKET_DIR) if netns else args.database_url
        admin_url = db_url.rsplit("/", 1)[0] + "/postgres"
        inner = [
            sys.executable,
            "-m",
            "benchmarks.side_by_side",
            "--tools",
            name,
            "--seconds",
            str(args.seconds),
            "--clients",
            str(args.clients),
            "--traces",
            str(args.traces),
            "--workers",
            str(args.workers),
            "--threads",
            str(args.threads),
            "--worker-class",
            args.worker_class,
            "--venvs",
            str(args.venvs),
            "--database-url",
            db_url,
            "--admin-url",
            admin_url,
            "--pg-host",
            PG_SOCKET_DIR if netns else "127.0.0.1",
            "--inner-out",
            str(out),
        ]
        if netns:
            inner.append("--own-redis")
            command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *inner]
        else:
            command = inner
        t0 = time.perf_counter()
        done = subprocess.run(command, cwd=REPO)
        if done.returncode == 0 and out.exists():
            result = json.loads(out.read_text())
        else:
            result = {
                "tool": name,
                "shape": "",
                "error": f"exit status {done.returncode} (see above)",
            }
        result["wall_s"] = round(time.perf_counter() - t0, 1)
        results.append(result)
    meta: dict[str, object] = {
        "benchmark": "side_by_side",
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "clients": args.clients,
        "seconds": args.seconds,
        "traces": args.traces or 3320,
        "network": network,
        "cores": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
    }
    meta["ratios"] = ratios(results)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / f"side_by_side-{stamp}.json").write_text(
        json.dumps({**meta, "results": results}, indent=1)
    )
    (args.out / f"side_by_side-{stamp}.md").write_text(markdown(results, meta))
    print(markdown(results, meta))
    print(f"written: {args.out}/side_by_side-{stamp}.json and .md")
    if any("error" in r for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
