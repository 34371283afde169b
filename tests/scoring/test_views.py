"""The live score panel and Best-of-N pages: permissions, blind mode, polling that stops."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from annotate import services as annotate_services
from scoring import services
from scoring.models import RunStatus, ScoreRun
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(monkeypatch):
    from scoring import tasks

    sent: list[list[int]] = []
    monkeypatch.setattr(
        tasks.score_runs,
        "apply_async",
        lambda args, kwargs=None, queue=None, **_: sent.append((queue, args[0])),
    )
    annotator, reviewer, outsider = make_user(), make_user(), make_user()
    project = make_project(members={annotator: "annotator", reviewer: "reviewer"})
    make_project(members={outsider: "annotator"})
    scorer = services.scorer_create(name="prm", backend="tool", projects=[project])
    trace = make_trace(project, steps=["1+1=2", "2+2=5"])
    return {
        "a": annotator,
        "r": reviewer,
        "o": outsider,
        "project": project,
        "scorer": scorer,
        "trace": trace,
        "sent": sent,
    }


def _finish(trace, scorer, scores):
    run = ScoreRun.objects.get(trace=trace, scorer=scorer)
    services.score_runs_claim(run_ids=[run.pk])
    services.score_run_complete(result=services.RunResult(run_id=run.pk, step_scores=scores))


def test_opening_a_trace_enqueues_interactive_runs_once(
    client, world, django_capture_on_commit_callbacks
):
    client.force_login(world["a"])
    url = reverse("scoring:open", args=[world["trace"].pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url)
        client.post(url)
    assert response.status_code == 200
    assert world["sent"] == [("interactive", [ScoreRun.objects.get().pk])]
    html = response.content.decode()
    # unfinished: the panel asks for itself again, and says that no worker is alive
    assert 'hx-trigger="load delay:' in html
    assert 'data-testid="no-worker"' in html
    # An annotator is not told to run a command (issue 14 item 8); a site admin is.
    assert "celery -A" not in html
    world["a"].is_superuser = True
    world["a"].save()
    assert "celery -A config worker" in client.post(url).content.decode()


def test_panel_shows_scores_and_stops_polling_when_done(
    client, world, django_capture_on_commit_callbacks
):
    client.force_login(world["a"])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("scoring:open", args=[world["trace"].pk]))
    _finish(world["trace"], world["scorer"], [0.93, 0.12])
    html = client.get(reverse("scoring:panel", args=[world["trace"].pk])).content.decode()
    assert "hx-trigger" not in html.split("</section>")[0]
    assert "prm 0.93" in html and "prm 0.12" in html
    assert "score-wrong" in html  # 0.12 is below the scorer's threshold
    # grouped into thoughts by verdict at the scorer's threshold
    assert "step 1 ✓" in html and "step 2 ✗" in html
    step_ids = list(world["trace"].steps.values_list("pk", flat=True))
    for step_id in step_ids:
        assert f'id="step-scores-{step_id}"' in html


def test_blind_project_hides_scores_until_submit(client, world, django_capture_on_commit_callbacks):
    project = world["project"]
    project.blind = True
    project.save()
    with django_capture_on_commit_callbacks(execute=True):
        services.score_runs_enqueue(traces=[world["trace"]], scorers=[world["scorer"]])
    _finish(world["trace"], world["scorer"], [0.93, 0.12])
    client.force_login(world["a"])
    url = reverse("scoring:panel", args=[world["trace"].pk])
    html = client.get(url).content.decode()
    assert 'data-testid="blind-notice"' in html and "0.93" not in html
    annotate_services.label_all_correct(user=world["a"], trace=world["trace"])
    annotate_services.annotation_submit(user=world["a"], trace=world["trace"])
    html = client.get(url).content.decode()
    assert "0.93" in html and "blind-notice" not in html
    # a reviewer is never blind
    client.force_login(world["r"])
    assert "0.93" in client.get(url).content.decode()


def test_outsider_gets_404_on_panel_open_and_retry(
    client, world, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.score_runs_enqueue(traces=[world["trace"]], scorers=[world["scorer"]])[0]
    services.score_run_fail(run_id=run.pk, error="boom")
    client.force_login(world["o"])
    trace_id = world["trace"].pk
    assert client.get(reverse("scoring:panel", args=[trace_id])).status_code == 404
    assert client.post(reverse("scoring:open", args=[trace_id])).status_code == 404
    assert client.post(reverse("scoring:retry", args=[run.pk])).status_code == 404
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED


def test_failed_run_shows_error_and_retry(client, world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.score_runs_enqueue(traces=[world["trace"]], scorers=[world["scorer"]])[0]
    services.score_run_fail(run_id=run.pk, error="CUDA out of memory")
    client.force_login(world["a"])
    html = client.get(reverse("scoring:panel", args=[world["trace"].pk])).content.decode()
    assert "CUDA out of memory" in html and "Retry" in html
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("scoring:retry", args=[run.pk]))
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


def test_best_of_n_ranks_traces_by_aggregate(client, world, django_capture_on_commit_callbacks):
    project, scorer = world["project"], world["scorer"]
    problem_text = "Shared problem: what is $2+2$?"
    low = make_trace(project, steps=["a", "b"], problem_text=problem_text)
    high = make_trace(project, steps=["a", "b"], problem_text=problem_text)
    with django_capture_on_commit_callbacks(execute=True):
        services.score_runs_enqueue(traces=[low, high], scorers=[scorer])
    _finish(low, scorer, [0.9, 0.2])
    _finish(high, scorer, [0.8, 0.7])
    client.force_login(world["a"])
    url = reverse("review:best_of_n", args=[low.problem_id])
    html = client.get(url, {"scorer": "prm", "how": "min"}).content.decode()
    assert html.index(high.external_id) < html.index(low.external_id)
    # by the last step's score the order is the same; by the mean too (0.75 > 0.55)
    html = client.get(url, {"scorer": "prm", "how": "mean"}).content.decode()
    assert html.index(high.external_id) < html.index(low.external_id)
    api = client.get(
        f"/api/problems/{low.problem_id}/best-of-n/", {"scorer": "prm", "how": "product"}
    )
    assert [row["trace_id"] for row in api.json()] == [high.pk, low.pk]
    assert api.json()[0]["aggregate"] == pytest.approx(0.56)


def test_best_of_n_shows_answers_and_correctness_to_reviewers_only(client, world):
    project = world["project"]
    problem_text = "Shared: what is $1+1$?"
    right = make_trace(project, steps=["1+1=2", "\\boxed{2}"], problem_text=problem_text)
    wrong = make_trace(project, steps=["1+1=3", "\\boxed{3}"], problem_text=problem_text)
    for trace, answer, ok in ((right, "2", True), (wrong, "3", False)):
        trace.final_answer, trace.final_answer_correct = answer, ok
        trace.save()
    url = reverse("review:best_of_n", args=[right.problem_id])
    api = f"/api/problems/{right.problem_id}/best-of-n/"
    client.force_login(world["r"])
    html = client.get(url).content.decode()
    assert 'data-testid="reference-answer"' in html  # the problem's reference answer, "2"
    assert (
        '<span class="val-minus">no</span>' in html and '<span class="val-plus">yes</span>' in html
    )
    rows = {row["trace_id"]: row for row in client.get(api, {"scorer": "prm"}).json()}
    assert (rows[wrong.pk]["final_answer"], rows[wrong.pk]["final_answer_correct"]) == ("3", False)
    client.force_login(world["a"])  # annotators see the answers, not whether they are right
    html = client.get(url).content.decode()
    assert "val-minus" not in html and "val-plus" not in html
    rows = {row["trace_id"]: row for row in client.get(api, {"scorer": "prm"}).json()}
    assert (rows[wrong.pk]["final_answer"], rows[wrong.pk]["final_answer_correct"]) == ("3", None)


def test_scores_api_and_import(client, world, tmp_path, django_capture_on_commit_callbacks):
    client.force_login(world["a"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/traces/{world['trace'].pk}/scores/enqueue/")
    assert response.status_code == 202
    assert response.json()["runs"][0]["status"] == "queued"
    _finish(world["trace"], world["scorer"], [0.5, 0.25])
    body = client.get(f"/api/traces/{world['trace'].pk}/scores/").json()
    assert body["finished"] is True
    assert [s["score"] for s in body["runs"][0]["steps"]] == [0.5, 0.25]
    # importing scores needs the project's admin role
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"trace_id": world["trace"].external_id, "scores": [0.1, 0.2]}))
    with path.open("rb") as f:
        denied = client.post(
            "/api/scores/import/", {"project": world["project"].slug, "scorer": "prm", "file": f}
        )
    assert denied.status_code == 403


def test_project_admin_chooses_the_scorers(client, world):
    admin = make_user()
    annotate_services.membership_set(project=world["project"], user=admin, role="admin")
    services.scorer_create(name="other", backend="tool")
    url = reverse("scoring:project_scorers", args=[world["project"].slug])
    client.force_login(world["a"])
    assert client.get(url).status_code == 403  # annotators do not choose: "Admins only."
    client.force_login(admin)
    assert "other" in client.get(url).content.decode()
    client.post(url, {"scorer": ["other"]})
    assert list(world["project"].scorers.values_list("name", flat=True)) == ["other"]
    response = client.put(
        f"/api/projects/{world['project'].slug}/scorers/",
        data=json.dumps({"scorers": ["prm", "other"]}),
        content_type="application/json",
    )
    assert response.status_code == 200
    assert sorted(world["project"].scorers.values_list("name", flat=True)) == ["other", "prm"]
    bad = client.put(
        f"/api/projects/{world['project'].slug}/scorers/",
        data=json.dumps({"scorers": ["nope"]}),
        content_type="application/json",
    )
    assert bad.status_code == 400 and "nope" in bad.content.decode()


def test_best_of_n_scores_the_missing_traces_and_refreshes_until_done(
    client, world, django_capture_on_commit_callbacks
):
    project, scorer = world["project"], world["scorer"]
    problem_text = "Shared: what is $3+3$?"
    first = make_trace(project, steps=["3+3=6"], problem_text=problem_text)
    second = make_trace(project, steps=["3+3=7"], problem_text=problem_text)
    url = reverse("review:best_of_n", args=[first.problem_id])
    client.force_login(world["a"])
    html = client.get(url).content.decode()
    assert "2 of these traces have no prm scores yet" in html
    assert 'hx-trigger="every 1s"' not in html  # nothing is running: no polling
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("review:best_of_n_score", args=[first.problem_id]),
            {"scorer": "prm", "how": "mean"},
        )
    assert response.status_code == 302 and response["Location"].endswith("?scorer=prm&how=mean")
    runs = ScoreRun.objects.filter(trace__in=[first, second], scorer=scorer)
    assert {(r.trace_id, r.queue, r.status) for r in runs} == {
        (first.pk, "interactive", "queued"),
        (second.pk, "interactive", "queued"),
    }
    assert [q for q, _ in world["sent"]] == ["interactive"]  # one task for both runs
    html = client.get(url).content.decode()
    assert 'hx-trigger="every 1s"' in html and "Scoring…" in html and "queued" in html
    _finish(first, scorer, [0.9])
    _finish(second, scorer, [0.1])
    html = client.get(url).content.decode()
    assert 'hx-trigger="every 1s"' not in html and "no prm scores yet" not in html
    assert html.index(first.external_id) < html.index(second.external_id)
    # the same through the API: POST enqueues nothing more, and reports every run done
    rows = client.post(
        f"/api/problems/{first.problem_id}/best-of-n/score/",
        {"scorer": "prm"},
        content_type="application/json",
    ).json()
    assert [(r["trace_id"], r["status"]) for r in rows] == [(first.pk, "done"), (second.pk, "done")]
    assert runs.count() == 2


def test_external_scorer_panel_neither_enqueues_nor_polls(
    client, world, django_capture_on_commit_callbacks
):
    external = services.scorer_create(name="elsewhere", backend="external")
    world["project"].scorers.set([external])
    client.force_login(world["a"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("scoring:open", args=[world["trace"].pk]))
    assert world["sent"] == [] and not ScoreRun.objects.exists()
    html = response.content.decode()
    assert "hx-trigger" not in html  # nothing will come: no polling
    assert "not imported" in html and 'data-testid="no-worker"' not in html


def test_scores_import_api_registers_an_external_scorer(client, world, tmp_path):
    annotate_services.membership_set(project=world["project"], user=world["r"], role="admin")
    client.force_login(world["r"])
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"trace_id": world["trace"].external_id, "scores": [0.1, 0.2]}))
    with path.open("rb") as f:
        response = client.post(
            "/api/scores/import/",
            {"project": world["project"].slug, "scorer": "new-prm", "file": f},
        )
    assert response.status_code == 201, response.content
    assert response.json() == {
        "runs_written": 1,
        "steps_scored": 2,
        "scorer": "new-prm",
        "scorer_version": 1,
    }
    scores = client.get(f"/api/traces/{world['trace'].pk}/scores/").json()
    assert [(r["scorer"], r["status"]) for r in scores["runs"] if r["scorer"] == "new-prm"] == [
        ("new-prm", "done")
    ]


def _tool_scores(trace, scorer) -> None:
    """Score `trace` with the real tool backend, as a worker would."""
    from scoring.prm import build_scorer
    from scoring.prm.contract import TraceInput

    steps = list(trace.steps.order_by("index"))
    (out,) = build_scorer("tool").score([TraceInput("t", [s.text for s in steps])])
    services.score_runs_enqueue(traces=[trace], scorers=[scorer])
    run = ScoreRun.objects.get(trace=trace, scorer=scorer)
    services.score_runs_claim(run_ids=[run.pk])
    services.score_run_complete(
        result=services.RunResult(
            run_id=run.pk,
            step_scores=[s.score for s in out.steps],
            step_details=[s.details for s in out.steps],
        )
    )


def test_thoughts_group_within_a_part_and_a_step_with_no_check_is_unknown(client, world):
    # Thinking then response, every step checkable and right but one with nothing to check
    # (the tool backend's neutral 0.50): it is "?" (unknown), not a right step, and the
    # thoughts stop where the part changes.
    trace = make_trace(
        world["project"],
        steps=["1+1=2", "2+3=5", "So we add.", "3+4=7", "4+4=8"],
        parts=["thinking", "thinking", "thinking", "response", "response"],
    )
    world["scorer"].threshold = 0.3  # the neutral 0.50 is above it: it used to show as right
    world["scorer"].save()
    _tool_scores(trace, world["scorer"])
    client.force_login(world["a"])
    html = client.get(reverse("scoring:panel", args=[trace.pk])).content.decode()
    thoughts = html.split('class="thoughts"')[1].split("</p>")[0]
    assert re.findall(r'<span class="thought [^"]*"[^>]*>([^<]*)</span>', thoughts) == [
        "thinking: steps 1–2 ✓",
        "thinking: step 3 ? (no check)",
        "response: steps 4–5 ✓",
    ]
    api = client.get(reverse("api:trace-scores", args=[trace.pk])).json()
    (run,) = api["runs"]
    assert [s["part"] for s in run["steps"]] == ["thinking"] * 3 + ["response"] * 2
    assert run["steps"][2]["details"]["verdict"] == "unknown"
