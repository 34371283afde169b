"""`manage.py import_traces`: what it prints, its exit status, and that a bad file changes nothing."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotate.models import Project, Step, Trace

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parents[2] / "data"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("import_traces", *args, stdout=out)
    return out.getvalue()


def test_creates_the_project_and_prints_each_files_summary() -> None:
    sample = str(DATA / "processbench_sample.jsonl")
    out = run(sample, "--format", "processbench", "--project", "pb")
    assert out.splitlines() == [
        "Created project 'pb'.",
        f"{sample}: processbench: 80 traces (0 already there), 581 steps, 387 gold labels, "
        "80 new problems, 0 shared",
    ]
    assert Trace.objects.filter(project__slug="pb").count() == 80
    again = run(sample, "--format", "processbench", "--project", "pb")
    assert again.splitlines() == [
        f"{sample}: processbench: 0 traces (80 already there), 0 steps, 0 gold labels, "
        "0 new problems, 0 shared"
    ]


def test_several_files_and_a_subset() -> None:
    files = [str(DATA / "processbench" / name) for name in ("gsm8k.jsonl", "math.jsonl")]
    out = run(*files, "--format", "processbench", "--project", "pb", "--subset", "dev")
    assert len(out.splitlines()) == 3
    assert Trace.objects.count() == 380 + 980
    assert set(Trace.objects.values_list("subset", flat=True)) == {"dev"}


def test_prm800k_file_with_annotations() -> None:
    out = run(str(DATA / "prm800k_sample.jsonl"), "--format", "prm800k", "--project", "p8")
    assert out.splitlines()[-1].endswith("141 steps, 0 gold labels, 6 new problems, 0 shared, 8 annotations")


def test_a_malformed_file_exits_non_zero_and_writes_nothing(tmp_path: Path) -> None:
    lines = (DATA / "processbench_sample.jsonl").read_text(encoding="utf-8").splitlines()
    rec = json.loads(lines[49])
    rec["final_answer_correct"] = "yes"
    lines[49] = json.dumps(rec)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines), encoding="utf-8")
    good = str(DATA / "prmbench_sample.jsonl")
    out = io.StringIO()
    with pytest.raises(CommandError) as info:
        # The good file first: it is rolled back with the bad one, and so is the new project.
        call_command(
            "import_traces", good, str(bad), "--format", "prmbench", "--project", "new", stdout=out
        )
    assert out.getvalue() == ""  # nothing claims an import that was rolled back
    assert str(info.value).startswith(f"{bad}, line 1, field 'modified_question': missing field")
    with pytest.raises(CommandError) as info:
        run(str(bad), "--format", "processbench", "--project", "new")
    assert str(info.value) == (
        f"{bad}, line 50, field 'final_answer_correct': expected true or false, got string\n"
        "Nothing was imported."
    )
    assert not Project.objects.filter(slug="new").exists()
    assert not Trace.objects.exists() and not Step.objects.exists()


def test_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no such file"):
        run(str(tmp_path / "missing.jsonl"), "--format", "jsonl", "--project", "x")
    with pytest.raises(CommandError, match="invalid choice: 'csv'"):
        run(str(DATA / "processbench_sample.jsonl"), "--format", "csv", "--project", "x")
    with pytest.raises(CommandError, match="--project 'not a slug'"):
        run(
            str(DATA / "processbench_sample.jsonl"),
            "--format",
            "processbench",
            "--project",
            "not a slug",
        )
