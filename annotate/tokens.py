"""API tokens stored as hashes (knox-style), with expiry and revocation; the DRF authentication
class that checks them. The token is shown once; steplens keeps its sha256 only."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from .models import ApiToken

PREFIX_LENGTH = 8
# last_used_at is written at most this often per token (not on every request).
LAST_USED_EVERY = timedelta(minutes=5)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_create(*, user: User, name: str = "api") -> str:
    """A new token for the user (expiring after STEPLENS_API_TOKEN_DAYS): the token itself,
    which is never stored and cannot be shown again."""
    token = secrets.token_urlsafe(32)
    ApiToken.objects.create(
        user=user,
        name=(name or "api")[:100],
        key_prefix=token[:PREFIX_LENGTH],
        digest=_digest(token),
        expires_at=timezone.now() + timedelta(days=settings.STEPLENS_API_TOKEN_DAYS),
    )
    return token


def api_token_list_for_user(*, user: Any) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user_id=getattr(user, "pk", None))


def api_token_revoke(*, user: Any, token_id: int) -> None:
    """Delete one of the user's tokens (404 for a token that is not theirs)."""
    deleted, _ = ApiToken.objects.filter(pk=token_id, user_id=getattr(user, "pk", None)).delete()
    if not deleted:
        raise Http404("No such token.")


def api_tokens_revoke_all(*, user_id: int) -> int:
    return ApiToken.objects.filter(user_id=user_id).delete()[0]


def api_token_user(token: str) -> User | None:
    """The active user a token belongs to, if it is one of ours and has not expired."""
    now = timezone.now()
    digest = _digest(token)
    for row in ApiToken.objects.filter(
        key_prefix=token[:PREFIX_LENGTH], expires_at__gt=now
    ).select_related("user"):
        if hmac.compare_digest(row.digest, digest):
            if row.last_used_at is None or now - row.last_used_at > LAST_USED_EVERY:
                ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
            return row.user if row.user.is_active else None
    return None


class HashedTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <token>`, checked against the stored hashes."""

    def authenticate_credentials(self, key: str) -> tuple[User, None]:
        user = api_token_user(key)
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid or expired token.")
        return user, None
