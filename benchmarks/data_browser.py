"""Server time of the data browser with 1,000,000 steps in PostgreSQL.

    python -m benchmarks.data_browser [--requests 40] [--keep] [--database-url URL] [--only TEXT]

Builds (or, with --keep, reuses) the million-step database of benchmarks/million.py (125,000
traces x 8 steps, 50 annotators), then once, untimed: a scorer whose step scores are a fixed hash
of the step id (1,000,000 StepScore rows, written with INSERT ... SELECT), the stored per-trace
verdicts through the real `review.services.priorities_refresh`, submitted annotations on every
tenth trace, and a rare word ("zebra") in 125 steps. Then times, in process through Django's whole
stack as a project reviewer, the data page (`GET /p/bench/data/?...`: filter + count + first page
of 50 + the filter's choices, rendered) for a set of filters, and full-text searches for a rare and
a common word. Prints p50 / p95 per query and a final JSON line. Targets (issue 15): filter + first
page p95 200 ms or less, full-text search p95 500 ms or less.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time

from benchmarks.million import TRACES, million_step_database_ready, open_million_step_database

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/steplens_bench_data"
SCORER = "bench-prm"

FILTERS = {
    "no filter": "",
    "PRM says wrong, no label yet": "prm=wrong&status=unlabelled",
    "submitted": "status=submitted",
    "lowest score <= 0.1, sorted by it": "prm_min_lte=0.1&sort=prm_min",
    "generator + final answer wrong": "generator={generator}&correct=no",
    "8 steps or more, page 100": "steps_gte=8&page=100",
    "flagged": "flagged=yes",
}
SEARCHES = {
    "rare word (125 steps)": "q=zebra",
    "common word (about half the steps)": "q=triangle",
    "rare word + PRM says wrong": "q=zebra&prm=wrong",
}


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * len(values)) - 1))]


def _ready(url: str) -> bool:
    """The corpus AND this benchmark's scores are there (--keep reuses both)."""
    if not million_step_database_ready(url):
        return False
    import psycopg

    try:
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM annotate_tracepriority WHERE prm_min IS NOT NULL"
            ).fetchone()
            return row is not None and row[0] >= TRACES
    except Exception:
        return False


def _add_scores_labels_and_a_rare_word() -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from annotate.models import Annotation, AnnotationStatus, Project, Trace
    from review import services as queues
    from scoring import services as scoring_services
    from scoring.models import RunStatus, ScoreRun

    project = Project.objects.get(slug="bench")
    scorer = scoring_services.scorer_create(name=SCORER, backend="tool", projects=[project])
    started = time.perf_counter()
    ids = list(Trace.objects.filter(project=project).values_list("pk", flat=True))
    now = timezone.now()
    ScoreRun.objects.bulk_create(
        [
            ScoreRun(
                trace_id=i,
                scorer=scorer,
                scorer_version=1,
                status=RunStatus.DONE,
                imported=True,
                queued_at=now,
                finished_at=now,
            )
            for i in ids
        ],
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        # 1 - u^8 with u a fixed hash of the step id in [0, 1): most steps score high, about half
        # of the traces have a step at or below 0.5.
        cursor.execute(
            """
            INSERT INTO scoring_stepscore (run_id, step_id, score, details)
            SELECT r.id, s.id,
                   1 - power(((s.id::bigint * 2654435761) %% 4294967296) / 4294967296.0, 8),
                   '{}'::jsonb
            FROM scoring_scorerun r JOIN annotate_step s ON s.trace_id = r.trace_id
            WHERE r.scorer_id = %s
            """,
            [scorer.pk],
        )
        # A rare word in 125 steps (every 8,000th), for the full-text search of a rare term.
        cursor.execute(
            "UPDATE annotate_step SET text = text || ' zebra' WHERE id %% 8000 = 0 AND trace_id IN "
            "(SELECT id FROM annotate_trace WHERE project_id = %s)",
            [project.pk],
        )
    print(f"scores written in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    queues.priorities_refresh(project=project)
    print(f"priorities refreshed in {time.perf_counter() - started:.1f} s")
    annotators = list(get_user_model().objects.filter(username__startswith="annotator"))
    Annotation.objects.bulk_create(
        [
            Annotation(
                trace_id=trace_id,
                annotator=annotators[n % len(annotators)],
                status=AnnotationStatus.SUBMITTED,
                submitted_at=now,
                active_seconds=60.0,
            )
            for n, trace_id in enumerate(ids[::10])
        ],
        batch_size=5000,
        ignore_conflicts=True,
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="timed requests per query")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--keep", action="store_true", help="reuse the database if it is built")
    parser.add_argument(
        "--only", default="", help="time only the queries whose name contains this text"
    )
    args = parser.parse_args()
    reused = open_million_step_database(args.database_url, keep=args.keep, ready=_ready)
    if not reused:
        _add_scores_labels_and_a_rare_word()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from annotate import services
    from annotate.models import Project, Trace

    project = Project.objects.get(slug="bench")
    reviewer, _ = get_user_model().objects.get_or_create(username="bench-reviewer")
    services.membership_set(project=project, user=reviewer, role="reviewer")
    client = Client()
    client.force_login(reviewer)
    generator = (
        Trace.objects.filter(project=project)
        .exclude(generator="")
        .values_list("generator", flat=True)
        .first()
    ) or ""
    results = {}
    for group in (FILTERS, SEARCHES):
        for name, query in group.items():
            if args.only not in name:
                continue
            url = "/p/bench/data/?" + query.format(generator=generator)
            for _ in range(3):  # warm-up
                response = client.get(url)
                assert response.status_code == 200, (url, response.status_code)
            times = []
            for _ in range(args.requests):
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
            found = re.search(r'data-testid="data-total">(\d+)<', response.content.decode())
            total = int(found[1]) if found else -1
            results[name] = {
                "query": query.format(generator=generator),
                "matches": total,
                "p50_ms": round(statistics.median(times), 1),
                "p95_ms": round(_pct(times, 0.95), 1),
            }
            print(
                f"{name:40} {total:>7} traces  p50 {results[name]['p50_ms']:7.1f} ms  "
                f"p95 {results[name]['p95_ms']:7.1f} ms"
            )
    print(json.dumps({"benchmark": "data_browser", "requests": args.requests, "results": results}))


if __name__ == "__main__":
    main()
