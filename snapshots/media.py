"""What a snapshot carries besides its rows: its problems' images (files inside the snapshot
folder, by content hash) and tables (the `table` column), for the rows that reference them.

An export whose problems have images gets an `images` column on every row: the paths of the
problem's images relative to the snapshot folder, ``images/<sha256>.<ext>``, each file written
once (a bundled image copied from the project's store, a ``data:`` URL decoded) and checked
against its hash. An https address from a host the project loads images from stays a URL (the
build fetches nothing); an address the pages refuse (annotate.images) is left out of the row and
counted on the dataset card. An export whose problems have tables gets a `table` column: the
problem's table as ``{"header": [...], "rows": [[...]]}`` of strings (annotate.tables), or null.
An export whose problems have neither gets neither column: its bytes are what they were.
"""

from __future__ import annotations

import hashlib
from base64 import b64decode
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Q

from annotate.bundles import BUNDLE_PREFIX, image_kind, stored_image
from annotate.formats.exporters.base import IMAGES, TABLE, ExportRecord
from annotate.images import DATA_URL, image_address
from annotate.models import Project, Trace
from annotate.tables import table_or_none

IMAGES_DIR = "images"


class SnapshotImageError(ValueError):
    """A problem's bundled image is missing from the server's store, or not what its name says."""


def carried_columns(*, traces: Q) -> tuple[bool, bool]:
    """(images, table): whether any problem of the export's traces has images, a table."""
    chosen = Trace.objects.filter(traces)
    images = chosen.exclude(problem__images=[]).exists()
    tables = chosen.filter(problem__table__isnull=False).exists()
    return images, tables


@dataclass
class SnapshotMedia:
    """Writes a snapshot's image files as its rows are written, and gives each row's columns."""

    folder: Path
    project: Project
    images: bool
    tables: bool
    # Path inside the snapshot folder -> (sha256, bytes), in the order first written.
    files: dict[str, tuple[str, int]] = field(default_factory=dict)
    remote: set[str] = field(default_factory=set)  # https addresses kept as URLs
    left_out: Counter[str] = field(default_factory=Counter)  # reason -> addresses
    tables_left_out: int = 0  # tables stored before the schema, which no reader could read

    def columns(self, record: ExportRecord) -> dict[str, Any]:
        """The `images` and `table` columns of the rows of this record's problem ({} for
        neither); called once per problem (a data: URL is decoded once per problem, not kept)."""
        out: dict[str, Any] = {}
        if self.images:
            paths = (self._carry(address) for address in record.problem_images)
            out[IMAGES] = [path for path in paths if path is not None]
        if self.tables:
            table = table_or_none(record.problem_table)
            if table is None and record.problem_table is not None:
                self.tables_left_out += 1
            out[TABLE] = table.as_json() if table is not None else None
        return out

    def _carry(self, address: str) -> str | None:
        text = str(address or "").strip()
        if text.startswith(BUNDLE_PREFIX):
            name = text[len(BUNDLE_PREFIX) :]
            if f"{IMAGES_DIR}/{name}" in self.files:
                return f"{IMAGES_DIR}/{name}"
            path = stored_image(project_id=self.project.pk, name=name)
            if path is None:
                raise SnapshotImageError(
                    f"the image {text!r} of a problem of project {self.project.slug} is missing "
                    f"from the server's image store (VAR_DIR/images/{self.project.pk}/): import "
                    "its bundle again"
                )
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != name.split(".")[0]:
                raise SnapshotImageError(
                    f"the stored file of the image {text!r} (project {self.project.slug}) does not "
                    "have the content its name says (sha256 differs): the image store is damaged"
                )
            return self._write(data, name.rsplit(".", 1)[1])
        hosts = [*settings.STEPLENS_IMAGE_HOSTS, *self.project.image_hosts]
        shown = image_address(text, allowed_hosts=hosts)
        if shown.refused:
            self.left_out[shown.refused] += 1
            return None
        match = DATA_URL.match(shown.src)
        if match is None:  # an https URL of an allowed host: the rows keep it, nothing fetched
            self.remote.add(shown.src)
            return shown.src
        data = b64decode(match.group(2), validate=True)
        kind = image_kind(data[:16])
        if kind is None:
            self.left_out["a data: URL whose bytes are not a PNG, JPEG or WebP image"] += 1
            return None
        return self._write(data, kind)

    def _write(self, data: bytes, kind: str) -> str:
        sha = hashlib.sha256(data).hexdigest()
        relative = f"{IMAGES_DIR}/{sha}.{kind}"
        if relative not in self.files:
            # The snapshot folder is temporary until the build renames it: no partial file shows.
            (self.folder / IMAGES_DIR).mkdir(exist_ok=True)
            (self.folder / relative).write_bytes(data)
            self.files[relative] = (sha, len(data))
        return relative

    def summary(self) -> dict[str, Any]:
        """What the dataset card and the snapshot's stats say about the images and tables."""
        out: dict[str, Any] = {}
        if self.images:
            out["images"] = {
                "files": len(self.files),
                "bytes": sum(size for _, size in self.files.values()),
                "remote_urls": len(self.remote),
                "left_out": dict(sorted(self.left_out.items())),
            }
        if self.tables:
            out["tables"] = {"left_out": self.tables_left_out}
        return out

    def sums_lines(self) -> str:
        """SHA256SUMS lines of the image files, by path."""
        return "".join(f"{sha}  {path}\n" for path, (sha, _) in sorted(self.files.items()))
