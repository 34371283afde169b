"""A real browser: log in, label a real ProcessBench trace with the keyboard alone, reload, see the
labels, submit with Enter and land on the next trace; and hostile step text never runs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from annotate import services
from annotate.imports import project_for_import, traces_import
from annotate.models import Annotation, AnnotationStatus, StepLabel, Trace
from tests.conftest import REPO_ROOT
from tests.factories import make_project, make_trace, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PROCESSBENCH = REPO_ROOT / "data" / "processbench_sample.jsonl"
if not PROCESSBENCH.exists():  # until the copy lands in the repository
    PROCESSBENCH = Path("/work/shared/data/processbench_sample.jsonl")
PASSWORD = "correct horse battery staple"


def import_processbench(ids: list[str]) -> list[Trace]:
    """Import these records of the real ProcessBench sample through the import service."""
    records = {json.loads(line)["id"]: line for line in PROCESSBENCH.read_text().splitlines()}
    content = "\n".join(records[i] for i in ids).encode()
    project, _ = project_for_import(slug="pb")
    traces_import(
        project=project,
        stream=io.BytesIO(content),
        filename=PROCESSBENCH.name,
        format="processbench",
    )
    return [Trace.objects.get(project=project, external_id=i) for i in ids]


def pressed(page, index: int) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    """Which of a step's toggles the page shows as pressed (aria-pressed)."""
    return page.eval_on_selector(
        f"#step-{index}-controls",
        """el => Object.fromEntries([...el.querySelectorAll('[data-action]')]
                 .map(b => [b.dataset.action, b.getAttribute('aria-pressed') === 'true']))""",
    )


def expect_states(page, expected: dict[int, set[str]]) -> None:  # type: ignore[no-untyped-def]
    for index, actions in expected.items():
        page.wait_for_function(
            """([index, actions]) => {
                 const el = document.getElementById(`step-${index}-controls`);
                 const on = [...el.querySelectorAll('[aria-pressed="true"]')].map(b => b.dataset.action);
                 return on.sort().join() === actions.sort().join();
               }""",
            arg=[index, sorted(actions)],
        )


def wait_saved(page) -> None:  # type: ignore[no-untyped-def]
    """Until no step's change is on its way: a submit before that is refused, naming the steps
    (tests/browser/test_durable_labels.py). A locator, not wait_for_function: pages that enforce
    the Content-Security-Policy refuse the latter's eval."""
    expect(page.locator(".step[data-save=pending]")).to_have_count(0)


def log_in(page, username: str, start: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(start)
    assert "/accounts/login/" in page.url
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{start}")


def upload_on_import_page(page, path: Path, *, format: str, project: str) -> None:  # type: ignore[no-untyped-def]
    """On the import page (as an admin): choose the file, its format and the project; import."""
    page.set_input_files("#id_file", str(path))
    page.select_option("#id_format", format)
    page.select_option("#id_project", project)
    page.click("button:has-text('Import')")


def test_keyboard_only_labelling_survives_a_reload(page, artifacts) -> None:  # type: ignore[no-untyped-def]
    first, second = import_processbench(["math-128", "math-324"])
    annotator = make_user("annie", password=PASSWORD)
    services.membership_set(project=first.project, user=annotator, role="annotator")
    dialogs: list[str] = []

    def on_dialog(dialog) -> None:  # type: ignore[no-untyped-def]
        # Leaving with a change unsaved warns (beforeunload); the test leaves anyway.
        dialogs.append(dialog.type)
        if dialog.type == "beforeunload":
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", on_dialog)

    log_in(page, "annie", "/p/pb/")
    assert page.get_by_text("0 / 2 done").first.is_visible()
    page.get_by_role("link", name="Start labelling").first.click()
    page.wait_for_url(f"**/t/{first.pk}/")

    # Math came through Markdown intact and KaTeX rendered it.
    page.wait_for_selector(".problem-text .katex")
    assert page.locator(".step-text .katex").count() > 0
    assert page.locator(".math-display[data-math=rendered] .katex-display").count() > 0
    # The shortcuts are on the page.
    assert page.locator(".shortcuts-card").get_by_text("first wrong step here").is_visible()

    # The page opens on the first step; a value key labels it and moves on.
    page.wait_for_selector("#step-0.is-current")
    for key in ["1", "1", "2"]:  # steps 0, 1, 2
        page.keyboard.press(key)
    expect_states(page, {0: {"plus"}, 1: {"plus"}, 2: {"zero"}})
    page.keyboard.press("k")
    page.keyboard.press("k")  # back to step 1
    assert page.locator("#step-1").get_attribute("aria-current") == "step"
    page.keyboard.press("e")  # first wrong step: 0 +1, 1 -1, later ones cleared unless set by hand
    expect_states(page, {0: {"plus"}, 1: {"minus", "first-error"}, 2: {"zero"}})
    assert "Kept your own label on step 3" in page.inner_text("#label-notice")
    page.keyboard.press("j")  # step 2
    for key in ["2", "3", "+"]:  # steps 2, 3, 4
        page.keyboard.press(key)
    page.keyboard.press("ArrowUp")
    page.keyboard.press("k")
    page.keyboard.press("k")  # step 2
    page.keyboard.press("f")
    expect_states(page, {2: {"zero", "flag"}, 3: {"minus"}, 4: {"plus"}, 5: set(), 6: set()})

    # A note: `n` opens it, keys typed there are text (not shortcuts), Esc leaves and saves it.
    page.keyboard.press("n")
    assert page.evaluate("document.activeElement.id") == "note-2"
    page.keyboard.type("units dropped; e and a are text here")
    with page.expect_response(lambda r: r.url.endswith(f"/traces/{first.pk}/changes/")):
        page.keyboard.press("Escape")
    assert page.evaluate("document.activeElement.id") == "step-2"
    # The response is in, but the page takes the change out of its log a moment later: reloading
    # before that rightly warns (beforeunload), which the test counts below.
    page.wait_for_function("!document.querySelector('.step[data-save=pending]')")

    page.reload()
    page.wait_for_selector(".step-text .katex")
    expected = {
        0: {"plus"},
        1: {"minus", "first-error"},
        2: {"zero", "flag"},
        3: {"minus"},
        4: {"plus"},
        5: set(),
        6: set(),
    }
    for index, actions in expected.items():
        assert {a for a, on in pressed(page, index).items() if on} == actions, index
    assert page.input_value("#note-2") == "units dropped; e and a are text here"
    assert page.get_by_text("5 of 7 steps labelled").is_visible()
    values = dict(StepLabel.objects.values_list("step__index", "value"))
    assert values == {0: 1, 1: -1, 2: 0, 3: -1, 4: 1, 5: None, 6: None}

    for _ in range(3):  # from the first unlabelled step (5) up to step 2, for the screenshot
        page.keyboard.press("k")
    page.evaluate("window.scrollTo({top: 0, behavior: 'instant'})")
    page.screenshot(path=str(artifacts / "labelling.png"))

    # Enter submits (finish reason inferred: found_error) and opens the next trace.
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/t/{second.pk}/")
    assert page.get_by_text("1 / 2 done").first.is_visible()
    annotation = Annotation.objects.get(trace=first, annotator=annotator)
    assert (annotation.status, annotation.finish_reason) == (
        AnnotationStatus.SUBMITTED,
        "found_error",
    )
    assert annotation.active_seconds > 0  # the heartbeat was flushed when the page was left

    # Five label keys, then Enter once the steps say they are saved (a submit while a change is
    # on its way is refused: tests/browser/test_durable_labels.py).
    page.wait_for_selector("#step-0.is-current")
    assert second.steps.count() == 5
    for _ in range(5):
        page.keyboard.press("1")
    page.wait_for_function("!document.querySelector('.step[data-save=pending]')")
    page.keyboard.press("Enter")
    page.wait_for_url("**/p/pb/")
    assert page.get_by_text("Your queue is empty").is_visible()
    annotation = Annotation.objects.get(trace=second, annotator=annotator)
    assert (annotation.status, annotation.finish_reason) == (AnnotationStatus.SUBMITTED, "solution")

    # A note typed just before the tab goes away: leaving warns, and the note is not lost (sent
    # in a keepalive request on pagehide).
    page.goto(f"/t/{second.pk}/")
    page.wait_for_selector("#step-0.is-current")
    page.keyboard.press("n")
    page.keyboard.type("left in a hurry")
    page.goto("/")
    assert dialogs == ["beforeunload"]
    note = ""
    for _ in range(50):
        note = (
            StepLabel.objects.filter(step__trace=second, step__index=0)
            .values_list("note", flat=True)
            .first()
            or ""
        )
        if note:
            break
        page.wait_for_timeout(100)
    assert note == "left in a hurry"


XSS_STEPS = [
    "<script>window.__pwned = 'script'; alert('script')</script>",
    "<img src=x onerror=\"window.__pwned = 'img'; alert('img')\">",
    "[click me](javascript:window.__pwned='link';alert('link'))",
    r"$\href{javascript:alert('href')}{x}$ and $\url{javascript:alert('url')}$",
    "</textarea><svg onload=\"window.__pwned = 'svg'; alert('svg')\"></svg>",
    "$x</span><img src=y onerror=\"alert('math')\">$ and <a href=\"javascript:alert('a')\">a</a>",
]


def test_hostile_step_text_never_runs(page) -> None:  # type: ignore[no-untyped-def]
    annotator = make_user("mallory-victim", password=PASSWORD)
    project = make_project("xss", members={annotator: "annotator"})
    trace = make_trace(project, steps=XSS_STEPS, problem_text="<b onclick=alert(1)>Solve</b> $x$")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    log_in(page, "mallory-victim", f"/t/{trace.pk}/")
    page.wait_for_selector(".step-text .katex")
    # Click everything that looks clickable inside the data, hover it, and wait a moment.
    for element in page.locator(
        ".step-text p, .step-text a, .step-text .katex, .problem-text p"
    ).all():
        element.hover(force=True)
        element.click(force=True, no_wait_after=True)
    page.wait_for_timeout(300)
    assert page.url.endswith(f"/t/{trace.pk}/")
    assert dialogs == []
    assert page.evaluate("window.__pwned") is None
    injected = page.locator(
        ".step-text script, .step-text img, .step-text svg, .step-text iframe, "
        "a[href^='javascript:' i], [onerror], [onload], [onclick]"
    )
    assert injected.count() == 0
    # The payloads are shown to the annotator as text.
    assert "<script>window.__pwned" in page.locator("#step-0 .step-text").inner_text()
