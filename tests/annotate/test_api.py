"""The REST API: a script labels traces with a token exactly as an annotator does in the browser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.cache import cache
from django.core.management import call_command
from rest_framework.test import APIClient

from annotate import services
from annotate.models import GoldLabel, GoldSource, LabelScheme, Project, StepLabel, Trace
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    # Throttle counters live in the cache, which outlives a test's database rollback.
    cache.clear()


def token_client(user) -> APIClient:
    """A client authenticated the way a script is: a token obtained with username and password."""
    client = APIClient()
    response = client.post(
        "/api/auth/token/", {"username": user.username, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    return client


def test_each_exchange_makes_a_token_and_wrong_password_is_refused():
    user = make_user()
    first = APIClient().post(
        "/api/auth/token/", {"username": user.username, "password": PASSWORD}, format="json"
    )
    again = APIClient().post(
        "/api/auth/token/", {"username": user.username, "password": PASSWORD}, format="json"
    )
    # A token is shown once (only its hash is kept): each exchange makes a new one.
    assert first.json()["token"] != again.json()["token"]
    wrong = APIClient().post(
        "/api/auth/token/", {"username": user.username, "password": "nope"}, format="json"
    )
    assert wrong.status_code == 400
    assert "token" not in wrong.json()


def test_labelling_flow_with_a_token():
    annotator = make_user()
    project = make_project("flow", members={annotator: "annotator"})
    first = make_trace(project, steps=["a", "b", "c", "d"])
    second = make_trace(project, steps=["x", "y"])
    api = token_client(annotator)

    projects = api.get("/api/projects/").json()
    assert projects["count"] == 1
    assert projects["results"][0] == {
        "slug": "flow",
        "name": "flow",
        "label_scheme": "ternary",
        "overlap": 1,
        "blind": False,
        "my_role": "annotator",
    }
    detail = api.get("/api/projects/flow/").json()
    assert detail["my_progress"] == {"done": 0, "assigned": 2, "percent": 0}
    assert detail["trace_count"] == 2

    trace = api.get("/api/projects/flow/queue/next/").json()
    assert trace["id"] == first.pk
    assert [(s["index"], s["text"], s["part"]) for s in trace["steps"]] == [
        (0, "a", "response"),
        (1, "b", "response"),
        (2, "c", "response"),
        (3, "d", "response"),
    ]
    assert trace["problem"]["reference_answer"] == "2"

    url = f"/api/traces/{first.pk}"
    response = api.put(f"{url}/steps/3/label/", {"value": 1, "note": "fine"}, format="json")
    assert response.status_code == 200
    assert response.json()["value"] == 1 and response.json()["step_index"] == 3

    # First wrong step at index 2: earlier steps +1, it -1, later ratings cleared unless set by
    # hand (step 3's is kept, with its note).
    annotation = api.post(f"{url}/first-error/", {"step_index": 2}, format="json").json()
    assert [(label["step_index"], label["value"]) for label in annotation["labels"]] == [
        (0, 1),
        (1, 1),
        (2, -1),
        (3, 1),
    ]
    assert annotation["labels"][3]["note"] == "fine"
    assert annotation["status"] == "in_progress"

    assert api.post(f"{url}/heartbeat/", {"seconds": 12.5}, format="json").json() == {
        "active_seconds": 12.5
    }
    submitted = api.post(f"{url}/submit/", {}, format="json")
    assert submitted.status_code == 200, submitted.content
    assert submitted.json()["status"] == "submitted"
    assert submitted.json()["finish_reason"] == "found_error"

    # The queue moves on, and the progress counts the submission.
    assert api.get("/api/projects/flow/queue/next/").json()["id"] == second.pk
    assert api.get("/api/projects/flow/").json()["my_progress"]["done"] == 1
    listed = api.get("/api/projects/flow/traces/", {"status": "submitted"}).json()
    assert [t["id"] for t in listed["results"]] == [first.pk]
    assert listed["results"][0]["step_count"] == 4

    # "No wrong step" on the last one, then the queue is empty: 204.
    api.post(f"/api/traces/{second.pk}/all-correct/")
    done = api.post(f"/api/traces/{second.pk}/submit/", {}, format="json").json()
    assert done["finish_reason"] == "solution"
    empty = api.get("/api/projects/flow/queue/next/")
    assert empty.status_code == 204
    assert empty.content == b""


def test_my_annotation_before_any_label_creates_nothing():
    annotator = make_user()
    project = make_project(members={annotator: "annotator"})
    trace = make_trace(project)
    mine = token_client(annotator).get(f"/api/traces/{trace.pk}/annotation/").json()
    assert (mine["status"], mine["labels"], mine["id"]) == ("new", [], None)
    assert not trace.annotations.exists()


def test_partial_label_update_keeps_the_other_fields():
    annotator = make_user()
    project = make_project(members={annotator: "annotator"})
    trace = make_trace(project)
    api = token_client(annotator)
    url = f"/api/traces/{trace.pk}/steps/1/label/"
    api.put(url, {"value": 0}, format="json")
    api.patch(url, {"note": "unclear wording"}, format="json")
    response = api.patch(url, {"flagged": True}, format="json")
    assert response.status_code == 200
    label = StepLabel.objects.get(step__trace=trace, step__index=1)
    assert (label.value, label.note, label.flagged) == (0, "unclear wording", True)
    # null clears the rating only
    api.patch(url, {"value": None}, format="json")
    label.refresh_from_db()
    assert (label.value, label.note, label.flagged) == (None, "unclear wording", True)
    # an empty body is a mistake, not a no-op
    assert api.patch(url, {}, format="json").status_code == 400
    assert api.put(f"/api/traces/{trace.pk}/steps/99/label/", {"value": 1}).status_code == 404


def test_binary_project_refuses_neutral_with_a_message():
    annotator = make_user()
    project = make_project(members={annotator: "annotator"}, label_scheme=LabelScheme.BINARY)
    trace = make_trace(project)
    response = token_client(annotator).put(
        f"/api/traces/{trace.pk}/steps/0/label/", {"value": 0}, format="json"
    )
    assert response.status_code == 400
    assert "binary" in response.json()["value"][0]
    assert not StepLabel.objects.exists()


def test_submit_of_an_unfinished_trace_is_a_400_with_the_reason():
    annotator = make_user()
    project = make_project(members={annotator: "annotator"})
    trace = make_trace(project)
    api = token_client(annotator)
    response = api.post(f"/api/traces/{trace.pk}/submit/", {}, format="json")
    assert response.status_code == 400
    assert "Label every step" in response.json()["finish_reason"][0]
    unknown = api.post(f"/api/traces/{trace.pk}/submit/", {"finish_reason": "bored"}, format="json")
    assert unknown.status_code == 400
    bad = api.post(
        f"/api/traces/{trace.pk}/submit/", {"finish_reason": "bad_problem"}, format="json"
    )
    assert bad.json()["finish_reason"] == "bad_problem"
    wrong_step = api.post(f"/api/traces/{trace.pk}/first-error/", {"step_index": 7}, format="json")
    assert wrong_step.status_code == 400
    assert "step_index" in wrong_step.json()


def test_reviewer_sees_every_annotation_annotator_only_their_own():
    alice, bob, rita = make_user(), make_user(), make_user()
    project = make_project(
        members={alice: "annotator", bob: "annotator", rita: "reviewer"}, overlap=2
    )
    trace = make_trace(project)
    services.label_set(user=alice, step=trace.steps.get(index=0), value=1)
    services.label_set(user=bob, step=trace.steps.get(index=0), value=-1)
    url = f"/api/traces/{trace.pk}/annotations/"

    seen_by_rita = token_client(rita).get(url).json()
    assert sorted((a["annotator"], a["labels"][0]["value"]) for a in seen_by_rita) == sorted(
        [(alice.username, 1), (bob.username, -1)]
    )
    seen_by_alice = token_client(alice).get(url).json()
    assert [(a["annotator"], a["labels"][0]["value"]) for a in seen_by_alice] == [
        (alice.username, 1)
    ]


def test_gold_labels_are_for_reviewers_only():
    annotator, reviewer = make_user(), make_user()
    project = make_project(members={annotator: "annotator", reviewer: "reviewer"})
    trace = make_trace(project)
    GoldLabel.objects.create(step=trace.steps.get(index=1), value=-1, source=GoldSource.IMPORTED)
    url = f"/api/traces/{trace.pk}/"
    assert token_client(annotator).get(url).json()["gold"] is None
    gold = token_client(reviewer).get(url).json()["gold"]
    assert gold["labels"] == [{"step_index": 1, "value": -1, "source": "imported", "rationale": ""}]


def test_session_writes_need_the_csrf_token():
    annotator = make_user()
    project = make_project(members={annotator: "annotator"})
    trace = make_trace(project)
    browser = APIClient(enforce_csrf_checks=True)
    assert browser.login(username=annotator.username, password=PASSWORD)
    url = f"/api/traces/{trace.pk}/steps/0/label/"
    refused = browser.put(url, {"value": 1}, format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    assert not StepLabel.objects.exists()
    # The same write with the cookie's token in the header, as a page sends it, is accepted.
    token = "k" * 32
    browser.cookies[settings.CSRF_COOKIE_NAME] = token
    accepted = browser.put(url, {"value": 1}, format="json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 200
    # Reads need no token.
    assert browser.get(f"/api/traces/{trace.pk}/annotation/").status_code == 200


API_PATHS = [
    "/api/auth/token/",
    "/api/projects/",
    "/api/projects/{slug}/",
    "/api/projects/{slug}/traces/",
    "/api/projects/{slug}/queue/next/",
    "/api/traces/{trace_id}/",
    "/api/traces/{trace_id}/annotation/",
    "/api/traces/{trace_id}/annotations/",
    "/api/traces/{trace_id}/steps/{index}/label/",
    "/api/traces/{trace_id}/first-error/",
    "/api/traces/{trace_id}/all-correct/",
    "/api/traces/{trace_id}/submit/",
    "/api/traces/{trace_id}/heartbeat/",
    "/api/imports/",
]


def test_schema_is_valid_openapi_with_every_endpoint(tmp_path: Path):
    out = tmp_path / "schema.yaml"
    # --fail-on-warn: a missing or ambiguous request/response schema fails here.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()
    assert set(API_PATHS) <= set(schema["paths"])
    label_put = schema["paths"]["/api/traces/{trace_id}/steps/{index}/label/"]["put"]
    ref = label_put["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert set(schema["components"]["schemas"][ref.split("/")[-1]]["properties"]) == {
        "value",
        "flagged",
        "note",
    }


def test_docs_page_loads_without_any_external_url():
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, flags=re.I)
    assets = re.findall(r'(?:src|href)="/static/([^"]+)"', html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    for asset in assets:  # every asset is vendored, so the page works offline
        assert finders.find(asset), asset


def _sample(repo_root: Path, name: str) -> Path:
    """A real data file shipped in the repository (its origin: data/README.md)."""
    path = repo_root / "data" / name
    return path if path.exists() else Path("/work/shared/data") / name


def test_import_of_a_real_processbench_file_counts_what_it_wrote(repo_root: Path):
    owner, annotator = make_user(), make_user()
    make_project("pb", members={owner: "admin", annotator: "annotator"})
    api = token_client(owner)
    path = _sample(repo_root, "processbench_sample.jsonl")
    with path.open("rb") as handle:
        response = api.post(
            "/api/imports/", {"project": "pb", "format": "processbench", "file": handle}
        )
    assert response.status_code == 201, response.content
    body = response.json()
    # 80 records, 581 steps; gold: the steps up to the first error, or all when label is -1.
    assert {key: body[key] for key in ("traces_created", "problems_created", "steps_created")} == {
        "traces_created": 80,
        "problems_created": 80,
        "steps_created": 581,
    }
    assert body["gold_labels_created"] == 387
    assert (body["project"], body["project_created"], body["traces_skipped"]) == ("pb", False, 0)
    assert Trace.objects.filter(project__slug="pb").count() == 80

    with path.open("rb") as handle:
        again = api.post(
            "/api/imports/", {"project": "pb", "format": "processbench", "file": handle}
        )
    assert (again.json()["traces_created"], again.json()["traces_skipped"]) == (0, 80)
    assert Trace.objects.count() == 80
    # The imported traces are what the queue serves next; their answer key is for reviewers only.
    trace = token_client(annotator).get("/api/projects/pb/queue/next/").json()
    assert (trace["source"], trace["subset"], trace["external_id"]) == (
        "processbench",
        "gsm8k",
        "gsm8k-12",
    )
    assert (trace["gold"], trace["metadata"]) == (None, None)
    gold = api.get(f"/api/traces/{trace['id']}/").json()["gold"]
    # gsm8k-12: label 1, the second step is the first wrong one
    assert [(g["step_index"], g["value"]) for g in gold["labels"]] == [(0, 1), (1, -1)]
    assert gold["final_answer_correct"] is False


def test_a_corrupted_file_is_refused_naming_the_line_and_nothing_changes(
    repo_root: Path, tmp_path: Path
):
    admin = make_user(is_superuser=True)
    lines = _sample(repo_root, "processbench_sample.jsonl").read_bytes().splitlines(keepends=True)
    lines[4] = lines[4][: len(lines[4]) // 2] + b"\n"  # line 5 cut in the middle
    corrupted = tmp_path / "processbench_corrupted.jsonl"
    corrupted.write_bytes(b"".join(lines))
    api = token_client(admin)
    with corrupted.open("rb") as handle:
        response = api.post(
            "/api/imports/", {"project": "new-one", "format": "processbench", "file": handle}
        )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["line"] == 5
    assert "processbench_corrupted.jsonl" in body["file"]
    assert "5" in body["detail"]
    # All or nothing: not even the project that the import would have created.
    assert not Trace.objects.exists()
    assert not Project.objects.filter(slug="new-one").exists()


def test_an_upload_over_the_limit_is_refused_with_413(repo_root: Path, settings):
    settings.IMPORT_MAX_BYTES = 10_000
    owner = make_user()
    make_project("small", members={owner: "admin"})
    with _sample(repo_root, "processbench_sample.jsonl").open("rb") as handle:
        response = token_client(owner).post(
            "/api/imports/", {"project": "small", "format": "processbench", "file": handle}
        )
    assert response.status_code == 413
    assert "(10000 bytes)" in response.json()["detail"]
    assert not Trace.objects.exists()


def test_queue_next_previews_what_take_would_lease():
    """GET .../queue/next/ agrees with the leasing queue: a slot another annotator holds is not
    offered again, and one's own lease is what comes next."""
    alice, bob = make_user(), make_user()
    project = make_project(members={alice: "annotator", bob: "annotator"}, overlap=1)
    first, second = make_trace(project), make_trace(project)
    a, b = token_client(alice), token_client(bob)
    taken = a.post(f"/api/projects/{project.slug}/queue/take/", {}, format="json")
    assert taken.status_code == 200
    held = taken.json()["trace_id"]
    assert a.get(f"/api/projects/{project.slug}/queue/next/").json()["id"] == held
    other = second.pk if held == first.pk else first.pk
    assert b.get(f"/api/projects/{project.slug}/queue/next/").json()["id"] == other


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (
            {"client": "tab", "changes": [{"seq": 1, "op": "label", "index": 0, "flagged": "no"}]},
            "changes[0]: flagged",
        ),
        (
            {"client": "tab", "changes": [{"seq": 1, "op": "label", "index": 0, "value": "1"}]},
            "changes[0]: value",
        ),
        (
            {"client": "tab", "changes": [{"seq": 1, "op": "label", "index": 7, "value": 1}]},
            "changes[0]: this trace has no step 7",
        ),
        ({"client": "", "changes": []}, "1 to 64 characters"),
        ({"client": "tab"}, "a list of changes"),
        (["tab"], "A JSON object"),
    ],
)
@pytest.mark.parametrize("started", [False, True])
def test_a_bad_change_log_is_a_400_naming_what_and_where(body, where, started) -> None:
    """Refused whether the annotation is new or started (a started one's single label change
    takes the one-statement path on PostgreSQL, which must refuse alike and write nothing)."""
    user = make_user("bad-log")
    trace = make_trace(make_project(members={user: "annotator"}))
    client = APIClient()
    client.force_authenticate(user)
    url = f"/api/traces/{trace.pk}/changes/"
    before: list[tuple[int, int | None]] = []
    if started:
        first = {"client": "tab", "changes": [{"seq": 1, "op": "label", "index": 1, "value": 1}]}
        assert client.post(url, first, format="json").status_code == 200
        before = [(1, 1)]
        if isinstance(body, dict) and "changes" in body:  # the bad change as the tab's next one
            body = {**body, "changes": [{**c, "seq": 2} for c in body["changes"]]}
    response = client.post(url, body, format="json")
    assert response.status_code == 400, response.content
    assert where in response.content.decode()
    assert list(StepLabel.objects.values_list("step__index", "value")) == before


def test_the_change_log_answer_is_what_its_documented_serializer_writes() -> None:
    """/api/traces/<id>/changes/ builds its answer without serializers (issue 16: the page's
    hottest request); for every op the answer must stay what OutputSerializer writes for the same
    labels: the documented schema, field for field (values, sources, notes, flags, blind values,
    times; a cleared step as a stand-in with no row)."""
    from annotate.api import LabelChangesApi
    from annotate.serializers import StepLabelSerializer

    user = make_user("log")
    project = make_project(members={user: "annotator"})
    trace = make_trace(project, steps=["One.", "Two.", "Three.", "Four."])
    client = APIClient()
    client.force_authenticate(user)
    url = f"/api/traces/{trace.pk}/changes/"
    batches = [
        [{"seq": 1, "op": "label", "index": 0, "value": 1}],
        [{"seq": 2, "op": "label", "index": 1, "flagged": True, "note": "<b>see</b> ünïcode"}],
        [{"seq": 3, "op": "first_error", "index": 2}],
        [{"seq": 4, "op": "all_correct"}],
        [{"seq": 5, "op": "restore", "labels": [{"index": 3, "value": None, "source": "hand"}]}],
        [{"seq": 5, "op": "label", "index": 0, "value": -1}],  # a resend: skipped
    ]
    for changes in batches:
        response = client.post(url, {"client": "tab", "changes": changes}, format="json")
        assert response.status_code == 200, response.content
        answer = response.json()
        labels = []
        for data in answer["labels"]:
            row = StepLabel.objects.filter(
                annotation__trace=trace, step__index=data["step_index"]
            ).first() or StepLabel(value=None)
            row.step_index = data["step_index"]
            labels.append(row)
        expected = LabelChangesApi.OutputSerializer({**answer, "labels": labels}).data
        assert answer == expected
        assert [dict(x) for x in expected["labels"]] == [
            dict(StepLabelSerializer(label).data) for label in labels
        ]
