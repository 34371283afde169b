"""Best-of-N correctness from the reference answer: scoring a trace decides an unknown
`final_answer_correct` with the tool backend's check (normalised text, sympy, math-verify)."""

from __future__ import annotations

import pytest

from annotate.models import Problem, Trace
from scoring import engine, services
from tests.factories import make_project, make_trace

pytestmark = pytest.mark.django_db


def test_scoring_decides_unknown_correctness_from_the_reference(
    django_capture_on_commit_callbacks,
) -> None:
    project = make_project("fa")
    right = make_trace(
        project, external_id="right", steps=("2 + 2 = 4", "So $\\boxed{\\frac{8}{2}}$.")
    )
    wrong = make_trace(project, external_id="wrong", steps=("2 + 3 = 5", "The answer is 5"))
    stated = make_trace(project, external_id="stated", steps=("We get 4.",))
    Trace.objects.filter(pk=stated.pk).update(final_answer="4.0")
    imported = make_trace(project, external_id="imported", steps=("\\boxed{7}",))
    Trace.objects.filter(pk=imported.pk).update(final_answer_correct=True)  # the source's verdict
    no_reference = make_trace(project, external_id="noref", steps=("\\boxed{4}",), problem_text="?")
    Problem.objects.filter(pk__in=[t.problem_id for t in (right, wrong, stated, imported)]).update(
        reference_answer="4"
    )
    Problem.objects.filter(pk=no_reference.problem_id).update(reference_answer="")
    tool = services.scorer_create(name="tool", backend="tool", projects=[project])
    assert Trace.objects.filter(final_answer_correct__isnull=True).count() == 4
    with django_capture_on_commit_callbacks(execute=True):  # the task runs eagerly
        services.project_backfill(project=project, scorer=tool)
    found = {t.external_id: (t.final_answer_correct, t.final_answer) for t in Trace.objects.all()}
    assert found == {
        "right": (True, "\\frac{8}{2}"),
        "wrong": (False, "5"),
        "stated": (True, "4.0"),
        "imported": (True, ""),  # never overwritten
        "noref": (None, ""),  # nothing to compare with: still unknown
    }
    # Scoring again changes nothing (the verdicts are only written where unknown).
    assert engine.judge_final_answers(list(tool.runs.select_related("trace__problem"))) == 0
