"""Problem identity: the text, the images' content and the table together make a problem.

Geometry3K asks "Find $x$." of hundreds of different figures; TaTToo asks the same question of
different tables. Records that differ in any of those are different problems, each with its own
figure, table and reference answer.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest

from annotate.imports import problem_content_sha256, traces_import
from annotate.models import Problem, Trace
from tests.factories import make_project

pytestmark = pytest.mark.django_db

# Two different 1x1 PNGs (a white and a black pixel): two figures.
WHITE = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGP4DwABAQEAsTj2FAAAAABJRU5ErkJggg=="
)
BLACK = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="
)


def data_url(b64: str) -> str:
    return f"data:image/png;base64,{b64}"


def jsonl(*records: dict[str, Any]) -> io.BytesIO:
    return io.BytesIO("\n".join(json.dumps(r) for r in records).encode())


def geometry3k(record_id: str, figure: str, answer: str) -> dict[str, Any]:
    return {
        "id": record_id,
        "problem": "Find $x$.",
        "images": [data_url(figure)],
        "reference_answer": answer,
        "steps": ["The angles are supplementary.", f"So $x = {answer}$."],
        "final_answer": answer,
    }


def test_same_text_with_two_figures_is_two_problems_with_their_own_answers() -> None:
    project = make_project()
    result = traces_import(
        project=project,
        stream=jsonl(geometry3k("g-1", WHITE, "35"), geometry3k("g-2", BLACK, "62")),
        filename="geometry3k.jsonl",
        format="jsonl",
    )
    assert (result.traces_created, result.problems_created, result.problems_shared) == (2, 2, 0)
    first = Trace.objects.get(external_id="g-1").problem
    second = Trace.objects.get(external_id="g-2").problem
    assert first.pk != second.pk
    assert (first.images, first.reference_answer) == ([data_url(WHITE)], "35")
    assert (second.images, second.reference_answer) == ([data_url(BLACK)], "62")
    assert "2 new problems, 0 shared" in result.summary()


def test_same_text_with_two_tables_is_two_problems() -> None:
    project = make_project()
    table = {"header": ["quarter", "revenue"], "rows": [["Q3", 120], ["Q4", 110]]}
    other = {"header": ["quarter", "revenue"], "rows": [["Q3", 120], ["Q4", 140]]}
    records = [
        {"id": f"t-{i}", "problem": "What is the Q4 revenue?", "table": t, "steps": ["Read it."]}
        for i, t in enumerate((table, other, table))
    ]
    result = traces_import(
        project=project, stream=jsonl(*records), filename="tattoo.jsonl", format="jsonl"
    )
    assert (result.traces_created, result.problems_created) == (3, 2)
    assert (
        Trace.objects.get(external_id="t-0").problem == Trace.objects.get(external_id="t-2").problem
    )
    assert Trace.objects.get(external_id="t-1").problem.table == other


def test_an_import_says_how_many_problems_it_shares_with_the_project() -> None:
    project = make_project()
    traces_import(
        project=project,
        stream=jsonl(geometry3k("g-1", WHITE, "35")),
        filename="a.jsonl",
        format="jsonl",
    )
    result = traces_import(
        project=project,
        stream=jsonl(
            {**geometry3k("g-1b", WHITE, "35"), "steps": ["Another solution."]},
            geometry3k("g-2", BLACK, "62"),
        ),
        filename="b.jsonl",
        format="jsonl",
    )
    assert (result.traces_created, result.problems_created, result.problems_shared) == (2, 1, 1)
    assert "1 new problem, 1 shared" in result.summary()
    assert Problem.objects.filter(project=project).count() == 2


def test_a_text_only_problem_keeps_the_sha256_of_its_text() -> None:
    # Problems imported before identity covered figures and tables keep their keys (and their
    # export splits, which are drawn on this hash).
    import hashlib

    text = "What is $1+1$?"
    assert problem_content_sha256(text=text, images=[], table=None) == (
        hashlib.sha256(text.encode()).hexdigest()
    )
    assert problem_content_sha256(text=text, images=[], table=[]) != (
        problem_content_sha256(text=text, images=[], table=None)
    )


def test_the_same_image_written_two_ways_is_the_same_figure() -> None:
    # The identity reads a data: URL's bytes, not its spelling (base64 line breaks, parameters).
    wrapped = "data:image/png;base64," + WHITE[:40] + "\n" + WHITE[40:]
    assert problem_content_sha256(text="Find $x$.", images=[wrapped], table=None) == (
        problem_content_sha256(text="Find $x$.", images=[data_url(WHITE)], table=None)
    )
    assert base64.b64decode(WHITE) != base64.b64decode(BLACK)
