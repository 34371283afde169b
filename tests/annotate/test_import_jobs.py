"""Issue 11, item 8: a large import runs in a worker, with a progress page, in the API too.

Tasks run eagerly here (on commit), except in the last test, which starts a real Celery worker
process on Redis and kills it mid-import.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotate import import_jobs
from annotate.models import ImportJob, ImportStatus, Membership, Project, Role, Step, Trace
from benchmarks.corpus import iter_traces
from tests.factories import make_project
from tests.scoring.worker import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

DATA = Path(__file__).resolve().parents[2] / "data"


def _corpus(traces: int) -> bytes:
    lines = [json.dumps(r) for r in iter_traces(traces=traces, steps_per_trace=8)]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def small_sync_limit(settings: Any) -> None:
    settings.STEPLENS_IMPORT_SYNC_MAX_BYTES = 10_000


def _user(name: str, **extra: Any) -> Any:
    return get_user_model().objects.create_user(name, password="pw-" + name, **extra)


def _admin_of(project: Project, name: str = "lead") -> Client:
    user = _user(name)
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    client = Client()
    client.force_login(user)
    return client


def _upload(data: bytes, name: str = "big.jsonl") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/jsonl")


def test_a_large_upload_is_imported_by_a_worker_and_its_page_shows_the_result(
    small_sync_limit: None,
) -> None:
    project = make_project(slug="big")
    client = _admin_of(project)
    data = (DATA / "processbench_sample.jsonl").read_bytes()
    response = client.post(
        reverse("annotate:import"),
        {"file": _upload(data), "format": "processbench", "project": "big"},
    )
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("annotate:import_job", args=[job.pk])
    # The (eager) worker ran on commit: all traces are there, the upload is gone.
    assert job.status == ImportStatus.DONE
    assert Trace.objects.filter(project=project).count() == len(data.splitlines())
    assert not list(import_jobs.imports_dir().glob(job.path + "*"))
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert job.result["summary"] in page.content.decode()
    assert 'data-testid="import-job-state">Done<' in page.content.decode()
    assert "hx-get" not in page.content.decode()  # finished: it stops polling


def test_a_refused_large_file_fails_its_job_naming_line_and_field_and_writes_nothing(
    small_sync_limit: None,
) -> None:
    project = make_project(slug="big")
    client = _admin_of(project)
    lines = (DATA / "processbench_sample.jsonl").read_bytes().splitlines()
    lines[40] = lines[40].replace(b'"steps"', b'"stepz"')
    client.post(
        reverse("annotate:import"),
        {"file": _upload(b"\n".join(lines)), "format": "processbench", "project": "big"},
    )
    job = ImportJob.objects.get()
    assert job.status == ImportStatus.FAILED
    assert (job.error["file"], job.error["line"], job.error["field"]) == ("big.jsonl", 41, "steps")
    assert not Trace.objects.exists()
    assert not import_jobs.import_job_can_retry(job=job)  # a bad file: nothing to retry
    page = client.get(reverse("annotate:import_job", args=[job.pk])).content.decode()
    assert "Nothing was imported. big.jsonl, line 41, field &#x27;steps&#x27;" in page


def test_the_api_answers_202_with_the_job_and_its_url_gives_the_result(
    small_sync_limit: None,
) -> None:
    project = make_project(slug="big")
    client = _admin_of(project)
    data = (DATA / "processbench_sample.jsonl").read_bytes()
    response = client.post(
        "/api/imports/", {"file": _upload(data), "format": "processbench", "project": "big"}
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["url"].endswith(f"/api/imports/jobs/{body['id']}/")
    job = client.get(body["url"]).json()
    assert (job["status"], job["phase"], job["percent"]) == ("done", "done", 100)
    assert job["result"]["traces_created"] == len(data.splitlines())
    assert job["error"] == {}


def test_a_small_upload_is_still_imported_in_the_request() -> None:
    project = make_project(slug="small")
    client = _admin_of(project)
    data = (DATA / "processbench_sample.jsonl").read_bytes()
    response = client.post(
        "/api/imports/", {"file": _upload(data), "format": "processbench", "project": "small"}
    )
    assert response.status_code == 201
    assert not ImportJob.objects.exists()


def test_a_site_admins_new_project_is_made_by_the_job_and_not_when_the_file_is_refused(
    small_sync_limit: None,
) -> None:
    client = Client()
    client.force_login(_user("root", is_superuser=True, is_staff=True))
    bad = b'{"id": "x", "problem": "p"}\n' * 2000
    client.post(
        reverse("annotate:import"),
        {"file": _upload(bad), "format": "jsonl", "new_project": "fresh"},
    )
    assert not Project.objects.filter(slug="fresh").exists()
    good = (DATA / "processbench_sample.jsonl").read_bytes()
    client.post(
        reverse("annotate:import"),
        {"file": _upload(good), "format": "processbench", "new_project": "fresh"},
    )
    assert Trace.objects.filter(project__slug="fresh").count() == len(good.splitlines())


def test_only_its_maker_and_the_projects_admins_see_a_job(small_sync_limit: None) -> None:
    project = make_project(slug="big")
    client = _admin_of(project)
    client.post(
        reverse("annotate:import"),
        {"file": _upload(_corpus(10)), "format": "jsonl", "project": "big"},
    )
    job = ImportJob.objects.get()
    other_admin = _admin_of(project, "lead2")
    assert other_admin.get(reverse("annotate:import_job", args=[job.pk])).status_code == 200
    annotator = _user("ann")
    Membership.objects.create(project=project, user=annotator, role=Role.ANNOTATOR)
    outsider = _user("out")
    for user, code in ((annotator, 403), (outsider, 404)):
        c = Client()
        c.force_login(user)
        assert c.get(reverse("annotate:import_job", args=[job.pk])).status_code == code
        assert c.get(f"/api/imports/jobs/{job.pk}/").status_code == code
        assert c.post(f"/api/imports/jobs/{job.pk}/retry/").status_code == code


def _running_job(project: Project, data: bytes, *, runner: str, started: Any) -> ImportJob:
    folder = import_jobs.imports_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stuck.upload").write_bytes(data)
    return ImportJob.objects.create(
        project=project,
        project_slug=project.slug,
        format="jsonl",
        filename="stuck.jsonl",
        path="stuck.upload",
        size=len(data),
        status=ImportStatus.RUNNING,
        started_at=started,
        runner=runner,
    )


def test_a_job_whose_worker_stopped_is_failed_on_its_page_and_retried_to_success() -> None:
    project = make_project(slug="stuck")
    client = _admin_of(project)
    long_ago = timezone.now() - timezone.timedelta(seconds=import_jobs.STALE_AFTER_S + 5)
    job = _running_job(project, _corpus(20), runner="elsewhere#1", started=long_ago)
    page = client.get(reverse("annotate:import_job", args=[job.pk])).content.decode()
    assert "The worker stopped" in page and "Retry" in page
    job.refresh_from_db()
    assert job.status == ImportStatus.FAILED
    response = client.post(reverse("annotate:import_job_retry", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE
    assert Step.objects.filter(trace__project=project).count() == 160


def test_running_a_job_twice_imports_once() -> None:
    project = make_project(slug="twice")
    job = _running_job(project, _corpus(5), runner="", started=None)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.QUEUED)
    assert import_jobs.import_job_run(job_id=job.pk).status == ImportStatus.DONE
    assert import_jobs.import_job_run(job_id=job.pk).status == ImportStatus.DONE
    assert Trace.objects.count() == 5


def test_a_running_job_of_a_live_process_is_left_to_it() -> None:
    project = make_project(slug="live")
    me = f"{socket.gethostname()}#{os.getpid()}"
    job = _running_job(project, _corpus(5), runner=me, started=timezone.now())
    assert import_jobs.import_job_run(job_id=job.pk).status == ImportStatus.RUNNING
    assert not Trace.objects.exists()


def test_a_worker_killed_mid_import_leaves_nothing_and_its_redelivery_finishes(
    worker: Any, settings: Any, tmp_path: Path
) -> None:
    """A real worker process on Redis, killed (SIGKILL) while it writes; the task comes back
    (acks_late), the restarted worker on this host sees the dead runner and imports it all."""
    settings.STEPLENS_IMPORT_SYNC_MAX_BYTES = 10_000
    project = make_project(slug="killed")
    client = _admin_of(project)
    data = _corpus(12_000)  # about 28 MB: several seconds to import
    response = client.post(
        "/api/imports/", {"file": _upload(data), "format": "jsonl", "project": "killed"}
    )
    assert response.status_code == 202
    job_id = response.json()["id"]
    worker.start()

    def progress() -> dict[str, Any]:
        return client.get(f"/api/imports/jobs/{job_id}/").json()

    assert wait_until(lambda: progress()["phase"] == "write", timeout=120, interval=0.2), (
        progress(),
        worker.log(),
    )
    worker.kill()
    assert not Trace.objects.exists()  # the write pass is one transaction
    assert progress()["status"] == "running"
    worker.start()
    assert wait_until(lambda: progress()["status"] == "done", timeout=180, interval=0.5), (
        progress(),
        worker.log(),
    )
    assert Step.objects.filter(trace__project=project).count() == 96_000
    assert progress()["result"]["traces_created"] == 12_000
