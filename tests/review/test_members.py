"""Members in the app: add an existing account or create one, set roles, remove; each member's
progress (assigned, in progress, done, skipped, time per trace, agreement)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from annotate import services
from annotate.models import Membership
from review import services as queues
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup():
    admin = make_user("boss")
    project = make_project("m", members={admin: "admin"})
    traces = [make_trace(project, external_id=f"t{i}") for i in range(3)]
    client = Client()
    client.force_login(admin)
    return project, traces, client


def test_admins_add_create_change_and_remove_members(setup) -> None:
    project, _, client = setup
    url = reverse("review:members", args=["m"])
    make_user("existing")
    client.post(url, {"op": "add", "username": "existing", "role": "reviewer"})
    client.post(
        url,
        {"op": "create", "username": "newbie", "password": "long-enough-1", "role": "annotator"},
    )
    roles = dict(Membership.objects.filter(project=project).values_list("user__username", "role"))
    assert roles == {"boss": "admin", "existing": "reviewer", "newbie": "annotator"}
    assert User.objects.get(username="newbie").check_password("long-enough-1")
    short = client.post(url, {"op": "create", "username": "x", "password": "short"}, follow=True)
    assert "8 characters" in short.content.decode()
    missing = client.post(url, {"op": "add", "username": "ghost"}, follow=True)
    assert "No active account &#x27;ghost&#x27;" in missing.content.decode()
    client.post(url, {"op": "role", "username": "newbie", "role": "reviewer"})
    client.post(url, {"op": "remove", "username": "existing"})
    roles = dict(Membership.objects.filter(project=project).values_list("user__username", "role"))
    assert roles == {"boss": "admin", "newbie": "reviewer"}


def test_progress_shows_who_needs_help(setup) -> None:
    project, traces, client = setup
    ann = make_user("ann")
    services.membership_set(project=project, user=ann, role="annotator")
    first = queues.lease_next(user=ann, project=project)
    services.label_all_correct(user=ann, trace=first)
    services.annotation_add_active_time(user=ann, trace=first, seconds=60)
    services.annotation_submit(user=ann, trace=first)
    second = queues.lease_next(user=ann, project=project, after_trace_id=first.pk)
    queues.assignment_skip(user=ann, trace=second, reason="unclear")
    queues.lease_next(user=ann, project=project, after_trace_id=second.pk)
    rows = client.get(reverse("api:member-list", args=["m"])).json()
    mine = next(r for r in rows if r["username"] == "ann")
    assert (mine["assigned"], mine["done"], mine["skipped"], mine["seconds_per_trace"]) == (
        1,
        1,
        1,
        60.0,
    )
    page = client.get(reverse("review:members", args=["m"])).content.decode()
    assert "ann" in page and "1:00" in page


def test_the_members_api_adds_patches_and_removes(setup) -> None:
    project, _, client = setup
    url = reverse("api:member-list", args=["m"])
    created = client.post(
        url,
        {"username": "api-user", "create": True, "password": "long-enough-1", "role": "reviewer"},
        content_type="application/json",
    )
    assert created.status_code == 201 and created.json()["role"] == "reviewer"
    detail = reverse("api:member-detail", args=["m", "api-user"])
    assert (
        client.patch(detail, {"role": "admin"}, content_type="application/json").json()["role"]
        == "admin"
    )
    assert client.delete(detail).status_code == 204
    assert not Membership.objects.filter(project=project, user__username="api-user").exists()
    ann = make_user("ann")
    services.membership_set(project=project, user=ann, role="reviewer")
    client.force_login(ann)
    assert client.get(url).json() == {"detail": "Admins only."}


def test_site_admins_deactivate_and_reactivate_accounts(setup) -> None:
    project, _, client = setup
    ann = make_user("ann")
    services.membership_set(project=project, user=ann, role="annotator")
    url = reverse("review:members", args=["m"])
    refused = client.post(url, {"op": "deactivate", "username": "ann"})  # a project admin
    assert refused.status_code == 403
    assert User.objects.get(username="ann").is_active
    site = Client()
    site.force_login(make_user("site", is_superuser=True))
    site.post(url, {"op": "deactivate", "username": "ann"})
    assert not User.objects.get(username="ann").is_active
    assert not Client().login(username="ann", password="pw-for-tests-1")
    assert "deactivated" in site.get(url).content.decode()
    detail = reverse("api:member-detail", args=["m", "ann"])
    back = site.patch(detail, {"active": True}, content_type="application/json").json()
    assert back["active"] is True and User.objects.get(username="ann").is_active
    assert (
        client.patch(detail, {"active": False}, content_type="application/json").status_code == 403
    )
