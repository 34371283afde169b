"""Imported PRM800K labelers are labelers in every view: agreement, adjudication, the data
browser and exports count them alike; their labels carry the source's time; they cannot log in."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from annotate import services
from annotate.imports import traces_import
from annotate.models import Annotation, Step, StepLabel
from review import browser, selectors
from tests.conftest import REPO_ROOT
from tests.factories import make_project, make_user

pytestmark = pytest.mark.django_db

LABELER = "prm800k-cc88bf76-df08-4041-be67-3464279cb3b1"


@pytest.fixture
def project():
    ann = make_user("ann")
    project = make_project("pk", members={ann: "annotator"})
    with (REPO_ROOT / "data" / "prm800k_sample.jsonl").open("rb") as stream:
        traces_import(project=project, stream=stream, filename="s.jsonl", format="prm800k")
    imported = Annotation.objects.get(annotator__username=LABELER)
    # A local annotator disagrees with the labeler on step 7 (the labeler's -1).
    step = Step.objects.get(trace=imported.trace, index=6)
    services.label_all_correct(user=ann, trace=imported.trace)
    services.annotation_submit(user=ann, trace=imported.trace)
    assert StepLabel.objects.get(annotation__annotator=ann, step=step).value == 1
    return project


def test_agreement_and_adjudication_both_count_the_imported_labeler(project) -> None:
    report = selectors.project_agreement(project=project)
    assert LABELER in {s.username for s in report.stats}
    pair = next(p for p in report.pairs if {p.a, p.b} == {"ann", LABELER})
    assert pair.steps == 7  # the labeler's 7 rated steps, all labelled by ann too
    disputed = browser.trace_filter(project=project, values={"disagreement": "yes"})
    assert list(disputed.values_list("external_id", flat=True)) == [
        Annotation.objects.get(annotator__username=LABELER).trace.external_id
    ]
    assert browser.trace_filter(project=project, values={"disagreement": "no"}).count() == 7
    disagreements = selectors.disagreement_list(project=project)
    # Widest split first: the labeler's -1 against +1, then their 0 against +1.
    assert [(d.step_index, d.values) for d in disagreements] == [(6, [-1, 1]), (1, [0, 1])]


def test_a_trace_with_only_an_imported_pass_is_not_unlabelled_in_the_browser(project) -> None:
    unlabelled = browser.trace_filter(project=project, values={"status": "unlabelled"})
    labelled_by_import = Annotation.objects.filter(imported=True).values_list("trace_id", flat=True)
    assert not unlabelled.filter(pk__in=labelled_by_import).exists()
    submitted = browser.trace_filter(project=project, values={"status": "submitted"})
    assert set(submitted.values_list("pk", flat=True)) == set(labelled_by_import)


def test_imported_labels_carry_the_labelers_time_and_labelers_cannot_log_in(project) -> None:
    imported = Annotation.objects.get(annotator__username=LABELER)
    times = set(imported.labels.values_list("updated_at", flat=True))
    assert {t.isoformat() for t in times} == {"2022-11-22T16:51:29.980606+00:00"}
    labeler = get_user_model().objects.get(username=LABELER)
    assert not labeler.is_active and not labeler.has_usable_password()
    assert not Client().login(username=LABELER, password="")
