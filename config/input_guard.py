"""Malformed input refused with a 400 that names it, before it can reach the database: NUL bytes
in query and form values (PostgreSQL refuses them in text with an error, which was a 500), and
JSON nested too deeply for Python's parser (a RecursionError, which was a 500)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _nul_field(request: HttpRequest) -> str | None:
    for key, values in request.GET.lists():
        if "\x00" in key or any("\x00" in v for v in values):
            return key.replace("\x00", "\\0")
    if request.method == "POST" and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        for key, values in request.POST.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                return key.replace("\x00", "\\0")
    return None


class InputGuardMiddleware:
    """Refuse a NUL byte in any query or form value (in process_view: after the CSRF check)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse | None:
        field = _nul_field(request)
        if field is None:
            return None
        message = f"{field}: a NUL byte is not allowed in a value."
        if request.path_info.startswith("/api/"):
            return JsonResponse({field: [message], "detail": message}, status=400)
        return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")


def _nul_path(value: Any, path: str = "") -> str | None:
    """Where a NUL character sits in decoded JSON (a key or a string), or None."""
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return where.replace("\x00", "\\0")
            found = _nul_path(item, where)
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _nul_path(item, f"{path}[{i}]")
            if found:
                return found
    return None


class GuardedJSONParser(JSONParser):
    """DRF's JSON parser, with too deep a nesting and NUL characters (which PostgreSQL refuses in
    text and JSON) answered as a 400 naming where, instead of a 500."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error: nested too deeply.") from None
        where = _nul_path(data)
        if where:
            raise ParseError(f"{where}: a NUL character (\\u0000) is not allowed in a value.")
        return data
