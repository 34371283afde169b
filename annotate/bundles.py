"""Image bundles: a zip of one records file (JSON Lines or a JSON array) and the image files its
records name, imported as one.

A record's image path resolves inside the bundle, relative to the records file's folder
(``"images": ["geo/12.png"]``); the file is checked (PNG, JPEG or WebP by its first bytes, at
most MAX_IMAGE_BYTES) and stored once by the sha256 of its content under
``VAR_DIR/images/<project id>/<sha256>.<ext>``, and the record keeps ``bundle:<sha256>.<ext>``:
an address the pages turn into the project's image route (which checks project access) and whose
content is part of the problem's identity. Addresses that are not paths (``data:``, ``https:``)
are kept as they are.
"""

from __future__ import annotations

import base64
import hashlib
import os
import posixpath
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings

from .formats.base import FormatError
from .images import BUNDLED_NAME, image_address

ZIP_MAGIC = b"PK\x03\x04"
BUNDLE_PREFIX = "bundle:"
MAX_IMAGE_BYTES = 20 * 1024 * 1024
RECORD_SUFFIXES = (".jsonl", ".json", ".ndjson")
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


class BundleError(ValueError):
    """A zip that is no image bundle (no records file, two of them, an unreadable member)."""


def image_kind(head: bytes) -> str | None:
    """png / jpeg / webp from a file's first bytes, else None.

    >>> image_kind(b"\\x89PNG\\r\\n\\x1a\\n...."), image_kind(b"RIFF\\x00\\x00\\x00\\x00WEBPVP8 "), image_kind(b"<svg")
    ('png', 'webp', None)
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def images_dir(project_id: int) -> Path:
    return Path(settings.VAR_DIR) / "images" / str(int(project_id))


def stored_image(*, project_id: int, name: str) -> Path | None:
    """The stored file of a bundled image of this project, or None (bad name, no such file)."""
    if not BUNDLED_NAME.match(name):
        return None
    path = images_dir(project_id) / name
    return path if path.is_file() else None


def is_zip(stream: IO[bytes], start: int) -> bool:
    stream.seek(start)
    head = stream.read(4)
    stream.seek(start)
    return head == ZIP_MAGIC


@dataclass
class _Bundle:
    archive: zipfile.ZipFile
    folder: str  # the records file's folder inside the zip
    project_id: int
    members: dict[str, zipfile.ZipInfo]
    stored: dict[str, str]  # path in the zip -> bundle: address

    def resolve(self, address: str) -> str:
        text = address.strip()
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", text) or text.startswith("//"):
            return address  # data:, https:, ...: not a path in the bundle
        path = posixpath.normpath(posixpath.join(self.folder, text.lstrip("/")))
        if path.startswith("../") or path == "..":
            raise FormatError(f"{address!r} points outside the bundle")
        if path not in self.stored:
            info = self.members.get(path)
            if info is None:
                held = sorted(p for p in self.members if not p.endswith(RECORD_SUFFIXES))
                sample = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "")
                raise FormatError(
                    f"{address!r} is not in the bundle (looked for {path!r}; it holds "
                    f"{len(held)} other file{'s' if len(held) != 1 else ''}"
                    f"{': ' + sample if held else ''})"
                )
            self.stored[path] = self._store(info, address)
        return self.stored[path]

    def _store(self, info: zipfile.ZipInfo, address: str) -> str:
        if info.file_size > MAX_IMAGE_BYTES:
            raise FormatError(
                f"{address!r}: {info.file_size:,} bytes, more than {MAX_IMAGE_BYTES:,} per image"
            )
        with self.archive.open(info) as member:
            data = member.read(MAX_IMAGE_BYTES + 1)
        if len(data) > MAX_IMAGE_BYTES:
            raise FormatError(f"{address!r}: more than {MAX_IMAGE_BYTES:,} bytes")
        kind = image_kind(data[:16])
        if kind is None:
            raise FormatError(f"{address!r} is not a PNG, JPEG or WebP image (by its first bytes)")
        name = f"{hashlib.sha256(data).hexdigest()}.{kind}"
        folder = images_dir(self.project_id)
        target = folder / name
        if not target.exists():
            folder.mkdir(parents=True, exist_ok=True)
            # Written whole under a temporary name, then renamed: never half a file at `target`.
            handle, temporary = tempfile.mkstemp(dir=folder, suffix=".part")
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, target)
        return BUNDLE_PREFIX + name


@contextmanager
def open_bundle(
    stream: IO[bytes], *, project_id: int
) -> Iterator[tuple[IO[bytes], int, Callable[[str], str]]]:
    """(the records file's stream, its size, the image resolver) of a zip bundle."""
    try:
        archive = zipfile.ZipFile(stream)
    except zipfile.BadZipFile as err:
        raise BundleError(f"not a readable zip file ({err})") from None
    with archive:
        members = {
            posixpath.normpath(info.filename): info
            for info in archive.infolist()
            if not info.is_dir()
            and not posixpath.basename(info.filename).startswith(".")
            and not info.filename.startswith("__MACOSX/")
        }
        records = [p for p in members if p.lower().endswith(RECORD_SUFFIXES)]
        if len(records) != 1:
            found = ", ".join(sorted(records)) or "none"
            raise BundleError(
                f"an image bundle holds exactly one records file ({', '.join(RECORD_SUFFIXES)}); "
                f"this zip holds {len(records)} ({found})"
            )
        info = members[records[0]]
        bundle = _Bundle(
            archive=archive,
            folder=posixpath.dirname(records[0]),
            project_id=project_id,
            members=members,
            stored={},
        )
        with archive.open(info) as member:
            yield member, info.file_size, bundle.resolve  # type: ignore[misc]


def inline_image(*, project_id: int, address: str) -> str:
    """A problem's image as a scorer receives it: what the page shows, self-contained.

    A bundled image (``bundle:<name>``) becomes a ``data:`` URL of its stored bytes (a remote
    vLLM, or the vision backend, cannot reach this server's image route); a ``data:`` URL the
    page shows comes as the page loads it (the whitespace of a base64 wrapped at 76 columns, as
    ``base64`` writes it, removed); any other address as it is. A file gone missing is left as its
    address (the scorer then sees no image, as the page shows none)."""
    text = address.strip()
    if text.lower().startswith("data:"):
        return image_address(text).src or address
    if not text.lower().startswith(BUNDLE_PREFIX):
        return address
    name = text[len(BUNDLE_PREFIX) :]
    path = stored_image(project_id=project_id, name=name)
    if path is None:
        return address
    kind = name.rsplit(".", 1)[1]
    return f"data:{CONTENT_TYPES[kind]};base64,{base64.b64encode(path.read_bytes()).decode()}"
