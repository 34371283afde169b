"""Benchmark: `manage.py prm_report --json` over all of ProcessBench (3,320 traces, 25,101 steps).

    python -m benchmarks.prm_report [--runs 5] [--database-url postgres://...]

Untimed setup: a fresh database (SQLite in a temporary directory by default, or the PostgreSQL
database named by --database-url, dropped and re-created), migrated; data/processbench/*.jsonl
imported; a scorer whose scores are generated deterministically from each record's label (noisy:
right steps mostly high, the first wrong step mostly low, later steps anywhere) and loaded through
scoring.services.scores_import, as scores computed elsewhere are. Timed: the report command
in-process (call_command, JSON to a buffer) per run, and once as a fresh process
(`python manage.py prm_report ... --json`, Django start-up included). The reported ProcessBench
numbers are checked against the reference formula computed straight from the JSON files and the
generated scores. Target (issue 4): 2 s or less.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FILES = sorted((REPO / "data" / "processbench").glob("*.jsonl"))


def synthetic_scores(record: dict, rng: random.Random) -> list[float]:
    """A PRM that is right most of the time: clear-cut, but not perfect."""
    label = record["label"]
    scores = []
    for i in range(len(record["steps"])):
        if label == -1 or i < label:
            s = rng.betavariate(5, 1.5)
        elif i == label:
            s = rng.betavariate(1.5, 4)
        else:
            s = rng.random()
        scores.append(round(s, 6))
    return scores


def reference_processbench(records: list[dict], scores: dict[str, list[float]], t: float) -> dict:
    """ProcessBench's formula, written out independently of scoring.prm.metrics."""
    err_hits = err_n = ok_hits = ok_n = 0
    for r in records:
        # A step is right only when its score is above t (PRMBench's `item > threshold`).
        pred = next((i for i, s in enumerate(scores[r["id"]]) if not s > t), -1)
        if r["label"] == -1:
            ok_n += 1
            ok_hits += pred == -1
        else:
            err_n += 1
            err_hits += pred == r["label"]
    acc_e, acc_c = err_hits / err_n, ok_hits / ok_n
    return {"acc_error": acc_e, "acc_correct": acc_c, "f1": 2 * acc_e * acc_c / (acc_e + acc_c)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="steplens-bench-report-"))
    url = args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}"
    if args.database_url:
        from benchmarks.import_million_steps import _recreate_database

        _recreate_database(url)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("SECRET_KEY", "benchmark-only-not-a-secret")
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ["STEPLENS_VAR_DIR"] = str(workdir / "var")
    os.environ["DATABASE_URL"] = url
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    from annotate.imports import project_for_import, traces_import
    from scoring import services

    call_command("migrate", verbosity=0)
    project, _ = project_for_import(slug="processbench")
    for path in FILES:
        with path.open("rb") as stream:
            traces_import(project=project, stream=stream, filename=path.name, format="processbench")
    records = [json.loads(line) for path in FILES for line in path.open(encoding="utf-8")]
    rng = random.Random(0)
    scores = {r["id"]: synthetic_scores(r, rng) for r in records}
    scorer = services.scorer_create(name="synthetic", backend="tool", projects=[project])
    payload = "\n".join(json.dumps({"trace_id": k, "scores": v}) for k, v in scores.items())
    started = time.perf_counter()
    services.scores_import(
        project=project,
        scorer=scorer,
        stream=io.BytesIO(payload.encode()),
        filename="synthetic.jsonl",
    )
    setup_s = time.perf_counter() - started
    steps = sum(len(v) for v in scores.values())
    print(f"{len(records)} traces, {steps} steps scored (scores import {setup_s:.1f} s, untimed)")

    runs: list[float] = []
    report: dict = {}
    for run in range(1, args.runs + 1):
        out = io.StringIO()
        t0 = time.perf_counter()
        call_command(
            "prm_report",
            "--project",
            "processbench",
            "--scorer",
            "synthetic",
            "--json",
            stdout=out,
        )
        runs.append(time.perf_counter() - t0)
        report = json.loads(out.getvalue())
        print(f"run {run}: {runs[-1]:.3f} s", flush=True)
    reference = reference_processbench(records, scores, 0.5)
    for key, value in reference.items():
        if abs(report["processbench"][key] - value) > 1e-12:
            raise SystemExit(f"processbench {key}: {report['processbench'][key]} != {value}")
    assert report["traces"] == len(records) and report["steps"] == steps == 25101, report["steps"]

    env = dict(os.environ)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "prm_report",
            "--project",
            "processbench",
            "--scorer",
            "synthetic",
            "--json",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    process_s = time.perf_counter() - t0
    assert json.loads(proc.stdout)["processbench"] == report["processbench"]
    median = statistics.median(runs)
    print(
        f"median of {len(runs)} in-process: {median:.3f} s; as a fresh process: {process_s:.3f} s"
        " (target: 2 s or less)"
    )
    print(
        f"ProcessBench F1 {report['processbench']['f1']:.4f} (= the reference formula), "
        f"PRMBench {report['prmbench']['score']:.4f}, AUROC {report['auroc']:.4f}, "
        f"ECE positive class {report['ece']:.4f}, top label {report['ece_top_label']:.4f}"
    )
    print(
        json.dumps(
            {
                "benchmark": "prm_report",
                "database": url.split(":", 1)[0],
                "traces": len(records),
                "steps": steps,
                "median_s": round(median, 3),
                "runs_s": [round(r, 3) for r in runs],
                "process_s": round(process_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
