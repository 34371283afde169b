"""Benchmark: import all of data/processbench/*.jsonl (3,320 traces, 25,101 steps) into fresh SQLite.

    python -m benchmarks.import_processbench [--runs 5]

Each run copies a freshly migrated, empty SQLite database, then times what a user's import does:
get or create the project, then traces_import() on each of the four files (read, parse and check
every record, write traces, steps and gold labels). Prints each run, the median, and a final JSON
line. Target (issue 2): 1 s or less.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FILES = sorted((REPO / "data" / "processbench").glob("*.jsonl"))
EXPECTED = {"traces": 3320, "steps": 25101, "gold_labels": 16150}


def _setup_django(workdir: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("SECRET_KEY", "benchmark-only-not-a-secret")
    os.environ["DJANGO_DEBUG"] = "0"  # DEBUG would record every query and slow the run down
    os.environ["STEPLENS_VAR_DIR"] = str(workdir / "var")
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="steplens-bench-"))
    try:
        _setup_django(workdir)
        from django.core.management import call_command
        from django.db import connections

        from annotate.imports import project_for_import, traces_import
        from annotate.models import GoldLabel, Step, Trace

        db = workdir / "bench.sqlite3"
        call_command("migrate", verbosity=0)
        connections.close_all()
        template = workdir / "template.sqlite3"
        shutil.copy(db, template)

        runs: list[float] = []
        for run in range(1, args.runs + 1):
            connections.close_all()
            for suffix in ("-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            shutil.copy(template, db)
            start = time.perf_counter()
            project, _ = project_for_import(slug="processbench-bench")
            for path in FILES:
                with path.open("rb") as stream:
                    traces_import(
                        project=project, stream=stream, filename=path.name, format="processbench"
                    )
            seconds = time.perf_counter() - start
            counts = {
                "traces": Trace.objects.count(),
                "steps": Step.objects.count(),
                "gold_labels": GoldLabel.objects.count(),
            }
            if counts != EXPECTED:
                raise SystemExit(f"wrong counts after the import: {counts} != {EXPECTED}")
            runs.append(seconds)
            print(f"run {run}: {seconds:.3f} s", flush=True)
        median = statistics.median(runs)
        print(f"median of {len(runs)}: {median:.3f} s (target: 1 s or less)")
        print(json.dumps({
            "benchmark": "import_processbench",
            "median_s": round(median, 3),
            "runs_s": [round(r, 3) for r in runs],
            **counts,
            "database": "sqlite",
            "cpu": cpu_name(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        }))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
