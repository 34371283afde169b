"""Project set-up in the app: a site admin creates a project, its admins change its settings
(the label scheme of a project with labels is refused, never changed silently), the guidelines
preview renders as annotators will see it; the same through the API."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from annotate import services
from annotate.models import Project
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db

SETTINGS = {"name": "GSM audit", "guidelines": "", "label_scheme": "binary", "overlap": "2"}


def test_a_site_admin_creates_a_project_in_the_app_and_others_are_refused() -> None:
    client = Client()
    client.force_login(make_user("site", is_superuser=True))
    response = client.post(reverse("annotate:project_new"), {"slug": "gsm", **SETTINGS})
    assert response["Location"] == reverse("annotate:project_settings", args=["gsm"])
    project = Project.objects.get(slug="gsm")
    assert (project.name, project.label_scheme, project.overlap, project.blind) == (
        "GSM audit",
        "binary",
        2,
        False,
    )
    again = client.post(reverse("annotate:project_new"), {"slug": "gsm", **SETTINGS})
    assert again.status_code == 400 and "already exists" in again.content.decode()
    client.force_login(make_user("nobody"))
    refused = client.get(reverse("annotate:project_new"))
    assert refused.status_code == 403 and "Site admins only." in refused.content.decode()


def test_admins_change_settings_and_a_scheme_change_with_labels_is_refused() -> None:
    admin, ann = make_user("boss"), make_user("ann")
    project = make_project("p", members={admin: "admin", ann: "annotator"})
    client = Client()
    client.force_login(admin)
    url = reverse("annotate:project_settings", args=["p"])
    saved = client.post(
        url, {**SETTINGS, "guidelines": "Mark the *first* wrong step.", "blind": "on"}
    )
    assert saved.status_code == 302
    project.refresh_from_db()
    assert (project.label_scheme, project.overlap, project.blind) == ("binary", 2, True)
    trace = make_trace(project)
    services.label_all_correct(user=ann, trace=trace)
    refused = client.post(url, {**SETTINGS, "label_scheme": "ternary"})
    assert refused.status_code == 400
    assert "This project has 3 step labels and 0 gold labels" in refused.content.decode()
    project.refresh_from_db()
    assert project.label_scheme == "binary"
    client.force_login(ann)
    assert client.get(url).status_code == 403


def test_the_guidelines_preview_is_rendered_and_sanitised() -> None:
    admin = make_user("boss")
    make_project("p", members={admin: "admin"})
    client = Client()
    client.force_login(admin)
    preview = client.post(
        reverse("annotate:guidelines_preview", args=["p"]),
        {"guidelines": "**Bold** and $x^2$ <script>alert(1)</script>"},
    ).content.decode()
    assert "<strong>Bold</strong>" in preview and "<script>" not in preview
    assert 'class="math' in preview


def test_the_api_creates_and_updates_projects() -> None:
    client = Client()
    client.force_login(make_user("site", is_superuser=True))
    created = client.post(
        reverse("api:project-list"),
        {"slug": "api-p", "overlap": 3},
        content_type="application/json",
    )
    assert created.status_code == 201 and created.json()["overlap"] == 3
    changed = client.patch(
        reverse("api:project-detail", args=["api-p"]),
        {"guidelines": "Be careful.", "blind": True},
        content_type="application/json",
    )
    assert changed.status_code == 200 and changed.json()["guidelines"] == "Be careful."
    assert Project.objects.get(slug="api-p").blind


def test_hotkeys_are_set_in_the_settings_form_and_a_clash_is_named() -> None:
    admin = make_user("boss")
    project = make_project("p", members={admin: "admin"})
    client = Client()
    client.force_login(admin)
    url = reverse("annotate:project_settings", args=["p"])
    form = {**SETTINGS, "label_scheme": "ternary", "overlap": "1"}
    saved = client.post(
        url, {**form, "hotkeys": '{"keys": {"plus": "y"}, "names": {"1": "right"}}'}
    )
    assert saved.status_code == 302
    project.refresh_from_db()
    assert project.hotkeys == {"keys": {"plus": "y"}, "names": {"1": "right"}}
    clash = client.post(url, {**form, "hotkeys": '{"keys": {"plus": "j"}}'})
    assert clash.status_code == 400
    assert "keys.plus: &#x27;j&#x27; is already the key of next." in clash.content.decode()
