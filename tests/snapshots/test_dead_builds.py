"""An export whose worker was killed (item 15 of "Hardening"): it stayed "running" for up to an
hour with a .tmp folder left behind. Builds write a heartbeat with their progress; a live worker's
sweep fails a silent one with the reason and removes stale temporary folders; a failed export is
retried, a queued or running one cancelled, leaving no files."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from annotate.imports import traces_import
from scoring import signals as scoring_signals
from snapshots import selectors, services
from snapshots.models import ExportSnapshot, ExportStatus
from tests.conftest import REPO_ROOT
from tests.factories import make_project, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    project = make_project("dead", members={make_user("rita"): "reviewer"})
    with open(REPO_ROOT / "data" / "processbench_sample.jsonl", "rb") as stream:
        traces_import(project=project, stream=stream, filename="pb.jsonl", format="processbench")
    return project


def _snapshot(project, name: str = "gold") -> ExportSnapshot:
    return services.export_snapshot_create(
        project=project, user=None, name=name, format="trl", enqueue=False
    )


def test_a_build_whose_worker_died_is_failed_by_a_workers_tick_and_retried(
    project, django_capture_on_commit_callbacks
) -> None:
    snapshot = _snapshot(project)
    long_ago = timezone.now() - timedelta(seconds=services.EXPORT_STALE_AFTER_S + 60)
    ExportSnapshot.objects.filter(pk=snapshot.pk).update(
        status=ExportStatus.RUNNING, heartbeat_at=long_ago
    )
    tmp = selectors.exports_root() / project.slug / "gold" / ".v1.deadbeef.tmp"
    tmp.mkdir(parents=True)
    (tmp / "train.jsonl").write_text("half a file")
    os.utime(tmp, (long_ago.timestamp(), long_ago.timestamp()))
    scoring_signals.worker_tick.send(sender=None)  # what a live worker sends every few beats
    snapshot.refresh_from_db()
    assert snapshot.status == ExportStatus.FAILED and "worker stopped" in snapshot.error
    assert not tmp.exists()
    with django_capture_on_commit_callbacks(execute=True):  # the build task, eager in tests
        services.export_snapshot_retry(snapshot=snapshot)
    snapshot.refresh_from_db()
    assert snapshot.status == ExportStatus.DONE and snapshot.version == 1


def test_a_fresh_running_build_is_left_alone(project) -> None:
    snapshot = _snapshot(project)
    ExportSnapshot.objects.filter(pk=snapshot.pk).update(
        status=ExportStatus.RUNNING, heartbeat_at=timezone.now()
    )
    assert services.export_snapshots_sweep() == 0


def test_cancel_stops_a_build_and_leaves_no_files(project, monkeypatch) -> None:
    queued = _snapshot(project, name="q")
    services.export_snapshot_cancel(snapshot=queued, user=None)
    assert services.export_snapshot_build(snapshot_id=queued.pk).status == ExportStatus.FAILED
    running = _snapshot(project, name="r")
    real = services._write_files

    def cancelled_midway(snapshot, folder, total):  # type: ignore[no-untyped-def]
        services.export_snapshot_cancel(snapshot=snapshot, user=None)
        return real(snapshot, folder, total)

    monkeypatch.setattr(services, "_write_files", cancelled_midway)
    monkeypatch.setattr(services, "PROGRESS_EVERY_S", 0.0)
    built = services.export_snapshot_build(snapshot_id=running.pk)
    assert built.status == ExportStatus.FAILED and built.error.startswith("Cancelled")
    folder = selectors.exports_root() / project.slug / "r"
    assert not folder.exists() or not any(folder.iterdir())
