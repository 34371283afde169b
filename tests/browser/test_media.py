"""A real browser on figures, tables and thinking traces: interleaved thinking / response steps
are shown and labelled in their stored order; a table is a grid, open; figures show on the
labelling and adjudication pages."""

from __future__ import annotations

import base64
import json
import struct
import zipfile
import zlib

import pytest

from annotate.models import StepLabel, Trace
from tests.browser.test_labelling import PASSWORD, expect_states, log_in, upload_on_import_page
from tests.factories import import_jsonl, make_project, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_interleaved_thinking_and_response_are_labelled_in_order(page, artifacts) -> None:  # type: ignore[no-untyped-def]
    annotator = make_user("annie", password=PASSWORD)
    project = make_project("rf", members={annotator: "annotator"})
    import_jsonl(
        project,
        {
            "id": "rf-1",
            "problem": "What is $3 \\times 4$?",
            "steps": [
                {"text": "Let me think: 3 times 4.", "part": "thinking"},
                {"text": "$3 \\times 4 = 12$.", "part": "response"},
                {"text": "Check: 4 + 4 + 4 = 13.", "part": "thinking"},
                {"text": "The answer is $\\boxed{12}$.", "part": "response"},
            ],
        },
    )
    trace = Trace.objects.get(external_id="rf-1")
    log_in(page, "annie", f"/t/{trace.pk}/")
    page.wait_for_selector("#step-0.is-current")
    rows = page.eval_on_selector_all(
        ".steps .step", "els => els.map(e => [e.dataset.index, e.dataset.part])"
    )
    assert rows == [["0", "thinking"], ["1", "response"], ["2", "thinking"], ["3", "response"]]
    titles = page.eval_on_selector_all(".section-title", "els => els.map(e => e.textContent)")
    assert [t.split()[0] for t in titles] == ["Thinking", "Response", "Thinking", "Response"]
    # Down to the third row (the second thinking step) and mark it the first wrong step.
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert page.locator("#step-2").get_attribute("aria-current") == "step"
    page.keyboard.press("e")
    expect_states(page, {0: {"plus"}, 1: {"plus"}, 2: {"minus", "first-error"}, 3: set()})
    page.screenshot(path=str(artifacts / "interleaved-thinking.png"), full_page=True)
    page.wait_for_function("() => !document.querySelector('.step[data-save=pending]')")
    labels = dict(
        StepLabel.objects.filter(annotation__trace=trace).values_list("step__index", "value")
    )
    assert labels[2] == -1 and labels[0] == labels[1] == 1


def _png(width: int, height: int, ink: set[tuple[int, int]]) -> bytes:
    """A greyscale PNG: black where `ink` has (x, y), white elsewhere (no imaging library)."""
    rows = b"".join(
        b"\x00" + bytes(0 if (x, y) in ink else 255 for x in range(width)) for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def triangle_figure(apex_x: int) -> str:
    """A Geometry3K-like diagram: a triangle whose apex moves with `apex_x`, as a data: URL."""
    corners = [(20, 140), (220, 140), (apex_x, 20)]
    ink: set[tuple[int, int]] = set()
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1], strict=True):
        steps = max(abs(x1 - x0), abs(y1 - y0))
        for i in range(steps + 1):
            x, y = x0 + (x1 - x0) * i // steps, y0 + (y1 - y0) * i // steps
            ink.update({(x, y), (x + 1, y), (x, y + 1)})
    return "data:image/png;base64," + base64.b64encode(_png(240, 160, ink)).decode()


def test_geometry_figures_and_a_table_show_on_labelling_and_adjudication(page, artifacts) -> None:  # type: ignore[no-untyped-def]
    annotator = make_user("annie", password=PASSWORD)
    reviewer = make_user("rita", password=PASSWORD)
    project = make_project("geo", members={annotator: "annotator", reviewer: "reviewer"})
    import_jsonl(
        project,
        *(
            {
                "id": f"geo-{n}",
                "problem": "Find $x$.",
                "images": [triangle_figure(apex), "img_diagram.png"],
                "table": "| angle | degrees |\n|---|--:|\n| $A$ | 35 |\n| $B$ | 62 |",
                "reference_answer": answer,
                "steps": ["The angles of a triangle sum to $180°$.", f"So $x = {answer}$."],
            }
            for n, apex, answer in ((1, 60, "83"), (2, 180, "45"))
        ),
    )
    first, second = (Trace.objects.get(external_id=f"geo-{n}") for n in (1, 2))
    assert first.problem_id != second.problem_id
    log_in(page, "annie", f"/t/{first.pk}/")
    figure = page.locator(".problem-images img").first
    figure.wait_for()
    page.wait_for_function(
        "() => document.querySelector('.problem-images img').naturalWidth === 240"
    )
    assert "img_diagram.png" in page.inner_text(".image-refused")
    assert "a relative path" in page.inner_text(".image-refused")
    assert page.locator(".problem-table[open] .data-table table tbody tr").count() == 2
    small = figure.bounding_box()["width"]
    figure.click()  # zoom
    page.wait_for_function(
        "w => document.querySelector('.problem-images img').getBoundingClientRect().width > w",
        arg=small,
    )
    page.screenshot(path=str(artifacts / "figure-table-labelling.png"))

    context_page = page.context.new_page()
    context_page.context.clear_cookies()
    log_in(context_page, "rita", f"/review/t/{second.pk}/")
    context_page.locator(".problem-images img").first.wait_for()
    context_page.wait_for_function(
        "() => document.querySelector('.problem-images img').naturalWidth === 240"
    )
    assert context_page.locator(".data-table table tbody tr").count() == 2
    context_page.screenshot(path=str(artifacts / "figure-table-adjudication.png"))
    context_page.close()


def test_a_zip_of_records_and_figures_uploaded_on_the_import_page_shows_them(
    page, artifacts, settings, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    settings.VAR_DIR = tmp_path
    admin = make_user("ada", password=PASSWORD)
    project = make_project("geo", members={admin: "admin"})
    archive = tmp_path / "geometry3k.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(
            "geometry3k/records.jsonl",
            json.dumps(
                {
                    "id": "geo-7",
                    "problem": "Find $x$ in the triangle.",
                    "images": ["figures/7.png"],
                    "reference_answer": "45",
                    "steps": ["The angles sum to $180°$.", "So $x = 45$."],
                }
            ),
        )
        figure = triangle_figure(120).split(",", 1)[1]
        bundle.writestr("geometry3k/figures/7.png", base64.b64decode(figure))
    log_in(page, "ada", "/import/")
    upload_on_import_page(page, archive, format="jsonl", project="geo")
    page.wait_for_selector("text=1 new problem")
    trace = Trace.objects.get(project=project, external_id="geo-7")
    page.goto(f"/t/{trace.pk}/")
    page.wait_for_function(
        "() => document.querySelector('.problem-images img').naturalWidth === 240"
    )
    src = page.get_attribute(".problem-images img", "src")
    assert src.startswith("/p/geo/images/") and src.endswith(".png")
    page.screenshot(path=str(artifacts / "bundle-import-figure.png"))
