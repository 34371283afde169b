"""Every API answer that names a trace gives its short id beside the source's full id (issue 15)."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from scoring import services as scoring_services
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db

LONG_ID = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
SHORT = "9f86d081…0a08"


def test_trace_answers_carry_the_short_id_of_a_long_source_id() -> None:
    admin = make_user()
    project = make_project(members={admin: "admin"})
    trace = make_trace(project, external_id=LONG_ID)
    scorer = scoring_services.scorer_create(name="tool", backend="tool", projects=[project])
    client = APIClient()
    client.force_login(admin)

    listed = client.get(f"/api/projects/{project.slug}/traces/").json()
    detail = client.get(f"/api/traces/{trace.pk}/").json()
    taken = client.post(f"/api/projects/{project.slug}/queue/take/", {}, format="json").json()
    ranked = client.get(
        f"/api/problems/{trace.problem_id}/best-of-n/", {"scorer": scorer.name}
    ).json()
    browsed = client.get(f"/api/projects/{project.slug}/data/").json()

    for answer in (listed["results"][0], detail, taken, ranked[0], browsed["results"][0]):
        assert answer["external_id"] == LONG_ID
        assert answer["short_id"] == SHORT


def test_every_schema_component_with_a_source_id_documents_the_short_id() -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    with_ids = {
        name: component["properties"]
        for name, component in schema["components"]["schemas"].items()
        if "external_id" in component.get("properties", {})
    }
    assert len(with_ids) >= 8, sorted(with_ids)
    missing = sorted(name for name, props in with_ids.items() if "short_id" not in props)
    assert missing == []
    assert all(props["short_id"]["readOnly"] for props in with_ids.values())
