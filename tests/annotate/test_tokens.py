"""API tokens (item 12 of "Hardening"): they survived a password change, never expired, and were
stored in plain text. Now a token is shown once, stored as a hash, expires, dies with a password
change, and is listed and revoked on the user's page and in the API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from annotate.models import ApiToken
from tests.factories import make_user

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-1"


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()


def _exchange(user, **extra) -> str:
    response = APIClient().post(
        "/api/auth/token/",
        {"username": user.username, "password": PASSWORD, **extra},
        format="json",
    )
    assert response.status_code == 200, response.content
    return response.json()["token"]


def _status(token: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.get("/api/projects/").status_code


def test_a_token_is_stored_as_a_hash_and_works() -> None:
    user = make_user()
    token = _exchange(user)
    assert _status(token) == 200
    stored = ApiToken.objects.get(user=user)
    assert token not in str(list(ApiToken.objects.values_list()))  # nowhere in the table
    assert stored.expires_at > timezone.now() + timedelta(days=80)
    assert _status(token[:-1] + ("A" if token[-1] != "A" else "B")) == 401


def test_an_expired_token_is_refused() -> None:
    user = make_user()
    token = _exchange(user)
    ApiToken.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _status(token) == 401


def test_a_password_change_revokes_every_token() -> None:
    user = make_user()
    first, second = _exchange(user), _exchange(user)
    assert _status(first) == _status(second) == 200
    user.set_password("a-new-password-2")
    user.save()
    assert _status(first) == _status(second) == 401
    assert not ApiToken.objects.filter(user=user).exists()


def test_tokens_are_listed_and_revoked_on_the_users_page_and_in_the_api() -> None:
    user, other = make_user(), make_user()
    kept, doomed = _exchange(user, name="laptop"), _exchange(user, name="ci")
    theirs = _exchange(other)
    page = Client()
    page.force_login(user)
    html = page.get("/account/tokens/").content.decode()
    assert "laptop" in html and "ci" in html and doomed not in html
    ci = ApiToken.objects.get(user=user, name="ci")
    assert page.post(f"/account/tokens/{ci.pk}/revoke/").status_code == 302
    assert _status(doomed) == 401 and _status(kept) == 200
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {kept}")
    listed = api.get("/api/auth/tokens/").json()
    assert [t["name"] for t in listed] == ["laptop"] and "token" not in listed[0]
    mine = listed[0]["id"]
    other_id = ApiToken.objects.get(user=other).pk
    assert api.delete(f"/api/auth/tokens/{other_id}/").status_code == 404  # not yours
    assert api.delete(f"/api/auth/tokens/{mine}/").status_code == 204
    assert _status(kept) == 401 and _status(theirs) == 200
