"""Who may reach what through the API: nobody anonymous, nobody outside the project, ever."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from annotate import services
from annotate.models import Annotation, Project, StepLabel, Trace
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    cache.clear()


@dataclass
class World:
    project_a: Project
    trace_a: Trace
    annotator_a: object
    annotator_b: object


@pytest.fixture
def world() -> World:
    annotator_a, annotator_b = make_user(), make_user()
    project_a = make_project("alpha", members={annotator_a: "annotator"})
    make_project("beta", members={annotator_b: "annotator"})
    trace_a = make_trace(project_a)
    services.label_set(user=annotator_a, step=trace_a.steps.get(index=0), value=1, note="mine")
    return World(project_a, trace_a, annotator_a, annotator_b)


def project_a_endpoints(trace_id: int) -> list[tuple[str, str, dict]]:
    """Every endpoint that reads or writes project "alpha" (method, url, JSON body)."""
    return [
        ("get", "/api/projects/alpha/", {}),
        ("get", "/api/projects/alpha/traces/", {}),
        ("get", "/api/projects/alpha/queue/next/", {}),
        ("get", f"/api/traces/{trace_id}/", {}),
        ("get", f"/api/traces/{trace_id}/annotation/", {}),
        ("get", f"/api/traces/{trace_id}/annotations/", {}),
        ("put", f"/api/traces/{trace_id}/steps/0/label/", {"value": -1}),
        ("patch", f"/api/traces/{trace_id}/steps/0/label/", {"note": "theirs"}),
        ("post", f"/api/traces/{trace_id}/first-error/", {"step_index": 0}),
        ("post", f"/api/traces/{trace_id}/all-correct/", {}),
        ("post", f"/api/traces/{trace_id}/submit/", {"finish_reason": "give_up"}),
        ("post", f"/api/traces/{trace_id}/heartbeat/", {"seconds": 5}),
    ]


def _unchanged(world: World) -> None:
    label = StepLabel.objects.get()
    assert (label.annotation.annotator, label.value, label.note) == (world.annotator_a, 1, "mine")
    assert Annotation.objects.count() == 1
    assert Annotation.objects.get().status == "in_progress"


def test_anonymous_is_refused_everywhere(world: World):
    client = APIClient()
    for method, url, body in [
        *project_a_endpoints(world.trace_a.pk),
        ("get", "/api/projects/", {}),
    ]:
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 401, (method, url, response.status_code)
        assert response["WWW-Authenticate"] == "Token"
    _unchanged(world)


def test_a_wrong_token_is_refused():
    response = APIClient().get("/api/projects/", HTTP_AUTHORIZATION="Token not-a-token")
    assert response.status_code == 401


def test_annotator_of_another_project_gets_404_on_every_endpoint(world: World):
    client = APIClient()
    client.force_authenticate(world.annotator_b)
    for method, url, body in project_a_endpoints(world.trace_a.pk):
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 404, (method, url, response.status_code)
        # The refusal says nothing of what is there.
        assert "alpha" not in response.content.decode()
    assert [p["slug"] for p in client.get("/api/projects/").json()["results"]] == ["beta"]
    _unchanged(world)


def test_the_same_endpoints_answer_the_member(world: World):
    """The 404s above come from the permission check, not from broken URLs."""
    client = APIClient()
    client.force_authenticate(world.annotator_a)
    for method, url, body in project_a_endpoints(world.trace_a.pk):
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code in (200, 204), (method, url, response.content)


PROCESSBENCH_RECORD = (
    b'{"id": "gsm8k-0", "generator": "test", "problem": "What is $1+1$?", '
    b'"steps": ["1+1=2.", "So \\\\boxed{2}."], "final_answer_correct": true, "label": -1}\n'
)


def _import(client: APIClient, slug: str):
    upload = SimpleUploadedFile("one.jsonl", PROCESSBENCH_RECORD)
    return client.post("/api/imports/", {"project": slug, "format": "processbench", "file": upload})


def test_only_project_admins_import_and_only_site_admins_create_projects(world: World):
    traces_before = Trace.objects.count()
    client = APIClient()
    assert _import(client, "alpha").status_code == 401

    client.force_authenticate(world.annotator_a)  # a member, but an annotator
    refused = _import(client, "alpha")
    assert refused.status_code == 403
    assert "admin" in refused.json()["detail"]

    client.force_authenticate(world.annotator_b)  # not a member of alpha
    assert _import(client, "alpha").status_code == 404
    assert _import(client, "gamma").status_code == 404  # may not create a project
    assert not Project.objects.filter(slug="gamma").exists()
    assert Trace.objects.count() == traces_before

    owner = make_user()
    services.membership_set(project=world.project_a, user=owner, role="admin")
    client.force_authenticate(owner)
    created = _import(client, "alpha")
    assert created.status_code == 201, created.content
    assert created.json()["traces_created"] == 1
    assert created.json()["project_created"] is False

    client.force_authenticate(make_user(is_superuser=True))
    fresh = _import(client, "gamma")
    assert fresh.status_code == 201, fresh.content
    assert fresh.json()["project_created"] is True
    assert Trace.objects.filter(project__slug="gamma").count() == 1
