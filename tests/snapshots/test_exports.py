"""Export snapshots: exact round trips on the real data, label policies, the split, determinism."""

from __future__ import annotations

import doctest
import hashlib
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from annotate import services
from annotate.formats.exporters import EXPORTERS
from annotate.formats.exporters import base as exporter_base
from annotate.imports import traces_import
from annotate.models import GoldLabel, GoldSource, Project, Step, StepLabel
from snapshots import selectors as export_selectors
from snapshots import services as exports
from snapshots.models import ExportSnapshot, ExportStatus
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parents[2] / "data"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
PROCESSBENCH = sorted((DATA / "processbench").glob("*.jsonl"))


def import_file(project: Project, path: Path, fmt: str) -> None:
    with path.open("rb") as stream:
        traces_import(project=project, stream=stream, filename=path.name, format=fmt)


def build(project: Project, **kwargs: Any) -> ExportSnapshot:
    kwargs.setdefault("name", "ds")
    kwargs.setdefault("format", "trl")
    snapshot = exports.export_snapshot_create(project=project, user=None, enqueue=False, **kwargs)
    return exports.export_snapshot_build(snapshot_id=snapshot.pk)


def lines(snapshot: ExportSnapshot, name: str = "train.jsonl") -> list[str]:
    path = export_selectors.export_file_path(snapshot=snapshot, filename=name)
    return path.read_text(encoding="utf-8").splitlines()


def source_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- round trips --------------------------------------------------------------------------------


def test_every_processbench_record_comes_back_exactly() -> None:
    project = make_project("pb")
    expected: list[str] = []
    for path in PROCESSBENCH:
        import_file(project, path, "processbench")
        expected += source_lines(path)
    snapshot = build(project, format="processbench")
    got = lines(snapshot)
    assert len(expected) == 3320
    # The parsed objects (key order included) and the very line text.
    assert sorted(got) == sorted(expected)
    assert Counter(json.dumps(json.loads(x)) for x in got) == Counter(
        json.dumps(json.loads(x)) for x in expected
    )


def test_every_prm800k_record_comes_back_exactly() -> None:
    project = make_project("prm")
    path = DATA / "prm800k_sample.jsonl"
    import_file(project, path, "prm800k")
    snapshot = build(project, format="prm800k", labels="all")
    assert sorted(lines(snapshot)) == sorted(source_lines(path))


def _map_ratings(record: Any, neutral: str) -> Any:
    """The record with every rating 0 mapped as --neutral says and nothing else touched."""
    to = {"positive": 1, "negative": -1, "drop": None}[neutral]
    out = json.loads(json.dumps(record))
    for step in out["label"]["steps"]:
        for completion in [*(step["completions"] or []), step.get("human_completion")]:
            if isinstance(completion, dict) and completion.get("rating") == 0:
                completion["rating"] = to
    return out


@pytest.mark.parametrize("neutral", ["positive", "negative", "drop"])
def test_prm800k_with_a_neutral_mapping_changes_only_the_neutral_ratings(neutral: str) -> None:
    project = make_project("prm-neutral")
    path = DATA / "prm800k_sample.jsonl"
    import_file(project, path, "prm800k")
    snapshot = build(project, format="prm800k", labels="all", neutral=neutral)
    got = lines(snapshot)
    source = source_lines(path)
    untouched = [
        line for line in source if _map_ratings(json.loads(line), neutral) == json.loads(line)
    ]
    assert untouched  # records without any neutral rating: the very same line
    assert set(untouched) <= set(got)
    # The others keep labeler, generation, screening flags, timestamps and alternatives: only
    # their 0 ratings change.
    expected = sorted(json.dumps(_map_ratings(json.loads(line), neutral)) for line in source)
    assert sorted(json.dumps(json.loads(line)) for line in got) == expected
    assert len(got) == len(source) == 8


def test_records_not_in_the_repository_round_trip_too() -> None:
    """The shared data holds no ProcessBench/PRM800K record the repository lacks (checked here), so
    records the repository does not hold are made from real ones: other ids, keys in another order,
    an extra field, non-ASCII text, a relabelled earliest error."""
    shared = [SHARED / "processbench" / p.name for p in PROCESSBENCH]
    for path in shared + [SHARED / "prm800k_sample.jsonl"]:
        if path.exists():
            repo = DATA / path.relative_to(SHARED)
            assert set(source_lines(path)) <= set(source_lines(repo)), f"new records in {path}"
    real = [json.loads(line) for line in source_lines(PROCESSBENCH[0])[:40]]
    made = []
    for i, rec in enumerate(real):
        rec = dict(rec, id=f"heldout-{i}", problem=rec["problem"] + " — ∑ ü")
        if i % 3 == 0:
            rec = dict(reversed(list(rec.items())))
        if i % 4 == 0:
            rec["note"] = {"from": "elsewhere", "n": i}
        if rec["label"] == -1 and i % 2:
            rec["label"] = len(rec["steps"]) - 1
        made.append(json.dumps(rec, ensure_ascii=False))
    prm = [json.loads(line) for line in source_lines(DATA / "prm800k_sample.jsonl")]
    prm_made = [
        json.dumps(
            dict(rec, labeler=f"heldout-{i}", timestamp="2023-01-02T03:04:05"), ensure_ascii=False
        )
        for i, rec in enumerate(prm)
    ]
    project = make_project("heldout")
    traces_import(
        project=project,
        stream=io.BytesIO(b"".join(m.encode() + b"\n" for m in made)),
        filename="pb",
        format="processbench",
    )
    traces_import(
        project=project,
        stream=io.BytesIO(b"".join(m.encode() + b"\n" for m in prm_made)),
        filename="prm",
        format="prm800k",
    )
    assert sorted(lines(build(project, format="processbench", name="pb"))) == sorted(made)
    assert sorted(lines(build(project, format="prm800k", name="prm", labels="all"))) == sorted(
        prm_made
    )


def test_an_adjudicated_label_shows_in_the_processbench_label() -> None:
    project = make_project("adj")
    import_file(project, DATA / "processbench_sample.jsonl", "processbench")
    record = next(
        json.loads(x)
        for x in source_lines(DATA / "processbench_sample.jsonl")
        if json.loads(x)["label"] == -1
    )
    step = Step.objects.get(trace__external_id=record["id"], index=0)
    GoldLabel.objects.filter(step=step).update(value=-1, source=GoldSource.ADJUDICATED)
    rows = {
        json.loads(x)["id"]: json.loads(x) for x in lines(build(project, format="processbench"))
    }
    assert rows[record["id"]] == dict(record, label=0)


# --- label policy -------------------------------------------------------------------------------


def test_trl_rows_stop_at_the_earliest_wrong_step_of_processbench_gold() -> None:
    project = make_project("trl")
    import_file(project, DATA / "processbench_sample.jsonl", "processbench")
    source = {
        json.loads(x)["problem"]: json.loads(x)
        for x in source_lines(DATA / "processbench_sample.jsonl")
    }
    rows = [json.loads(x) for x in lines(build(project, format="trl"))]
    assert len(rows) == 80
    for row in rows:
        rec = source[row["prompt"]]
        n = len(rec["steps"]) if rec["label"] == -1 else rec["label"] + 1
        assert row["completions"] == rec["steps"][:n]
        assert row["labels"] == [True] * (n - 1) + [rec["label"] == -1]


def test_neutral_labels_without_a_mapping_are_refused_with_the_count_and_the_option() -> None:
    project = make_project("neutral")
    import_file(project, DATA / "prm800k_sample.jsonl", "prm800k")
    with pytest.raises(ValidationError) as err:
        exports.export_snapshot_create(
            project=project, user=None, name="x", format="trl", labels="all", enqueue=False
        )
    message = err.value.message_dict["neutral"][0]
    count = int(message.split("contains ")[1].split(" ")[0])
    assert count == StepLabel.objects.filter(value=0).count() > 0
    assert "--neutral positive|negative|drop" in message
    assert not ExportSnapshot.objects.exists()
    # PRM800K's own scale has 0: no mapping needed; a mapping makes the TRL export possible.
    build(project, format="prm800k", labels="all", name="raw")
    positive = build(project, format="trl", labels="all", neutral="positive", name="pos")
    negative = build(project, format="trl", labels="all", neutral="negative", name="neg")
    assert (
        positive.stats["label_balance"]["positive"] - negative.stats["label_balance"]["positive"]
        == count
    )


def _labelled_project() -> tuple[Project, list[Any]]:
    users = [make_user() for _ in range(3)]
    project = make_project(members={u: "annotator" for u in users}, overlap=3)
    trace = make_trace(project, steps=("a", "b", "c"))
    steps = list(trace.steps.order_by("index"))
    votes = [(1, 1, -1), (1, -1, -1), (1, 1, None)]  # per user: steps a, b, c
    for user, values in zip(users, votes, strict=True):
        for step, value in zip(steps, values, strict=True):
            if value is not None:
                services.label_set(user=user, step=step, value=value)
        services.annotation_submit(
            user=user, trace=trace, finish_reason="" if None not in values else "give_up"
        )
    return project, users


def test_majority_all_and_min_agreement() -> None:
    project, users = _labelled_project()
    majority = [json.loads(x) for x in lines(build(project, labels="majority", name="m"))]
    assert majority == [
        {
            "prompt": majority[0]["prompt"],
            "completions": ["a", "b", "c"],
            "labels": [True, True, False],
        }
    ]
    strict = [
        json.loads(x) for x in lines(build(project, labels="majority", min_agreement=0.9, name="s"))
    ]
    assert strict[0]["completions"] == ["a"]  # step b has 2 of 3: below 0.9, the prefix ends
    every = build(project, labels="all", name="a", format="prm800k")
    rows = [json.loads(x) for x in lines(every)]
    assert len(rows) == 3
    labelers = {row["labeler"] for row in rows}
    assert len(labelers) == 3 and all(name.startswith("annotator-") for name in labelers)
    assert not labelers & {u.username for u in users}  # pseudonymised
    assert every.stats["agreement"]["steps_with_2_or_more_labels"] == 3
    with pytest.raises(ValidationError):
        exports.export_snapshot_create(
            project=project, user=None, name="g", format="trl", min_agreement=0.5, enqueue=False
        )


def test_prm800k_export_says_which_ratings_were_filled_in_and_which_judged() -> None:
    """Issue 14: a +1 propagated by first-error is told apart from a +1 given by hand."""
    user = make_user()
    project = make_project(members={user: "annotator"})
    trace = make_trace(project, steps=("a", "b", "c", "d"))
    steps = list(trace.steps.order_by("index"))
    services.label_set(user=user, step=steps[0], value=1)
    services.label_first_error(user=user, step=steps[2])
    services.annotation_submit(user=user, trace=trace)
    row = json.loads(lines(build(project, labels="all", format="prm800k"))[0])
    completions = [step["completions"][0] for step in row["label"]["steps"]]
    assert [(c["rating"], c["source"]) for c in completions] == [
        (1, "hand"),
        (1, "filled"),
        (-1, "first_error"),
    ]


def _two_annotators_with_first_error_and_all_correct() -> Project:
    """Two annotators' passes on one trace: one marks step c first wrong (b kept by hand), one
    presses all-correct over a hand-set d."""
    first, second = make_user("first"), make_user("second")
    project = make_project("prov", members={first: "annotator", second: "annotator"})
    trace = make_trace(project, steps=("a", "b", "c", "d"))
    steps = list(trace.steps.order_by("index"))
    services.label_set(user=first, step=steps[1], value=1)
    services.label_first_error(user=first, step=steps[2])
    services.annotation_submit(user=first, trace=trace)
    services.label_set(user=second, step=steps[3], value=1)
    services.label_all_correct(user=second, trace=trace)
    services.annotation_submit(user=second, trace=trace)
    GoldLabel.objects.create(step=steps[0], value=1, source=GoldSource.ADJUDICATED)
    return project


FIRST = ["filled", "hand", "first_error"]  # the first pass, steps a, b, c (d cleared)
SECOND = ["filled", "filled", "filled", "hand"]


def test_trl_processbench_and_math_shepherd_rows_say_who_chose_each_label() -> None:
    """Issue 14: label provenance in every format with room for it, read back from the files."""
    project = _two_annotators_with_first_error_and_all_correct()
    trl = [json.loads(x) for x in lines(build(project, labels="all", name="t", neutral="drop"))]
    assert sorted((row["labels"], row["label_sources"]) for row in trl) == [
        ([True, True, False], FIRST),
        ([True, True, True, True], SECOND),
    ]
    pb = build(project, labels="all", name="p", format="processbench", neutral="drop")
    rows = sorted((json.loads(x) for x in lines(pb)), key=lambda row: row["label"])
    assert [(row["label"], row["label_sources"]) for row in rows] == [
        (-1, SECOND),
        (2, [*FIRST, None]),  # d: no label, so no source
    ]
    shepherd = build(project, labels="all", name="m", format="math_shepherd", neutral="drop")
    assert sorted(json.loads(x)["label_sources"] for x in lines(shepherd)) == sorted(
        [FIRST, SECOND]
    )
    card = export_selectors.export_file_path(snapshot=shepherd, filename="README.md").read_text()
    assert "`label_sources`" in card and "`first_error` (the step the annotator marked" in card
    # Gold and majority rows have no one label chooser: no field, and the card says nothing.
    for labels in ("gold", "majority"):
        snapshot = build(project, labels=labels, name=f"g-{labels}", neutral="drop")
        assert all("label_sources" not in json.loads(x) for x in lines(snapshot))
        card = export_selectors.export_file_path(snapshot=snapshot, filename="README.md")
        assert "label_sources" not in card.read_text()


def test_trl_parquet_has_a_label_sources_column_for_annotators_rows() -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    project = _two_annotators_with_first_error_and_all_correct()
    snapshot = build(project, labels="all", file_format="parquet", neutral="drop")
    path = export_selectors.export_file_path(snapshot=snapshot, filename="train.parquet")
    table = pq.read_table(path)
    assert table.column_names == ["prompt", "completions", "labels", "label_sources"]
    assert sorted(table.column("label_sources").to_pylist()) == sorted([FIRST, SECOND])
    gold = build(project, labels="gold", name="gold", file_format="parquet", neutral="drop")
    path = export_selectors.export_file_path(snapshot=gold, filename="train.parquet")
    assert pq.read_table(path).column_names == ["prompt", "completions", "labels"]


# --- snapshots: split, determinism, card --------------------------------------------------------


def test_split_by_problem_is_deterministic_and_the_card_holds_the_sha256() -> None:
    project = make_project("split")
    for path in PROCESSBENCH[:2]:
        import_file(project, path, "processbench")
    a = build(project, format="trl", test_fraction=0.2, seed=7, name="a")
    b = build(project, format="trl", test_fraction=0.2, seed=7, name="b")
    assert a.status == ExportStatus.DONE and (a.version, b.version) == (1, 1)
    train = [json.loads(x)["prompt"] for x in lines(a, "train.jsonl")]
    test = [json.loads(x)["prompt"] for x in lines(a, "test.jsonl")]
    assert train and test and not set(train) & set(test)
    assert 0.1 < len(set(test)) / len(set(train) | set(test)) < 0.3
    card = export_selectors.export_file_path(snapshot=a, filename="README.md").read_text()
    for f in a.files:
        data = export_selectors.export_file_path(snapshot=a, filename=f["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
        assert f"`{f['sha256']}`" in card
        # The same export built again is the same bytes.
        assert (
            export_selectors.export_file_path(snapshot=b, filename=f["name"]).read_bytes() == data
        )
    assert a.sha256 == b.sha256 and a.sha256 in card
    assert a.row_counts == {"train": len(train), "test": len(test)}
    again = build(project, format="trl", name="a")
    assert again.version == 2  # a new version; v1 is untouched
    assert exports.export_snapshot_build(snapshot_id=a.pk).files == a.files  # running twice: no-op


def test_math_shepherd_and_trl_imports_come_back() -> None:
    project = make_project("ms")
    import_file(project, DATA / "math_shepherd_sample.jsonl", "math_shepherd")
    assert sorted(lines(build(project, format="math_shepherd"))) == sorted(
        source_lines(DATA / "math_shepherd_sample.jsonl")
    )


def test_pairs_take_a_correct_continuation_from_a_sibling_trace() -> None:
    project = make_project("pairs")
    good = make_trace(project, steps=("x = 1", "so y = 2"), problem_text="Find y.")
    bad = make_trace(project, steps=("x = 1", "so y = 3"), problem_text="Find y.")
    lone = make_trace(project, steps=("z", "w"), problem_text="Other.")
    for trace, values in ((good, (1, 1)), (bad, (1, -1)), (lone, (-1, -1))):
        for step, value in zip(trace.steps.order_by("index"), values, strict=True):
            GoldLabel.objects.create(step=step, value=value, source=GoldSource.ADJUDICATED)
    rows = [json.loads(x) for x in lines(build(project, format="pairs"))]
    assert rows == [
        {
            "prompt": "Find y.\nx = 1",
            "chosen": "so y = 2",
            "rejected": "so y = 3",
            "problem": "Find y.",
            "prefix": ["x = 1"],
            "error_step": 1,
            "source_id": bad.external_id,
        }
    ]


def test_a_failed_build_leaves_no_files_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project("fail")
    trace = make_trace(project)
    GoldLabel.objects.create(step=trace.steps.get(index=0), value=1, source=GoldSource.IMPORTED)
    snapshot = exports.export_snapshot_create(
        project=project, user=None, name="f", format="trl", enqueue=False
    )

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(exports, "render_card", boom)
    with pytest.raises(OSError):
        exports.export_snapshot_build(snapshot_id=snapshot.pk)
    snapshot.refresh_from_db()
    assert snapshot.status == ExportStatus.FAILED and "disk full" in snapshot.error
    assert not any(
        p.name.startswith(".v") or p.name == "v1"
        for p in (export_selectors.exports_root() / "fail" / "f").iterdir()
    )


@pytest.mark.parametrize(
    "module",
    [*EXPORTERS.values(), exporter_base, exports],
    ids=lambda m: m.__name__,
)
def test_doctests(module: Any) -> None:
    assert doctest.testmod(module).failed == 0


def test_sft_keeps_the_prm_top_trace_of_each_problem() -> None:
    from scoring.models import RunStatus, Scorer, ScoreRun, StepScore

    reviewer = make_user()
    project = make_project("sft", members={reviewer: "reviewer"})
    scorer = Scorer.objects.create(name="tool", backend="tool")
    scorer.projects.add(project)
    traces = [
        make_trace(project, steps=(f"s{i}", "end"), problem_text="Same problem.") for i in range(3)
    ]
    for trace, score in zip(traces, (0.2, 0.9, 0.5), strict=True):
        run = ScoreRun.objects.create(
            trace=trace, scorer=scorer, scorer_version=scorer.version, status=RunStatus.DONE
        )
        for step in trace.steps.all():
            StepScore.objects.create(run=run, step=step, score=score)
    options = {"select": "scorer", "scorer": "tool", "top_k": 1}
    with pytest.raises(ValidationError, match="--user"):
        exports.export_snapshot_create(
            project=project, user=None, name="x", format="sft", options=options, enqueue=False
        )
    snapshot = exports.export_snapshot_create(
        project=project, user=reviewer, name="sft", format="sft", options=options, enqueue=False
    )
    rows = [json.loads(x) for x in lines(exports.export_snapshot_build(snapshot_id=snapshot.pk))]
    assert rows == [
        {
            "messages": [
                {"role": "user", "content": "Same problem."},
                {"role": "assistant", "content": "s1\n\nend"},
            ]
        }
    ]


def test_a_snapshot_names_nobody_and_times_nobody_unless_asked() -> None:
    """Item 4 of "Hardening": the card named the exporting user and rows carried each annotator's
    times. By default neither is published: annotators appear as pseudonyms, their submission
    times and active seconds are withheld, and the card does not say who exported. An export may
    opt in (identities=True). Imported annotations keep what their source published (round trips
    stay exact)."""
    from annotate import services
    from tests.factories import make_trace, make_user

    exporter, annotator = make_user("erin-exports"), make_user("anna-labels")
    project = make_project("ids", members={exporter: "reviewer", annotator: "annotator"})
    trace = make_trace(project)
    services.label_all_correct(user=annotator, trace=trace)
    services.annotation_add_active_time(user=annotator, trace=trace, seconds=42)
    services.annotation_submit(user=annotator, trace=trace)

    def export(**kwargs: Any) -> tuple[str, dict[str, Any]]:
        snapshot = exports.export_snapshot_create(
            project=project, user=exporter, format="prm800k", labels="all", enqueue=False, **kwargs
        )
        snapshot = exports.export_snapshot_build(snapshot_id=snapshot.pk)
        card = export_selectors.export_file_path(snapshot=snapshot, filename="README.md")
        return card.read_text(), json.loads(lines(snapshot)[0])

    card, row = export(name="public")
    assert "erin-exports" not in card and "anna-labels" not in card + json.dumps(row)
    assert row["timestamp"] is None and row["label"]["total_time"] is None
    assert row["labeler"].startswith("annotator-")
    card, row = export(name="internal", identities=True)
    assert "erin-exports" in card
    assert row["timestamp"] is not None and row["label"]["total_time"] == 42_000


# --- an export without rows is refused, never written ----------------------------------------------


def test_prm800k_gold_export_is_refused_naming_the_labels_option() -> None:
    project = make_project("nogold")
    import_file(project, DATA / "prm800k_sample.jsonl", "prm800k")
    assert not GoldLabel.objects.exists()
    with pytest.raises(ValidationError) as err:
        exports.export_snapshot_create(
            project=project, user=None, name="x", format="prm800k", labels="gold", enqueue=False
        )
    message = err.value.message_dict["labels"][0]
    assert "no gold label" in message and "--labels all" in message
    assert "8 submitted annotations" in message
    assert not ExportSnapshot.objects.exists()
    assert build(project, format="prm800k", labels="all").row_counts == {"train": 8}


def test_filters_that_match_nothing_are_refused_naming_what_is_there() -> None:
    project = make_project("filtered")
    import_file(project, DATA / "processbench_sample.jsonl", "processbench")
    with pytest.raises(ValidationError) as err:
        exports.export_snapshot_create(
            project=project,
            user=None,
            name="x",
            format="trl",
            filters={"subsets": ["nope"]},
            enqueue=False,
        )
    message = err.value.message_dict["subsets"][0]
    assert "No trace" in message and "'gsm8k'" in message and "'math'" in message
    with pytest.raises(ValidationError, match="annotators' labels.*--labels gold"):
        exports.export_snapshot_create(
            project=project, user=None, name="x", format="trl", labels="all", enqueue=False
        )


def test_an_empty_test_split_is_refused_before_anything_is_written() -> None:
    project = make_project("split")
    import_file(project, DATA / "processbench_sample.jsonl", "processbench")
    with pytest.raises(ValidationError) as err:
        exports.export_snapshot_create(
            project=project, user=None, name="x", format="trl", test_fraction=0.001, enqueue=False
        )
    message = err.value.message_dict["test_fraction"][0]
    assert "test split would hold no rows" in message and "--split test=" in message
    with pytest.raises(ValidationError, match="train split would hold no rows"):
        exports.export_snapshot_create(
            project=project, user=None, name="x", format="trl", test_fraction=0.999, enqueue=False
        )
    assert not ExportSnapshot.objects.exists()


def test_a_build_that_would_write_no_rows_fails_with_the_reason_and_leaves_no_files() -> None:
    """Gold on a later step only: TRL rows need a labelled first step, so there are none."""
    project = make_project("norows")
    trace = make_trace(project)
    step = trace.steps.get(index=1)
    GoldLabel.objects.create(step=step, value=1, source=GoldSource.IMPORTED)
    snapshot = exports.export_snapshot_create(
        project=project, user=None, name="e", format="trl", enqueue=False
    )
    with pytest.raises(exports.EmptyExportError):
        exports.export_snapshot_build(snapshot_id=snapshot.pk)
    snapshot.refresh_from_db()
    assert snapshot.status == ExportStatus.FAILED
    assert "no rows" in snapshot.error and "datasets.load_dataset" in snapshot.error
    assert not (export_selectors.exports_root() / "norows" / "e" / "v1").exists()


def test_a_stepwise_critique_import_exports_as_prm800k_and_trl() -> None:
    project = make_project("critique")
    import_file(project, DATA / "prm800k_phase1test_stepwise_critique_sample.jsonl", "prm800k")
    prm = [json.loads(line) for line in lines(build(project, format="prm800k", labels="all"))]
    assert len(prm) == 4
    assert sorted(len(r["label"]["steps"]) for r in prm) == [1, 8, 11, 12]  # up to the human step
    assert {s["completions"][0]["rating"] for r in prm for s in r["label"]["steps"]} == {1}
    trl = [json.loads(line) for line in lines(build(project, format="trl", labels="all", name="t"))]
    assert sorted(len(r["labels"]) for r in trl) == [1, 8, 11, 12]
    assert all(all(r["labels"]) for r in trl)
