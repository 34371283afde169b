"""Agreement coefficients on published worked examples, and a project's agreement computed from
labels submitted through the real services."""

from __future__ import annotations

import doctest

import pytest

from annotate import services
from annotate.models import GoldLabel, GoldSource
from review import agreement, selectors
from tests.factories import make_project, make_trace, make_user


def test_doctests_reproduce_the_published_examples() -> None:
    # Cohen (Wikipedia, 0.4), Fleiss (Wikipedia, 0.210), Krippendorff's own example (nominal
    # 0.743, ordinal 0.815, interval 0.849).
    assert doctest.testmod(agreement).failed == 0


def test_ordinal_alpha_counts_a_near_miss_as_less_disagreement_than_a_far_one() -> None:
    near = [[1, 0], [1, 1], [-1, -1], [0, 0], [1, 1], [-1, -1]]
    far = [[1, -1], [1, 1], [-1, -1], [0, 0], [1, 1], [-1, -1]]
    a_near = agreement.krippendorff_alpha(near, categories=agreement.LABEL_VALUES)
    a_far = agreement.krippendorff_alpha(far, categories=agreement.LABEL_VALUES)
    assert a_near > a_far
    nominal_near = agreement.krippendorff_alpha(near, level="nominal")
    nominal_far = agreement.krippendorff_alpha(far, level="nominal")
    # Nominal sees a miss as a miss: the gap it finds is much smaller than the ordinal one.
    assert a_near - a_far > 3 * (nominal_near - nominal_far)
    assert agreement.krippendorff_alpha([[1, 1], [0, 0]]) == 1.0
    assert agreement.krippendorff_alpha([[1]]) is None


@pytest.mark.django_db
def test_project_agreement_from_submitted_labels() -> None:
    ann = [make_user(f"u{i}") for i in range(3)]
    project = make_project(members={u: "annotator" for u in ann}, overlap=3)
    traces = [make_trace(project, steps=["a", "b", "c", "d"]) for _ in range(2)]
    labels = {
        ann[0]: [[1, 1, -1, None], [1, 1, 1, 1]],
        ann[1]: [[1, 1, -1, None], [1, 0, 1, 1]],
        ann[2]: [[1, -1, None, None], [1, 1, 1, 1]],
    }
    for user, per_trace in labels.items():
        for trace, values in zip(traces, per_trace, strict=True):
            for index, value in enumerate(values):
                if value is not None:
                    services.label_set(user=user, step=trace.steps.get(index=index), value=value)
            services.annotation_submit(user=user, trace=trace, finish_reason="give_up")
    services.annotation_add_active_time(user=ann[0], trace=traces[0], seconds=100)
    GoldLabel.objects.create(step=traces[0].steps.get(index=1), value=1, source=GoldSource.IMPORTED)
    report = selectors.project_agreement(project=project)
    assert (report.annotators, report.traces_multi) == (3, 2)
    # First wrong step: trace 1 -> 2, 2, 1 (1 of 3 pairs agree); trace 2 -> -1 x3 (3 of 3).
    assert report.first_error == {"traces": 2, "pairwise": 4 / 6, "unanimous": 0.5}
    pair = {(p.a, p.b): p for p in report.pairs}
    assert pair[("u0", "u1")].steps == 7 and pair[("u0", "u1")].percent == pytest.approx(6 / 7)
    units = [
        [1, 1, 1],
        [1, 1, -1],
        [-1, -1],
        [1, 1, 1],
        [1, 0, 1],
        [1, 1, 1],
        [1, 1, 1],
    ]
    assert report.krippendorff_alpha == pytest.approx(
        agreement.krippendorff_alpha(units, categories=agreement.LABEL_VALUES)
    )
    stats = {s.username: s for s in report.stats}
    assert stats["u0"].traces_submitted == 2 and stats["u0"].steps_labelled == 7
    assert stats["u0"].seconds_per_step == pytest.approx(100 / 7)
    assert stats["u0"].traces_per_hour == pytest.approx(2 / (100 / 3600))
    assert stats["u2"].gold_agreement == 0.0 and stats["u1"].gold_agreement == 1.0


@pytest.mark.django_db
def test_filled_in_labels_are_counted_apart_from_judged_ones() -> None:
    """Issue 14: two annotators who each press `e` on step 3 agree on the +1s before it only
    because `e` filled them in; the judged coefficients leave those out."""
    a, b = make_user("fa"), make_user("fb")
    project = make_project(members={a: "annotator", b: "annotator"}, overlap=2)
    trace = make_trace(project, steps=["s0", "s1", "s2", "s3"])
    services.label_first_error(user=a, step=trace.steps.get(index=2))
    services.label_set(user=b, step=trace.steps.get(index=0), value=1)
    services.label_set(user=b, step=trace.steps.get(index=1), value=-1)
    services.label_set(user=b, step=trace.steps.get(index=2), value=-1)
    for user in (a, b):
        services.annotation_submit(user=user, trace=trace, finish_reason="found_error")
    report = selectors.project_agreement(project=project)
    assert report.steps_multi == 3
    # Only step 2 was judged by both (a: the first-error step, b: by hand).
    assert report.judged["steps_multi"] == 1
    stats = {s.username: s for s in report.stats}
    assert (stats["fa"].steps_labelled, stats["fa"].steps_filled) == (3, 2)
    assert stats["fb"].steps_filled == 0
    assert report.as_dict()["judged"]["steps_multi"] == 1
