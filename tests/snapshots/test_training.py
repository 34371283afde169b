"""Training a PRM from a snapshot, end to end with a tiny model on CPU: the run is a job with
progress and a loss curve, its result a new scorer version scored on the test split beside the
previous one, cancel and restart, a dead worker's run failed with the reason, promotion logged
and followed by the labelling queue, and `train_prm`'s JSON line read back by `add_scorer`."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

pytest.importorskip("torch")
pytest.importorskip("trl")

from annotate import imports  # noqa: E402
from review.models import TracePriority  # noqa: E402
from scoring import services as scoring_services  # noqa: E402
from scoring.models import RunStatus, Scorer, ScoreRun  # noqa: E402
from snapshots import services as exports  # noqa: E402
from snapshots import training  # noqa: E402
from snapshots.models import (  # noqa: E402
    PromotionAction,
    ScorerPromotion,
    TrainingRun,
    TrainingStatus,
)
from tests.conftest import REPO_ROOT  # noqa: E402
from tests.factories import make_project, make_user  # noqa: E402

pytestmark = pytest.mark.django_db

# Small enough for seconds on CPU.
FAST = {
    "epochs": 1,
    "learning_rate": 1e-3,
    "max_length": 256,
    "batch_tokens": 4096,
    "tiny_hidden_size": 32,
    "tiny_vocab_size": 512,
}


@pytest.fixture
def project_with_snapshot(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    admin = make_user()
    project = make_project(members={admin: "admin"})
    with open(REPO_ROOT / "data" / "processbench_sample.jsonl", "rb") as stream:
        imports.traces_import(
            project=project, stream=stream, filename="pb.jsonl", format="processbench"
        )
    snapshot = exports.export_snapshot_create(
        project=project,
        user=admin,
        name="pb",
        format="trl",
        neutral="drop",
        test_fraction=0.25,
        seed=1,
        enqueue=False,
    )
    snapshot = exports.export_snapshot_build(snapshot_id=snapshot.pk)
    assert snapshot.row_counts["test"] > 0
    return admin, project, snapshot


def test_a_run_trains_registers_a_scorer_version_and_scores_the_test_split(
    project_with_snapshot, django_capture_on_commit_callbacks
) -> None:
    admin, project, snapshot = project_with_snapshot
    tool = scoring_services.scorer_create(name="tool", backend="tool", projects=[project])
    with django_capture_on_commit_callbacks(execute=True):  # the tool scores every trace
        scoring_services.score_runs_enqueue(
            traces=list(project.traces.values_list("pk", flat=True)), scorers=[tool]
        )
    with django_capture_on_commit_callbacks(execute=True):  # the `train` task, eager in tests
        run = training.training_run_create(
            user=admin, project=project, snapshot="pb", base="tiny", scorer_name="mine", params=FAST
        )
    run.refresh_from_db()
    assert run.status == TrainingStatus.DONE, run.error
    assert run.loss_curve and all("loss" in point for point in run.loss_curve)
    assert run.progress_done == run.progress_total > 0
    scorer = Scorer.objects.get(name="mine")
    assert (run.scorer, run.scorer_version, scorer.version) == (scorer, 1, 1)
    assert project in scorer.projects.all()
    assert scorer.model_path == run.output_path and Path(run.output_path, "config.json").is_file()
    card = Path(run.output_path, "README.md").read_text()
    assert snapshot.sha256 in card  # the card names the data it learned from
    test = run.metrics["test"]
    assert test["rows"] == snapshot.row_counts["test"]
    assert 0.0 <= test["step_auroc"] <= 1.0
    # The project's other scorers on the same test rows and gold steps, from their stored scores.
    other = run.metrics["others"]["tool"]
    assert other["rows"] == other["of_rows"] == test["rows"]
    assert other["steps"] == test["steps"] and 0.0 <= other["step_auroc"] <= 1.0

    # A second run of the same scorer: version 2, in its own folder, beside version 1's figures.
    with django_capture_on_commit_callbacks(execute=True):
        again = training.training_run_create(
            user=admin,
            project=project,
            snapshot="pb@1",
            base="tiny",
            scorer_name="mine",
            params=FAST,
        )
    again.refresh_from_db()
    assert again.status == TrainingStatus.DONE, again.error
    assert again.scorer_version == 2 and again.output_path != run.output_path
    assert again.metrics["previous"]["scorer_version"] == 1
    assert again.metrics["previous"]["rows"] == test["rows"]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"snapshot": "nope"}, "snapshot"),
        ({"base": "relative/dir"}, "base"),
        ({"params": {"epochs": -1}}, "epochs"),
        ({"params": {"learning_rates": 1}}, "learning_rates"),
    ],
)
def test_a_bad_request_is_refused_naming_the_field(project_with_snapshot, kwargs, field) -> None:
    admin, project, _ = project_with_snapshot
    request = {"snapshot": "pb", "base": "tiny", "scorer_name": "mine", "params": {}} | kwargs
    with pytest.raises(ValidationError, match=field):
        training.training_run_create(user=admin, project=project, enqueue=False, **request)
    assert not TrainingRun.objects.exists()


def test_a_tiny_run_starts_from_the_measured_configuration_not_the_engines_defaults(
    project_with_snapshot, tmp_path
) -> None:
    """`train_prm --base tiny` with no parameters (README's command) trained one epoch at 1e-5,
    the defaults made for a pre-trained base, which teach a model trained from scratch nothing.
    What a request leaves out now comes from the measured tiny configuration; what it sets wins;
    a local base keeps the engine's defaults; a long max_length widens the batch budget."""
    from scoring.prm.demo_params import TINY_BASE_PARAMS
    from scoring.prm.training import TrainParams

    admin, project, _ = project_with_snapshot

    def create(base: str, params: dict) -> dict:
        return training.training_run_create(
            user=admin,
            project=project,
            snapshot="pb",
            base=base,
            scorer_name="m",
            params=params,
            enqueue=False,
        ).params

    tiny = create("tiny", {})
    assert {k: tiny[k] for k in TINY_BASE_PARAMS} == TINY_BASE_PARAMS
    assert (tiny["epochs"], tiny["learning_rate"], tiny["lm_pretrain_epochs"]) == (3.0, 2e-4, 0.0)
    assert create("tiny", {"learning_rate": 5e-4, "seed": 3}) == {
        **tiny,
        "learning_rate": 5e-4,
        "seed": 3,
    }
    local = tmp_path / "base"
    local.mkdir()
    (local / "config.json").write_text("{}")
    assert create(str(local), {}) == TrainParams().as_dict()
    long = create(str(local), {"max_length": 40_000})
    assert (long["max_length"], long["batch_tokens"]) == (40_000, 40_000)
    assert create("tiny", {"max_length": 512})["batch_tokens"] == TINY_BASE_PARAMS["batch_tokens"]


def test_the_training_form_left_blank_trains_tiny_with_its_configuration(
    project_with_snapshot, client
) -> None:
    """The form's parameter fields are optional: blank is the base's default (its first version
    sent epochs 1, 1e-5, 2048 and TRL's head for base tiny, which learns nothing)."""
    from scoring.prm.demo_params import TINY_BASE_PARAMS

    admin, project, _ = project_with_snapshot
    client.force_login(admin)
    url = f"/p/{project.slug}/training/"
    form = {"snapshot": "pb", "base": "tiny", "scorer": "blank", "seed": "0"}
    answer = client.post(url, {**form, "epochs": "", "learning_rate": "", "max_length": ""})
    assert answer.status_code == 302
    run = TrainingRun.objects.get(scorer_name="blank")
    assert {k: run.params[k] for k in TINY_BASE_PARAMS if k != "seed"} == {
        k: v for k, v in TINY_BASE_PARAMS.items() if k != "seed"
    }
    set_here = client.post(
        url, {**form, "scorer": "set", "learning_rate": "0.001", "head": "token_classification"}
    )
    assert set_here.status_code == 302
    run = TrainingRun.objects.get(scorer_name="set")
    assert (run.params["learning_rate"], run.params["head"]) == (1e-3, "token_classification")
    refused = client.post(url, {**form, "scorer": "bad", "epochs": "-1"})
    assert refused.status_code == 400 and not TrainingRun.objects.filter(scorer_name="bad").exists()
    assert "Ensure this value is greater than or equal to 0.01" in refused.content.decode()


def test_a_snapshot_of_another_project_cannot_be_trained_on(project_with_snapshot) -> None:
    admin, _, _ = project_with_snapshot
    other = make_project(members={admin: "admin"})
    with pytest.raises(ValidationError, match="no snapshot 'pb'"):
        training.training_run_create(
            user=admin, project=other, snapshot="pb", base="tiny", scorer_name="x", enqueue=False
        )


def test_cancel_stops_the_run_and_leaves_no_checkpoint(project_with_snapshot) -> None:
    admin, project, _ = project_with_snapshot
    run = training.training_run_create(
        user=admin,
        project=project,
        snapshot="pb",
        base="tiny",
        scorer_name="c",
        params=FAST,
        enqueue=False,
    )
    # The cancel arrives while the worker trains: it stops at its next step.
    TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    run = training.training_run_execute(run_id=run.pk)
    assert run.status == TrainingStatus.CANCELLED
    assert not Path(training.output_dir_for(run)).exists()
    assert not Scorer.objects.filter(name="c").exists()
    queued = training.training_run_create(
        user=admin, project=project, snapshot="pb", base="tiny", scorer_name="c", enqueue=False
    )
    assert training.training_run_cancel(run=queued).status == TrainingStatus.CANCELLED
    assert training.training_run_execute(run_id=queued.pk).status == TrainingStatus.CANCELLED


def test_a_killed_workers_run_fails_with_the_reason_and_restarts(
    project_with_snapshot, django_capture_on_commit_callbacks
) -> None:
    admin, project, _ = project_with_snapshot
    run = training.training_run_create(
        user=admin,
        project=project,
        snapshot="pb",
        base="tiny",
        scorer_name="k",
        params=FAST,
        enqueue=False,
    )
    long_ago = timezone.now() - timedelta(seconds=training.STALE_AFTER_S + 60)
    TrainingRun.objects.filter(pk=run.pk).update(
        status=TrainingStatus.RUNNING, started_at=long_ago, heartbeat_at=long_ago
    )
    assert training.training_runs_sweep() == 1
    run.refresh_from_db()
    assert run.status == TrainingStatus.FAILED and "worker stopped" in run.error
    with django_capture_on_commit_callbacks(execute=True):
        again = training.training_run_restart(run=run, user=admin)
    again.refresh_from_db()
    assert again.pk != run.pk and again.status == TrainingStatus.DONE, again.error
    assert again.params == run.params


def test_promotion_is_logged_scores_the_project_and_moves_the_queue(
    project_with_snapshot, django_capture_on_commit_callbacks
) -> None:
    admin, project, _ = project_with_snapshot
    run = training.training_run_create(
        user=admin,
        project=project,
        snapshot="pb",
        base="tiny",
        scorer_name="p",
        params=FAST,
        enqueue=False,
    )
    run = training.training_run_execute(run_id=run.pk)
    before = dict(TracePriority.objects.filter(project=project).values_list("trace", "uncertainty"))
    with django_capture_on_commit_callbacks(execute=True):  # scoring, then the queue's refresh
        promotion = training.scorer_promote(project=project, scorer=run.scorer, user=admin, run=run)
    assert training.live_scorer(project=project) == promotion
    assert promotion.metrics["test"]["step_auroc"] == run.metrics["test"]["step_auroc"]
    done = ScoreRun.objects.filter(scorer=run.scorer, status=RunStatus.DONE).count()
    assert done == project.traces.count()  # every trace scored by the new live scorer
    after = dict(TracePriority.objects.filter(project=project).values_list("trace", "uncertainty"))
    assert after != before and any(v > 0 for v in after.values())
    training.scorer_demote(project=project, user=admin)
    assert training.live_scorer(project=project) is None
    assert list(
        ScorerPromotion.objects.filter(project=project).values_list("action", flat=True)
    ) == [PromotionAction.DEMOTE, PromotionAction.PROMOTE]


def test_train_prm_prints_a_json_line_that_add_scorer_reads(project_with_snapshot) -> None:
    _, project, _ = project_with_snapshot
    out = StringIO()
    call_command(
        "train_prm",
        "--project",
        project.slug,
        "--snapshot",
        "pb",
        "--base",
        "tiny",
        "--scorer",
        "cli",
        "--epochs",
        "1",
        "--max-length",
        "256",
        "--sync",
        "--params",
        json.dumps({k: v for k, v in FAST.items() if k not in ("epochs", "max_length")}),
        stdout=out,
        stderr=StringIO(),
    )
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    for key in (
        "scorer",
        "version",
        "backend",
        "params",
        "model_path",
        "train_rows",
        "test_rows",
        "seconds",
        "auroc",
        "processbench_f1",
        "prmbench_score",
    ):
        assert key in line, key
    assert line["scorer"] == "cli" and line["version"] == 1 and line["test_rows"] > 0
    other = make_project()
    with open(REPO_ROOT / "data" / "processbench_sample.jsonl", "rb") as stream:
        first = stream.readline()
    from io import BytesIO

    imports.traces_import(
        project=other, stream=BytesIO(first), filename="one.jsonl", format="processbench"
    )
    call_command(
        "add_scorer",
        "cli-copy",
        "--backend",
        line["backend"],
        "--model",
        line["model_path"],
        "--params",
        json.dumps(line["params"]),
        "--project",
        other.slug,
        stdout=StringIO(),
    )
    call_command(
        "score",
        "--project",
        other.slug,
        "--scorer",
        "cli-copy",
        "--sync",
        stdout=StringIO(),
        stderr=StringIO(),
    )
    run = ScoreRun.objects.get(scorer__name="cli-copy")
    assert (
        run.status == RunStatus.DONE and run.step_scores.count() == other.traces.get().steps.count()
    )


def test_the_learning_curve_trains_on_growing_fractions_and_is_plotted(
    project_with_snapshot, client
) -> None:
    admin, project, _ = project_with_snapshot
    run = training.training_run_create(
        user=admin,
        project=project,
        snapshot="pb",
        base="tiny",
        scorer_name="curve",
        params=FAST,
        curve=True,
        enqueue=False,
    )
    run = training.training_run_execute(run_id=run.pk)
    assert run.status == TrainingStatus.DONE, run.error
    fractions = [point["fraction"] for point in run.learning_curve]
    assert fractions == [0.25, 0.5, 0.75, 1.0]
    rows = [point["train_rows"] for point in run.learning_curve]
    assert rows == sorted(rows) and rows[-1] == run.result["train_rows"]
    client.force_login(admin)
    page = client.get(f"/training/{run.pk}/").content.decode()
    assert "Learning curve: test AUROC by train fraction" in page
