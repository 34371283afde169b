"""Large imports as jobs: the upload waits on disk, a worker imports it, the page shows progress.

An upload above STEPLENS_IMPORT_SYNC_MAX_BYTES is not imported in the web request: it is copied
to VAR_DIR/imports (a block at a time), an ImportJob row is made, and `annotate.tasks.import_job_run`
runs traces_import on it on the `bulk` queue, all or nothing as ever. The import's progress (bytes
checked, then records written) goes to a small file beside the upload, because the write pass
runs in one transaction that no other process can see into until it commits. A job whose worker
died stops writing progress; the next read of the job marks it failed, with a retry.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from config.celery import task_send_on_commit

from . import selectors
from .imports import ImportFileError, ImportResult, project_for_import, traces_import
from .models import ImportJob, ImportStatus, Project, Role
from .selectors import UserLike

RUN_TASK = "annotate.tasks.import_job_run_task"
# A running job with no progress for this long lost its worker (progress is written every 1,000
# records, about once a second).
STALE_AFTER_S = 300
_PROGRESS_EVERY_S = 0.5


def imports_dir() -> Path:
    return Path(settings.VAR_DIR) / "imports"


def import_is_large(*, size: int) -> bool:
    """Whether an upload of `size` bytes is imported by a worker rather than in the request."""
    return size > settings.STEPLENS_IMPORT_SYNC_MAX_BYTES


def import_job_create(
    *,
    user: UserLike,
    project: Project | None,
    project_slug: str,
    upload: UploadedFile,
    format: str,
    subset: str = "",
) -> ImportJob:
    """Keep the upload on disk and queue its import; `project` None: a site admin's new project."""
    folder = imports_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{secrets.token_hex(12)}.upload"
    path = folder / name
    try:
        with path.open("wb") as out:
            for block in upload.chunks():
                out.write(block)
        with transaction.atomic():
            job = ImportJob.objects.create(
                project=project,
                project_slug=project.slug if project is not None else project_slug,
                format=format,
                subset=subset,
                filename=(upload.name or "upload")[:255],
                path=name,
                size=path.stat().st_size,
                created_by=user,  # type: ignore[misc]
            )
            task_send_on_commit(RUN_TASK, job.pk, queue="bulk")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return job


def _progress_path(job: ImportJob) -> Path:
    return imports_dir() / (job.path + ".progress")


def _write_progress(job: ImportJob) -> Callable[[str, int, int], None]:
    target = _progress_path(job)
    last = 0.0

    def progress(phase: str, done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < _PROGRESS_EVERY_S and done != total:
            return
        last = now
        partial = target.with_suffix(".tmp")
        partial.write_text(json.dumps({"phase": phase, "done": done, "total": total}))
        os.replace(partial, target)  # a reader sees the old or the new, never half of one

    progress("check", 0, job.size)
    return progress


def _result_data(result: ImportResult) -> dict[str, Any]:
    data = {k: v for k, v in asdict(result).items() if k != "project"}
    return {**data, "summary": result.summary()}


def _finish(job: ImportJob, **fields: Any) -> None:
    ImportJob.objects.filter(pk=job.pk).update(finished_at=timezone.now(), **fields)


def _remove_files(job: ImportJob) -> None:
    (imports_dir() / job.path).unlink(missing_ok=True)
    _progress_path(job).unlink(missing_ok=True)


def import_job_run(*, job_id: int) -> ImportJob | None:
    """Run a queued job (or one whose worker died). Safe to run twice: a finished job, or one
    running elsewhere with fresh progress, is left as it is."""
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status in (ImportStatus.DONE, ImportStatus.FAILED):
            return job
        if job.status == ImportStatus.RUNNING and not (_stalled(job) or _runner_died(job)):
            return job
        job.status, job.started_at, job.error = ImportStatus.RUNNING, timezone.now(), {}
        job.runner = _runner()
        job.save(update_fields=["status", "started_at", "error", "runner"])
    progress = _write_progress(job)
    try:
        with (imports_dir() / job.path).open("rb") as stream, transaction.atomic():
            project = job.project
            if project is None:
                project, _ = project_for_import(slug=job.project_slug)
            result = traces_import(
                project=project,
                stream=stream,
                filename=job.filename,
                format=job.format,
                subset=job.subset,
                progress=progress,
            )
            # In the import's transaction: "done" and the traces commit together.
            _finish(job, status=ImportStatus.DONE, project=project, result=_result_data(result))
    except ImportFileError as err:
        _finish(job, status=ImportStatus.FAILED, error=err.as_dict())
        _remove_files(job)  # a refused file: nothing to retry
    except ValidationError as err:  # the new project's slug
        _finish(job, status=ImportStatus.FAILED, error={"detail": "; ".join(err.messages)})
        _remove_files(job)
    except FileNotFoundError:
        _finish(job, status=ImportStatus.FAILED, error={"detail": "The uploaded file is gone."})
    else:
        _remove_files(job)
    return ImportJob.objects.get(pk=job.pk)


@dataclass(frozen=True)
class JobProgress:
    phase: str  # "queued", "check", "write", "done", "failed"
    done: int
    total: int

    @property
    def percent(self) -> int:
        # Checking is the first half of the bar, writing the second.
        if self.phase == "done":
            return 100
        if self.phase not in ("check", "write") or not self.total:
            return 0
        half = 50 * min(self.done, self.total) // self.total
        return half + (50 if self.phase == "write" else 0)


def _read_progress(job: ImportJob) -> tuple[dict[str, Any], float] | None:
    path = _progress_path(job)
    try:
        return json.loads(path.read_text()), path.stat().st_mtime
    except (OSError, ValueError):
        return None


def _stalled(job: ImportJob) -> bool:
    read = _read_progress(job)
    if read is not None:
        last = read[1]
    elif job.started_at is not None:
        last = job.started_at.timestamp()
    else:
        return False
    return time.time() - last > STALE_AFTER_S


def _runner() -> str:
    return f"{socket.gethostname()}#{os.getpid()}"


def _runner_died(job: ImportJob) -> bool:
    """True when the job's process ran on this host and is gone (a worker killed mid-import,
    whose task is delivered again): no need to wait STALE_AFTER_S. Another host cannot tell."""
    host, _, pid = job.runner.rpartition("#")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def import_job_progress(*, job: ImportJob) -> JobProgress:
    if job.status in (ImportStatus.DONE, ImportStatus.FAILED):
        return JobProgress(job.status, 1, 1)
    read = _read_progress(job)
    if job.status == ImportStatus.QUEUED or read is None:
        return JobProgress("queued", 0, job.size)
    data = read[0]
    return JobProgress(str(data["phase"]), int(data["done"]), int(data["total"]))


def import_job_sweep(*, job: ImportJob) -> ImportJob:
    """A running job whose worker stopped writing progress becomes failed (with a retry)."""
    if job.status == ImportStatus.RUNNING and _stalled(job):
        message = (
            f"The worker stopped (no progress for {STALE_AFTER_S} s): nothing was imported. "
            "Retry it."
        )
        updated = ImportJob.objects.filter(pk=job.pk, status=ImportStatus.RUNNING).update(
            status=ImportStatus.FAILED, error={"detail": message}, finished_at=timezone.now()
        )
        if updated:
            job.refresh_from_db()
    return job


def import_job_can_retry(*, job: ImportJob) -> bool:
    return job.status == ImportStatus.FAILED and (imports_dir() / job.path).exists()


def import_job_retry(*, job: ImportJob) -> ImportJob:
    """Queue a failed job again, when its upload is still there (a worker died, not a bad file)."""
    if not import_job_can_retry(job=job):
        raise ValidationError("Only a failed import whose file is still kept can be retried.")
    with transaction.atomic():
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.QUEUED, error={}, started_at=None, finished_at=None
        )
        _progress_path(job).unlink(missing_ok=True)
        task_send_on_commit(RUN_TASK, job.pk, queue="bulk")
    job.refresh_from_db()
    return job


def import_job_list_for_user(*, user: UserLike) -> QuerySet[ImportJob]:
    """The large imports this user started, newest first."""
    return ImportJob.objects.filter(created_by_id=user.pk).order_by("-created_at", "-id")


def import_job_get_for_user(*, user: UserLike, job_id: int) -> ImportJob:
    """A job its maker, the project's admins and site admins may see; 404 for anyone else."""
    job = ImportJob.objects.select_related("project").filter(pk=job_id).first()
    if job is None:
        raise Http404("No such import.")
    if job.created_by_id == user.pk or selectors.user_is_site_admin(user=user):
        return import_job_sweep(job=job)
    if job.project is not None:
        role = selectors.project_role(user=user, project=job.project)
        if selectors.role_at_least(role, Role.ADMIN):
            return import_job_sweep(job=job)
        if role is not None:
            raise PermissionDenied(selectors.role_required_message(Role.ADMIN))
    raise Http404("No such import.")
