"""The batch commands of the model side: add_scorer, score (--sync), import_scores."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from scoring.models import RunStatus, Scorer, ScoreRun, StepScore
from tests.factories import import_processbench_sample, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    return import_processbench_sample(make_project("pb"))


def test_add_scorer_registers_then_a_change_bumps_the_version(project, capsys):
    call_command("add_scorer", "tool", "--backend", "tool", "--project", "pb")
    scorer = Scorer.objects.get(name="tool")
    assert (scorer.version, list(scorer.projects.values_list("slug", flat=True))) == (1, ["pb"])
    call_command("add_scorer", "tool", "--backend", "tool", "--params", '{"pass_score": 0.8}')
    scorer.refresh_from_db()
    assert (scorer.version, scorer.params) == (2, {"pass_score": 0.8})
    args = ("add_scorer", "tool", "--backend", "tool", "--params", '{"pass_score": 0.8}')
    call_command(*args)  # nothing changed: the scores stand
    scorer.refresh_from_db()
    assert scorer.version == 2
    call_command(*args, "--rescore")  # e.g. weights replaced in place: score everything again
    scorer.refresh_from_db()
    assert scorer.version == 3
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("add_scorer", "x", "--backend", "tool", "--params", "{oops")
    with pytest.raises(CommandError, match="No project 'nope'"):
        call_command("add_scorer", "y", "--backend", "tool", "--project", "nope")


def test_score_sync_scores_every_trace_once(project, capsys):
    call_command("add_scorer", "tool", "--backend", "tool", "--project", "pb")
    call_command("score", "--project", "pb", "--scorer", "tool", "--sync")
    out = capsys.readouterr()
    assert "tool: 80 traces scored, 0 failed." in out.out
    assert "80/80" in out.err  # the progress bar
    steps = sum(t.steps.count() for t in project.traces.all())
    assert StepScore.objects.count() == steps == 581
    # again: nothing to do, nothing duplicated
    call_command("score", "--project", "pb", "--scorer", "tool", "--sync")
    assert StepScore.objects.count() == 581
    assert not ScoreRun.objects.exclude(status=RunStatus.DONE).exists()
    # the tool scorer catches the real arithmetic slip at gsm8k-74's labelled first wrong step
    # ("2 + 48 + 3150 + 1300 = 3500")
    wrong = project.traces.get(external_id="gsm8k-74").steps.get(gold__value=-1)
    assert StepScore.objects.get(step=wrong).score < 0.5


def test_score_without_a_worker_times_out_clearly(project):
    call_command("add_scorer", "tool", "--backend", "tool", "--project", "pb")
    from config.celery import app

    app.conf.task_always_eager = False
    try:
        with pytest.raises(CommandError, match="is a worker running"):
            call_command("score", "--project", "pb", "--scorer", "tool", "--timeout", "0.5")
    finally:
        app.conf.task_always_eager = True
    assert ScoreRun.objects.filter(status=RunStatus.QUEUED).count() == 80


def test_import_scores_command(project, tmp_path, capsys):
    call_command("add_scorer", "ext", "--backend", "remote", "--project", "pb")
    traces = list(project.traces.order_by("id")[:2])
    path = tmp_path / "scores.jsonl"
    path.write_text(
        "\n".join(
            json.dumps({"trace_id": t.external_id, "scores": [0.5] * t.steps.count()})
            for t in traces
        )
    )
    call_command("import_scores", str(path), "--scorer", "ext", "--project", "pb")
    assert "2 runs" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"trace_id": traces[0].external_id, "scores": [2.0]}))
    with pytest.raises(
        CommandError, match=r"bad.jsonl, line 1, field 'scores'.*nothing was imported"
    ):
        call_command("import_scores", str(bad), "--scorer", "ext", "--project", "pb")


def _scores_file(path, traces, value):
    path.write_text(
        "\n".join(
            json.dumps({"trace_id": t.external_id, "scores": [value] * t.steps.count()})
            for t in traces
        )
    )
    return path


def test_import_scores_for_a_new_name_registers_an_external_scorer(project, tmp_path, capsys):
    """README's `import_scores FILE --scorer NAME --project SLUG` with a name never registered."""
    traces = list(project.traces.order_by("id")[:3])
    path = _scores_file(tmp_path / "scores.jsonl", traces, 0.75)
    call_command("import_scores", str(path), "--scorer", "my-prm", "--project", "pb")
    out = capsys.readouterr().out
    assert "3 runs" in out and "external" in out
    scorer = Scorer.objects.get(name="my-prm")
    assert (scorer.backend, scorer.version, scorer.model_path) == ("external", 1, "")
    assert list(scorer.projects.values_list("slug", flat=True)) == ["pb"]
    runs = ScoreRun.objects.filter(scorer=scorer)
    assert runs.count() == 3 and all(r.status == RunStatus.DONE and r.imported for r in runs)
    assert runs.first().details["import"]["file"] == "scores.jsonl"
    # The same file again: nothing changes, not even the version.
    call_command("import_scores", str(path), "--scorer", "my-prm", "--project", "pb")
    scorer.refresh_from_db()
    assert scorer.version == 1 and ScoreRun.objects.filter(scorer=scorer).count() == 3
    # More traces with the same version: added to it.
    more = _scores_file(tmp_path / "more.jsonl", list(project.traces.order_by("id")[3:5]), 0.75)
    call_command("import_scores", str(more), "--scorer", "my-prm", "--project", "pb")
    scorer.refresh_from_db()
    assert scorer.version == 1 and ScoreRun.objects.filter(scorer=scorer).count() == 5
    # Different scores for traces it holds: a new version; the old one stays as it was.
    changed = _scores_file(tmp_path / "v2.jsonl", traces[:2], 0.25)
    call_command("import_scores", str(changed), "--scorer", "my-prm", "--project", "pb")
    assert "version 2" in capsys.readouterr().out
    scorer.refresh_from_db()
    assert scorer.version == 2
    assert ScoreRun.objects.filter(scorer=scorer, scorer_version=2).count() == 2
    assert ScoreRun.objects.filter(scorer=scorer, scorer_version=1).count() == 5
    assert set(
        StepScore.objects.filter(run__scorer_version=1, run__scorer=scorer).values_list(
            "score", flat=True
        )
    ) == {0.75}


def test_an_external_scorer_is_never_enqueued_nor_run(project, tmp_path):
    from scoring import services

    call_command("add_scorer", "ext", "--backend", "external", "--project", "pb")
    scorer = Scorer.objects.get(name="ext")
    assert services.score_runs_enqueue(traces=list(project.traces.all()), scorers=[scorer]) == []
    assert not ScoreRun.objects.filter(scorer=scorer).exists()
    with pytest.raises(CommandError, match="external.*import_scores"):
        call_command("score", "--project", "pb", "--scorer", "ext", "--sync")
    with pytest.raises(CommandError, match="external.*import_scores"):
        call_command("score", "--project", "pb", "--scorer", "ext", "--no-wait")


def test_import_scores_with_a_name_that_is_no_slug_registers_nothing(project, tmp_path):
    path = _scores_file(tmp_path / "s.jsonl", list(project.traces.order_by("id")[:1]), 0.5)
    with pytest.raises(CommandError, match=r"s.jsonl, field 'scorer': .*slug"):
        call_command("import_scores", str(path), "--scorer", "my prm!", "--project", "pb")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"trace_id": "nope", "scores": []}')
    with pytest.raises(CommandError, match="no trace 'nope'"):
        call_command("import_scores", str(bad), "--scorer", "fresh", "--project", "pb")
    assert not Scorer.objects.exists()  # a refused file registers no scorer
