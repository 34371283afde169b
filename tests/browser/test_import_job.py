"""A large import in a real browser, with a real Celery worker on Redis: the admin uploads a
file over the in-request limit, lands on its job page, watches the progress refresh in place,
and sees the result; the Import page lists the job."""

from __future__ import annotations

import json

import pytest

from annotate import services
from annotate.models import ImportJob, ImportStatus, Step
from benchmarks.corpus import iter_traces
from tests.browser.test_labelling import PASSWORD, log_in, upload_on_import_page
from tests.factories import make_project, make_user
from tests.scoring.worker import Worker

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_uploads_a_large_file_and_watches_the_worker_import_it(
    page, tmp_path, celery_on_redis, settings, artifacts
) -> None:  # type: ignore[no-untyped-def]
    settings.VAR_DIR = tmp_path / "var"  # this process's; the worker is told the same below
    settings.STEPLENS_IMPORT_SYNC_MAX_BYTES = 100_000
    project = make_project(slug="large")
    admin = make_user("ada", password=PASSWORD)
    services.membership_set(project=project, user=admin, role="admin")
    corpus = tmp_path / "large.jsonl"
    corpus.write_text(
        "".join(json.dumps(r) + "\n" for r in iter_traces(traces=3000, steps_per_trace=8))
    )
    worker = Worker(tmp_path, queues="interactive,bulk")
    worker.env_extra = {"STEPLENS_VAR_DIR": str(settings.VAR_DIR)}
    worker.start()
    try:
        log_in(page, "ada", "/import/")
        upload_on_import_page(page, corpus, format="jsonl", project="large")
        page.wait_for_url("**/import/jobs/*/")
        job = ImportJob.objects.get()
        page.evaluate("window.__sameDocument = true")
        # The bar while the worker runs (a quiet machine may finish before a poll sees it).
        page.wait_for_selector(
            "progress[aria-label='Import progress'], [data-testid=import-job-summary]",
            timeout=60_000,
        )
        page.screenshot(path=str(artifacts / "import-job-progress.png"), full_page=True)
        page.wait_for_selector("[data-testid=import-job-summary]", timeout=120_000)
        assert page.evaluate("window.__sameDocument") is True  # refreshed in place (htmx)
        job.refresh_from_db()
        assert job.status == ImportStatus.DONE, (job.error, worker.log())
        assert page.locator("[data-testid=import-job-state]").inner_text() == "Done"
        assert "3000 traces" in page.locator("[data-testid=import-job-summary]").inner_text()
        assert Step.objects.filter(trace__project=project).count() == 24_000
        page.screenshot(path=str(artifacts / "import-job-done.png"), full_page=True)
        page.goto("/import/")
        assert "large.jsonl" in page.locator("[data-testid=import-jobs]").inner_text()
    finally:
        worker.stop()
