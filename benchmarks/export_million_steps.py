"""Benchmark: export 1,000,000 labelled steps from PostgreSQL to `trl` JSONL (and 100,000, for memory).

    python -m benchmarks.export_million_steps [--runs 3] [--keep]
        [--database-url postgres://postgres@127.0.0.1:5432/steplens_bench_export]

Setup, untimed: the database named in the URL is dropped and re-created, migrated, and two
projects are imported from corpora of benchmarks/corpus.py (ProcessBench-like step lengths, 8 steps
a trace, 8 traces a problem, gold +1 up to an optional first wrong step, unlabelled after it):
`bench-100k` with about 100,000 labelled steps and `bench-1m` with about 1,000,000.
Timed: each run, in a fresh child process, creates a snapshot and builds it (annotate.exports:
stream the rows from PostgreSQL, write train/test JSONL with a 10% split by problem, sha256, card).
The child reports its wall time, its resident memory before the export and its peak resident
memory (VmHWM), so the memory the export adds can be compared at the two sizes. Target (issue
5): 20 s or less for 1,000,000 steps; peak memory the same at both sizes. The database is dropped at
the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/steplens_bench_export"
# Traces giving about 100,000 and 1,000,000 labelled steps with the corpus' defaults (5.9 labelled
# steps a trace on average: 40% of traces all correct, 60% labelled up to a uniform first error).
SIZES = {"bench-100k": 17_000, "bench-1m": 170_000}


def _admin_execute(url: str, *statements: str) -> None:
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.format(name=parts.path.lstrip("/")))  # type: ignore[arg-type]


def _django(url: str, var_dir: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["STEPLENS_VAR_DIR"] = var_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def _status_kib(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process. Not ru_maxrss: Linux carries that over an
    exec from the parent, which here imported the corpora."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def child(slug: str, run: int) -> None:
    """One timed export in this (fresh) process; prints one JSON line."""
    from annotate.models import Project
    from snapshots import services as exports

    project = Project.objects.get(slug=slug)
    project.traces.exists()  # connection and ORM warm
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    snapshot = exports.export_snapshot_create(
        project=project, user=None, name=f"run{run}", format="trl", test_fraction=0.1, enqueue=False
    )
    snapshot = exports.export_snapshot_build(snapshot_id=snapshot.pk)
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    print(
        json.dumps(
            {
                "slug": slug,
                "seconds": round(seconds, 2),
                "labelled_steps": snapshot.stats["steps"],
                "rows": snapshot.row_counts,
                "bytes": sum(f["bytes"] for f in snapshot.files),
                "rss_before_mib": round(before / 1024, 1),
                "peak_rss_mib": round(peak / 1024, 1),
            }
        )
    )


def setup(url: str) -> dict[str, int]:
    from django.core.management import call_command

    from annotate.imports import project_for_import, traces_import
    from benchmarks.corpus import write_corpus

    call_command("migrate", verbosity=0)
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for slug, traces in SIZES.items():
            path = Path(tmp) / f"{slug}.jsonl"
            written = write_corpus(path, traces=traces, steps_per_trace=8, seed=5)
            project, _ = project_for_import(slug=slug)
            with path.open("rb") as stream:
                traces_import(project=project, stream=stream, filename=path.name, format="jsonl")
            counts[slug] = written["gold_labels"]
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--child", nargs=2, metavar=("SLUG", "RUN"), help=argparse.SUPPRESS)
    parser.add_argument("--var-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _django(args.database_url, args.var_dir)
        child(args.child[0], int(args.child[1]))
        return

    var_dir = tempfile.mkdtemp(prefix="steplens-bench-export-")
    _admin_execute(
        args.database_url, "DROP DATABASE IF EXISTS {name} WITH (FORCE)", "CREATE DATABASE {name}"
    )
    try:
        _django(args.database_url, var_dir)
        start = time.perf_counter()
        labelled = setup(args.database_url)
        print(
            f"setup (untimed): {labelled} gold labels imported in {time.perf_counter() - start:.0f} s"
        )
        results: dict[str, list[dict[str, object]]] = {}
        for slug in SIZES:
            for run in range(1, args.runs + 1):
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.export_million_steps",
                        "--child",
                        slug,
                        str(run),
                        "--database-url",
                        args.database_url,
                        "--var-dir",
                        var_dir,
                    ],
                    cwd=REPO,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                result = json.loads(out.stdout.strip().splitlines()[-1])
                results.setdefault(slug, []).append(result)
                print(f"{slug} run {run}: {json.dumps(result)}")
        summary = {
            slug: {
                "labelled_steps": runs[0]["labelled_steps"],
                "median_seconds": statistics.median(float(r["seconds"]) for r in runs),  # type: ignore[arg-type]
                "rss_before_mib": max(float(r["rss_before_mib"]) for r in runs),  # type: ignore[arg-type]
                "peak_rss_mib": max(float(r["peak_rss_mib"]) for r in runs),  # type: ignore[arg-type]
            }
            for slug, runs in results.items()
        }
        print(
            json.dumps(
                {
                    "benchmark": "export_million_steps",
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "results": summary,
                }
            )
        )
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            _admin_execute(args.database_url, "DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        import shutil

        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
