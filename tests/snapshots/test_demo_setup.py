"""The demo's own PRM ships in data/demo-prm/ (issue "Close the loop", item 6): `demo_setup`
registers it without training, the demo projects are scored with it through the real loading code
(`from_pretrained` on the local folder), and the checkpoint is what its card says: trained on the
snapshot whose sha256 the card names (ProcessBench traces the demo projects do not hold), with the
card's held-out figures when scored again here."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

pytest.importorskip("torch")
pytest.importorskip("trl")

from annotate.models import Project, Trace  # noqa: E402
from scoring import engine  # noqa: E402
from scoring.models import RunQueue, RunStatus, Scorer, ScoreRun  # noqa: E402
from snapshots.management.commands import demo_setup  # noqa: E402
from snapshots.models import TrainingRun  # noqa: E402
from tests.conftest import REPO_ROOT  # noqa: E402

pytestmark = pytest.mark.django_db

CARD = json.loads((demo_setup.SHIPPED_PRM_DIR / "training.json").read_text(encoding="utf-8"))


def test_demo_setup_registers_the_shipped_prm_and_it_scores_the_demo_projects(
    settings, tmp_path, django_capture_on_commit_callbacks
) -> None:
    settings.VAR_DIR = tmp_path
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=False) as sent:
        call_command("demo_setup", stdout=out)
    assert not TrainingRun.objects.exists()  # nothing trained at start-up
    # Every demo trace is queued for both scorers on the bulk queue, for the worker that the demo
    # starts next: the PRM audit and the data browser have scores without anyone opening a trace.
    traces = Trace.objects.filter(project__slug__in=demo_setup.DEMO_PROJECTS).count()
    queued = ScoreRun.objects.filter(status=RunStatus.QUEUED, queue=RunQueue.BULK)
    assert traces == 88
    assert sorted(queued.values_list("scorer__name", flat=True).distinct()) == [
        demo_setup.DEMO_PRM,
        "tool",
    ]
    assert queued.count() == 2 * traces and sent  # and their tasks sent once it commits
    scorer = Scorer.objects.get(name=demo_setup.DEMO_PRM)
    assert scorer.model_path == str(demo_setup.SHIPPED_PRM_DIR)
    assert (scorer.backend, scorer.params) == (CARD["backend"], CARD["scorer_params"])
    assert set(scorer.projects.values_list("slug", flat=True)) == set(demo_setup.DEMO_PROJECTS)
    auroc = CARD["metrics"]["test"]["step_auroc"]
    assert f"step AUROC {auroc:.3f}" in out.getvalue()
    assert "not a useful PRM" in out.getvalue()

    call_command("demo_setup", stdout=StringIO())  # twice: what exists is kept
    assert ScoreRun.objects.count() == 2 * traces  # nothing queued twice
    assert Scorer.objects.filter(name=demo_setup.DEMO_PRM).get().version == scorer.version

    # What the worker does with one of them: every step of a demo trace scored by the checkpoint.
    trace = Project.objects.get(slug="processbench-demo").traces.order_by("pk").first()
    run = ScoreRun.objects.get(trace=trace, scorer=scorer)
    engine.score_and_write(run_ids=[run.pk], worker="test")
    run.refresh_from_db()
    assert run.status == RunStatus.DONE, run.error
    scores = list(run.step_scores.order_by("step__index").values_list("score", flat=True))
    assert len(scores) == trace.steps.count() and all(0.0 <= s <= 1.0 for s in scores)


def test_ship_needs_train_prm_and_is_refused_before_anything_is_written() -> None:
    with pytest.raises(CommandError, match="--ship needs --train-prm"):
        call_command("demo_setup", "--ship", "--no-prm", stdout=StringIO())
    assert not Project.objects.exists() and not Scorer.objects.exists()


def test_the_shipped_checkpoint_is_what_its_card_says(settings, tmp_path) -> None:
    from scoring.prm import training as engine
    from snapshots import training

    settings.VAR_DIR = tmp_path
    snapshot = demo_setup.demo_prm_snapshot(lambda _: None)
    # The very snapshot it was trained on, rebuilt from data/ in this database.
    assert snapshot.sha256 == CARD["snapshot_sha256"]
    assert snapshot.row_counts["train"] == CARD["train_rows"] + CARD["skipped_rows"]
    rows = {split: training._read_rows(snapshot, split) for split in ("train", "test")}
    demo_problems = {
        json.loads(line)["problem"]
        for line in (REPO_ROOT / "data" / "processbench_sample.jsonl").read_text().splitlines()
    }
    assert not demo_problems & {row["prompt"] for split in rows.values() for row in split}
    assert not {r["prompt"] for r in rows["train"]} & {r["prompt"] for r in rows["test"]}
    # Scored again here through the backend's loading code: the card's held-out figures.
    again = engine.evaluate_rows(
        demo_setup.SHIPPED_PRM_DIR,
        rows["test"],
        backend=CARD["backend"],
        scorer_params=CARD["scorer_params"],
    )
    test = CARD["metrics"]["test"]
    assert again["rows"] == test["rows"] and again["steps"] == test["steps"]
    assert again["step_auroc"] == pytest.approx(test["step_auroc"], abs=1e-4)
    assert test["step_auroc"] > 0.6  # learned: the untrained base sits near 0.5
    assert "not a useful PRM" in (demo_setup.SHIPPED_PRM_DIR / "README.md").read_text()


def test_train_prm_ship_trains_through_the_loop_and_replaces_the_shipped_folder(
    settings, tmp_path, monkeypatch
) -> None:
    settings.VAR_DIR = tmp_path / "var"
    shipped = tmp_path / "data" / "demo-prm"
    shipped.mkdir(parents=True)
    (shipped / "stale.bin").write_text("from the last build")
    monkeypatch.setattr(demo_setup, "SHIPPED_PRM_DIR", shipped)
    fast = {"epochs": 0.05, "max_length": 256, "tiny_hidden_size": 32, "tiny_vocab_size": 512}
    monkeypatch.setattr(demo_setup, "DEMO_PRM_PARAMS", {**demo_setup.DEMO_PRM_PARAMS, **fast})
    out = StringIO()
    call_command("demo_setup", "--train-prm", "--ship", stdout=out)
    run = TrainingRun.objects.get()
    assert run.status == "done", run.error
    assert "trained here" in out.getvalue() and f"Shipped: {run.output_path}" in out.getvalue()
    # The run's checkpoint files, whole, and nothing left of the folder it replaced.
    trained = sorted(p.name for p in Path(run.output_path).iterdir() if p.is_file())
    assert sorted(p.name for p in shipped.iterdir()) == trained
    assert {"config.json", "model.safetensors", "training.json", "README.md"} <= set(trained)
    card = json.loads((shipped / "training.json").read_text())
    assert card["snapshot_sha256"] == CARD["snapshot_sha256"]  # the same data as the real one
    assert card["metrics"]["test"]["rows"] == CARD["metrics"]["test"]["rows"]
    assert [p.name for p in shipped.parent.iterdir()] == ["demo-prm"]  # no staging left behind
