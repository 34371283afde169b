"""Labels are saved at once, validated against the project's scheme, and submitted with a reason."""

from __future__ import annotations

import time

import pytest
from django.core.exceptions import ValidationError

from annotate import selectors, services
from annotate.models import AnnotationStatus, FinishReason, LabelScheme, Project, StepLabel, Trace
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db


def test_label_set_saves_and_updates_one_row_per_step():
    user = make_user()
    project = make_project(members={user: "annotator"})
    trace = make_trace(project)
    step = trace.steps.get(index=0)
    services.label_set(user=user, step=step, value=1)
    services.label_set(user=user, step=step, note="checked")
    label = StepLabel.objects.get(step=step)
    assert (label.value, label.note) == (1, "checked")


def test_binary_scheme_refuses_neutral():
    user = make_user()
    project = make_project(members={user: "annotator"}, label_scheme=LabelScheme.BINARY)
    step = make_trace(project).steps.get(index=0)
    with pytest.raises(ValidationError, match="binary"):
        services.label_set(user=user, step=step, value=0)


def test_first_error_cascades_and_submit_infers_found_error():
    user = make_user()
    project = make_project(members={user: "annotator"})
    trace = make_trace(project, steps=["a", "b", "c", "d", "e"])
    services.label_set(user=user, step=trace.steps.get(index=3), value=1)
    services.label_first_error(user=user, step=trace.steps.get(index=4))
    # Moved to step 2: the earlier first error and what it filled in are overwritten; the label
    # set by hand on step 3 is kept (and named).
    result = services.label_first_error(user=user, step=trace.steps.get(index=2))
    assert result.kept == [3]
    rows = StepLabel.objects.filter(annotation__trace=trace).values_list(
        "step__index", "value", "source"
    )
    assert {i: (v, s) for i, v, s in rows} == {
        0: (1, "filled"),
        1: (1, "filled"),
        2: (-1, "first_error"),
        3: (1, "hand"),
        4: (None, "filled"),
    }
    annotation = services.annotation_submit(user=user, trace=trace)
    assert annotation.status == AnnotationStatus.SUBMITTED
    assert annotation.finish_reason == FinishReason.FOUND_ERROR


def test_submit_without_labels_needs_a_reason():
    user = make_user()
    project = make_project(members={user: "annotator"})
    trace = make_trace(project)
    with pytest.raises(ValidationError, match="Label every step"):
        services.annotation_submit(user=user, trace=trace)
    annotation = services.annotation_submit(user=user, trace=trace, finish_reason="bad_problem")
    assert annotation.finish_reason == "bad_problem"


def test_progress_counts_submissions_and_respects_overlap():
    alice, bob = make_user(), make_user()
    project = make_project(members={alice: "annotator", bob: "annotator"}, overlap=1)
    first, _second = make_trace(project), make_trace(project)
    services.label_all_correct(user=alice, trace=first)
    services.annotation_submit(user=alice, trace=first)
    progress = selectors.labelling_progress(user=alice, project=project)
    assert (progress.done, progress.assigned) == (1, 2)
    # overlap 1: alice's submission filled `first`, so bob owes only the other trace
    progress = selectors.labelling_progress(user=bob, project=project)
    assert (progress.done, progress.assigned) == (0, 1)


def test_active_time_is_capped_per_heartbeat():
    user = make_user()
    project = make_project(members={user: "annotator"})
    trace = make_trace(project)
    annotation = services.annotation_add_active_time(user=user, trace=trace, seconds=10_000)
    assert annotation.active_seconds == pytest.approx(services.MAX_ACTIVE_SECONDS_PER_HEARTBEAT)


def test_heartbeats_never_credit_more_than_the_wall_time_between_them():
    user = make_user()
    project = make_project(members={user: "annotator"})
    trace = make_trace(project)
    started = time.monotonic()
    for _ in range(50):  # 50 heartbeats claiming an hour each, as fast as they can go
        annotation = services.annotation_add_active_time(user=user, trace=trace, seconds=3600)
    elapsed = time.monotonic() - started
    # The first is capped per heartbeat; each later one by the time since the one before.
    assert annotation.active_seconds <= services.MAX_ACTIVE_SECONDS_PER_HEARTBEAT + elapsed + 0.01


def test_outsider_cannot_reach_trace():
    member, outsider = make_user(), make_user()
    project = make_project(members={member: "annotator"})
    trace = make_trace(project)
    other = make_project(members={outsider: "annotator"})
    assert selectors.trace_get_for_user(user=member, trace_id=trace.pk) == trace
    from django.http import Http404

    with pytest.raises(Http404):
        selectors.trace_get_for_user(user=outsider, trace_id=trace.pk)
    assert list(selectors.project_list_for_user(user=outsider)) == [other]


def test_blind_project_keeps_the_label_submitted_before_the_reveal():
    user = make_user()
    project = make_project(members={user: "annotator"}, blind=True)
    trace = make_trace(project, steps=["a", "b"])
    first, second = trace.steps.order_by("index")
    services.label_all_correct(user=user, trace=trace)
    annotation = services.annotation_submit(user=user, trace=trace)
    assert annotation.revealed_at is not None
    # After seeing the scores the annotator revises step 2; the blind label stays as it was.
    services.label_set(user=user, step=second, value=-1)
    services.annotation_submit(user=user, trace=trace)
    label = StepLabel.objects.get(step=second)
    assert (label.blind_value, label.value) == (1, -1)


def _labels(trace):
    rows = StepLabel.objects.filter(annotation__trace=trace).values_list(
        "step__index", "value", "source"
    )
    return {i: (v, s) for i, v, s in rows}


def test_changes_apply_in_order_once_per_client_seq():
    user = make_user()
    project = make_project(members={user: "annotator"})
    trace = make_trace(project, steps=["a", "b", "c"])
    changes = [
        {"seq": 1, "op": "label", "index": 0, "value": 1},
        {"seq": 2, "op": "label", "index": 0, "value": -1},
        {"seq": 3, "op": "label", "index": 1, "note": "why", "flagged": True},
    ]
    result = services.label_changes_apply(user=user, trace=trace, client="tab", changes=changes)
    assert (result.applied, result.skipped) == ([1, 2, 3], [])
    # A resend (a retry, a replay after a reload) applies nothing twice: a late copy of seq 1
    # does not undo seq 2.
    again = services.label_changes_apply(
        user=user,
        trace=trace,
        client="tab",
        changes=[changes[0], {**changes[2], "seq": 4, "note": "v2"}],
    )
    assert (again.applied, again.skipped) == ([4], [1])
    assert _labels(trace)[0] == (-1, "hand")
    assert StepLabel.objects.get(step__trace=trace, step__index=1).note == "v2"
    # Another client's numbers are its own.
    other = services.label_changes_apply(
        user=user, trace=trace, client="other", changes=[changes[0]]
    )
    assert other.applied == [1]
    assert _labels(trace)[0] == (1, "hand")


def test_a_change_answers_the_label_it_saved_and_the_count_of_labelled_steps():
    """The answer of each request: the saved state of the steps it touched and how many steps
    have a value, counted after the request (on PostgreSQL the last label is written by the
    statement that counts: a value set, replaced, cleared, a note alone, several changes)."""
    user = make_user()
    project = make_project(members={user: "annotator"})
    trace = make_trace(project, steps=["a", "b", "c"])
    seq = iter(range(1, 100))

    def apply(*changes):  # type: ignore[no-untyped-def]
        sent = [{"seq": next(seq), "op": "label", **c} for c in changes]
        result = services.label_changes_apply(user=user, trace=trace, client="t", changes=sent)
        stored = StepLabel.objects.filter(annotation__trace=trace, value__isnull=False).count()
        assert result.labelled == stored and result.step_count == 3
        return {
            label.step.index: (label.value, label.note, label.flagged) for label in result.labels
        }, result.labelled

    assert apply({"index": 0, "value": 1}) == ({0: (1, "", False)}, 1)
    assert apply({"index": 1, "value": -1}) == ({1: (-1, "", False)}, 2)
    assert apply({"index": 1, "value": 0}) == ({1: (0, "", False)}, 2)  # replaced
    assert apply({"index": 1, "value": None}) == ({1: (None, "", False)}, 1)  # cleared
    assert apply({"index": 0, "note": "why"}) == ({0: (1, "why", False)}, 1)  # value kept
    assert apply({"index": 2, "flagged": True}) == ({2: (None, "", True)}, 1)  # no value
    assert apply({"index": 2, "value": 1}, {"index": 1, "value": -1}) == (
        {1: (-1, "", False), 2: (1, "", True)},
        3,
    )


def test_changes_first_error_keeps_hand_labels_and_restore_undoes_it():
    user = make_user()
    project = make_project(members={user: "annotator"})
    trace = make_trace(project, steps=["a", "b", "c", "d"])
    result = services.label_changes_apply(
        user=user,
        trace=trace,
        client="tab",
        changes=[
            {"seq": 1, "op": "label", "index": 0, "value": 0},
            {"seq": 2, "op": "first_error", "index": 2},
        ],
    )
    assert result.kept == [0]
    assert _labels(trace) == {
        0: (0, "hand"),
        1: (1, "filled"),
        2: (-1, "first_error"),
        3: (None, "filled"),
    }
    services.label_changes_apply(
        user=user,
        trace=trace,
        client="tab",
        changes=[
            {
                "seq": 3,
                "op": "restore",
                "labels": [
                    {"index": 1, "value": None, "source": "hand"},
                    {"index": 2, "value": None, "source": "hand"},
                ],
            }
        ],
    )
    assert [v for v, _ in _labels(trace).values()] == [0, None, None, None]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"seq": 1, "op": "label", "index": 9, "value": 1},
            r"changes\[0\]: this trace has no step 9",
        ),
        ({"seq": 1, "op": "label", "index": 0, "value": 5}, "not a label of the ternary scheme"),
        ({"seq": 1, "op": "paint", "index": 0}, r"changes\[0\]: op 'paint'"),
        ({"seq": 0, "op": "all_correct"}, "seq must be a positive integer"),
        (
            {"seq": 1, "op": "restore", "labels": [{"index": 0, "value": [1], "source": "hand"}]},
            r"changes\[0\].labels\[0\]: value must be -1, 0, 1 or null",
        ),
        ({"seq": 1, "op": "first_error", "index": True}, "this trace has no step True"),
        (
            {"seq": 1, "op": "restore", "labels": [{"index": 0, "value": 1, "source": "robot"}]},
            r"changes\[0\].labels\[0\]: source 'robot'",
        ),
        # What the API's serializers used to refuse before the service saw it (issue 16: the
        # service is now the one check): a label's value, flag and note of the wrong type.
        ({"seq": 1, "op": "label", "index": 0, "value": True}, r"changes\[0\]: value must be"),
        ({"seq": 1, "op": "label", "index": 0, "value": "1"}, r"changes\[0\]: value must be"),
        ({"seq": 1, "op": "label", "index": 0, "flagged": "no"}, r"changes\[0\]: flagged must be"),
        ({"seq": 1, "op": "label", "index": 0, "note": 7}, r"changes\[0\]: note: text"),
        ("label", r"changes\[0\]: an object"),
    ],
)
def test_changes_refused_name_what_and_where(change, message):
    user = make_user()
    project = make_project(members={user: "annotator"})
    trace = make_trace(project)
    with pytest.raises(ValidationError, match=message):
        services.label_changes_apply(user=user, trace=trace, client="tab", changes=[change])
    assert StepLabel.objects.count() == 0


@pytest.mark.parametrize(
    ("client", "changes", "message"),
    [
        (7, [], "1 to 64 characters"),
        ("", [], "1 to 64 characters"),
        ("x" * 65, [], "1 to 64 characters"),
        ("tab", {"seq": 1}, "a list of changes"),
    ],
)
def test_a_malformed_change_log_is_refused(client, changes, message):
    user = make_user()
    trace = make_trace(make_project(members={user: "annotator"}))
    with pytest.raises(ValidationError, match=message):
        services.label_changes_apply(user=user, trace=trace, client=client, changes=changes)


def test_hotkeys_doctests_and_checks():
    import doctest

    from annotate import hotkeys

    assert doctest.testmod(hotkeys).failed == 0
    with pytest.raises(ValidationError, match="keys.jump: no such action"):
        hotkeys.hotkeys_clean(hotkeys={"keys": {"jump": "x"}})
    with pytest.raises(ValidationError, match="keys.plus: 'Enter' is not one printable character"):
        hotkeys.hotkeys_clean(hotkeys={"keys": {"plus": "Enter"}})
    with pytest.raises(ValidationError, match="names.2: labels are 1, 0 and -1"):
        hotkeys.hotkeys_clean(hotkeys={"names": {"2": "maybe"}})
    # Binary: no neutral, so "2" is free for wrong (its default there).
    assert hotkeys.hotkeys_for(hotkeys={}, scheme="binary")["keys"]["minus"] == "2"


# ---- the project's kept trace count (issue 16) ---------------------------------------------------


def _kept_and_real(project: Project) -> tuple[int, int]:
    project.refresh_from_db()
    return project.trace_count, Trace.objects.filter(project=project).count()


def test_the_kept_trace_count_follows_imports_single_traces_and_deletes() -> None:
    from tests.factories import import_jsonl

    project, other = make_project("counted"), make_project("other-counted")
    make_trace(other)
    import_jsonl(
        project,
        *({"id": f"r{i}", "problem": f"P{i % 2}", "steps": ["a", "b"]} for i in range(5)),
    )
    assert _kept_and_real(project) == (5, 5)
    import_jsonl(project, {"id": "r0", "problem": "P0", "steps": ["a"]})  # already there
    assert _kept_and_real(project) == (5, 5)
    single = make_trace(project)
    assert _kept_and_real(project) == (6, 6)
    # A project saved from an instance loaded before the import keeps the count.
    stale = Project.objects.get(pk=project.pk)
    import_jsonl(project, {"id": "r9", "problem": "P9", "steps": ["a"]})
    stale.name = "renamed"
    stale.save()
    assert _kept_and_real(project) == (7, 7)
    single.delete()
    assert _kept_and_real(project) == (6, 6)
    ids = list(Trace.objects.filter(project__in=[project, other]).values_list("pk", flat=True))
    assert services.traces_delete(trace_ids=ids[:3] + ids[-1:]) == 4
    assert _kept_and_real(project) == (3, 3) and _kept_and_real(other) == (0, 0)
    assert services.traces_delete(trace_ids=ids[:3]) == 0  # already gone: nothing counted twice
    assert _kept_and_real(project) == (3, 3)


def test_a_saved_labels_status_is_the_annotations_as_counted_after_it():
    """label_set_at (the htmx save of a started trace) answers with the annotation's label status
    after the save: on PostgreSQL from the upsert's own statement, whose count sees the labels as
    they were before it. Over saves that set, change and clear values around other steps' -1s,
    it must equal label_status counted afresh afterwards."""
    user = make_user()
    project = make_project(members={user: "annotator"})
    trace = make_trace(project, steps=["a", "b", "c", "d"])
    trace = selectors.trace_get_for_label(user=user, trace_id=trace.pk)
    services.label_set_at(user=user, trace=trace, index=0, annotation_id=None, value=1)
    saves = [(2, -1), (1, -1), (1, 1), (2, None), (3, -1), (0, -1), (0, 1), (3, 1), (1, 1), (2, 1)]
    for index, value in saves:
        trace = selectors.trace_get_for_label(user=user, trace_id=trace.pk)
        label = services.label_set_at(
            user=user,
            trace=trace,
            index=index,
            annotation_id=trace.my_annotation_id,  # type: ignore[attr-defined]
            value=value,
            flagged=index == 3,
        )
        assert label is not None and label.value == value
        answered = selectors.label_status_after(label, step_count=4)
        counted = selectors.label_status(annotation_id=label.annotation_id, step_count=4)
        assert answered == counted, (index, value)
    assert counted == selectors.LabelStatus(
        labelled=4, step_count=4, first_error_index=None, all_correct=True
    )
