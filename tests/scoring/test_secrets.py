"""Scorers and their secrets (issue "Hardening", item 1): scorers are listed only to members of the
projects they score, parameters only to site admins, and a secret is never stored in `params`
(a remote scorer names the environment variable that holds its key) nor shown in an error."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from scoring import services
from scoring.models import Backend, RunStatus, ScoreRun
from scoring.prm.backends.remote import RemoteScorer
from scoring.prm.contract import ScorerError, TraceInput
from scoring.prm.redact import redact_url
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def world():
    annotator, outsider, admin = make_user(), make_user(), make_user(is_superuser=True)
    mine = make_project(members={annotator: "annotator"})
    theirs = make_project(members={outsider: "annotator"})
    shared = services.scorer_create(
        name="shared", backend=Backend.TOOL, params={"pass_score": 0.8}, projects=[mine, theirs]
    )
    secret = services.scorer_create(
        name="vllm",
        backend=Backend.REMOTE,
        params={"url": "https://prm.internal:8000", "api_key_env": "STEPLENS_PRM_KEY"},
        model_path="qwen-prm",
        projects=[theirs],
    )
    return annotator, outsider, admin, mine, theirs, shared, secret


def test_a_user_without_projects_sees_no_scorer(world) -> None:
    nobody = make_user()
    assert _api(nobody).get("/api/scorers/").json() == []


def test_members_see_their_projects_scorers_without_parameters(world) -> None:
    annotator, _, _, mine, theirs, *_ = world
    rows = _api(annotator).get("/api/scorers/").json()
    assert [r["name"] for r in rows] == ["shared"]
    # Neither the parameters nor the other project's name.
    assert rows[0]["params"] is None
    assert rows[0]["projects"] == [mine.slug]
    rows = _api(annotator).get(f"/api/projects/{mine.slug}/scorers/").json()
    assert [(r["name"], r["params"], r["projects"]) for r in rows] == [
        ("shared", None, [mine.slug])
    ]


def test_site_admins_see_parameters_and_every_project(world) -> None:
    _, _, admin, mine, theirs, *_ = world
    rows = {r["name"]: r for r in _api(admin).get("/api/scorers/").json()}
    assert rows["shared"]["params"] == {"pass_score": 0.8}
    assert sorted(rows["shared"]["projects"]) == sorted([mine.slug, theirs.slug])
    assert rows["vllm"]["params"]["api_key_env"] == "STEPLENS_PRM_KEY"


@pytest.mark.parametrize(
    "params, field",
    [
        ({"url": "https://x", "api_key": "sk-live-123"}, "api_key"),
        ({"url": "https://bob:sk-live-123@prm.internal"}, "url"),
        ({"url": "https://prm.internal/?token=sk-live-123"}, "url"),
    ],
)
def test_secrets_are_refused_in_params(params, field) -> None:
    with pytest.raises(ValidationError) as caught:
        services.scorer_create(name="leaky", backend=Backend.REMOTE, params=params, model_path="m")
    assert field in str(caught.value) and "sk-live-123" not in str(caught.value)
    with pytest.raises(CommandError) as caught:
        call_command(
            "add_scorer",
            "leaky",
            "--backend",
            "remote",
            "--model",
            "m",
            "--params",
            __import__("json").dumps(params),
        )
    assert "sk-live-123" not in str(caught.value)
    response = _api(make_user(is_superuser=True)).post(
        "/api/scorers/",
        {"name": "leaky", "backend": "remote", "model_path": "m", "params": params},
        format="json",
    )
    assert response.status_code == 400 and "sk-live-123" not in response.content.decode()


def test_the_key_is_read_from_the_named_environment_variable(monkeypatch) -> None:
    monkeypatch.setenv("STEPLENS_PRM_KEY", "sk-live-123")
    scorer = RemoteScorer(
        "m", params={"url": "http://127.0.0.1:9", "api_key_env": "STEPLENS_PRM_KEY"}
    )
    assert scorer.api_key == "sk-live-123"
    monkeypatch.delenv("STEPLENS_PRM_KEY")
    with pytest.raises(ScorerError, match="STEPLENS_PRM_KEY is not set"):
        RemoteScorer("m", params={"url": "http://127.0.0.1:9", "api_key_env": "STEPLENS_PRM_KEY"})


def test_errors_never_show_credentials() -> None:
    assert redact_url("https://bob:sk-live-123@prm.internal:8000/v1?token=abc#x") == (
        "https://prm.internal:8000/v1"
    )
    scorer = RemoteScorer.__new__(RemoteScorer)  # a legacy row: credentials in its URL
    scorer.params = RemoteScorer("m", params={"url": "http://127.0.0.1:9"}).params
    scorer.model, scorer.api_key = "m", None
    scorer.endpoint = "http://bob:sk-live-123@127.0.0.1:9/pooling"
    with pytest.raises(ScorerError) as caught:
        scorer.score([TraceInput(key="t", problem="1+1?", steps=["2"])])
    assert "sk-live-123" not in str(caught.value) and "127.0.0.1:9" in str(caught.value)


def test_a_failed_runs_error_is_stored_without_credentials(world) -> None:
    annotator, outsider, _, _, theirs, _, secret = world
    trace = make_trace(theirs)
    run = ScoreRun.objects.create(trace=trace, scorer=secret, scorer_version=secret.version)
    services.score_run_fail(
        run_id=run.pk, error="ScorerError: remote https://bob:sk-live-123@prm.internal/pooling: 500"
    )
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "sk-live-123" not in run.error and "prm.internal/pooling" in run.error
