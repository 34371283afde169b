"""Types shared by the apps' views (config sits below every app, so any app may import it)."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class AuthedRequest(HttpRequest):
    """A request past login_required and django-htmx's middleware (for the type checker)."""

    user: User  # type: ignore[assignment]  # login_required: never anonymous
    htmx: HtmxDetails
