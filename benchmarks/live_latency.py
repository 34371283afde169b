"""Live scoring latency: from a trace opened to every step score in the page's panel.

Real pieces only: PostgreSQL, Redis, a Celery worker process with a tiny offline step-head PRM
(built here with scoring.prm.tiny, loaded through from_pretrained), and the page's own endpoints
(the POST that opens the trace's scores, then the panel the page polls, sooner at first).

    python -m benchmarks.live_latency [--traces 40] [--backend step_head|tool]

Prints p50 / p95 / max in ms and, as the last line, a JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DB_NAME = "steplens_bench_live"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def _recreate_database() -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + DB_NAME


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=40)
    parser.add_argument("--backend", choices=["step_head", "tool"], default="step_head")
    args = parser.parse_args()

    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "benchmark-only",
        "DJANGO_DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "ALLOWED_HOSTS": "testserver,localhost",
        "DATABASE_URL": _recreate_database(),
        "CELERY_BROKER_URL": REDIS_URL,
        "STEPLENS_VAR_DIR": tempfile.mkdtemp(prefix="steplens-bench-live-"),
        "STEPLENS_WORKER_HEARTBEAT_SECONDS": "1",
    }
    os.environ.update(env)
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from annotate import imports, services
    from scoring import services as scoring_services
    from scoring.models import WorkerHeartbeat

    call_command("migrate", verbosity=0)
    project = services.project_create(slug="live")
    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    services.membership_set(project=project, user=user, role="annotator")
    data = REPO_ROOT / "data" / "processbench_sample.jsonl"
    with data.open("rb") as stream:
        imports.traces_import(
            project=project, stream=stream, filename=data.name, format="processbench"
        )

    model_path = ""
    if args.backend == "step_head":
        from scoring.prm.tiny import save_tiny_model, train_tokenizer

        records = [json.loads(line) for line in data.read_text().splitlines() if line]
        texts = [r["problem"] for r in records] + [s for r in records for s in r["steps"]]
        model_dir = Path(env["STEPLENS_VAR_DIR"]) / "tiny-step-head"
        model_path = str(save_tiny_model(model_dir, train_tokenizer(texts, vocab_size=800), seed=1))
    scorer = scoring_services.scorer_create(
        name="prm", backend=args.backend, model_path=model_path, projects=[project]
    )

    log = open(Path(env["STEPLENS_VAR_DIR"]) / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-n",
            "bench@%h",
            "-Q",
            "interactive,bulk",
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=REPO_ROOT,
        env={**os.environ},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not WorkerHeartbeat.objects.exists():
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit(f"worker did not start; see {log.name}")
            time.sleep(0.1)

        from scoring.views import poll_delay_ms

        client = Client()
        client.force_login(user)
        traces = list(project.traces.order_by("id")[: args.traces + 1])
        latencies = []
        for i, trace in enumerate(traces):
            steps = trace.steps.count()
            started = time.perf_counter()
            html = client.post(f"/scoring/traces/{trace.pk}/scores/open/").content.decode()
            poll = 0
            while not (
                'data-finished="true"' in html and html.count('data-testid="step-score"') == steps
            ):
                if "run-failed" in html or time.perf_counter() - started > 60:
                    raise SystemExit(f"trace {trace.pk} not scored in 60 s; see {log.name}")
                # as the page does: hx-trigger="load delay:<poll_delay_ms>ms", then ?poll=n+1
                time.sleep(poll_delay_ms(poll) / 1000)
                poll += 1
                html = client.get(
                    f"/scoring/traces/{trace.pk}/scores/?poll={poll}"
                ).content.decode()
            if i > 0:  # the first one includes loading the model into the worker
                latencies.append((time.perf_counter() - started) * 1000)
        latencies.sort()
        p50 = statistics.median(latencies)
        p95 = latencies[max(0, int(round(0.95 * len(latencies))) - 1)]
        print(
            f"{len(latencies)} traces, backend {scorer.backend}, polls after {poll_delay_ms(0)} ms, then more slowly"
        )
        print(
            f"open -> all step scores on the page: p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {latencies[-1]:.0f} ms"
        )
        print(
            json.dumps(
                {
                    "benchmark": "live_latency",
                    "backend": scorer.backend,
                    "traces": len(latencies),
                    "first_poll_ms": poll_delay_ms(0),
                    "p50_ms": round(p50, 1),
                    "p95_ms": round(p95, 1),
                    "max_ms": round(latencies[-1], 1),
                }
            )
        )
    finally:
        worker.terminate()
        worker.wait(timeout=20)


if __name__ == "__main__":
    main()
