""" "Next trace" with 1,000,000 steps in PostgreSQL and 50 annotators taking leases at once.

    python -m benchmarks.next_trace [--rounds 20] [--requests 300] [--overlap 3] [--keep]

Builds (or, with --keep and a built database, reuses) a PostgreSQL database with the generated
corpus of benchmarks/corpus.py (125,000 traces x 8 steps), 50 annotators, overlap 3 and the
uncertainty strategy. The stored signals are filled with seeded random values (what
`priorities_refresh` writes after scoring; how they were computed does not change the cost of
"next"), then:

1. concurrency: 50 threads, one per annotator, each with its own database connection, loop
   `rounds` times: take the next trace (`queues.lease_next`, timed), submit it
   (`queues.assignment_on_submit`). Afterwards: no slot has two live holders, no trace more live
   assignments than the overlap, no annotator a trace twice.
2. the page: GET /p/bench/next/ through Django's full stack (middleware, session, redirect), one
   annotator after another, `requests` times, each followed by a submit.

Prints p50/p95 of both, the query plan of the candidate query, and a JSON line. Target
(issue 4): p95 20 ms or less.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import threading
import time
from collections import Counter

from benchmarks.million import (
    ANNOTATORS,
    TRACES,
    million_step_database_ready,
    open_million_step_database,
)
from benchmarks.trace_page import _pct

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/steplens_bench_next"


def _ready(url: str) -> bool:
    import psycopg

    if not million_step_database_ready(url):
        return False
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM annotate_tracepriority").fetchone()
        return row is not None and row[0] >= TRACES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="takes per annotator (threads)")
    parser.add_argument("--requests", type=int, default=300, help="page requests")
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--keep", action="store_true", help="reuse the database if it is built")
    args = parser.parse_args()
    os.environ["DATABASE_CONN_MAX_AGE"] = "60"
    reused = open_million_step_database(args.database_url, keep=args.keep, ready=_ready)
    from django.contrib.auth import get_user_model
    from django.db import connection, connections
    from django.test import Client

    from annotate.models import Project, Trace
    from review import services as queues
    from review.models import Assignment, AssignmentStatus, TracePriority

    User = get_user_model()
    if not reused:
        project = Project.objects.get(slug="bench")
        started = time.perf_counter()
        queues.priorities_refresh(project=project)
        print(f"priorities built for every trace in {time.perf_counter() - started:.1f} s")
        with connection.cursor() as cursor:  # stand-ins for refreshed signals, seeded
            cursor.execute("SELECT setseed(0.42)")
            cursor.execute(
                "UPDATE annotate_tracepriority SET uncertainty = random(), committee = random()"
            )
            cursor.execute("VACUUM ANALYZE")
    project = Project.objects.get(slug="bench")
    Project.objects.filter(pk=project.pk).update(overlap=args.overlap)
    project.refresh_from_db()
    # A clean start for every run: no leases, every slot open.
    Assignment.objects.filter(project=project).delete()
    TracePriority.objects.filter(project=project).update(open_slots=args.overlap)
    queues.strategy_set(project=project, strategy="uncertainty")
    steps = project.traces.count() * 8
    print(
        f"{Trace.objects.filter(project=project).count():,} traces, ~{steps:,} steps, "
        f"{ANNOTATORS} annotators, overlap {args.overlap}, strategy uncertainty"
    )

    users = list(User.objects.filter(username__startswith="annotator").order_by("pk"))
    assert len(users) == ANNOTATORS
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN SELECT trace_id FROM annotate_tracepriority WHERE project_id = %s "
            "AND open_slots > 0 ORDER BY priority DESC, trace_id LIMIT 1",
            [project.pk],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    print(plan)

    # 1. 50 annotators at once.
    timings: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(ANNOTATORS)

    def annotator(user) -> None:  # type: ignore[no-untyped-def]
        mine: list[float] = []
        try:
            barrier.wait()
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                trace = queues.lease_next(user=user, project=project)
                mine.append((time.perf_counter() - t0) * 1000)
                assert trace is not None
                trace.project = project
                queues.assignment_on_submit(user=user, trace=trace)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()
            with lock:
                timings.extend(mine[1:])  # the first take opens the thread's connection

    threads = [threading.Thread(target=annotator, args=(u,)) for u in users]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall
    if errors:
        raise SystemExit(f"{len(errors)} annotators failed: {errors[0]!r}")
    live = Assignment.objects.filter(project=project, status__in=["leased", "submitted"])
    slots = Counter(live.values_list("trace_id", "slot"))
    per_trace = Counter(live.values_list("trace_id", flat=True))
    pairs = Counter(live.values_list("trace_id", "annotator_id"))
    assert live.count() == ANNOTATORS * args.rounds, live.count()
    assert max(slots.values()) == 1, "two annotators hold one slot"
    assert max(per_trace.values()) <= args.overlap
    assert max(pairs.values()) == 1
    print(
        f"{ANNOTATORS} annotators x {args.rounds} takes in {wall:.1f} s: "
        f"{len(per_trace)} traces, no slot held twice"
    )
    concurrent = {"p50": statistics.median(timings), "p95": _pct(timings, 0.95)}

    # 2. The page, through the full stack.
    clients = []
    for user in users:
        client = Client()
        client.force_login(user)
        clients.append(client)
    rng = random.Random(0)
    page: list[float] = []
    for n in range(args.requests + 10):
        i = rng.randrange(ANNOTATORS)
        t0 = time.perf_counter()
        response = clients[i].get("/p/bench/next/")
        elapsed = (time.perf_counter() - t0) * 1000
        assert response.status_code == 302 and "/t/" in response["Location"], response
        trace = Trace.objects.select_related("project").get(
            pk=int(response["Location"].rstrip("/").rsplit("/", 1)[1])
        )
        queues.assignment_on_submit(user=users[i], trace=trace)
        if n >= 10:
            page.append(elapsed)
    sequential = {"p50": statistics.median(page), "p95": _pct(page, 0.95)}
    assert (
        Assignment.objects.filter(status=AssignmentStatus.SUBMITTED, project=project)
        .values("trace_id", "slot")
        .distinct()
        .count()
        == Assignment.objects.filter(status=AssignmentStatus.SUBMITTED, project=project).count()
    )

    print(f"lease_next, 50 at once: p50 {concurrent['p50']:.1f} ms  p95 {concurrent['p95']:.1f} ms")
    print(f"GET /p/bench/next/:     p50 {sequential['p50']:.1f} ms  p95 {sequential['p95']:.1f} ms")
    print(
        json.dumps(
            {
                "benchmark": "next_trace",
                "traces": per_trace and Trace.objects.filter(project=project).count(),
                "annotators": ANNOTATORS,
                "overlap": args.overlap,
                "concurrent_takes": len(timings),
                "concurrent_p50_ms": round(concurrent["p50"], 1),
                "concurrent_p95_ms": round(concurrent["p95"], 1),
                "page_requests": len(page),
                "page_p50_ms": round(sequential["p50"], 1),
                "page_p95_ms": round(sequential["p95"], 1),
            }
        )
    )


if __name__ == "__main__":
    main()
