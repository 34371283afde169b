"""Reads of snapshots: export snapshots and their files, for the project's reviewers and admins."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from annotate import selectors
from annotate.images import BUNDLED_NAME
from annotate.models import Project, Role
from annotate.selectors import UserLike
from review.models import BulkAction, BulkActionKind

from .models import ExportSnapshot, ExportStatus

# Who may create and download exports: reviewers and admins. Annotators may not: an export holds
# gold labels and other annotators' labels, which annotators must not see (they bias them).
EXPORT_MIN_ROLE = Role.REVIEWER
CARD = "README.md"
SUMS = "SHA256SUMS"


def exports_root() -> Path:
    return Path(settings.VAR_DIR) / "exports"


def project_for_export(*, user: UserLike, slug: str) -> Project:
    """The project whose exports the user may create, list and download.

    Outsiders get 404 (a URL tells nobody what exists); annotators, who know the project, 403.
    """
    project = selectors.project_get_for_user(user=user, slug=slug)
    if not selectors.role_at_least(
        selectors.project_role(user=user, project=project), EXPORT_MIN_ROLE
    ):
        raise PermissionDenied("Only the project's reviewers and admins may export its labels.")
    return project


def export_list_for_user(*, user: UserLike, project: Project) -> QuerySet[ExportSnapshot]:
    project = project_for_export(user=user, slug=project.slug)
    return ExportSnapshot.objects.filter(project=project).select_related("created_by", "project")


def export_get_for_user(*, user: UserLike, snapshot_id: int) -> ExportSnapshot:
    snapshot = (
        ExportSnapshot.objects.select_related("project", "created_by")
        .filter(pk=snapshot_id)
        .first()
    )
    if snapshot is None:
        raise Http404("No such export.")
    project_for_export(user=user, slug=snapshot.project.slug)
    return snapshot


def export_file_names(*, snapshot: ExportSnapshot) -> list[str]:
    """Every file of a finished snapshot, as paths inside its folder: the data files, the image
    files its rows reference (``images/<sha256>.<ext>``, listed in SHA256SUMS), the card and
    SHA256SUMS."""
    names = [f["name"] for f in snapshot.files]
    if (snapshot.stats or {}).get("images", {}).get("files"):
        sums = (exports_root() / snapshot.path / SUMS).read_text(encoding="utf-8")
        for line in sums.splitlines():
            name = line.split("  ", 1)[1]
            if name.startswith("images/"):
                names.append(name)
    return [*names, CARD, SUMS]


def export_file_path(*, snapshot: ExportSnapshot, filename: str) -> Path:
    """The path of one file of a finished snapshot (a data file, an image file, the card or
    SHA256SUMS)."""
    if snapshot.status != ExportStatus.DONE or not snapshot.path:
        raise Http404("No such file in this export.")
    names = {f["name"] for f in snapshot.files} | {CARD, SUMS}
    folder, _, name = filename.rpartition("/")
    is_image = folder == "images" and BUNDLED_NAME.match(name) is not None
    if filename not in names and not is_image:
        raise Http404("No such file in this export.")
    path = exports_root() / snapshot.path / filename
    if not path.is_file():
        raise Http404("The file of this export is missing on the server.")
    return path


def export_download_name(*, snapshot: ExportSnapshot, filename: str) -> str:
    """The name a downloaded file is saved as: the project, the snapshot and the file's path."""
    return f"{snapshot.project.slug}-{snapshot.name}-v{snapshot.version}-{filename}".replace(
        "/", "-"
    )


def export_selection(*, project: Project, selection_id: int) -> BulkAction:
    """A data browser selection sent to the exports page ("Add to an export"), of this project.

    The caller has checked that the user may export the project (project_for_export); a
    selection of another project, or another action, is a 404.
    """
    found = BulkAction.objects.filter(
        pk=selection_id, project=project, action=BulkActionKind.EXPORT
    ).first()
    if found is None:
        raise Http404("No such selection of traces.")
    return found
