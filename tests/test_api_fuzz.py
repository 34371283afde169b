"""Every API operation of the OpenAPI schema, fed inputs generated from the schema itself
(schemathesis + hypothesis), answers without a server error (item 7 of "Hardening"). Run as a
site admin with a real token, against a project with a trace, on SQLite and PostgreSQL; requests
go through Django's test client (so they share the test's database connection)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from django.test import Client  # noqa: E402
from drf_spectacular.generators import SchemaGenerator  # noqa: E402
from hypothesis import HealthCheck, given  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402

from annotate.tokens import api_token_create  # noqa: E402
from tests.factories import make_project, make_trace, make_user  # noqa: E402

pytestmark = pytest.mark.django_db

# Per operation: a few hundred requests in all. The same inputs on every run (derandomized), so
# a red CI run is reproducible; `STEPLENS_FUZZ_EXAMPLES=200 STEPLENS_FUZZ_RANDOM=1` explores.
EXAMPLES = int(os.environ.get("STEPLENS_FUZZ_EXAMPLES", "8"))
RANDOM = os.environ.get("STEPLENS_FUZZ_RANDOM") == "1"


def _send(client: Client, case: Any, token: str) -> int:
    path = case.formatted_path
    kwargs: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Token {token}"}
    body = case.body
    has_body = type(body).__name__ != "NotSet"
    method = case.method.lower()
    if method == "get":
        return client.get(path, case.query or {}, **kwargs).status_code
    query = "&".join(f"{k}={v}" for k, v in (case.query or {}).items())
    url = f"{path}?{query}" if query else path
    if has_body and (case.media_type or "").startswith("multipart/"):
        data = {k: str(v) if not isinstance(v, bytes) else v for k, v in dict(body).items()}
        return getattr(client, method)(url, data, **kwargs).status_code
    payload = json.dumps(body) if has_body else ""
    return getattr(client, method)(
        url, payload, content_type="application/json", **kwargs
    ).status_code


def test_no_api_input_makes_a_server_error() -> None:
    admin = make_user("fuzzer", is_superuser=True, is_staff=True)
    project = make_project("fuzz", members={admin: "admin"})
    make_trace(project)
    token = api_token_create(user=admin)
    raw = SchemaGenerator().get_schema(request=None, public=True)
    schema = schemathesis.openapi.from_dict(json.loads(json.dumps(raw, default=str)))
    client = Client(raise_request_exception=False)
    errors: dict[str, str] = {}
    statuses: dict[int, int] = {}
    operations = 0
    for result in schema.get_all_operations():
        operations += 1
        _fuzz(result.ok(), client, token, errors, statuses)
    assert operations >= 50  # the schema really was walked
    assert sum(statuses.values()) >= operations * 2, statuses  # and called, more than once each
    assert errors == {}


def _fuzz(
    operation: Any, client: Client, token: str, errors: dict[str, str], statuses: dict[int, int]
) -> None:
    name = f"{operation.method.upper()} {operation.path}"

    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Any) -> None:
        status = _send(client, case, token)
        statuses[status] = statuses.get(status, 0) + 1
        if status >= 500:
            errors.setdefault(name, f"{case.path_parameters} {case.query} {case.body!r}"[:300])

    call()
