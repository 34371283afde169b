"""Credentials out of what people see: URLs in errors, logs and pages lose their user, password,
query and fragment. Standard library only."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# A URL inside free text: scheme, then anything up to white space or a quote.
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{0,20}://[^\s'\"<>]+")
# user:password@ (or user@) right after a scheme, where urlsplit would not see a URL (no scheme).
_USERINFO = re.compile(r"(?<=://)[^/\s@'\"<>]+@")


def redact_url(url: str) -> str:
    """The URL as errors and pages may show it: no user, password, query or fragment.

    >>> redact_url("https://bob:secret@prm.example:8000/v1?token=abc#frag")
    'https://prm.example:8000/v1'
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:  # an unparseable port: drop everything but the scheme and host part
        return _USERINFO.sub("", url).split("?", 1)[0].split("#", 1)[0]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact_text(text: str) -> str:
    """Every URL in a message redacted (an exception's text may quote the URL it failed on).

    >>> redact_text("URLError: http://u:p@h:1/x?key=1 refused; retry http://h/y")
    'URLError: http://h:1/x refused; retry http://h/y'
    """
    return _USERINFO.sub("", _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text))
