"""Benchmark: import a generated corpus of 1,000,000 steps into PostgreSQL through traces_import().

    python -m benchmarks.import_million_steps [--runs 3] [--traces 125000] [--steps 8]
        [--database-url postgres://postgres@127.0.0.1:5432/steplens_bench]

The corpus (benchmarks/corpus.py: 125,000 traces x 8 steps, ProcessBench-like step lengths, gold
labels on ~70% of the steps, 8 traces per problem) is written once, untimed. Each run drops and
re-creates the database named in the URL, migrates it (untimed), then times get-or-create project
+ traces_import() of the file: read, parse and check every record, then write problems, traces,
steps and gold labels in one transaction. Prints each run, the median, the peak resident memory
of the process, and a final JSON line. Target (issue 2): 60 s or less. The database is dropped at
the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/steplens_bench"


def _recreate_database(url: str) -> None:
    """DROP and CREATE the database of `url`, through the server's `postgres` database."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _drop_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(parts.path.lstrip("/"))
            )
        )


def _setup_django(workdir: Path, url: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("SECRET_KEY", "benchmark-only-not-a-secret")
    os.environ["DJANGO_DEBUG"] = "0"  # DEBUG would keep every query in memory
    os.environ["STEPLENS_VAR_DIR"] = str(workdir / "var")
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")  # benchmarks.trace_page: as production
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def rss_mib() -> float:
    """Resident memory now (from /proc), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--traces", type=int, default=125_000)
    parser.add_argument("--steps", type=int, default=8, help="steps per trace")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    args = parser.parse_args()

    from benchmarks.corpus import write_corpus
    from benchmarks.import_processbench import cpu_name

    workdir = Path(tempfile.mkdtemp(prefix="steplens-bench-"))
    try:
        corpus = workdir / "corpus.jsonl"
        start = time.perf_counter()
        written = write_corpus(corpus, traces=args.traces, steps_per_trace=args.steps)
        print(
            f"corpus: {written['traces']:,} traces, {written['steps']:,} steps, "
            f"{written['gold_labels']:,} gold labels, {written['bytes'] / 2**20:.0f} MiB "
            f"(written in {time.perf_counter() - start:.1f} s, untimed)",
            flush=True,
        )
        _setup_django(workdir, args.database_url)
        from django.core.management import call_command
        from django.db import connections

        from annotate.imports import project_for_import, traces_import
        from annotate.models import GoldLabel, Step, Trace

        runs: list[float] = []
        rss_before = rss_mib()
        for run in range(1, args.runs + 1):
            connections.close_all()
            _recreate_database(args.database_url)
            call_command("migrate", verbosity=0)
            start = time.perf_counter()
            project, _ = project_for_import(slug="million-steps")
            with corpus.open("rb") as stream:
                result = traces_import(
                    project=project, stream=stream, filename=corpus.name, format="jsonl"
                )
            seconds = time.perf_counter() - start
            counts = {
                "traces": Trace.objects.count(),
                "steps": Step.objects.count(),
                "gold_labels": GoldLabel.objects.count(),
            }
            expected = {k: written[k] for k in counts}
            if counts != expected:
                raise SystemExit(f"wrong counts after the import: {counts} != {expected}")
            runs.append(seconds)
            print(f"run {run}: {seconds:.1f} s  ({result.summary()})", flush=True)
        connections.close_all()
        _drop_database(args.database_url)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        median = statistics.median(runs)
        print(f"median of {len(runs)}: {median:.1f} s (target: 60 s or less)")
        print(f"peak RSS: {peak:.0f} MiB (before the first import: {rss_before:.0f} MiB)")
        print(json.dumps({
            "benchmark": "import_million_steps",
            "median_s": round(median, 2),
            "runs_s": [round(r, 2) for r in runs],
            **counts,
            "file_mib": round(written["bytes"] / 2**20, 1),
            "peak_rss_mib": round(peak),
            "rss_before_import_mib": round(rss_before),
            "database": "postgresql",
            "cpu": cpu_name(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        }))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
