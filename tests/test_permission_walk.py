"""Every page and API route, every method, as five kinds of visitor: the status each one gets.

Routes come from the URL resolver AND the OpenAPI schema; a route (or a schema method) that has no
row in EXPECTATIONS fails `test_every_route_has_an_expectation`, naming it. To add a route, append
one row to EXPECTATIONS (and, if its URL has a new parameter, one entry to `route_params`).

Visitors, in the order of an `E(...)` row: anonymous, an annotator of ANOTHER project (outsider),
an annotator, a reviewer and an admin of the project (membership roles; not Django staff).
Each request runs in a savepoint that is rolled back, so every visitor meets the same world.
Page routes are tried with GET and POST (one of them is usually 405); API routes with each method
the schema lists. The Django admin site (/admin/...) is one rule: non-staff are sent to its login.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from annotate import bundles, imports, services
from annotate.models import ApiToken, ImportJob, ImportStatus, Project, Step, Trace
from annotate.tokens import api_token_create
from scoring import services as scoring_services
from scoring.models import RunStatus, ScoreRun
from snapshots import services as exports
from snapshots.models import TrainingRun, TrainingStatus
from tests.conftest import REPO_ROOT
from tests.factories import make_project, make_user

pytestmark = pytest.mark.django_db

ROLES = ("anon", "outsider", "annotator", "reviewer", "admin")


@dataclass(frozen=True)
class E:
    """Expected status per visitor, and what to send (a body for writes)."""

    anon: int
    outsider: int
    annotator: int
    reviewer: int
    admin: int
    data: dict[str, Any] | Callable[[World], dict[str, Any]] | None = None
    json: bool = True  # API bodies as JSON; pages post forms
    headers: dict[str, str] = field(default_factory=dict)

    def status(self, role: str) -> int:
        return int(getattr(self, role))


# Shapes that recur. Pages: anonymous visitors are sent to the login page (302); outsiders get
# 404 (a URL tells nobody what exists). API: anonymous 401 (token auth answers first).
PAGE_MEMBERS = E(302, 404, 200, 200, 200)
NO_POST = E(302, 405, 405, 405, 405)  # require_GET: the method is refused before any lookup
NO_GET = E(302, 405, 405, 405, 405)  # require_POST, likewise
API_MEMBERS = E(401, 404, 200, 200, 200)
API_REVIEWERS = E(401, 404, 403, 200, 200)


def _import_file(w: World) -> dict[str, Any]:
    line = (REPO_ROOT / "data" / "processbench_sample.jsonl").read_text().splitlines()[1]
    return {
        "project": "alpha",
        "format": "processbench",
        "file": io.BytesIO(line.encode()),
    }


def _scores_file(w: World) -> dict[str, Any]:
    steps = w.trace.steps.count()
    line = json.dumps(
        {"trace_id": w.trace.external_id, "source": "processbench", "scores": [0.5] * steps}
    )
    return {"project": "alpha", "scorer": "tool", "file": io.BytesIO(line.encode())}


def _named(name: str, content: bytes) -> io.BytesIO:
    stream = io.BytesIO(content)
    stream.name = name
    return stream


EXPORT_FORM = {
    "name": "walk",
    "format": "trl",
    "file_format": "jsonl",
    "labels": "gold",
    "min_agreement": "0",
    "test_fraction": "0",
    "seed": "0",
}

# One row per route (paths as the schema writes them: {param}); one E per method.
EXPECTATIONS: dict[str, dict[str, E]] = {
    # --- auth and docs
    "/accounts/login/": {
        "GET": E(200, 200, 200, 200, 200),
        "POST": E(200, 200, 200, 200, 200, data={"username": "nobody", "password": "wrong"}),
    },
    "/accounts/logout/": {"GET": E(405, 405, 405, 405, 405), "POST": E(302, 302, 302, 302, 302)},
    "/api/schema/": {"GET": E(200, 200, 200, 200, 200), "POST": E(405, 405, 405, 405, 405)},
    "/api/docs/": {"GET": E(200, 200, 200, 200, 200), "POST": E(405, 405, 405, 405, 405)},
    "/api/auth/token/": {
        "POST": E(400, 400, 400, 400, 400, data={"username": "nobody", "password": "wrong"})
    },
    # Everyone's own API tokens; the world's token is the admin's (others: 404, not theirs).
    "/api/auth/tokens/": {"GET": E(401, 200, 200, 200, 200)},
    "/api/auth/tokens/{token_id}/": {"DELETE": E(401, 404, 404, 404, 204)},
    "/account/tokens/": {"GET": E(302, 200, 200, 200, 200), "POST": E(302, 200, 200, 200, 200)},
    "/account/tokens/{token_id}/revoke/": {"GET": NO_GET, "POST": E(302, 404, 404, 404, 302)},
    # --- labelling pages
    "/": {"GET": E(302, 200, 200, 200, 200), "POST": NO_POST},  # everyone sees their own projects
    # The import page is for admins; a site admin may name a new project.
    "/import/": {"GET": E(302, 404, 404, 404, 200), "POST": E(302, 404, 404, 404, 400, data={})},
    # A large import's job: its maker (the admin here) and the project's admins; members below
    # admin 403. Its file was refused (failed, removed): a retry is refused with the reason.
    "/import/jobs/{job_id}/": {"GET": E(302, 404, 403, 403, 200), "POST": NO_POST},
    "/import/jobs/{job_id}/retry/": {"GET": NO_GET, "POST": E(302, 404, 403, 403, 302)},
    "/p/{slug}/": {"GET": PAGE_MEMBERS, "POST": NO_POST},
    "/p/{slug}/next/": {"GET": E(302, 404, 302, 302, 302), "POST": NO_POST},
    "/t/{trace_id}/": {"GET": PAGE_MEMBERS, "POST": NO_POST},
    "/t/{trace_id}/steps/{index}/label/": {
        "GET": NO_GET,
        "POST": E(302, 404, 302, 302, 302, data={"value": "1"}),
    },
    "/t/{trace_id}/steps/{index}/first-error/": {"GET": NO_GET, "POST": E(302, 404, 302, 302, 302)},
    "/t/{trace_id}/all-correct/": {"GET": NO_GET, "POST": E(302, 404, 302, 302, 302)},
    "/t/{trace_id}/submit/": {
        "GET": NO_GET,
        "POST": E(302, 404, 302, 302, 302, data={"finish_reason": "give_up"}),
    },
    "/t/{trace_id}/heartbeat/": {
        "GET": NO_GET,
        "POST": E(302, 404, 200, 200, 200, data={"seconds": "5"}),
    },
    # --- exports pages: reviewers and admins; annotators know the project (403)
    "/p/{slug}/exports/": {
        "GET": E(302, 404, 403, 200, 200),
        "POST": E(302, 404, 403, 302, 302, data=EXPORT_FORM),
    },
    "/exports/{snapshot_id}/row/": {"GET": E(302, 404, 403, 200, 200), "POST": NO_POST},
    # The world's snapshot is done: nothing to cancel or retry (a message, back to the page).
    "/exports/{snapshot_id}/cancel/": {"GET": NO_GET, "POST": E(302, 404, 403, 302, 302)},
    "/exports/{snapshot_id}/retry/": {"GET": NO_GET, "POST": E(302, 404, 403, 302, 302)},
    "/exports/{snapshot_id}/files/{filename}": {"GET": E(302, 404, 403, 200, 200), "POST": NO_POST},
    # --- score panel pages
    "/scoring/traces/{trace_id}/scores/open/": {"GET": NO_GET, "POST": E(302, 404, 200, 200, 200)},
    "/scoring/traces/{trace_id}/scores/": {"GET": PAGE_MEMBERS, "POST": NO_POST},
    "/scoring/runs/{run_id}/retry/": {"GET": NO_GET, "POST": E(302, 404, 200, 200, 200)},
    "/scoring/problems/{problem_id}/best-of-n/": {"GET": PAGE_MEMBERS, "POST": NO_POST},
    "/scoring/problems/{problem_id}/best-of-n/score/": {
        "GET": NO_GET,
        "POST": E(302, 404, 302, 302, 302, data={"scorer": "tool"}, json=False),
    },
    # Project admins choose their project's scorers.
    "/scoring/p/{slug}/scorers/": {
        "GET": E(302, 404, 403, 403, 200),
        "POST": E(302, 404, 403, 403, 302, data={"scorer": "tool"}),
    },
    # Project admins register a tool or external scorer for their project (site admins any).
    "/scoring/p/{slug}/scorers/new/": {
        "GET": E(302, 404, 403, 403, 200),
        "POST": E(
            302,
            404,
            403,
            403,
            302,
            data={"name": "walk-new", "backend": "tool", "threshold": "0.5"},
        ),
    },
    # --- REST API: projects, traces, labels
    # Everyone lists their own projects; only site admins create one (none of the visitors is).
    "/api/projects/": {
        "GET": E(401, 200, 200, 200, 200),
        "POST": E(401, 403, 403, 403, 403, data={"slug": "walk-new"}),
    },
    "/api/projects/{slug}/": {
        "GET": API_MEMBERS,
        "PATCH": E(401, 404, 403, 403, 200, data={"guidelines": "walk"}),
    },
    "/api/projects/{slug}/traces/": {"GET": API_MEMBERS},
    "/api/projects/{slug}/queue/next/": {"GET": API_MEMBERS},
    "/api/traces/{trace_id}/": {"GET": API_MEMBERS},
    "/api/traces/{trace_id}/annotation/": {"GET": API_MEMBERS},
    "/api/traces/{trace_id}/annotations/": {"GET": API_MEMBERS},
    "/api/traces/{trace_id}/steps/{index}/label/": {
        "PUT": E(401, 404, 200, 200, 200, data={"value": -1}),
        "PATCH": E(401, 404, 200, 200, 200, data={"note": "why"}),
    },
    "/api/traces/{trace_id}/first-error/": {
        "POST": E(401, 404, 200, 200, 200, data={"step_index": 1})
    },
    "/api/traces/{trace_id}/all-correct/": {"POST": E(401, 404, 200, 200, 200)},
    "/api/traces/{trace_id}/changes/": {
        "GET": API_MEMBERS,
        "POST": E(
            401,
            404,
            200,
            200,
            200,
            data={"client": "walk", "changes": [{"seq": 1, "op": "label", "index": 0, "value": 1}]},
        ),
    },
    "/api/traces/{trace_id}/submit/": {
        "POST": E(401, 404, 200, 200, 200, data={"finish_reason": "give_up"})
    },
    "/api/traces/{trace_id}/heartbeat/": {"POST": E(401, 404, 200, 200, 200, data={"seconds": 5})},
    # Imports: outsiders 404, members below admin 403.
    "/api/imports/": {"POST": E(401, 404, 403, 403, 201, data=_import_file, json=False)},
    "/api/imports/jobs/{job_id}/": {"GET": E(401, 404, 403, 403, 200)},
    "/api/imports/jobs/{job_id}/retry/": {"POST": E(401, 404, 403, 403, 400)},
    # --- REST API: exports
    "/api/projects/{slug}/exports/": {
        "GET": API_REVIEWERS,
        "POST": E(401, 404, 403, 202, 202, data={"name": "walk", "format": "trl"}),
    },
    "/api/exports/{snapshot_id}/": {"GET": API_REVIEWERS},
    "/api/exports/{snapshot_id}/cancel/": {"POST": E(401, 404, 403, 400, 400)},
    "/api/exports/{snapshot_id}/retry/": {"POST": E(401, 404, 403, 400, 400)},
    "/api/exports/{snapshot_id}/files/{filename}": {"GET": API_REVIEWERS},
    # --- REST API: scoring
    # Everyone may list the scorers of their projects; only a site admin registers one.
    "/api/scorers/": {
        "GET": E(401, 200, 200, 200, 200),
        "POST": E(401, 403, 403, 403, 403, data={"name": "walk", "backend": "tool"}),
    },
    "/api/traces/{trace_id}/scores/": {"GET": API_MEMBERS},
    "/api/traces/{trace_id}/scores/enqueue/": {"POST": E(401, 404, 202, 202, 202)},
    "/api/runs/{run_id}/retry/": {"POST": E(401, 404, 202, 202, 202)},
    "/api/projects/{slug}/score/": {"POST": E(401, 404, 403, 403, 202, data={"scorer": "tool"})},
    "/api/scores/import/": {"POST": E(401, 404, 403, 403, 201, data=_scores_file, json=False)},
    "/api/problems/{problem_id}/best-of-n/": {
        "GET": E(401, 404, 200, 200, 200, data={"scorer": "tool"})
    },
    "/api/problems/{problem_id}/best-of-n/sample/": {
        "GET": E(401, 404, 200, 200, 200, data={"scorer": "tool"})
    },
    "/api/problems/{problem_id}/best-of-n/score/": {
        "POST": E(401, 404, 202, 202, 202, data={"scorer": "tool"})
    },
    "/api/projects/{slug}/scorers/": {
        "GET": API_MEMBERS,
        "PUT": E(401, 404, 403, 403, 200, data={"scorers": ["tool"]}),
        "POST": E(401, 404, 403, 403, 201, data={"name": "walk-api", "backend": "tool"}),
    },
    # --- issue 4: queue, review, agreement, audit (reviewers; annotators 403 "Reviewers only")
    # --- issue 15: the docs pages (any logged-in person; `name` is a docs/ file)
    "/docs/{name}/": {"GET": E(302, 200, 200, 200, 200), "POST": NO_POST},
    # --- issue 15: project set-up (site admins create; project admins set up) and members
    "/projects/new/": {
        "GET": E(302, 403, 403, 403, 403),
        "POST": E(302, 403, 403, 403, 403, data={"slug": "walk-new"}),
    },
    "/p/{slug}/settings/": {
        "GET": E(302, 404, 403, 403, 200),
        "POST": E(
            302,
            404,
            403,
            403,
            302,
            data={"name": "Walk", "label_scheme": "ternary", "overlap": "1"},
        ),
    },
    "/p/{slug}/settings/preview/": {
        "GET": NO_GET,
        "POST": E(302, 404, 403, 403, 200, data={"guidelines": "*walk*"}),
    },
    # --- issue 15: what an annotator sees with the current settings (reviewers and admins; reads
    # only): the page and the same data in the API
    "/p/{slug}/annotator-view/": {"GET": E(302, 404, 403, 200, 200), "POST": NO_POST},
    "/api/projects/{slug}/annotator-preview/": {"GET": API_REVIEWERS},
    # --- issue 17: images bundled with an import (the project's members; a name, not a path)
    "/p/{slug}/images/{image_name}": {"GET": E(302, 404, 200, 200, 200), "POST": NO_POST},
    "/p/{slug}/members/": {
        "GET": E(302, 404, 403, 403, 200),
        "POST": E(302, 404, 403, 403, 302, data={"op": "add", "username": "walk-outsider"}),
    },
    "/api/projects/{slug}/members/": {
        "GET": E(401, 404, 403, 403, 200),
        "POST": E(401, 404, 403, 403, 201, data={"username": "walk-outsider"}),
    },
    "/api/projects/{slug}/members/{username}/": {
        "PATCH": E(401, 404, 403, 403, 200, data={"role": "reviewer"}),
        "DELETE": E(401, 404, 403, 403, 204),
    },
    # --- issue 15: scorer coverage and "Score all" (admins; the coverage partial stops polling
    # with 286 when nothing is queued)
    "/scoring/p/{slug}/coverage/": {"GET": E(302, 404, 403, 403, 286), "POST": NO_POST},
    "/scoring/p/{slug}/score-all/": {
        "GET": NO_GET,
        "POST": E(302, 404, 403, 403, 302, data={"scorer": "tool"}),
    },
    "/api/projects/{slug}/coverage/": {"GET": E(401, 404, 403, 403, 200)},
    # --- issue 15: the data browser (reviewers; bulk score and delete: admins)
    "/p/{slug}/data/": {"GET": E(302, 404, 403, 200, 200), "POST": NO_POST},
    "/p/{slug}/data/bulk/": {
        "GET": NO_GET,
        "POST": E(302, 404, 403, 302, 302, data={"action": "flag", "scope": "filter"}),
    },
    "/api/projects/{slug}/data/": {"GET": E(401, 404, 403, 200, 200)},
    "/api/projects/{slug}/data/bulk/": {
        "POST": E(401, 404, 403, 200, 200, data={"action": "flag", "whole_filter": True})
    },
    "/p/{slug}/review/": {"GET": E(302, 404, 403, 200, 200), "POST": NO_POST},
    "/p/{slug}/agreement/": {"GET": E(302, 404, 403, 200, 200), "POST": NO_POST},
    "/p/{slug}/strategy/": {
        "GET": NO_GET,
        "POST": E(302, 404, 403, 403, 302, data={"strategy": "random"}),
    },
    "/review/t/{trace_id}/": {
        "GET": E(302, 404, 403, 200, 200),
        "POST": E(302, 404, 403, 302, 302, data={"index": "0", "value": "1", "rationale": "walk"}),
    },
    "/t/{trace_id}/skip/": {
        "GET": NO_GET,
        "POST": E(302, 404, 302, 302, 302, data={"reason": "unclear"}),
    },
    "/scoring/audit/p/{slug}/": {"GET": E(302, 404, 403, 200, 200), "POST": NO_POST},
    "/scoring/audit/p/{slug}/queue/": {"GET": E(302, 404, 403, 200, 200), "POST": NO_POST},
    "/api/projects/{slug}/queue/": {"GET": API_MEMBERS},
    "/api/projects/{slug}/queue/take/": {"POST": E(401, 404, 200, 200, 200)},
    "/api/projects/{slug}/queue/strategy/": {
        "PUT": E(401, 404, 403, 403, 200, data={"strategy": "random"})
    },
    "/api/traces/{trace_id}/skip/": {
        "POST": E(401, 404, 200, 200, 200, data={"reason": "unclear"})
    },
    "/api/projects/{slug}/disagreements/": {"GET": E(401, 404, 403, 200, 200)},
    "/api/projects/{slug}/agreement/": {"GET": E(401, 404, 403, 200, 200)},
    "/api/traces/{trace_id}/adjudication/": {"GET": E(401, 404, 403, 200, 200)},
    "/api/traces/{trace_id}/steps/{index}/gold/": {
        "PUT": E(401, 404, 403, 200, 200, data={"value": 1, "rationale": "walk"})
    },
    "/api/projects/{slug}/audit/": {"GET": E(401, 404, 403, 200, 200)},
    "/api/projects/{slug}/audit/queue/": {"GET": E(401, 404, 403, 200, 200)},
    # --- training PRMs: reviewers read and promote, admins train (annotators: 404)
    "/p/{slug}/training/": {
        "GET": E(302, 404, 403, 200, 200),
        "POST": E(302, 404, 403, 403, 400, data={}),  # an empty form: refused, nothing queued
    },
    "/p/{slug}/training/demote/": {"GET": NO_GET, "POST": E(302, 404, 403, 302, 302)},
    "/training/{training_run_id}/": {"GET": E(302, 404, 403, 200, 200), "POST": NO_POST},
    "/training/{training_run_id}/status/": {"GET": E(302, 404, 403, 200, 200), "POST": NO_POST},
    "/training/{training_run_id}/cancel/": {"GET": NO_GET, "POST": E(302, 404, 403, 403, 302)},
    "/training/{training_run_id}/restart/": {"GET": NO_GET, "POST": E(302, 404, 403, 403, 302)},
    "/training/{training_run_id}/promote/": {"GET": NO_GET, "POST": E(302, 404, 403, 302, 302)},
    "/api/projects/{slug}/training-runs/": {
        "GET": E(401, 404, 403, 200, 200),
        "POST": E(401, 404, 403, 403, 400, data={}),
    },
    "/api/training-runs/{training_run_id}/": {"GET": E(401, 404, 403, 200, 200)},
    # The world's run is done: nothing to cancel or restart (400), but it can be promoted.
    "/api/training-runs/{training_run_id}/cancel/": {"POST": E(401, 404, 403, 403, 400)},
    "/api/training-runs/{training_run_id}/restart/": {"POST": E(401, 404, 403, 403, 400)},
    "/api/training-runs/{training_run_id}/promote/": {"POST": E(401, 404, 403, 200, 200)},
    "/api/projects/{slug}/live-scorer/": {
        "GET": E(401, 404, 403, 200, 200),
        "DELETE": E(401, 404, 403, 400, 400),  # no live scorer to demote
    },
}
# (Issue 4's review, adjudication and audit routes: append their rows above this line.)


@dataclass
class World:
    project: Project
    trace: Trace
    users: dict[str, Any]
    run: ScoreRun
    snapshot: Any
    filename: str
    training_run: Any = None
    token_id: int = 0
    job_id: int = 0
    image_name: str = ""


def route_params(w: World) -> dict[str, Any]:
    """A value for every URL parameter name the routes use (a new name needs an entry here)."""
    return {
        "slug": w.project.slug,
        "trace_id": w.trace.pk,
        "index": 0,
        "run_id": w.run.pk,
        "problem_id": w.trace.problem_id,
        "snapshot_id": w.snapshot.pk,
        "filename": w.filename,
        "training_run_id": w.training_run.pk,
        "token_id": w.token_id,
        "username": "walk-annotator",
        "name": "exports",
        "job_id": w.job_id,
        "image_name": w.image_name,
    }


@pytest.fixture
def world(tmp_path, settings) -> World:
    return build_world(tmp_path, settings)


def build_world(tmp_path, settings) -> World:  # type: ignore[no-untyped-def]
    """Project "alpha" with one real ProcessBench trace, its members, a failed run, an export."""
    cache.clear()  # login and API throttles start from zero
    settings.VAR_DIR = tmp_path
    outsider, annotator, reviewer, admin = (make_user(f"walk-{r}") for r in ROLES[1:])
    # Overlap 3: the annotator's label below takes a slot (a lease starts with the first label),
    # and the reviewer and the admin still find the trace in their queue.
    project = make_project(
        "alpha", members={annotator: "annotator", reviewer: "reviewer", admin: "admin"}, overlap=3
    )
    make_project("beta", members={outsider: "annotator"})
    with open(REPO_ROOT / "data" / "processbench_sample.jsonl", "rb") as stream:
        first = stream.readline()
    imports.traces_import(
        project=project, stream=io.BytesIO(first), filename="walk.jsonl", format="processbench"
    )
    trace = Trace.objects.get(project=project)
    services.label_set(user=annotator, step=Step.objects.get(trace=trace, index=0), value=1)
    scorer = scoring_services.scorer_create(name="tool", backend="tool", projects=[project])
    run = ScoreRun.objects.create(
        trace=trace, scorer=scorer, scorer_version=scorer.version, status=RunStatus.FAILED
    )
    snapshot = exports.export_snapshot_create(
        project=project, user=admin, name="gold", format="trl", enqueue=False
    )
    snapshot = exports.export_snapshot_build(snapshot_id=snapshot.pk)
    assert snapshot.status == "done", snapshot.error
    api_token_create(user=admin, name="walk")
    token_id = ApiToken.objects.get(user=admin).pk
    training_run = TrainingRun.objects.create(
        project=project,
        snapshot=snapshot,
        base="tiny",
        scorer_name="tool",
        status=TrainingStatus.DONE,
        scorer=scorer,
        scorer_version=scorer.version,
    )
    job = ImportJob.objects.create(
        project=project,
        project_slug=project.slug,
        format="processbench",
        filename="bad.jsonl",
        path="gone.upload",
        status=ImportStatus.FAILED,
        error={"detail": "bad.jsonl, line 1: invalid JSON"},
        created_by=admin,
    )
    # An image as a bundle import stores it (annotate/bundles.py): named by its content's sha256.
    image = b"\x89PNG\r\n\x1a\n walk"
    image_name = f"{hashlib.sha256(image).hexdigest()}.png"
    bundles.images_dir(project.pk).mkdir(parents=True)
    (bundles.images_dir(project.pk) / image_name).write_bytes(image)
    return World(
        image_name=image_name,
        job_id=job.pk,
        project=project,
        trace=trace,
        users={"outsider": outsider, "annotator": annotator, "reviewer": reviewer, "admin": admin},
        run=run,
        snapshot=snapshot,
        filename=snapshot.files[0]["name"],
        training_run=training_run,
        token_id=token_id,
    )


# --- enumerating routes ---------------------------------------------------------------------------

_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


def resolver_routes() -> dict[str, Any]:
    """Every route of the URL resolver, as '/path/{param}/' (admin-site routes left out)."""
    routes = {}
    for route, entry in _walk(get_resolver().url_patterns):
        path = "/" + _CONVERTER.sub(r"{\1}", route)
        if path.startswith("/admin/"):
            continue
        routes[path] = entry
    return routes


def admin_routes() -> list[str]:
    """The admin site's routes without regular expressions, as '/admin/...{param}/'."""
    return [
        "/" + _CONVERTER.sub(r"{\1}", route)
        for route, _ in _walk(get_resolver().url_patterns)
        if route.startswith("admin/") and "^" not in route and "(?P" not in route
    ]


def schema_operations() -> dict[str, set[str]]:
    """Every path of the OpenAPI schema with its methods."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    methods = {"get", "post", "put", "patch", "delete"}
    return {
        path: {m.upper() for m in operations if m in methods}
        for path, operations in schema["paths"].items()
    }


def is_api(path: str) -> bool:
    return path.startswith("/api/") and path not in ("/api/schema/", "/api/docs/")


# --- the tests ------------------------------------------------------------------------------------


def coverage_problems(table: dict[str, dict[str, E]]) -> list[str]:
    """What the table misses (or has in excess) against the resolver and the schema."""
    routes = resolver_routes()
    schema = schema_operations()
    problems = []
    for path in sorted(set(routes) | set(schema)):
        rows = table.get(path)
        if rows is None:
            problems.append(f"{path}: no row in EXPECTATIONS (tests/test_permission_walk.py)")
            continue
        wanted = schema.get(path) if is_api(path) else {"GET", "POST"}
        if wanted is None:
            problems.append(f"{path}: an API route the OpenAPI schema does not list")
            continue
        if set(rows) != wanted:
            problems.append(
                f"{path}: EXPECTATIONS has {sorted(rows)}, the route has {sorted(wanted)}"
            )
    for path in sorted(set(table) - set(routes)):
        problems.append(f"{path}: in EXPECTATIONS but no such route (removed? renamed?)")
    return problems


def test_every_route_has_an_expectation() -> None:
    problems = coverage_problems(EXPECTATIONS)
    assert not problems, "\n".join(problems)
    assert len(resolver_routes()) >= 40  # the walk really found the routes


def test_a_route_without_a_row_is_named() -> None:
    table = dict(EXPECTATIONS)
    del table["/api/traces/{trace_id}/submit/"]
    table["/api/scorers/"] = {"GET": API_MEMBERS}  # the schema also lists POST
    assert coverage_problems(table) == [
        "/api/scorers/: EXPECTATIONS has ['GET'], the route has ['GET', 'POST']",
        "/api/traces/{trace_id}/submit/: no row in EXPECTATIONS (tests/test_permission_walk.py)",
    ]


def _client(role: str, users: dict[str, Any], *, api: bool) -> Client:
    client: Client = APIClient() if api else Client()
    if role != "anon":
        client.force_login(users[role])
    return client


def _request(client: Client, method: str, url: str, expect: E, w: World, *, api: bool) -> Any:
    data = expect.data(w) if callable(expect.data) else expect.data
    kwargs: dict[str, Any] = {"headers": expect.headers}
    if method != "GET" and api and expect.json:
        kwargs["format"] = "json"
    if data:  # files travel with a name, as a browser sends them
        data = {
            k: _named("walk.jsonl", v.read()) if hasattr(v, "read") else v for k, v in data.items()
        }
    return getattr(client, method.lower())(url, data or {}, **kwargs)


def _url(path: str, w: World) -> str:
    params = route_params(w)
    missing = set(re.findall(r"{(\w+)}", path)) - set(params)
    assert not missing, f"{path}: add {sorted(missing)} to route_params()"
    return path.format(**params)


@pytest.mark.parametrize(
    ("path", "method"),
    [(path, method) for path, rows in EXPECTATIONS.items() for method in rows],
)
def test_route_answers_each_visitor_as_expected(world: World, path: str, method: str) -> None:
    expect = EXPECTATIONS[path][method]
    url = _url(path, world)
    api = is_api(path)
    got = {}
    for role in ROLES:
        cache.clear()
        with transaction.atomic():
            response = _request(
                _client(role, world.users, api=api), method, url, expect, world, api=api
            )
            got[role] = response.status_code
            if response.status_code >= 500:
                pytest.fail(f"{method} {url} as {role}: server error {response.status_code}")
            if role == "anon" and response.status_code == 302:
                # Anonymous visitors are sent to the login page, never into the app.
                assert response["Location"].startswith("/accounts/login/"), response["Location"]
            transaction.set_rollback(True)
    wanted = {role: expect.status(role) for role in ROLES}
    assert got == wanted, f"{method} {path}"


@pytest.mark.parametrize("role", ROLES[1:])
def test_admin_site_sends_every_non_staff_member_to_its_login(world: World, role: str) -> None:
    client = _client(role, world.users, api=False)
    params = {"object_id": 1, "content_type_id": 1, "app_label": "annotate"}
    checked = 0
    for path in admin_routes():
        names = set(re.findall(r"{(\w+)}", path))
        if path in ("/admin/login/", "/admin/logout/") or names - set(params):
            continue
        url = path.format(**params)
        response = client.get(url)
        assert response.status_code == 302, (url, response.status_code)
        assert response["Location"].startswith("/admin/login/"), (url, response["Location"])
        checked += 1
    assert checked >= 20


def test_a_superuser_reaches_the_admin_site(world: World) -> None:
    boss = make_user("walk-boss", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(boss)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/annotate/project/").status_code == 200
