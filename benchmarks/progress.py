"""The labelling page's progress ("12 / 40 done") against how much the annotator has done.

    python -m benchmarks.progress [--passes 0,100,1000,10000] [--in-progress N] [--calls 200]
                                  [--database-url URL]

On the million-step PostgreSQL database of benchmarks/million.py (built first if missing, as
`python -m benchmarks.trace_page --keep` builds it): for each number of passes P, a new annotator
of project "bench" is given P submitted annotations of random traces (and N more passes left in
progress, as skipped or abandoned traces leave them), the project's kept
counts are counted again as an import does (`counts.project_filled_recount`), the tables are
ANALYZEd, and `selectors.labelling_progress` is called `--calls` times for that annotator;
p50/p95 in ms. The annotator and its annotations are deleted afterwards (and the counts counted
again), so the database is left as it was. Prints a JSON line per P.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from benchmarks.million import open_million_step_database
from benchmarks.trace_page import _pct

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/steplens_bench_page"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", default="0,100,1000,10000")
    parser.add_argument("--in-progress", type=int, default=0)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    open_million_step_database(args.database_url, keep=True)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from annotate import counts, selectors
    from annotate.models import Annotation, AnnotationStatus, Project, Trace

    User = get_user_model()
    project = Project.objects.get(slug="bench")
    trace_ids = list(Trace.objects.filter(project=project).values_list("pk", flat=True))
    rng = random.Random(args.seed)
    for passes in [int(p) for p in args.passes.split(",")]:
        User.objects.filter(username="progress-bench").delete()
        user = User.objects.create_user("progress-bench")
        try:
            now = timezone.now()
            picked = rng.sample(trace_ids, passes + args.in_progress)
            Annotation.objects.bulk_create(
                [
                    Annotation(
                        trace_id=trace_id,
                        annotator=user,
                        status=AnnotationStatus.SUBMITTED,
                        submitted_at=now,
                    )
                    for trace_id in picked[:passes]
                ]
                + [Annotation(trace_id=trace_id, annotator=user) for trace_id in picked[passes:]],
                batch_size=2000,
            )
            counts.project_filled_recount(project_id=project.pk)
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
            project.refresh_from_db()
            progress = selectors.labelling_progress(user=user, project=project)
            timings = []
            for _ in range(args.calls):
                started = time.perf_counter()
                selectors.labelling_progress(user=user, project=project)
                timings.append((time.perf_counter() - started) * 1000)
        finally:
            user.delete()
            counts.project_filled_recount(project_id=project.pk)
        result = {
            "passes": passes,
            "in_progress": args.in_progress,
            "done": progress.done,
            "assigned": progress.assigned,
            "p50_ms": round(statistics.median(timings), 3),
            "p95_ms": round(_pct(timings, 0.95), 3),
        }
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
