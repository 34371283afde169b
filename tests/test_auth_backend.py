"""The log-in backend's user load (config/login_throttle.py `get_user`, every signed-in request):
written out, it must load what the ORM loads and refuse whom Django's ModelBackend refuses."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from config.login_throttle import LoginThrottleBackend
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def _fields(user) -> dict:
    return {f.attname: getattr(user, f.attname) for f in user._meta.concrete_fields}


def test_it_loads_the_user_the_orm_loads() -> None:
    user = make_user("loaded")
    user.first_name, user.email = "Ada", "ada@example.org"
    user.save()
    loaded = LoginThrottleBackend().get_user(user.pk)
    assert _fields(loaded) == _fields(get_user_model().objects.get(pk=user.pk))
    assert loaded.date_joined.tzinfo is not None  # converted as the ORM converts (SQLite too)
    assert LoginThrottleBackend().get_user(str(user.pk)).pk == user.pk  # as a session stores it


def test_it_refuses_whom_django_refuses() -> None:
    inactive = make_user("inactive")
    inactive.is_active = False
    inactive.save()
    backend = LoginThrottleBackend()
    assert backend.get_user(inactive.pk) is None
    assert backend.get_user(10**9) is None
    assert backend.get_user("not-a-number") is None


def test_a_deactivated_users_session_stops_working() -> None:
    user = make_user("leaver")
    client = Client()
    client.force_login(user)
    assert client.get("/api/projects/").status_code == 200
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    assert client.get("/api/projects/").status_code in (401, 403)
