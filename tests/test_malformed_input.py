"""Malformed input is a 400 naming the field, never a 500 (item 7 of "Hardening"): JSON nested
100,000 deep (anonymous, to the token endpoint; to a label PATCH), NUL bytes in query and form
values, and numbers the database cannot hold."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from scoring import services as scoring_services
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000


def test_json_nested_too_deeply_is_a_400() -> None:
    anonymous = Client(raise_request_exception=False)
    response = anonymous.post("/api/auth/token/", DEEP, content_type="application/json")
    assert response.status_code == 400 and "nested" in response.json()["detail"]
    user = make_user()
    trace = make_trace(make_project(members={user: "annotator"}))
    api = APIClient(raise_request_exception=False)
    api.force_authenticate(user)
    response = api.patch(
        f"/api/traces/{trace.pk}/steps/0/label/", DEEP, content_type="application/json"
    )
    assert response.status_code == 400 and "nested" in response.json()["detail"]


def test_a_nul_byte_in_a_query_or_form_value_is_a_400_naming_it() -> None:
    user = make_user()
    project = make_project(members={user: "reviewer"})
    trace = make_trace(project)
    scoring_services.scorer_create(name="tool", backend="tool", projects=[project])
    client = Client(raise_request_exception=False)
    client.force_login(user)
    for url in (
        f"/scoring/problems/{trace.problem_id}/best-of-n/?scorer=%00",
        f"/api/problems/{trace.problem_id}/best-of-n/?scorer=%00",
        f"/scoring/audit/p/{project.slug}/?scorer=to%00ol",
    ):
        response = client.get(url)
        assert response.status_code == 400, url
        assert "scorer" in response.content.decode()
    response = client.post(f"/t/{trace.pk}/steps/0/label/", {"note": "a\x00b"})
    assert response.status_code == 400 and "note" in response.content.decode()


def test_a_nul_character_in_a_json_body_is_a_400_naming_where() -> None:
    """Found by tests/test_api_fuzz.py on PostgreSQL: JSON text with \u0000 in a scorer's params
    was a 500 (PostgreSQL refuses NUL in text and JSON)."""
    admin = make_user(is_superuser=True)
    api = APIClient(raise_request_exception=False)
    api.force_authenticate(admin)
    body = '{"name": "n", "backend": "tool", "params": {"k": ["a\\u0000b"]}}'
    response = api.post("/api/scorers/", body, content_type="application/json")
    assert response.status_code == 400 and "params.k[0]" in response.json()["detail"]
    fine = api.post("/api/scorers/", {"name": "n", "backend": "tool"}, format="json")
    assert fine.status_code == 201


def test_a_seed_the_database_cannot_hold_is_refused_naming_it() -> None:
    user = make_user()
    project = make_project(members={user: "reviewer"})
    api = APIClient(raise_request_exception=False)
    api.force_authenticate(user)
    response = api.post(
        f"/api/projects/{project.slug}/exports/",
        {"name": "big", "format": "trl", "seed": 2**40},
        format="json",
    )
    assert response.status_code == 400 and "seed" in response.json()


def test_a_trace_file_nested_too_deeply_is_refused_naming_the_line() -> None:
    import io

    from annotate.imports import ImportFileError, project_for_import, traces_import

    project, _ = project_for_import(slug="deep")
    good = b'{"id": "a", "generator": "g", "problem": "1+1?", "steps": ["2"], "label": -1, "final_answer_correct": true}'
    deep = (
        b'{"id": "b", "generator": "g", "problem": "1+1?", "steps": ["2"], "label": -1, "x": '
        + DEEP.encode()
        + b"}"
    )
    with pytest.raises(ImportFileError) as caught:
        traces_import(
            project=project,
            stream=io.BytesIO(good + b"\n" + deep + b"\n"),
            filename="deep.jsonl",
            format="processbench",
        )
    assert "line 2" in str(caught.value) and "nested" in str(caught.value)
    assert not project.traces.exists()
