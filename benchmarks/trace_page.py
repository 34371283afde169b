"""Server time of the labelling page with 1,000,000 steps in PostgreSQL.

    python -m benchmarks.trace_page [--requests 300] [--keep] [--seed 0] [--database-url URL]

Builds (or, with --keep and an existing database, reuses) a PostgreSQL database holding the
generated corpus of benchmarks/corpus.py (125,000 traces x 8 steps), 50 annotators as members,
then times in-process requests through Django's full stack (middleware, session auth, template):
the trace page (GET /t/<id>/), one label save (the htmx POST of a click), and "next trace"
(GET /p/<slug>/next/, a redirect), and the same click as the labelling page's script sends it
(POST /api/traces/<id>/changes/, keyboard.js's change log: `label_changes`; since 2026-12-02).
Random traces, fixed seed. Prints p50/p95 and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from urllib.parse import urlencode

from benchmarks.million import (
    ANNOTATORS,
    million_step_database_ready,
    open_million_step_database,
)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/steplens_bench_page"


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * len(values)) - 1))]


def _database_ready(url: str) -> bool:
    return million_step_database_ready(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--keep", action="store_true", help="reuse the database if it is built")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="which random traces (another seed: others, not yet viewed)",
    )
    args = parser.parse_args()
    # As production runs (config/settings.py, docker-compose.yml): database connections kept
    # between requests (CONN_MAX_AGE 60), sessions read from Redis (its own database index).
    # Before 2026-12-01 22:40 this benchmark opened a new connection per request and read
    # sessions from PostgreSQL: a few ms more per request than a deployed server spends.
    os.environ["DATABASE_CONN_MAX_AGE"] = "60"
    os.environ.setdefault("CACHE_URL", "redis://127.0.0.1:6379/13")
    open_million_step_database(args.database_url, keep=args.keep)
    from django.contrib.auth import get_user_model
    from django.test import Client

    from annotate.models import Project, Step, Trace

    User = get_user_model()
    project = Project.objects.get(slug="bench")
    steps = Step.objects.filter(trace__project=project).count()
    trace_ids = list(Trace.objects.filter(project=project).values_list("pk", flat=True))
    print(f"{steps:,} steps, {len(trace_ids):,} traces, {ANNOTATORS} annotators")

    rng = random.Random(args.seed)
    clients = []
    for i in range(ANNOTATORS):
        client = Client()
        client.force_login(User.objects.get(username=f"annotator{i}"))
        clients.append(client)

    timings: dict[str, list[float]] = {
        "trace_page": [],
        "label_changes": [],
        "label_save": [],
        "next": [],
    }
    seqs = [0] * ANNOTATORS  # each client's change numbers (one change log per client)
    change_rng = random.Random(args.seed + 1_000_000)
    for n in range(args.requests + 10):
        client = clients[n % ANNOTATORS]
        trace_id = rng.choice(trace_ids)
        t0 = time.perf_counter()
        page = client.get(f"/t/{trace_id}/")
        t1 = time.perf_counter()
        # The click as the page's script sends it first (on a trace not yet seen: a first label,
        # which makes the annotation and takes a slot), then the htmx form's (a later label).
        # Its own random numbers, so a seed still picks the traces it picked before 2026-12-02.
        seqs[n % ANNOTATORS] += 1
        change = {"seq": seqs[n % ANNOTATORS], "op": "label", "index": change_rng.randrange(8)}
        change["value"] = change_rng.choice([1, -1])
        changes = client.post(
            f"/api/traces/{trace_id}/changes/",
            json.dumps({"client": f"bench-{args.seed}-{os.getpid()}", "changes": [change]}),
            content_type="application/json",
        )
        t_changes_end = time.perf_counter()
        # Form-encoded, as htmx sends the form (the test client's default for a dict is
        # multipart, which Django parses more slowly: about 0.2 ms; multipart until 2026-12-03).
        save = client.post(
            f"/t/{trace_id}/steps/{rng.randrange(8)}/label/",
            urlencode({"value": rng.choice(["1", "-1"])}),
            content_type="application/x-www-form-urlencoded",
            headers={"HX-Request": "true"},
        )
        t2 = time.perf_counter()
        nxt = client.get(f"/p/{project.slug}/next/")
        t3 = time.perf_counter()
        assert page.status_code == 200 and save.status_code == 200, (
            page.status_code,
            save.status_code,
        )
        assert changes.status_code == 200, changes.content[:300]
        assert nxt.status_code == 302, nxt.status_code
        if n >= 10:  # warm-up: connections, template loading
            timings["trace_page"].append((t1 - t0) * 1000)
            timings["label_changes"].append((t_changes_end - t1) * 1000)
            timings["label_save"].append((t2 - t_changes_end) * 1000)
            timings["next"].append((t3 - t2) * 1000)

    result: dict[str, object] = {
        "benchmark": "trace_page",
        "steps": steps,
        "requests": args.requests,
        "seed": args.seed,
    }
    for name, values in timings.items():
        p50, p95 = statistics.median(values), _pct(values, 0.95)
        print(f"{name:>13}: p50 {p50:6.1f} ms   p95 {p95:6.1f} ms")
        result[f"{name}_p50_ms"] = round(p50, 1)
        result[f"{name}_p95_ms"] = round(p95, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
