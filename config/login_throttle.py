"""Failed-login limiter: too many failures for one username (or from one address) lock log-in for a while.

Counts live in Django's cache (Redis in production, so every gunicorn worker shares them: see
CACHE_URL). The authentication backend refuses a locked-out log-in wherever `authenticate()` is
called (login page, admin, API token); the middleware answers those entry points first with 429,
a Retry-After header and a message a person can act on, instead of "wrong password".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import user_logged_in
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connections, router
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

from annotate.sql import column, select
from config.cache import hit

_PREFIX = "login-failures"


def _per_user() -> int:
    return int(getattr(settings, "LOGIN_FAILURES_PER_USER", 5))


def _per_ip() -> int:
    return int(getattr(settings, "LOGIN_FAILURES_PER_IP", 100))


def lockout_seconds() -> int:
    return int(getattr(settings, "LOGIN_LOCKOUT_SECONDS", 900))


def client_ip(request: HttpRequest | None) -> str:
    """The client's address: the TCP peer, unless that peer is one of the configured proxies
    (STEPLENS_TRUSTED_PROXIES); then the nearest address in X-Forwarded-For that is not one of
    them. From any other peer, X-Forwarded-For is whatever the client wants it to be: ignored."""
    if request is None:
        return ""
    peer = request.META.get("REMOTE_ADDR") or ""
    trusted = set(getattr(settings, "STEPLENS_TRUSTED_PROXIES", []))
    if peer not in trusted:
        return peer
    forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for address in reversed([a for a in forwarded if a]):
        if address not in trusted:
            return address
    return peer


def _user_key(username: str) -> str:
    # Hashed: a username is whatever a client sends (any length, any characters), a cache key
    # must stay short and plain.
    digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return f"{_PREFIX}:user:{digest}"


def _ip_key(ip: str) -> str:
    return f"{_PREFIX}:ip:{ip}"


def _bump(key: str) -> int:
    """Count one attempt, atomically; the new count. A fixed window from the first attempt
    (`config.cache.hit`: on Redis one round trip)."""
    return hit(cache, key, lockout_seconds())


def _unbump(key: str) -> None:
    with contextlib.suppress(ValueError):  # expired meanwhile
        cache.decr(key)


def is_locked(*, username: str | None, request: HttpRequest | None) -> bool:
    if username and (cache.get(_user_key(username)) or 0) >= _per_user():
        return True
    ip = client_ip(request)
    return bool(ip) and (cache.get(_ip_key(ip)) or 0) >= _per_ip()


@receiver(user_logged_in, dispatch_uid="steplens-login-throttle-success")
def _on_success(sender: Any, request: HttpRequest | None, user: Any, **_: Any) -> None:
    cache.delete(_user_key(user.get_username()))


class LoginThrottleBackend(ModelBackend):
    """Django's model backend, refusing every log-in of a locked-out username or address."""

    def authenticate(  # type: ignore[override]
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if username is None:
            username = kwargs.get(self._username_field())
        # Every attempt is counted before its password is checked (atomically), so that attempts
        # sent in parallel cannot all be checked: past the limit, even the right password waits.
        user_key = _user_key(username) if username else None
        ip = client_ip(request)
        ip_key = _ip_key(ip) if ip else None
        over = False
        if user_key is not None:
            over = _bump(user_key) > _per_user()
        if ip_key is not None:
            over = _bump(ip_key) > _per_ip() or over
        if over:
            # Refused unchecked. Django's authenticate() turns this into "no such user", which
            # the views would answer as a wrong password: the middleware answers 429 instead.
            if request is not None:
                getattr(request, "_request", request).login_throttled = True  # DRF wraps it
            raise PermissionDenied("Too many failed log-ins.")  # stops the backend chain
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            # A success is not a failure: the account starts again from zero, and the address's
            # count loses this attempt (a valid log-in never pushes an address towards its limit).
            if user_key is not None:
                cache.delete(user_key)
            if ip_key is not None:
                _unbump(ip_key)
        return user

    def get_user(self, user_id: Any) -> Any:
        """ModelBackend.get_user (every signed-in request loads its user) in one written-out
        statement: the ORM's `get(pk=...)` spent 0.65 ms where this spends 0.25 (issue 16)."""
        from django.contrib.auth import get_user_model

        model = get_user_model()
        try:
            pk = model._meta.pk.to_python(user_id)
        except ValidationError:
            return None
        db = connections[router.db_for_read(model)]
        found = select(db, model, f"{column(db, model, model._meta.pk.name)} = %s", [pk])
        return found[0] if found and self.user_can_authenticate(found[0]) else None

    @staticmethod
    def _username_field() -> str:
        from django.contrib.auth import get_user_model

        return str(get_user_model().USERNAME_FIELD)


def _message() -> str:
    minutes = max(1, round(lockout_seconds() / 60))
    return (
        "Too many failed log-ins for this account or from this address. "
        f"Try again in {minutes} minutes, or ask an admin to reset your password."
    )


def _login_paths() -> dict[str, str]:
    paths = {}
    for name, kind in (("login", "page"), ("admin:login", "page"), ("api:token", "api")):
        try:
            paths[reverse(name)] = kind
        except NoReverseMatch:
            continue
    return paths


def _posted_username(request: HttpRequest) -> str | None:
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        value = body.get("username") if isinstance(body, dict) else None
        return value if isinstance(value, str) else None
    return request.POST.get("username")


class LoginThrottleMiddleware:
    """Answer a locked-out log-in attempt with 429 before it reaches the view."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._paths: dict[str, str] | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(request, "login_throttled", False):
            # Attempts sent at once all passed process_view's look before any counted; those
            # counted past the limit were refused unchecked by the backend, and say so.
            kind = self._login_paths().get(request.path_info)
            if kind:
                return self._refuse(request, kind)
        return response

    def _login_paths(self) -> dict[str, str]:
        if self._paths is None:
            self._paths = _login_paths()
        return self._paths

    def process_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse | None:
        # In process_view, after CsrfViewMiddleware's (MIDDLEWARE order): a forged log-in is
        # refused by the CSRF check before this reads the body for the username.
        if request.method == "POST":
            kind = self._login_paths().get(request.path_info)
            if kind and is_locked(username=_posted_username(request), request=request):
                return self._refuse(request, kind)
        return None

    @staticmethod
    def _refuse(request: HttpRequest, kind: str) -> HttpResponse:
        response: HttpResponse
        if kind == "api":
            response = JsonResponse({"detail": _message()}, status=429)
        else:
            form = AuthenticationForm(request, data={"username": _posted_username(request) or ""})
            # Shown: the lock-out message only (the password was never checked).
            form._errors = {}  # type: ignore[assignment]
            form.cleaned_data = {}
            form.add_error(None, _message())
            response = render(request, "registration/login.html", {"form": form}, status=429)
        response["Retry-After"] = str(lockout_seconds())
        return response
