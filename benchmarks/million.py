"""The million-step PostgreSQL corpus shared by the page, queue and load benchmarks.

125,000 generated traces x 8 steps (benchmarks/corpus.py) imported through the real import
service into project "bench", with 50 annotators as members ("annotator0" ... "annotator49").
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.corpus import write_corpus

ANNOTATORS = 50
TRACES = 125_000
STEPS_PER_TRACE = 8
PASSWORD = "bench-password-1"


def million_step_database_ready(url: str) -> bool:
    """Whether `url` already holds the corpus (so that --keep can skip building it)."""
    import psycopg

    try:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM annotate_step").fetchone()
            return row is not None and row[0] >= TRACES * STEPS_PER_TRACE
    except Exception:
        return False


def build_million_step_database(workdir: Path) -> None:
    """Into the migrated, empty database Django is set up with: the corpus and the annotators."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotate import imports, services

    corpus = workdir / "corpus.jsonl"
    write_corpus(corpus, traces=TRACES, steps_per_trace=STEPS_PER_TRACE)
    project, _ = imports.project_for_import(slug="bench")
    started = time.perf_counter()
    with corpus.open("rb") as stream:
        imports.traces_import(project=project, stream=stream, filename=corpus.name, format="jsonl")
    print(f"corpus imported in {time.perf_counter() - started:.1f} s")
    User = get_user_model()
    for i in range(ANNOTATORS):
        user = User.objects.create_user(f"annotator{i}", password=PASSWORD)
        services.membership_set(project=project, user=user, role="annotator")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def open_million_step_database(
    url: str, *, keep: bool, ready: Callable[[str], bool] = million_step_database_ready
) -> bool:
    """Set Django up on `url` holding the corpus: reused when `keep` and `ready(url)`, else the
    database is created afresh and filled. Returns whether it was reused."""
    from benchmarks.import_million_steps import _recreate_database, _setup_django

    reused = keep and ready(url)
    if not reused:
        _recreate_database(url)
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ["SECURE_SSL_REDIRECT"] = "0"
    workdir = Path(tempfile.mkdtemp(prefix="steplens-bench-"))
    _setup_django(workdir, url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)  # a kept database may predate the latest migrations
    if not reused:
        build_million_step_database(workdir)
    return reused
