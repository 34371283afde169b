"""Registering a new scorer from the app (issue 15): the Scorers page's form, its API and
`add_scorer` share one check: the backend's own params parser, the secrets rule, who may
register which backend. A refusal names the field and writes nothing."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from scoring.models import Scorer
from tests.factories import make_project, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    admin = make_user("padmin")
    site = make_user("site", is_superuser=True)
    project = make_project("reg", members={admin: "admin"})
    return admin, site, project


def _page(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _form(**fields: str) -> dict[str, str]:
    return {"name": "checks", "backend": "tool", "threshold": "0.5", **fields}


def test_a_project_admin_registers_a_tool_scorer_and_it_scores_the_project(world) -> None:
    admin, _, project = world
    client = _page(admin)
    page = client.get("/scoring/p/reg/scorers/new/").content.decode()
    assert 'value="tool"' in page and 'value="external"' in page
    assert 'value="step_head"' not in page and 'value="remote"' not in page
    assert "<code>pass_score = 0.9</code>" in page  # the backend's parameters and defaults
    response = client.post(
        "/scoring/p/reg/scorers/new/", _form(params='{"pass_score": 0.8, "time_budget_s": 5}')
    )
    assert response.status_code == 302 and response["Location"] == "/scoring/p/reg/scorers/"
    scorer = Scorer.objects.get(name="checks")
    assert (scorer.backend, scorer.params) == ("tool", {"pass_score": 0.8, "time_budget_s": 5})
    assert list(scorer.projects.all()) == [project]
    listed = client.get("/scoring/p/reg/scorers/").content.decode()
    assert "Registered checks; it now scores this project." in listed


@pytest.mark.parametrize(
    "params, message",
    [
        (
            '{"pass_scor": 0.8}',
            "params.pass_scor: not a parameter of the tool backend (known: check_answer, "
            "false_score, neutral_score, pass_score, time_budget_s)",
        ),
        ('{"pass_score": "high"}', "params.pass_score: expected a number, got a string"),
        ('{"check_answer": 1}', "params.check_answer: expected true or false, got an integer"),
        ("[1, 2]", "A JSON object, e.g. {&quot;pass_score&quot;: 0.8}."),
        ("{oops", "Enter a valid JSON."),
    ],
)
def test_bad_params_are_a_field_error_naming_the_parameter(world, params, message) -> None:
    admin, _, _ = world
    response = _page(admin).post("/scoring/p/reg/scorers/new/", _form(params=params))
    assert response.status_code == 200
    page = response.content.decode()
    assert message in page and 'class="field field-invalid"' in page
    assert not Scorer.objects.exists()


def test_a_secret_is_refused_by_name_never_echoed(world) -> None:
    _, site, _ = world
    form = _form(
        name="vllm",
        backend="remote",
        model_path="qwen-prm",
        params='{"url": "https://prm.internal", "api_key": "sk-live-123"}',
    )
    page = _page(site).post("/scoring/p/reg/scorers/new/", form).content.decode()
    assert "params.api_key: secrets are not stored with a scorer" in page
    assert "params.api_key_env" in page
    assert "sk-live-123" not in page.split("<textarea")[0]  # named, not echoed in the error
    assert not Scorer.objects.exists()
    form["params"] = '{"url": "https://prm.internal", "api_key_env": "STEPLENS_PRM_KEY"}'
    assert _page(site).post("/scoring/p/reg/scorers/new/", form).status_code == 302
    assert Scorer.objects.get(name="vllm").params["api_key_env"] == "STEPLENS_PRM_KEY"


def test_model_backends_are_a_site_admins_and_need_a_model_path(world) -> None:
    admin, site, _ = world
    page = _page(admin).post(
        "/scoring/p/reg/scorers/new/", _form(backend="step_head", model_path="/models/x")
    )
    assert "Only a site admin can register a step_head scorer" in page.content.decode()
    api = APIClient()
    api.force_login(admin)
    refused = api.post(
        "/api/projects/reg/scorers/",
        {"name": "qwen", "backend": "step_head", "model_path": "/models/x"},
        format="json",
    )
    assert refused.status_code == 403
    assert "Only a site admin can register a step_head scorer" in refused.json()["detail"]
    api.force_login(site)
    missing = api.post(
        "/api/projects/reg/scorers/", {"name": "qwen", "backend": "step_head"}, format="json"
    )
    assert missing.status_code == 400 and "model_path" in missing.json()
    assert not Scorer.objects.exists()
    made = api.post(
        "/api/projects/reg/scorers/",
        {
            "name": "qwen",
            "backend": "step_head",
            "model_path": "/models/x",
            "params": {"style": "trl"},
        },
        format="json",
    )
    assert made.status_code == 201 and made.json()["projects"] == ["reg"]


def test_the_api_refuses_bad_params_and_a_taken_name_with_the_field(world) -> None:
    admin, _, _ = world
    api = APIClient()
    api.force_login(admin)
    bad = api.post(
        "/api/projects/reg/scorers/",
        {"name": "checks", "backend": "tool", "params": {"max_length": 10}},
        format="json",
    )
    assert bad.status_code == 400
    assert "params.max_length: not a parameter of the tool backend" in bad.json()["params"][0]
    ok = api.post(
        "/api/projects/reg/scorers/", {"name": "checks", "backend": "tool"}, format="json"
    )
    assert ok.status_code == 201
    again = _page(admin).post("/scoring/p/reg/scorers/new/", _form()).content.decode()
    assert "Scorer with this Name already exists." in again


def test_add_scorer_uses_the_same_parser() -> None:
    with pytest.raises(CommandError, match="params.tolerance: not a parameter of the tool"):
        call_command("add_scorer", "x", "--backend", "tool", "--params", '{"tolerance": 0.01}')
    assert not Scorer.objects.exists()


def test_a_backends_own_token_parameters_are_not_taken_for_secrets(world) -> None:
    """`max_tokens`, `good_token`, `max_new_tokens` are parameters of the model backends
    (docs/engine.md), not secrets: the name rule applies to names the backend does not know."""
    _, site, _ = world
    api = APIClient()
    api.force_login(site)
    for name, backend, params in (
        ("tagger", "token_tag", {"good_token": "+", "bad_token": "-", "max_tokens": 8192}),
        ("critic", "generative", {"k": 4, "max_new_tokens": 512, "yes_token": " Yes"}),
    ):
        made = api.post(
            "/api/projects/reg/scorers/",
            {"name": name, "backend": backend, "model_path": "/models/x", "params": params},
            format="json",
        )
        assert made.status_code == 201, made.content
    refused = api.post(
        "/api/projects/reg/scorers/",
        {"name": "leaky", "backend": "token_tag", "model_path": "/m", "params": {"hf_token": "x"}},
        format="json",
    )
    assert refused.status_code == 400
    assert "params.hf_token: secrets are not stored" in refused.json()["params"][0]
