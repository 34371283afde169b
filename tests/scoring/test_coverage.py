"""Scorer coverage: per scorer, traces scored / queued / failed / not yet, and "Score all" that
enqueues the gaps on the bulk queue, with a table that polls while runs are queued."""

from __future__ import annotations

import io
import json

import pytest
from django.test import Client
from django.urls import reverse

from scoring import services
from scoring.models import RunStatus, ScoreRun
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(django_capture_on_commit_callbacks):
    admin = make_user("boss")
    project = make_project("cov", members={admin: "admin"})
    traces = [make_trace(project, external_id=f"t{i}") for i in range(4)]
    tool = services.scorer_create(name="tool", backend="tool", projects=[project])
    with django_capture_on_commit_callbacks(execute=True):
        services.scores_import(
            project=project,
            scorer=tool,
            stream=io.BytesIO(json.dumps({"trace_id": "t0", "scores": [0.9, 0.8, 0.7]}).encode()),
            filename="s",
        )
    ScoreRun.objects.create(
        trace=traces[1], scorer=tool, scorer_version=tool.version, status=RunStatus.FAILED
    )
    client = Client()
    client.force_login(admin)
    return project, traces, client


def _coverage(client) -> dict:
    return client.get(reverse("api:project-coverage", args=["cov"])).json()[0]


def test_coverage_counts_and_score_all_fills_the_gaps(setup, django_capture_on_commit_callbacks):
    project, traces, client = setup
    assert _coverage(client) == {
        "scorer": "tool",
        "version": 1,
        "traces": 4,
        "done": 1,
        "queued": 0,
        "failed": 1,
        "not_yet": 2,
    }
    page = client.get(reverse("scoring:project_scorers", args=["cov"])).content.decode()
    assert "Score all with tool" in page and 'hx-trigger="every 2s"' not in page
    with django_capture_on_commit_callbacks(execute=False) as sent:  # no worker: runs stay queued
        response = client.post(
            reverse("scoring:project_score_all", args=["cov"]), {"scorer": "tool"}
        )
    assert response.status_code == 302 and len(sent) == 1
    assert set(ScoreRun.objects.filter(status="queued").values_list("queue", flat=True)) == {"bulk"}
    assert _coverage(client)["queued"] == 3 and _coverage(client)["not_yet"] == 0
    polling = client.get(reverse("scoring:project_coverage", args=["cov"]))
    assert polling.status_code == 200 and 'hx-trigger="every 2s"' in polling.content.decode()
    ScoreRun.objects.filter(status="queued").update(status=RunStatus.DONE)
    done = client.get(reverse("scoring:project_coverage", args=["cov"]))
    assert done.status_code == 286  # htmx stops polling
    assert _coverage(client)["done"] == 4
