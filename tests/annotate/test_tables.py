"""Tables as data: the documented schema (header + rows, or a Markdown table string), refused with
the field that is wrong, and drawn as a real grid, open, on the labelling and adjudication pages."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from annotate.imports import ImportFileError
from annotate.models import Trace
from annotate.tables import TableError, table_from
from tests.factories import import_jsonl, make_project, make_user

pytestmark = pytest.mark.django_db

REVENUE = {"header": ["quarter", "revenue ($M)"], "rows": [["Q3", 120], ["Q4", 110]]}
MARKDOWN = (
    "Revenue by quarter\n\n| quarter | revenue ($M) |\n|:--|--:|\n| Q3 | 120 |\n| Q4 | 110 |\n"
)


def record(table: object, record_id: str = "tab-1") -> dict[str, object]:
    return {
        "id": record_id,
        "problem": "What was the revenue in Q4?",
        "table": table,
        "steps": ["The Q4 row says 110.", "So the answer is 110."],
    }


def test_a_markdown_table_and_its_object_form_are_the_same_table() -> None:
    assert table_from(MARKDOWN) == table_from(REVENUE)
    assert table_from(MARKDOWN).rows == [["Q3", "120"], ["Q4", "110"]]  # type: ignore[union-attr]
    assert table_from("| a \\| b | c |\n|---|---|\n| 1 |").rows == [["1", ""]]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("table", "where", "message"),
    [
        ({"header": ["a", "b"], "rows": [["1"]]}, "table.rows[0]", "expected 2 cells"),
        ({"header": ["a"], "rows": [[{"x": 1}]]}, "table.rows[0][0]", "got object"),
        ({"columns": ["a"], "rows": []}, "table.columns", "unknown field"),
        ({"rows": []}, "table.header", "non-empty list"),
        ("just some text", "table", "must be a Markdown table"),
        ([["a", "b"]], "table", "got array"),
    ],
)
def test_a_table_outside_the_schema_is_refused_naming_the_field(table, where, message) -> None:
    with pytest.raises(ImportFileError) as caught:
        import_jsonl(make_project(), record(table))
    assert (caught.value.line, caught.value.field) == (1, where)
    assert message in caught.value.message
    with pytest.raises(TableError):
        table_from(table)


def grid(html: str) -> list[list[str]]:
    table = re.search(r'<div class="table-scroll data-table"><table>.*?</table>', html, re.S)
    assert table, "no table grid on the page"
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", table.group(0), re.S)
    ]


def labelling_and_adjudication(trace: Trace, *, annotator, reviewer) -> list[str]:  # type: ignore[no-untyped-def]
    """The trace's labelling page as `annotator` sees it and its adjudication page as `reviewer`."""
    pages = []
    for user, url in (
        (annotator, reverse("annotate:trace", args=[trace.pk])),
        (reviewer, reverse("review:adjudicate", args=[trace.pk])),
    ):
        client = Client()
        client.force_login(user)
        pages.append(client.get(url).content.decode())
    return pages


def test_the_table_is_a_grid_open_on_the_labelling_and_adjudication_pages() -> None:
    annotator, reviewer = make_user(), make_user()
    project = make_project(members={annotator: "annotator", reviewer: "reviewer"})
    import_jsonl(project, record(MARKDOWN), record(REVENUE, "tab-2"))
    for trace in Trace.objects.filter(project=project):
        for html in labelling_and_adjudication(trace, annotator=annotator, reviewer=reviewer):
            assert grid(html) == [["quarter", "revenue ($M)"], ["Q3", "120"], ["Q4", "110"]]
            assert '<details class="problem-table" open>' in html
            assert "{'header'" not in html and "&#x27;header&#x27;" not in html


def test_hostile_cells_are_text() -> None:
    annotator = make_user()
    project = make_project(members={annotator: "annotator"})
    table = {"header": ["<script>alert(1)</script>"], "rows": [["<img src=x onerror=alert(1)>"]]}
    import_jsonl(project, record(table))
    client = Client()
    client.force_login(annotator)
    trace = Trace.objects.get(project=project)
    html = client.get(reverse("annotate:trace", args=[trace.pk])).content.decode()
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
