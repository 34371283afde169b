"""The Content-Security-Policy of every response (django-csp): scripts, styles, fonts and
connections from steplens itself only; images from steplens, `data:` and the hosts an admin
allows (STEPLENS_IMAGE_HOSTS), so that a problem's image never sends an annotator's address to a
host nobody chose."""

from __future__ import annotations

from typing import Any

from csp.constants import NONE, SELF, UNSAFE_INLINE


def content_security_policy(image_hosts: list[str]) -> dict[str, Any]:
    return {
        "DIRECTIVES": {
            "default-src": [SELF],
            "script-src": [SELF],
            # KaTeX lays formulas out with style attributes; no script can come in this way.
            "style-src": [SELF, UNSAFE_INLINE],
            "img-src": [SELF, "data:", *(f"https://{host}" for host in image_hosts)],
            "font-src": [SELF, "data:"],
            "connect-src": [SELF],
            "object-src": [NONE],
            "base-uri": [SELF],
            "form-action": [SELF],
            "frame-ancestors": [NONE],
        }
    }
