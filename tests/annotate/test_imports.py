"""traces_import on the real files in data/: exact counts, idempotence, and all-or-nothing refusal."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from annotate import imports
from annotate.formats import prm800k, prmbench, processbench
from annotate.imports import (
    FORMATS,
    ImportFileError,
    ImportResult,
    project_for_import,
    traces_import,
)
from annotate.models import (
    Annotation,
    AnnotationStatus,
    GoldLabel,
    Problem,
    Project,
    Step,
    StepLabel,
    Trace,
)
from tests.factories import make_project

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parents[2] / "data"


def import_file(project: Project, name: str, fmt: str, **kwargs: Any) -> ImportResult:
    with (DATA / name).open("rb") as stream:
        return traces_import(project=project, stream=stream, filename=name, format=fmt, **kwargs)


def import_bytes(
    project: Project, data: bytes, fmt: str, name: str = "upload.jsonl"
) -> ImportResult:
    return traces_import(project=project, stream=io.BytesIO(data), filename=name, format=fmt)


def lines_of(name: str) -> list[str]:
    return (DATA / name).read_text(encoding="utf-8").splitlines()


def gold_counts(project: Project) -> dict[int, int]:
    return dict(
        Counter(
            GoldLabel.objects.filter(step__trace__project=project).values_list("value", flat=True)
        )
    )


def row_counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Problem, Trace, Step, GoldLabel, Annotation, StepLabel, get_user_model())
    }


def test_the_formats_other_code_relies_on() -> None:
    assert FORMATS == ("processbench", "prm800k", "prmbench", "math_shepherd", "trl", "jsonl")


# --- ProcessBench ------------------------------------------------------------------------------


def test_processbench_sample_exact_counts_and_gold() -> None:
    project = make_project()
    result = import_file(project, "processbench_sample.jsonl", "processbench")
    assert (result.traces_created, result.traces_skipped, result.steps_created) == (80, 0, 581)
    assert (result.gold_labels_created, result.problems_created) == (387, 80)
    assert result.annotations_created == 0
    assert result.summary() == (
        "processbench: 80 traces (0 already there), 581 steps, 387 gold labels, 80 new problems, 0 shared"
    )
    assert Trace.objects.filter(project=project).count() == 80
    assert Step.objects.filter(trace__project=project).count() == 581
    assert gold_counts(project) == {1: 339, -1: 48}
    assert dict(Counter(Trace.objects.values_list("subset", flat=True))) == {
        "gsm8k": 20,
        "math": 20,
        "olympiadbench": 20,
        "omnimath": 20,
    }
    trace = Trace.objects.get(project=project, source="processbench", external_id="gsm8k-12")
    golds = [getattr(step, "gold", None) for step in trace.steps.select_related("gold")]
    assert [g.value if g else None for g in golds] == [1, -1, None, None, None, None, None]
    assert trace.generator == "Qwen2.5-1.5B-Instruct"
    assert trace.final_answer_correct is False
    assert trace.problem.text.startswith("Avery needs to buy a 3 piece place setting")
    assert trace.metadata == {"processbench": {"label": 1}}
    assert {g.source for g in GoldLabel.objects.all()} == {"imported"}


def test_processbench_full_gsm8k_file() -> None:
    project = make_project()
    result = import_file(project, "processbench/gsm8k.jsonl", "processbench")
    assert (result.traces_created, result.steps_created) == (380, 1991)
    assert gold_counts(project) == {1: 1310, -1: 195}
    # final_answer_correct although a step is wrong: kept as it is.
    assert (
        Trace.objects.filter(final_answer_correct=True)
        .exclude(metadata__processbench__label=-1)
        .exists()
    )


def test_reimport_adds_nothing() -> None:
    project = make_project()
    import_file(project, "processbench_sample.jsonl", "processbench")
    before = row_counts()
    again = import_file(project, "processbench_sample.jsonl", "processbench")
    assert (again.traces_created, again.traces_skipped, again.steps_created) == (0, 80, 0)
    assert (again.gold_labels_created, again.problems_created) == (0, 0)
    assert row_counts() == before


def test_reimport_into_a_big_project_looks_ids_up_in_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The path a project with many more rows than the file takes (small numbers forced here)."""
    monkeypatch.setattr(imports, "_READ_ALL_BELOW", -10_000)
    monkeypatch.setattr(imports, "_LOOKUP_CHUNK", 7)
    project = make_project()
    lines = lines_of("processbench_sample.jsonl")
    import_bytes(project, "\n".join(lines[:50]).encode(), "processbench")
    result = import_bytes(project, "\n".join(lines[40:]).encode(), "processbench")
    assert (result.traces_created, result.traces_skipped, result.problems_created) == (30, 10, 30)
    assert Trace.objects.filter(project=project).count() == 80


def test_a_file_overlapping_an_earlier_import_adds_only_the_new_traces() -> None:
    project = make_project()
    lines = lines_of("processbench_sample.jsonl")
    import_bytes(project, "\n".join(lines[:30]).encode(), "processbench")
    result = import_bytes(project, "\n".join(lines[20:]).encode(), "processbench")
    assert (result.traces_created, result.traces_skipped) == (50, 10)
    assert Trace.objects.filter(project=project).count() == 80


def test_the_same_file_in_two_projects_is_two_corpora() -> None:
    first, second = make_project(), make_project()
    import_file(first, "processbench_sample.jsonl", "processbench")
    result = import_file(second, "processbench_sample.jsonl", "processbench")
    assert result.traces_created == 80 and result.problems_created == 80
    assert Trace.objects.filter(project=second).count() == 80


def test_a_problem_shared_by_traces_is_one_row() -> None:
    project = make_project()
    lines = lines_of("processbench/math.jsonl")
    recs = [json.loads(line) for line in lines]
    result = import_bytes(project, "\n".join(lines).encode(), "processbench")
    assert result.problems_created == len({r["problem"] for r in recs}) < len(recs)
    assert Problem.objects.filter(project=project).count() == result.problems_created


def test_processbench_json_array_file_as_upstream_ships_it() -> None:
    project = make_project()
    recs = [json.loads(line) for line in lines_of("processbench_sample.jsonl")]
    data = json.dumps(recs, indent=4, ensure_ascii=False).encode()
    result = import_bytes(project, data, "processbench", name="dataset/gsm8k.json")
    assert (result.traces_created, result.steps_created, result.gold_labels_created) == (
        80,
        581,
        387,
    )


def test_processbench_and_prmbench_records_rebuilt_exactly_from_the_database() -> None:
    """What an export will do: every record back, key order included (jsonb reorders keys)."""
    project = make_project()
    import_file(project, "processbench_sample.jsonl", "processbench")
    import_file(project, "prmbench_sample.jsonl", "prmbench")
    rebuilt = []
    for trace in Trace.objects.filter(project=project).select_related("problem").order_by("id"):
        steps = [s.text for s in trace.steps.order_by("index")]
        if trace.source == "processbench":
            rebuilt.append(
                processbench.record_from_trace(
                    external_id=trace.external_id,
                    generator=trace.generator,
                    problem=trace.problem.text,
                    steps=steps,
                    final_answer_correct=trace.final_answer_correct,
                    metadata=trace.metadata,
                )
            )
        else:
            rebuilt.append(
                prmbench.record_from_trace(
                    problem=trace.problem.text, steps=steps, metadata=trace.metadata
                )
            )
    original = lines_of("processbench_sample.jsonl") + lines_of("prmbench_sample.jsonl")
    assert [json.dumps(r, ensure_ascii=False) for r in rebuilt] == original


# --- refusal: nothing written ------------------------------------------------------------------


def corrupted(line_no: int, new_line: str) -> bytes:
    lines = lines_of("processbench_sample.jsonl")
    lines[line_no - 1] = new_line
    return ("\n".join(lines) + "\n").encode()


def refused(project: Project, data: bytes, fmt: str = "processbench") -> ImportFileError:
    before = row_counts()
    with pytest.raises(ImportFileError) as info:
        import_bytes(project, data, fmt, name="bad.jsonl")
    assert row_counts() == before
    return info.value


def test_broken_json_on_line_50_writes_nothing_of_lines_1_to_49() -> None:
    project = make_project()
    line = lines_of("processbench_sample.jsonl")[49]
    err = refused(project, corrupted(50, line[:-40]))
    assert (err.file, err.line, err.field) == ("bad.jsonl", 50, None)
    assert str(err).startswith("bad.jsonl, line 50: invalid JSON: Unterminated string")
    assert not Trace.objects.exists()


def test_wrong_type_names_file_line_and_field() -> None:
    project = make_project()
    rec = json.loads(lines_of("processbench_sample.jsonl")[49])
    rec["steps"] = 3
    err = refused(project, corrupted(50, json.dumps(rec)))
    assert str(err) == "bad.jsonl, line 50, field 'steps': expected a list of strings, got int"
    rec["steps"] = ["fine", 7]
    err = refused(project, corrupted(50, json.dumps(rec)))
    assert str(err) == "bad.jsonl, line 50, field 'steps[1]': expected a string, got int"


def test_a_nul_character_is_refused_where_it_is() -> None:
    """PostgreSQL cannot store NUL in text or jsonb: refused up front on every database."""
    project = make_project()
    rec = json.loads(lines_of("processbench_sample.jsonl")[4])
    rec["steps"][1] += "\u0000"
    err = refused(project, corrupted(5, json.dumps(rec)))
    assert str(err) == (
        "bad.jsonl, line 5, field 'steps[1]': contains a NUL character (\\u0000), "
        "which cannot be stored"
    )


def test_label_out_of_range_is_refused() -> None:
    project = make_project()
    rec = json.loads(lines_of("processbench_sample.jsonl")[60])
    rec["label"] = len(rec["steps"])
    err = refused(project, corrupted(61, json.dumps(rec)))
    assert (err.line, err.field) == (61, "label")
    assert err.message.startswith(
        f"label {len(rec['steps'])} out of range: -1 (no wrong step) or 0.."
    )


def test_missing_field_and_empty_steps_are_refused() -> None:
    project = make_project()
    rec = json.loads(lines_of("processbench_sample.jsonl")[9])
    del rec["generator"]
    assert str(refused(project, corrupted(10, json.dumps(rec)))) == (
        "bad.jsonl, line 10, field 'generator': missing field"
    )
    rec["generator"], rec["steps"] = "g", []
    err = refused(project, corrupted(10, json.dumps(rec)))
    assert (err.field, err.message) == (
        "steps",
        "must not be empty (a trace needs at least one step)",
    )


def test_a_refused_reimport_leaves_the_earlier_import_as_it_was() -> None:
    project = make_project()
    import_file(project, "processbench_sample.jsonl", "processbench")
    refused(project, corrupted(80, "{not json"))
    assert Trace.objects.filter(project=project).count() == 80


def test_a_duplicate_id_with_other_content_is_refused_and_an_exact_repeat_skipped() -> None:
    project = make_project()
    lines = lines_of("processbench_sample.jsonl")
    result = import_bytes(project, "\n".join([*lines[:5], lines[2]]).encode(), "processbench")
    assert (result.traces_created, result.traces_skipped) == (5, 1)
    rec = json.loads(lines[2])
    rec["label"] = -1
    err = refused(make_project(), "\n".join([*lines[:5], json.dumps(rec)]).encode())
    assert (err.line, err.field) == (6, "id")
    assert err.message == f"duplicate id {rec['id']!r} with different content (first on line 3)"


def test_empty_file_and_unknown_format_are_refused() -> None:
    project = make_project()
    assert str(refused(project, b"\n \n")) == "bad.jsonl: no records: the file is empty"
    assert "unknown format 'csv'" in str(refused(project, b"{}", fmt="csv"))


# --- PRMBench, Math-Shepherd, TRL, generic -----------------------------------------------------


def test_prmbench_sample_exact_counts() -> None:
    project = make_project()
    result = import_file(project, "prmbench_sample.jsonl", "prmbench")
    assert (result.traces_created, result.steps_created, result.gold_labels_created) == (
        43,
        540,
        540,
    )
    assert result.problems_created == 13
    assert gold_counts(project) == {1: 454, -1: 86}
    subsets = Counter(Trace.objects.values_list("subset", flat=True))
    assert subsets["multi_solutions"] == 3 and subsets["circular"] == 5 and len(subsets) == 9
    trace = Trace.objects.get(external_id="prm_test_p1_69:circular")
    assert trace.metadata["prmbench"]["record"]["original_process"][0] == (
        "Let's first seat Pierre, Rosa, and Thomas."
    )
    assert import_file(project, "prmbench_sample.jsonl", "prmbench").traces_skipped == 43


def test_math_shepherd_sample_exact_counts() -> None:
    project = make_project()
    result = import_file(project, "math_shepherd_sample.jsonl", "math_shepherd")
    assert (result.traces_created, result.steps_created, result.gold_labels_created) == (4, 15, 15)
    assert gold_counts(project) == {1: 5, -1: 10}
    trace = Trace.objects.get(final_answer="52")
    assert [(s.text[:7], s.gold.value) for s in trace.steps.select_related("gold")] == [
        ("Step 1:", 1),
        ("Step 2:", -1),
        ("Step 3:", -1),
        ("Step 4:", -1),
        ("Step 5:", -1),
    ]
    assert import_file(project, "math_shepherd_sample.jsonl", "math_shepherd").traces_skipped == 4


def processbench_as(fmt: str) -> bytes:
    """The real ProcessBench sample rewritten in the TRL or the generic format."""
    out = []
    for line in lines_of("processbench_sample.jsonl"):
        r = json.loads(line)
        n, label = len(r["steps"]), r["label"]
        wrong = n if label == -1 else label
        if fmt == "trl":
            # TRL's convention: the prefix up to and including the first wrong step.
            steps = r["steps"][: wrong + 1] if label != -1 else r["steps"]
            out.append(
                {
                    "prompt": r["problem"],
                    "completions": steps,
                    "labels": [i < wrong for i in range(len(steps))],
                }
            )
        else:
            out.append(
                {
                    "id": r["id"],
                    "problem": r["problem"],
                    "steps": r["steps"],
                    "labels": [1 if i < wrong else -1 if i == wrong else None for i in range(n)],
                    "generator": r["generator"],
                    "final_answer_correct": r["final_answer_correct"],
                }
            )
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in out).encode()


def test_trl_file_from_real_traces() -> None:
    project = make_project()
    result = import_bytes(project, processbench_as("trl"), "trl")
    assert (result.traces_created, result.gold_labels_created) == (80, 339 + 48)
    assert gold_counts(project) == {1: 339, -1: 48}
    assert import_bytes(project, processbench_as("trl"), "trl").traces_skipped == 80


def test_generic_jsonl_file_from_real_traces() -> None:
    project = make_project()
    result = import_bytes(project, processbench_as("jsonl"), "jsonl")
    assert (result.traces_created, result.steps_created) == (80, 581)
    assert gold_counts(project) == {1: 339, -1: 48}
    assert Trace.objects.get(external_id="gsm8k-12").source == "jsonl"


def test_generic_jsonl_thinking_and_response_parts() -> None:
    project = make_project()
    rec = {
        "problem": "What is $2^3$?",
        "thinking": ["2*2=4", "4*2=8"],
        "response": ["$8$"],
        "labels": [1, 1, None],
        "images": ["fig.png"],
        "table": {"header": ["x", "y"], "rows": [["x", 2]]},
    }
    import_bytes(project, json.dumps(rec).encode(), "jsonl")
    trace = Trace.objects.get(project=project)
    assert list(trace.steps.values_list("part", "text")) == [
        ("thinking", "2*2=4"),
        ("thinking", "4*2=8"),
        ("response", "$8$"),
    ]
    assert (trace.problem.images, trace.problem.table) == (
        ["fig.png"],
        {"header": ["x", "y"], "rows": [["x", 2]]},
    )
    assert len(trace.external_id) == 64  # no id given: a hash of the content


# --- PRM800K -----------------------------------------------------------------------------------


def test_prm800k_sample_exact_counts() -> None:
    project = make_project()
    result = import_file(project, "prm800k_sample.jsonl", "prm800k")
    assert (result.traces_created, result.steps_created, result.annotations_created) == (8, 141, 8)
    assert (result.gold_labels_created, result.problems_created) == (0, 6)
    assert result.summary() == (
        "prm800k: 8 traces (0 already there), 141 steps, 0 gold labels, 6 new problems, 0 shared, "
        "8 annotations"
    )
    assert StepLabel.objects.count() == 107
    # Phase 2: the rating of the pre-generated step; phase 1: of the chosen or the human step
    # (the human ones unrated, null).
    assert dict(Counter(StepLabel.objects.values_list("value", flat=True))) == {
        1: 78,
        0: 13,
        -1: 5,
        None: 11,
    }
    assert dict(Counter(Annotation.objects.values_list("finish_reason", flat=True))) == {
        "found_error": 5,
        "solution": 2,
        "give_up": 1,
    }


def test_prm800k_labelers_become_inactive_users_who_cannot_log_in() -> None:
    project = make_project()
    import_file(project, "prm800k_sample.jsonl", "prm800k")
    users = get_user_model().objects.filter(username__startswith="prm800k-")
    assert users.count() == 8
    assert not any(u.is_active or u.has_usable_password() for u in users)
    annotation = Annotation.objects.get(
        annotator__username="prm800k-cc88bf76-df08-4041-be67-3464279cb3b1"
    )
    assert annotation.imported and annotation.status == AnnotationStatus.SUBMITTED
    assert annotation.active_seconds == pytest.approx(164.458)
    assert annotation.submitted_at.isoformat() == "2022-11-22T16:51:29.980606+00:00"


def test_prm800k_found_error_labels_only_a_prefix() -> None:
    project = make_project()
    import_file(project, "prm800k_sample.jsonl", "prm800k")
    annotation = Annotation.objects.get(
        annotator__username="prm800k-cc88bf76-df08-4041-be67-3464279cb3b1"
    )
    assert annotation.trace.steps.count() == 13
    labels = annotation.labels.order_by("step__index").values_list("step__index", "value")
    assert list(labels) == [(0, 1), (1, 0), (2, 1), (3, 1), (4, 1), (5, 1), (6, -1)]
    assert annotation.trace.problem.reference_answer == "28800"


def test_prm800k_raw_records_come_back_exactly_from_the_database() -> None:
    project = make_project()
    import_file(project, "prm800k_sample.jsonl", "prm800k")
    # Key order included, on PostgreSQL too (whose jsonb reorders keys).
    stored = {
        json.dumps(record, ensure_ascii=False)
        for a in Annotation.objects.all()
        for record in prm800k.records_from_annotation(a.metadata)
    }
    original = {
        json.dumps(json.loads(line), ensure_ascii=False)
        for line in lines_of("prm800k_sample.jsonl")
    }
    assert stored == original


def test_prm800k_human_completion_step() -> None:
    project = make_project()
    import_file(project, "prm800k_sample.jsonl", "prm800k")
    step = Step.objects.get(text="We have $3p+e=1.24$ and $5p+e=1.82$.")
    assert step.metadata["prm800k"]["human_completion"]["source"] == "human"
    label = StepLabel.objects.get(step=step)
    assert (label.value, label.flagged) == (None, False)


def test_prm800k_two_labelers_of_one_solution_share_the_trace() -> None:
    project = make_project()
    rec = json.loads(lines_of("prm800k_sample.jsonl")[0])
    other = json.loads(json.dumps(rec))
    other["labeler"] = "0000-second-labeler"
    other["label"]["steps"] = other["label"]["steps"][:3]
    other["label"]["finish_reason"] = "give_up"
    first = import_bytes(project, json.dumps(rec).encode(), "prm800k")
    second = import_bytes(project, json.dumps(other).encode(), "prm800k")
    assert (first.traces_created, first.annotations_created) == (1, 1)
    assert (second.traces_created, second.traces_skipped, second.annotations_created) == (0, 1, 1)
    trace = Trace.objects.get(project=project)
    assert trace.annotations.count() == 2
    assert StepLabel.objects.filter(annotation__trace=trace).count() == 7 + 3
    # Both in one file: the same.
    both = make_project()
    result = import_bytes(both, f"{json.dumps(rec)}\n{json.dumps(other)}".encode(), "prm800k")
    assert (result.traces_created, result.annotations_created) == (1, 2)


def test_prm800k_reimport_adds_nothing_but_a_second_session_is_kept() -> None:
    project = make_project()
    import_file(project, "prm800k_sample.jsonl", "prm800k")
    before = row_counts()
    again = import_file(project, "prm800k_sample.jsonl", "prm800k")
    assert (again.traces_created, again.traces_skipped, again.annotations_created) == (0, 8, 0)
    assert row_counts() == before
    rec = json.loads(lines_of("prm800k_sample.jsonl")[0])
    rec["timestamp"] = "2022-12-01T10:00:00"
    import_bytes(project, json.dumps(rec).encode(), "prm800k")
    assert row_counts() == before
    annotation = Annotation.objects.get(annotator__username=f"prm800k-{rec['labeler']}")
    first, second = prm800k.records_from_annotation(annotation.metadata)
    assert second == rec and first["timestamp"] != rec["timestamp"]
    import_bytes(project, json.dumps(rec).encode(), "prm800k")
    annotation.refresh_from_db()
    assert len(prm800k.records_from_annotation(annotation.metadata)) == 2


def test_prm800k_refused_record_creates_no_user() -> None:
    project = make_project()
    lines = lines_of("prm800k_sample.jsonl")
    rec = json.loads(lines[6])
    rec["label"]["finish_reason"] = "done"
    lines[6] = json.dumps(rec)
    err = refused(project, "\n".join(lines).encode(), fmt="prm800k")
    assert str(err) == (
        "bad.jsonl, line 7, field 'label.finish_reason': expected one of solution, found_error, "
        "bad_problem, give_up, got 'done'"
    )
    assert not get_user_model().objects.filter(username__startswith="prm800k-").exists()


# --- projects ----------------------------------------------------------------------------------


def test_project_for_import_gets_or_creates() -> None:
    project, created = project_for_import(slug="new-corpus")
    assert created and project.slug == "new-corpus"
    again, created = project_for_import(slug="new-corpus")
    assert again == project and not created


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="table statistics are PostgreSQL's (the CI runs it)"
)
def test_a_large_import_refreshes_postgresql_statistics(django_capture_on_commit_callbacks):
    """After a bulk load the planner must not plan on an empty table's statistics."""
    project = make_project("stats")
    path = DATA / "processbench" / "gsm8k.jsonl"
    with django_capture_on_commit_callbacks(execute=True), path.open("rb") as stream:
        result = imports.traces_import(
            project=project, stream=stream, filename=path.name, format="processbench"
        )
    assert result.steps_created >= imports.ANALYZE_AFTER_STEPS
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'annotate_step'")
        assert cursor.fetchone()[0] >= result.steps_created


def test_imported_traces_get_their_queue_rows_from_a_task(django_capture_on_commit_callbacks):
    """The labelling queue of a freshly imported project is ready before anyone asks "next"."""
    from review.models import TracePriority

    project = make_project("queued")
    path = DATA / "processbench_sample.jsonl"
    with django_capture_on_commit_callbacks(execute=True), path.open("rb") as stream:
        result = imports.traces_import(
            project=project, stream=stream, filename=path.name, format="processbench"
        )
    assert TracePriority.objects.filter(project=project).count() == result.traces_created == 80


# --- PRM800K phase 1 in the "stepwise critique" form -----------------------------------------------

CRITIQUE = DATA / "prm800k_phase1test_stepwise_critique_sample.jsonl"


def test_prm800k_stepwise_critique_rows_import_as_phase1_traces() -> None:
    """61 rows (one rated candidate step each) of 4 problems: one trace per problem, the chosen
    (preferred) path, each step labelled with its row's rating, the other candidates kept."""
    rows = [json.loads(line) for line in CRITIQUE.read_text().splitlines()]
    project = make_project()
    with CRITIQUE.open("rb") as stream:
        result = traces_import(
            project=project, stream=stream, filename=CRITIQUE.name, format="prm800k"
        )
    assert (result.traces_created, result.problems_created, result.annotations_created) == (4, 4, 4)
    preferred = [r for r in rows if r["is_preferred_response"]]
    assert result.steps_created == len(preferred) == 39
    for trace in Trace.objects.filter(project=project):
        chosen = [r for r in preferred if r["instruction"] == trace.problem.text]
        steps = list(trace.steps.order_by("index"))
        assert [s.text for s in steps] == [r["next_response"] for r in chosen]
        annotation = trace.annotations.get()
        labels = dict(annotation.labels.values_list("step__index", "value"))
        assert [labels.get(i) for i in range(len(steps))] == [r["rating"] for r in chosen]
        assert annotation.finish_reason == "solution"
        assert trace.final_answer == chosen[-1]["answer"]
        assert trace.subset == "phase1"
        for index, step in enumerate(steps):
            others = [
                r
                for r in rows
                if r["instruction"] == trace.problem.text
                and len(r["responses"]) == index
                and not r["is_preferred_response"]
            ]
            kept = (step.metadata.get("prm800k") or {}).get("completions") or []
            assert sorted(c["text"] for c in kept if c["text"] != step.text) == sorted(
                r["next_response"] for r in others
            )
    # The human-written step of the fourth problem is unrated, as in raw phase-1 records.
    human = next(r for r in rows if r["is_human_response"])
    step = Step.objects.get(text=human["next_response"])
    assert not StepLabel.objects.filter(step=step).exclude(value=None).exists()
    # Importing the file again adds nothing.
    with CRITIQUE.open("rb") as stream:
        again = traces_import(
            project=project, stream=stream, filename=CRITIQUE.name, format="prm800k"
        )
    assert (again.traces_created, again.annotations_created) == (0, 0)


def test_a_malformed_stepwise_critique_row_is_refused_naming_the_form_line_and_field() -> None:
    lines = CRITIQUE.read_text().splitlines()
    bad = json.loads(lines[5])
    del bad["rating"]
    lines[5] = json.dumps(bad)
    with pytest.raises(ImportFileError) as err:
        import_bytes(make_project(), "\n".join(lines).encode(), "prm800k")
    assert (err.value.line, err.value.field) == (6, "rating")
    assert "stepwise critique" in err.value.message
    # A row that does not continue the steps chosen before it.
    lines = CRITIQUE.read_text().splitlines()
    stray = json.loads(lines[9])
    stray["responses"][0] = "Something else."
    lines[9] = json.dumps(stray)
    with pytest.raises(ImportFileError) as err:
        import_bytes(make_project(), "\n".join(lines).encode(), "prm800k")
    assert (err.value.line, err.value.field) == (10, "responses")
    assert "stepwise critique" in err.value.message and "preferred" in err.value.message
    assert not Trace.objects.exists()
