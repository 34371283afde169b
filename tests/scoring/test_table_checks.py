"""TaTToo-style table reasoning through the `tool` backend: the engine hands the problem's table to
the scorer, a step that reads a cell wrong is a failed check on that step (shown on the page),
and scores imported from elsewhere keep their per-step details."""

from __future__ import annotations

import io
import json

import pytest
from django.urls import reverse

from annotate.models import Trace
from scoring import engine, services
from scoring.models import ScoreRun, StepScore
from scoring.prm import build_scorer
from scoring.prm.contract import TraceInput
from tests.factories import import_jsonl, make_project, make_user

pytestmark = pytest.mark.django_db

REVENUE = {
    "header": ["quarter", "revenue ($M)", "costs ($M)"],
    "rows": [["Q1", 100, 70], ["Q2", 90, 65], ["Q3", 120, 80], ["Q4", 110, 95]],
}
STEPS = [
    "From the table, Q3 revenue is 120.",
    "Q4 revenue is 140.",  # the table says 110: a wrong lookup
    "So the change from Q3 to Q4 is 140 - 120 = 20.",
    "Q4 costs were $95M, and Q1 costs 70.",
]


def tool_scores(table: object) -> list:  # type: ignore[type-arg]
    (out,) = build_scorer("tool").score(
        [TraceInput("What was the change in revenue from Q3 to Q4?", STEPS, table=table)]
    )
    return out.steps


def table_checks(step) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    return [c for c in step.details["checks"] if c["source"] == "table"]


def test_a_wrong_table_lookup_fails_the_step_that_reads_the_cell() -> None:
    from annotate.tables import table_from

    steps = tool_scores(table_from(REVENUE).as_json())  # type: ignore[union-attr]
    assert [c["ok"] for c in table_checks(steps[0])] == [True]
    (wrong,) = table_checks(steps[1])
    assert (wrong["ok"], wrong["expected"], wrong["computed"]) == (False, "110", "140")
    assert wrong["expression"] == "table[Q4, revenue ($M)] = 140"
    assert steps[1].score == 0.05 and steps[0].score == 0.9
    # Operands of a calculation are not read as claims about a cell: only the equation is checked.
    assert table_checks(steps[2]) == [] and steps[2].score == 0.9
    assert [(c["expected"], c["ok"]) for c in table_checks(steps[3])] == [
        ("95", True),
        ("70", True),
    ]


def test_without_the_table_nothing_is_checked_against_it() -> None:
    steps = tool_scores(None)
    assert all(table_checks(s) == [] for s in steps)
    assert steps[1].details["verdict"] == "unknown"  # 0.50: no check, as before


def test_the_engine_gives_the_scorer_the_problems_table_and_the_page_shows_the_failed_check(
    client,
) -> None:
    annotator = make_user()
    project = make_project(members={annotator: "annotator"})
    import_jsonl(
        project,
        {
            "id": "tattoo-1",
            "problem": "What was the change in revenue from Q3 to Q4?",
            # The Markdown form of the same table, as TaTToo puts it in the prompt.
            "table": "| quarter | revenue ($M) | costs ($M) |\n|---|---|---|\n"
            + "\n".join(f"| {q} | {r} | {c} |" for q, r, c in REVENUE["rows"]),
            "steps": STEPS,
        },
    )
    trace = Trace.objects.get(external_id="tattoo-1")
    scorer = services.scorer_create(name="tool", backend="tool", projects=[project])
    (run,) = services.score_runs_enqueue(traces=[trace], scorers=[scorer])
    engine.score_and_write(run_ids=[run.pk])
    scores = {s.step.index: s for s in StepScore.objects.filter(run=run).select_related("step")}
    assert scores[1].score == 0.05 and scores[0].score == 0.9
    client.force_login(annotator)
    html = client.get(reverse("scoring:panel", args=[trace.pk])).content.decode()
    # On the step that reads the cell (its score slot), open: the cell, the stated value, the table's.
    slot = html.split(f'id="step-scores-{scores[1].step_id}"')[1].split('id="step-scores-')[0]
    assert "<code>table[Q4, revenue ($M)] = 140</code>: the table says 110" in slot
    assert "1 failed check" in slot
    assert 'open data-testid="step-checks"' in slot


def test_imported_scores_keep_their_per_step_details() -> None:
    project = make_project()
    import_jsonl(project, {"id": "t-1", "problem": "1+1?", "steps": ["1+1=2", "So 3."]})
    scorer = services.scorer_create(name="critic", backend="external", projects=[project])
    record = {
        "trace_id": "t-1",
        "scores": [0.9, 0.1],
        "details": [{"critiques": ["Right."]}, {"critiques": ["2, not 3."], "p_yes": 0.1}],
    }
    services.scores_import(
        project=project,
        scorer=scorer,
        stream=io.BytesIO(json.dumps(record).encode()),
        filename="critic.jsonl",
    )
    run = ScoreRun.objects.get(scorer=scorer)
    details = [s.details for s in StepScore.objects.filter(run=run).order_by("step__index")]
    assert details == record["details"]


@pytest.mark.parametrize(
    ("details", "field", "message"),
    [
        ([{"a": 1}], "details", "expected one object (or null) per score: 1 for 2 scores"),
        ({"a": 1}, "details", "expected a list of objects (or null), one per score"),
        ([{"a": 1}, "text"], "details[1]", "expected an object or null, got str"),
    ],
)
def test_imported_details_in_another_shape_are_refused(
    details: object, field: str, message: str
) -> None:
    project = make_project()
    import_jsonl(project, {"id": "t-1", "problem": "1+1?", "steps": ["1+1=2", "So 3."]})
    scorer = services.scorer_create(name="critic", backend="external", projects=[project])
    record = {"trace_id": "t-1", "scores": [0.9, 0.1], "details": details}
    with pytest.raises(services.ScoresFileError) as caught:
        services.scores_import(
            project=project,
            scorer=scorer,
            stream=io.BytesIO(json.dumps(record).encode()),
            filename="critic.jsonl",
        )
    assert (caught.value.line, caught.value.field, caught.value.message) == (1, field, message)
