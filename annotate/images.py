"""Which problem-image addresses a page may load, and why the others are refused.

An image address comes from imported data, so it is untrusted: the page loads it only when it
cannot leak an annotator's address to a host nobody chose and cannot run anything. Allowed: a
``data:image/png|jpeg|webp;base64,...`` URL (the image travels inside the data), and ``https``
from a host in STEPLENS_IMAGE_HOSTS (none by default). Every other address is shown as text with
the reason it was refused, so that whoever imported it can fix the data.

>>> image_address("data:image/png;base64,iVBORw0KGgo=").src[:22]
'data:image/png;base64,'
>>> image_address("fig1.png", allowed_hosts=[]).refused[:48]
'a relative path, which nothing here resolves: im'
"""

from __future__ import annotations

import binascii
import re
from base64 import b64decode
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from django.http import HttpResponse

    from .models import Project

DATA_URL = re.compile(
    r"^data:image/(png|jpeg|webp)(?:;[a-z0-9=._+-]+)*;base64,([A-Za-z0-9+/=\s]+)$", re.IGNORECASE
)
BUNDLED_NAME = re.compile(r"^[0-9a-f]{64}\.(png|jpeg|webp)$")
_DATA_TYPE = re.compile(r"^data:([^;,]*)", re.IGNORECASE)
SHOWN_CHARS = 80  # of a refused address, in the message


@dataclass(frozen=True)
class ImageAddress:
    address: str  # as imported
    src: str  # what the page loads; "" when refused
    refused: str  # why it is not loaded; "" when shown

    @property
    def shown(self) -> str:
        """The address for the message: a long one (a data: URL) cut to its start."""
        text = self.address.strip()
        return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _refuse(address: str, reason: str) -> ImageAddress:
    return ImageAddress(address=address, src="", refused=reason)


def _data_url(address: str) -> ImageAddress:
    match = DATA_URL.match(address)
    if match is None:
        kind = _DATA_TYPE.match(address)
        media = kind.group(1).lower() if kind else ""
        if media.startswith("image/") and media.split("/")[1] in ("png", "jpeg", "webp"):
            return _refuse(address, "a data: URL that is not base64 (…;base64,…)")
        return _refuse(
            address,
            f"a data: URL of type {media or 'none'}: only image/png, image/jpeg and image/webp "
            "are shown (an SVG can carry script)",
        )
    try:
        b64decode("".join(match.group(2).split()), validate=True)
    except (binascii.Error, ValueError):
        return _refuse(address, "a data: URL whose base64 does not decode")
    return ImageAddress(address=address, src="".join(address.split()), refused="")


def image_address(
    address: object,
    *,
    allowed_hosts: Iterable[str] = (),
    bundle_url: Callable[[str], str] | None = None,
) -> ImageAddress:
    """What the page does with one of a problem's image addresses: load `src`, or say `refused`.

    `bundle_url` gives the address of the project's image route for a file's name: where an
    image imported in a bundle (``bundle:<sha256>.<ext>``, annotate/bundles.py) is served.
    """
    text = str(address or "").strip()
    lowered = text.lower()
    if not text:
        return _refuse(text, "an empty address")
    if lowered.startswith("bundle:"):
        name = text[len("bundle:") :]
        if bundle_url is None or not BUNDLED_NAME.match(name):
            return _refuse(text, "not the name of an image bundled with an import")
        return ImageAddress(address=text, src=bundle_url(name), refused="")
    if lowered.startswith("data:"):
        return _data_url(text)
    if lowered.startswith(("https://", "http://")):
        host = (urlsplit(text).hostname or "").lower()
        if host not in {h.lower() for h in allowed_hosts}:
            return _refuse(
                text,
                f"the host {host or '?'} is not on the list of allowed image hosts "
                "(STEPLENS_IMAGE_HOSTS): loading it would tell that host who is labelling",
            )
        if not lowered.startswith("https://"):
            return _refuse(text, "plain http: an allowed host is loaded over https only")
        return ImageAddress(address=text, src=text, refused="")
    if text.startswith("//"):
        return _refuse(text, "a protocol-relative address: give https://… in full")
    if text.startswith("/") or re.match(r"^[a-zA-Z]:[\\/]", text) or text.startswith("file:"):
        return _refuse(
            text,
            "a path on the machine the data came from, which this server does not serve: import "
            "the records and their images together as a zip (an image bundle), or give "
            "data:image/png|jpeg|webp URLs",
        )
    if ":" in text.split("/")[0]:
        scheme = text.split(":", 1)[0].lower()
        return _refuse(text, f"the scheme {scheme}: is never loaded")
    return _refuse(
        text,
        "a relative path, which nothing here resolves: import the records and their images "
        "together as a zip (an image bundle), or give data:image/png|jpeg|webp URLs",
    )


_HOST = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
MAX_IMAGE_HOSTS = 20


def image_hosts_clean(hosts: object) -> list[str]:
    """A project's list of remote image hosts, checked: host names only (no scheme, path or
    port), lowercased, without repeats; at most MAX_IMAGE_HOSTS.

    >>> image_hosts_clean(["Images.Example.org", "images.example.org", "cdn.example.com"])
    ['images.example.org', 'cdn.example.com']
    >>> image_hosts_clean(["https://x.org/a"])
    Traceback (most recent call last):
    ...
    ValueError: 'https://x.org/a' is not a host name (give e.g. images.example.org: no scheme, path or port)
    """
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise ValueError("expected a list of host names")
    cleaned: list[str] = []
    for host in hosts:
        name = host.strip().lower()
        if not _HOST.match(name):
            raise ValueError(
                f"{host!r} is not a host name (give e.g. images.example.org: no scheme, path or "
                "port)"
            )
        if name not in cleaned:
            cleaned.append(name)
    if len(cleaned) > MAX_IMAGE_HOSTS:
        raise ValueError(f"at most {MAX_IMAGE_HOSTS} hosts")
    return cleaned


def with_project_images(response: HttpResponse, project: Project) -> HttpResponse:
    """Let a page load problem images from the project's own hosts: django-csp's per-response
    `_csp_update` adds them to this response's img-src (the site's policy stays as it is)."""
    if project.image_hosts:
        response._csp_update = {  # type: ignore[attr-defined]
            "img-src": [f"https://{host}" for host in project.image_hosts]
        }
    return response
