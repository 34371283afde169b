"""Closing the loop in a real browser, with a real Celery worker on Redis: an admin exports a
snapshot, starts a training run, watches its progress, sees the new version's figures beside the
previous version's, promotes it, and the labelling page shows the promoted PRM's scores."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

from annotate import imports, services  # noqa: E402
from snapshots import services as exports  # noqa: E402
from snapshots import training  # noqa: E402
from snapshots.models import ExportSnapshot, TrainingRun, TrainingStatus  # noqa: E402
from tests.browser.test_labelling import PASSWORD, log_in  # noqa: E402
from tests.conftest import REPO_ROOT  # noqa: E402
from tests.factories import make_user  # noqa: E402
from tests.scoring.worker import Worker, wait_until  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FAST = {"tiny_hidden_size": 32, "tiny_vocab_size": 512, "batch_tokens": 4096}


def test_admin_trains_audits_promotes_and_annotators_see_the_new_prm(
    page, tmp_path, celery_on_redis, settings, artifacts
) -> None:  # type: ignore[no-untyped-def]
    settings.VAR_DIR = tmp_path / "var"  # this process's; the worker is told the same below
    project, _ = imports.project_for_import(slug="loop")
    with open(REPO_ROOT / "data" / "processbench_sample.jsonl", "rb") as stream:
        imports.traces_import(
            project=project, stream=stream, filename="pb.jsonl", format="processbench"
        )
    admin = make_user("ada", password=PASSWORD)
    services.membership_set(project=project, user=admin, role="admin")
    # Version 1 of the scorer, trained earlier (in this process) on a first snapshot.
    first = exports.export_snapshot_create(
        project=project,
        user=admin,
        name="gold",
        format="trl",
        neutral="drop",
        test_fraction=0.25,
        seed=3,
        enqueue=False,
    )
    exports.export_snapshot_build(snapshot_id=first.pk)
    v1 = training.training_run_create(
        user=admin,
        project=project,
        snapshot="gold",
        base="tiny",
        scorer_name="loop-prm",
        params={"epochs": 1, "max_length": 256, **FAST},
        enqueue=False,
    )
    assert training.training_run_execute(run_id=v1.pk).status == TrainingStatus.DONE

    worker = Worker(tmp_path, queues="interactive,bulk,train,celery")
    worker.env_extra = {"STEPLENS_VAR_DIR": str(settings.VAR_DIR)}
    worker.start()
    try:
        # 1. Export a snapshot with a test split, on the exports page.
        log_in(page, "ada", f"/p/{project.slug}/exports/")
        page.fill("#id_name", "gold")
        page.select_option("#id_format", "trl")
        page.select_option("#id_neutral", "drop")
        page.fill("#id_test_fraction", "0.25")
        page.fill("#id_seed", "3")
        page.click("button:has-text('Export')")
        assert wait_until(
            lambda: ExportSnapshot.objects.filter(name="gold", version=2, status="done").exists(),
            timeout=60,
        ), worker.log()

        # 2. Start a training run on it, from the training page.
        page.goto(f"/p/{project.slug}/training/")
        page.screenshot(path=str(artifacts / "training-form.png"), full_page=True)
        page.fill("#id_snapshot", "gold@2")
        page.fill("#id_base", "tiny")
        page.fill("#id_scorer", "loop-prm")
        page.fill("#id_epochs", "2")
        page.fill("#id_learning_rate", "0.001")
        page.fill("#id_max_length", "256")
        page.fill("#id_more", json.dumps(FAST))
        page.click("button:has-text('Start training')")
        page.wait_for_url("**/training/*/")
        run = TrainingRun.objects.exclude(pk=v1.pk).get()

        # 3. Watch it: the status refreshes in place (htmx) until done.
        page.evaluate("window.__sameDocument = true")
        finished = wait_until(
            lambda: TrainingRun.objects.filter(
                pk=run.pk,
                status__in=[TrainingStatus.DONE, TrainingStatus.FAILED, TrainingStatus.CANCELLED],
            ).exists(),
            timeout=180,
            interval=0.5,
        )
        run.refresh_from_db()
        assert finished and run.status == TrainingStatus.DONE, (
            f"training run {run.pk}: {run.status} {run.error!r}\n{worker.log()}"
        )
        page.wait_for_selector("[data-testid=training-metrics]", timeout=30_000)
        assert page.evaluate("window.__sameDocument") is True
        assert page.locator("[data-testid=training-state]").inner_text() == "Done"
        # The new version's figures on the test split, beside the previous version's.
        table = page.locator("[data-testid=training-metrics]").inner_text()
        assert "loop-prm v2 (this run)" in table and "loop-prm v1 (previous)" in table
        loss = page.locator("svg[aria-label='Training loss by step']")
        assert loss.count() == 1
        box = loss.bounding_box()  # large enough to read (it was drawn 220 px wide, 6 px text)
        assert box is not None and box["width"] >= 480, box
        page.screenshot(path=str(artifacts / "training.png"), full_page=True)

        # 4. Promote it; every trace gets scored by it (bulk queue).
        page.click("[data-testid=promote]")
        page.wait_for_selector("text=this version scores the project")
        assert training.live_scorer(project=project).scorer_version == 2

        # 5. The labelling page shows the trained PRM's scores.
        trace = project.traces.order_by("pk").first()
        page.goto(f"/t/{trace.pk}/")
        steps = trace.steps.count()
        page.wait_for_function(
            "document.querySelectorAll('[data-testid=step-score]').length >= " + str(steps),
            timeout=60_000,
        )
        first_step = trace.steps.get(index=0)
        badge = page.locator(f"#step-scores-{first_step.pk} [data-testid=step-score]")
        assert "loop-prm" in badge.first.inner_text()
        page.screenshot(path=str(artifacts / "trained-scores.png"), full_page=False)
    finally:
        worker.stop()
