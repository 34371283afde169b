"""Benchmark: peak memory of traces_import() against the size of the file (issue 11, item 8).

    python -m benchmarks.import_memory [--sizes 10MB,100MB,1Msteps,10MBnested]
        [--database-url postgres://postgres@127.0.0.1:5432/steplens_memory]

For each size, a ProcessBench-like JSON Lines corpus (benchmarks/corpus.py) is written (untimed),
the database named in the URL is dropped, re-created and migrated, and a fresh child process
imports the file with traces_import() (the code path of the import page, the API, the worker and
`import_traces`). The child resets its peak resident set (/proc/self/clear_refs) once Django is
set up, so the figure is what the import itself added: peak RSS during the import minus RSS
before it. `10MBnested` gives every record a metadata object nested 12 levels deep (the shape
that cost the most before). Prints a row per size and a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.import_million_steps import _drop_database, _recreate_database, _setup_django

REPO = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/steplens_memory"
BYTES_PER_TRACE = 2387  # benchmarks/corpus.py at 8 steps a trace (measured: 1,000 traces, 2.39 MB)
SIZES = {
    "10MB": {"traces": 10_000_000 // BYTES_PER_TRACE},
    "100MB": {"traces": 100_000_000 // BYTES_PER_TRACE},
    "1Msteps": {"traces": 125_000},
    "10MBnested": {"traces": 10_000_000 // (BYTES_PER_TRACE + 400), "nested": True},
}


def _nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {"leaf": [1, 2, 3], "note": "x" * 8}
    for level in range(depth):
        value = {f"level{level}": value, "tags": ["a", "b"]}
    return value


def write_file(path: Path, *, traces: int, nested: bool = False) -> dict[str, int]:
    from benchmarks.corpus import iter_traces

    counts = {"traces": 0, "steps": 0}
    with path.open("w", encoding="utf-8") as f:
        for record in iter_traces(traces=traces, steps_per_trace=8):
            if nested:
                record["metadata"] = {"run": _nested(12)}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            counts["traces"] += 1
            counts["steps"] += len(record["steps"])
    counts["bytes"] = path.stat().st_size
    return counts


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(path: Path, url: str, workdir: Path) -> None:
    """Import `path` into a migrated database; print one JSON line with the memory it took."""
    _setup_django(workdir, url)
    from annotate.imports import project_for_import, traces_import

    project, _ = project_for_import(slug="memory")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    with path.open("rb") as stream:
        result = traces_import(project=project, stream=stream, filename=path.name, format="jsonl")
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    print(
        json.dumps(
            {
                "rss_before_mib": round(before / 1024, 1),
                "peak_added_mib": round((peak - before) / 1024, 1),
                "seconds": round(seconds, 1),
                "steps": result.steps_created,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10MB,100MB,1Msteps,10MBnested")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.database_url, args.workdir)
        return
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="steplens-memory-"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        for name in args.sizes.split(","):
            corpus = workdir / f"{name}.jsonl"
            counts = write_file(corpus, **SIZES[name])  # type: ignore[arg-type]
            _recreate_database(args.database_url)
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "-v0"],
                cwd=REPO,
                check=True,
                env={
                    **env,
                    "DATABASE_URL": args.database_url,
                    "SECRET_KEY": "benchmark-only-not-a-secret",
                    "STEPLENS_VAR_DIR": str(workdir / "var"),
                },
            )
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.import_memory", "--child", str(corpus)]
                + ["--workdir", str(workdir), "--database-url", args.database_url],
                cwd=REPO,
                check=True,
                env=env,
                capture_output=True,
                text=True,
            ).stdout
            measured = json.loads(out.strip().splitlines()[-1])
            row = {
                "size": name,
                "file_mib": round(counts["bytes"] / 2**20, 1),
                "steps": counts["steps"],
                **measured,
                "ratio": round(measured["peak_added_mib"] / (counts["bytes"] / 2**20), 2),
            }
            rows.append(row)
            print(
                f"{name:>11}: {row['file_mib']:7.1f} MiB file, {row['steps']:>9,} steps: "
                f"peak +{row['peak_added_mib']:7.1f} MiB ({row['ratio']:.2f}x the file), "
                f"{row['seconds']:.1f} s",
                flush=True,
            )
            corpus.unlink()
    finally:
        _drop_database(args.database_url)
    print(json.dumps({"import_memory": rows}))


if __name__ == "__main__":
    main()
