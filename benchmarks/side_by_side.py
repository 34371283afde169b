"""steplens, Potato 2.12.1 and Label Studio 1.23.2 measured side by side, one tool at a time, by
one client (issue 16).

    python -m benchmarks.side_by_side [--tools steplens,potato,labelstudio] [--seconds 20]
        [--clients 10] [--venvs var/side_by_side]

For each tool, alone on the machine: start-up (process start to the first answer), import of the
3,320 ProcessBench traces of data/processbench/, then two phases with `--clients` kept-alive
clients (benchmarks.load's asyncio client): pages only (random traces) and saves only (a label
on a random step). Per phase: rate, p50/p95/p99, errors, and CPU-seconds per server process
(per gunicorn worker for steplens, read from /proc). Saves are checked by reading them back: the
last value each client sent for each step must be the stored one.

Potato and Label Studio are installed into throwaway virtual environments under `--venvs`
(never project dependencies). STATUS (issue 16): only the steplens adapter is built and checked;
the installs run, but Potato's and Label Studio's adapters (configuration, import, log-in, save
and read-back) are not written yet: `--tools potato` / `labelstudio` stop with that message.
Network isolation to loopback (a network namespace per tool) is not done either: every server
binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import load

REPO = Path(__file__).resolve().parent.parent
VERSIONS = {"potato": "potato-annotation==2.12.1", "labelstudio": "label-studio==1.23.2"}
DATABASE_URL = "postgres://postgres@127.0.0.1:5432/steplens_bench_side_by_side"


def install(tool: str, venvs: Path) -> Path:
    """A virtual environment of its own for Potato or Label Studio (made once, then reused)."""
    venv = venvs / tool
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = subprocess.run(
        [str(python), "-m", "pip", "show", VERSIONS[tool].split("==")[0]],
        capture_output=True,
        text=True,
    )
    if f"Version: {VERSIONS[tool].split('==')[1]}" not in probe.stdout:
        subprocess.run([str(python), "-m", "pip", "install", "-q", VERSIONS[tool]], check=True)
    return venv


def cpu_seconds(pid: int) -> float:
    """User + system CPU-seconds of one process (/proc/<pid>/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


class SavesSeen:
    """The last value each client sent for each (user, trace, step), to read back after."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, int, int], int] = {}


async def _saves_loop(session, traces, deadline, stats, rng, user, seen):  # type: ignore[no-untyped-def]
    headers = {"X-CSRFToken": session.cookies["csrftoken"], "HX-Request": "true"}
    while time.perf_counter() < deadline:
        trace_id, steps = rng.choice(traces)
        index = rng.randrange(steps)
        value = rng.choice(["1", "-1"])
        t0 = time.perf_counter()
        status, _, _ = await session.request(
            "POST", f"/t/{trace_id}/steps/{index}/label/", {"value": value}, headers
        )
        stats.record("label_save", t0, status == 200, str(status))
        if status == 200:
            seen.last[(user, trace_id, index)] = int(value)


def steplens_read_back(url: str, seen: SavesSeen) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT u.username, a.trace_id, s.index, l.value FROM annotate_steplabel l "
            "JOIN annotate_annotation a ON a.id = l.annotation_id "
            "JOIN auth_user u ON u.id = a.annotator_id JOIN annotate_step s ON s.id = l.step_id"
        ).fetchall()
    stored = {(u, int(t), int(i)): v for u, t, i, v in rows}
    wrong = sum(stored.get(key) != value for key, value in seen.last.items())
    return {"saves_checked": len(seen.last), "saves_not_stored": wrong}


def run_steplens(args: argparse.Namespace) -> dict[str, object]:
    url = args.database_url
    started = time.perf_counter()
    load.prepare_processbench(url, keep=False, clients=args.clients)  # fresh: the import is timed
    import_s = time.perf_counter() - started
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env=load.server_env(url, Path(tempfile.mkdtemp(prefix="side-by-side-"))),
        check=True,
    )
    traces = load.corpus_ids(url, "processbench")
    ids = [t for t, _ in traces]
    users = [f"annotator{i}" for i in range(args.clients)]
    t0 = time.perf_counter()
    server = load.Gunicorn(url, workers=args.workers, threads=args.threads)
    startup_s = time.perf_counter() - t0
    result: dict[str, object] = {
        "tool": "steplens",
        "shape": f"gunicorn {args.workers} x {args.threads}, PostgreSQL",
        "import_s_incl_migrate": round(import_s, 2),
        "startup_s": round(startup_s, 2),
        "traces": len(traces),
        "phases": [],
    }
    try:
        deadline = time.monotonic() + 30
        while len(workers := children(server.process.pid)) < args.workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn started {len(workers)} of {args.workers} workers")
            time.sleep(0.1)
        for phase in ("pages", "saves"):
            seen = SavesSeen()
            if phase == "pages":

                def loop(s, d, st, r):  # type: ignore[no-untyped-def]
                    return load.pages_loop(s, ids, d, st, r)
            else:
                # one SavesSeen; the user is known by the session's position in `users`
                sessions_user: dict[int, str] = {}

                def loop(s, d, st, r, sessions_user=sessions_user, seen=seen):  # type: ignore[no-untyped-def]
                    user = sessions_user.setdefault(id(s), users[len(sessions_user)])
                    return _saves_loop(s, traces, d, st, r, user, seen)

            cpu_before = {pid: cpu_seconds(pid) for pid in [server.process.pid, *workers]}
            stats, elapsed = asyncio.run(
                load.run_phase(
                    port=server.port, users=users, seconds=args.seconds, make_loop=loop, seed=7
                )
            )
            row = load.report(f"steplens {phase}", stats, elapsed, args.clients)
            row["cpu_s_per_process"] = {
                ("master" if pid == server.process.pid else f"worker {pid}"): round(
                    cpu_seconds(pid) - before, 2
                )
                for pid, before in cpu_before.items()
            }
            if phase == "saves":
                row.update(steplens_read_back(url, seen))
            print(json.dumps(row))
            result["phases"].append(row)  # type: ignore[attr-defined]
    finally:
        server.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", default="steplens,potato,labelstudio")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--venvs", type=Path, default=REPO / "var" / "side_by_side")
    parser.add_argument("--database-url", default=DATABASE_URL)
    args = parser.parse_args()
    args.seconds = min(args.seconds, 120)
    results = []
    for tool in args.tools.split(","):
        if tool == "steplens":
            results.append(run_steplens(args))
            continue
        venv = install(tool, args.venvs)
        sys.exit(
            f"{tool}: installed in {venv}, but its adapter (configuration, import, log-in, saves "
            "read back) is not written yet (issue 16, item 1)"
        )
    print(json.dumps({"benchmark": "side_by_side", "results": results}))


if __name__ == "__main__":
    main()
