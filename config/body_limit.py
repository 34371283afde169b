"""Refuse request bodies over a size before anything reads them (413), except the import
endpoints, which stream up to their own limit (STEPLENS_IMPORT_MAX_BYTES).

Django's DATA_UPLOAD_MAX_MEMORY_SIZE bounds form fields, not uploaded files: without this, any
anonymous POST of a large multipart body was parsed (into temporary files) before the view, the
login throttle or the CSRF check could refuse it.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.defaultfilters import filesizeformat

# Paths whose views take large files and check the size themselves.
IMPORT_PATHS = ("/import/", "/api/imports/", "/api/scores/import/")


class BodySizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = int(settings.STEPLENS_MAX_BODY_BYTES)
        if length > limit and request.path_info not in IMPORT_PATHS:
            message = (
                f"The request body ({filesizeformat(length)}) is larger than "
                f"{filesizeformat(limit)}; files go through the import pages or API."
            )
            if request.path_info.startswith("/api/"):
                return JsonResponse({"detail": message}, status=413)
            return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
