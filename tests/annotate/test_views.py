"""The labelling pages as an annotator and an admin use them: queue, trace page, htmx label posts,
submit-and-next, heartbeat, upload; and what an outsider or an anonymous visitor cannot reach."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from annotate import services
from annotate.models import (
    Annotation,
    AnnotationStatus,
    GoldLabel,
    GoldSource,
    LabelScheme,
    Problem,
    Project,
    StepLabel,
    Trace,
)
from tests.conftest import REPO_ROOT
from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db

PROCESSBENCH = REPO_ROOT / "data" / "processbench_sample.jsonl"
if not PROCESSBENCH.exists():  # until the copy lands in the repository
    PROCESSBENCH = Path("/work/shared/data/processbench_sample.jsonl")

HTMX = {"HTTP_HX_REQUEST": "true"}


def login(user: AbstractBaseUser) -> Client:
    client = Client()
    client.force_login(user)
    return client


def controls(html: str, index: int) -> str:
    """The HTML of one step's label controls (as the page or an htmx response renders them)."""
    match = re.search(
        rf'<form class="step-controls" id="step-{index}-controls".*?</form>', html, re.S
    )
    assert match, f"no controls for step {index}"
    return match.group(0)


def pressed(html: str, index: int, action: str) -> bool:
    block = controls(html, index)
    button = re.search(rf'<button[^>]*data-action="{action}"[^>]*>', block, re.S)
    assert button, f"no {action} button on step {index}"
    return 'aria-pressed="true"' in button.group(0)


@pytest.fixture
def annotator() -> AbstractBaseUser:
    return make_user("ann")


@pytest.fixture
def project(annotator: AbstractBaseUser) -> Project:
    return make_project("pb", members={annotator: "annotator"})


@pytest.fixture
def trace(project: Project) -> Trace:
    return make_trace(project, steps=["First $x_1 = 2$.", "Then **bold**.", "So $x_1^2 = 4$."])


# ---- who may see what --------------------------------------------------------------------------


def test_anonymous_is_sent_to_login(trace: Trace) -> None:
    client = Client()
    for url in [
        reverse("annotate:home"),
        reverse("review:queue", args=["pb"]),
        reverse("annotate:trace", args=[trace.pk]),
        reverse("annotate:import"),
    ]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    response = client.post(reverse("annotate:step_label", args=[trace.pk, 0]), {"value": "1"})
    assert response.status_code == 302
    assert not StepLabel.objects.exists()


def test_login_page_renders_a_form() -> None:
    response = Client().get(reverse("login"))
    assert response.status_code == 200
    assert b'name="username"' in response.content and b'name="password"' in response.content


def test_annotator_of_another_project_gets_404_everywhere(trace: Trace) -> None:
    outsider = make_user("outsider")
    make_project("other", members={outsider: "annotator"})
    client = login(outsider)
    gets = [
        reverse("review:queue", args=["pb"]),
        reverse("review:next", args=["pb"]),
        reverse("annotate:trace", args=[trace.pk]),
    ]
    for url in gets:
        assert client.get(url).status_code == 404, url
    posts = [
        (reverse("annotate:step_label", args=[trace.pk, 0]), {"value": "1"}),
        (reverse("annotate:step_label", args=[trace.pk, 0]), {"note": "mine now"}),
        (reverse("annotate:step_first_error", args=[trace.pk, 1]), {}),
        (reverse("annotate:all_correct", args=[trace.pk]), {}),
        (reverse("annotate:submit", args=[trace.pk]), {"finish_reason": "give_up"}),
        (reverse("annotate:heartbeat", args=[trace.pk]), {"seconds": "5"}),
    ]
    for url, data in posts:
        assert client.post(url, data, **HTMX).status_code == 404, url
    assert not Annotation.objects.exists()
    # Nor does the home page list the project.
    assert b"/p/pb/" not in client.get(reverse("annotate:home")).content


def test_posts_need_the_csrf_token(annotator: AbstractBaseUser, trace: Trace) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(annotator)
    url = reverse("annotate:step_label", args=[trace.pk, 0])
    assert client.post(url, {"value": "1"}, **HTMX).status_code == 403
    page = client.get(reverse("annotate:trace", args=[trace.pk])).content.decode()
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    response = client.post(url, {"value": "1"}, HTTP_X_CSRFTOKEN=token, **HTMX)
    assert response.status_code == 200
    assert StepLabel.objects.get(step__index=0).value == 1


def test_annotators_see_neither_gold_nor_other_annotators_labels(
    annotator: AbstractBaseUser, project: Project, trace: Trace
) -> None:
    project.overlap = 2
    project.save()
    other = make_user("other-annotator")
    services.membership_set(project=project, user=other, role="annotator")
    step = trace.steps.get(index=1)
    services.label_set(user=other, step=step, value=-1, note="OTHER-ANNOTATOR-NOTE")
    GoldLabel.objects.create(step=step, value=-1, source=GoldSource.IMPORTED, rationale="GOLD-WHY")
    html = login(annotator).get(reverse("annotate:trace", args=[trace.pk])).content.decode()
    assert "OTHER-ANNOTATOR-NOTE" not in html
    assert "GOLD-WHY" not in html
    assert not pressed(html, 1, "minus")


# ---- home and queue ----------------------------------------------------------------------------


def test_home_lists_projects_with_progress_and_start_button(
    annotator: AbstractBaseUser, project: Project, trace: Trace
) -> None:
    make_trace(project)
    html = login(annotator).get(reverse("annotate:home")).content.decode()
    assert "0 / 2 done" in html
    assert "Start labelling" in html
    assert reverse("review:next", args=["pb"]) in html
    assert "Import" not in html  # annotators do not import


def test_queue_shows_traces_with_status_and_guidelines(
    annotator: AbstractBaseUser, project: Project, trace: Trace
) -> None:
    project.guidelines = "Mark a step **wrong** if $a_1$ is misused."
    project.save()
    second = make_trace(project, external_id="second-trace")
    services.label_set(user=annotator, step=second.steps.get(index=0), value=1)
    html = login(annotator).get(reverse("review:queue", args=["pb"])).content.decode()
    assert "<strong>wrong</strong>" in html and '<span class="math-inline">a_1</span>' in html
    assert "second-trace" in html
    assert "in progress" in html and ">new<" in html
    assert "0 / 2 done" in html


def test_next_opens_the_started_trace_first_then_the_queue_when_done(
    annotator: AbstractBaseUser, project: Project, trace: Trace
) -> None:
    second = make_trace(project)
    services.label_set(user=annotator, step=second.steps.get(index=0), value=1)
    client = login(annotator)
    response = client.get(reverse("review:next", args=["pb"]))
    assert response["Location"] == reverse("annotate:trace", args=[second.pk])
    for t in (trace, second):
        services.annotation_submit(user=annotator, trace=t, finish_reason="give_up")
    response = client.get(reverse("review:next", args=["pb"]))
    assert response["Location"] == reverse("review:queue", args=["pb"])


# ---- the trace page ----------------------------------------------------------------------------


def test_trace_page_shows_problem_steps_buttons_and_shortcuts(
    annotator: AbstractBaseUser, trace: Trace
) -> None:
    html = login(annotator).get(reverse("annotate:trace", args=[trace.pk])).content.decode()
    assert '<span class="math-inline">x_1 = 2</span>' in html
    assert "<strong>bold</strong>" in html
    assert "Reference answer" in html
    for index in range(3):
        for action in ("plus", "zero", "minus", "first-error", "flag"):
            assert not pressed(html, index, action)
    assert 'id="note-0"' in html
    assert "<kbd>j</kbd>" in html and "first wrong step here" in html
    assert 'name="finish_reason"' in html
    assert "0 of 3 steps labelled" in html.replace("<strong>", "").replace("</strong>", "")
    assert 'hx-headers=\'{"X-CSRFToken": "' in html


def test_trace_page_splits_thinking_and_response(
    annotator: AbstractBaseUser, project: Project
) -> None:
    trace = make_trace(
        project,
        steps=["think a", "think b", "final step"],
        parts=["thinking", "thinking", "response"],
    )
    html = login(annotator).get(reverse("annotate:trace", args=[trace.pk])).content.decode()
    thinking = html.index("steps-thinking")
    response = html.index("steps-response")
    assert (
        thinking
        < html.index("think a")
        < html.index("think b")
        < response
        < html.index("final step")
    )
    assert ">Thinking <" in html and ">Response <" in html


def test_interleaved_thinking_and_response_keep_their_stored_order(
    annotator: AbstractBaseUser, project: Project
) -> None:
    # A trace that thinks, answers, thinks again and answers again (ReasonFlux-style multi-turn):
    # regrouping by part showed 1, 3, 2, 4, and a key pressed on a row labelled another step.
    trace = make_trace(
        project,
        steps=["think one", "answer one", "think two", "answer two"],
        parts=["thinking", "response", "thinking", "response"],
    )
    html = login(annotator).get(reverse("annotate:trace", args=[trace.pk])).content.decode()
    positions = [
        html.index(text) for text in ("think one", "answer one", "think two", "answer two")
    ]
    assert positions == sorted(positions)
    rows = re.findall(r'<li class="step[^"]*"[^>]*data-index="(\d+)"[^>]*data-part="(\w+)"', html)
    assert rows == [("0", "thinking"), ("1", "response"), ("2", "thinking"), ("3", "response")]
    # Each run of a part is headed with its part: four headings here, in order.
    headings = re.findall(r'<h2 class="section-title">(\w+) ', html)
    assert headings == ["Thinking", "Response", "Thinking", "Response"]


def test_binary_and_first_error_schemes_show_their_buttons(annotator: AbstractBaseUser) -> None:
    binary = make_project(members={annotator: "annotator"}, label_scheme=LabelScheme.BINARY)
    html = login(annotator).get(reverse("annotate:trace", args=[make_trace(binary).pk])).content
    assert b'data-action="plus"' in html and b'data-action="minus"' in html
    assert b'data-action="zero"' not in html
    first = make_project(members={annotator: "annotator"}, label_scheme=LabelScheme.FIRST_ERROR)
    html = login(annotator).get(reverse("annotate:trace", args=[make_trace(first).pk])).content
    assert b'data-action="plus"' not in html
    assert b"First wrong step" in html and b"No wrong step" in html


def test_label_click_saves_and_the_row_is_rerendered_from_the_saved_state(
    annotator: AbstractBaseUser, trace: Trace
) -> None:
    client = login(annotator)
    url = reverse("annotate:step_label", args=[trace.pk, 1])
    response = client.post(url, {"value": "0"}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="step-1-controls"' in html and 'hx-swap-oob="true"' in html
    assert pressed(html, 1, "zero") and not pressed(html, 1, "plus")
    assert "1 of 3 steps labelled" in html.replace("<strong>", "").replace("</strong>", "")
    assert StepLabel.objects.get(step__index=1).value == 0
    # A reload shows it.
    page = client.get(reverse("annotate:trace", args=[trace.pk])).content.decode()
    assert pressed(page, 1, "zero")
    # The pressed button clears the label when clicked again.
    assert re.search(r'data-action="zero"[^>]*\s+name="value" value=""', controls(page, 1))
    client.post(url, {"value": ""}, **HTMX)
    assert StepLabel.objects.get(step__index=1).value is None


def test_a_label_save_is_four_queries_and_answers_what_a_reload_shows(
    annotator: AbstractBaseUser, trace: Trace
) -> None:
    """Session, user, the trace (with role, annotation id and step count), the upsert returning
    the annotation's label counts: the step is never read (it was 7 queries, with every step and
    the labels read; then 5, the counts read apart, as they still are on SQLite)."""
    client = login(annotator)
    for index in (0, 1):
        client.post(reverse("annotate:step_label", args=[trace.pk, index]), {"value": "1"}, **HTMX)
    url = reverse("annotate:step_label", args=[trace.pk, 2])
    with CaptureQueriesContext(connection) as queries:
        response = client.post(url, {"value": "-1", "flagged": "1"}, **HTMX)
    assert response.status_code == 200
    expected = 4 if connection.vendor == "postgresql" else 5
    assert len(queries) == expected, [query["sql"][:80] for query in queries]
    html = response.content.decode()
    assert "3 of 3 steps labelled" in html.replace("<strong>", "").replace("</strong>", "")
    assert 'aria-pressed="false"' in html.split('id="all-correct"')[1].split(">")[0]
    page = client.get(reverse("annotate:trace", args=[trace.pk])).content.decode()
    csrf = re.compile(r'name="csrfmiddlewaretoken" value="[^"]*"')
    for saved in (html, page):
        assert pressed(saved, 2, "minus") and pressed(saved, 2, "flag")
        assert pressed(saved, 2, "first-error")
    assert csrf.sub("", controls(html, 2)).replace(' hx-swap-oob="true"', "") == csrf.sub(
        "", controls(page, 2)
    )
    # All three +1: the status says all correct, from the count alone.
    html = client.post(url, {"value": "1"}, **HTMX).content.decode()
    assert 'aria-pressed="true"' in html.split('id="all-correct"')[1].split(">")[0]


def test_a_label_for_a_step_that_does_not_exist_is_404_and_writes_nothing(
    annotator: AbstractBaseUser, trace: Trace
) -> None:
    client = login(annotator)
    url = reverse("annotate:step_label", args=[trace.pk, 3])
    assert client.post(url, {"value": "1"}, **HTMX).status_code == 404
    assert not Annotation.objects.exists()  # the first touch made nothing
    client.post(reverse("annotate:step_label", args=[trace.pk, 0]), {"value": "1"}, **HTMX)
    assert client.post(url, {"value": "1"}, **HTMX).status_code == 404
    assert client.post(url, {"value": "7"}, **HTMX).status_code == 404
    assert StepLabel.objects.count() == 1


def test_flag_and_note_are_saved_without_touching_the_value(
    annotator: AbstractBaseUser, trace: Trace
) -> None:
    client = login(annotator)
    url = reverse("annotate:step_label", args=[trace.pk, 2])
    client.post(url, {"value": "-1"}, **HTMX)
    html = client.post(url, {"flagged": "1"}, **HTMX).content.decode()
    assert pressed(html, 2, "flag") and pressed(html, 2, "minus")
    client.post(url, {"note": "sign error in the square"}, **HTMX)
    label = StepLabel.objects.get(step__index=2)
    assert (label.value, label.flagged, label.note) == (-1, True, "sign error in the square")
    page = client.get(reverse("annotate:trace", args=[trace.pk])).content.decode()
    assert ">sign error in the square</textarea>" in page


def test_a_value_outside_the_scheme_is_shown_inline_not_a_500(annotator: AbstractBaseUser) -> None:
    project = make_project(members={annotator: "annotator"}, label_scheme=LabelScheme.BINARY)
    trace = make_trace(project)
    response = login(annotator).post(
        reverse("annotate:step_label", args=[trace.pk, 0]), {"value": "0"}, **HTMX
    )
    assert response.status_code == 200
    assert "not a label of the binary scheme" in response.content.decode()
    assert not StepLabel.objects.filter(value__isnull=False).exists()


def test_first_error_cascade_through_the_view(
    annotator: AbstractBaseUser, project: Project
) -> None:
    trace = make_trace(project, steps=["a", "b", "c", "d"])
    client = login(annotator)
    client.post(reverse("annotate:step_label", args=[trace.pk, 3]), {"value": "1"}, **HTMX)
    response = client.post(reverse("annotate:step_first_error", args=[trace.pk, 1]), **HTMX)
    html = response.content.decode()
    assert pressed(html, 0, "plus")
    assert pressed(html, 1, "minus") and pressed(html, 1, "first-error")
    # Step 3 was labelled by hand: the cascade keeps it (issue 14: never overwritten silently).
    assert pressed(html, 3, "plus")
    values = dict(StepLabel.objects.values_list("step__index", "value"))
    assert values == {0: 1, 1: -1, 2: None, 3: 1}


def test_first_error_scheme_no_wrong_step_marks_all_correct(annotator: AbstractBaseUser) -> None:
    project = make_project(members={annotator: "annotator"}, label_scheme=LabelScheme.FIRST_ERROR)
    trace = make_trace(project)
    html = login(annotator).post(reverse("annotate:all_correct", args=[trace.pk]), **HTMX)
    text = html.content.decode()
    assert 'id="all-correct"' in text and 'aria-pressed="true"' in text
    assert set(StepLabel.objects.values_list("value", flat=True)) == {1}


def test_label_posts_without_htmx_redirect_back_to_the_page(
    annotator: AbstractBaseUser, trace: Trace
) -> None:
    response = login(annotator).post(
        reverse("annotate:step_label", args=[trace.pk, 0]), {"value": "1"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("annotate:trace", args=[trace.pk])


def test_submit_opens_the_next_trace(
    annotator: AbstractBaseUser, project: Project, trace: Trace
) -> None:
    second = make_trace(project)
    client = login(annotator)
    client.post(reverse("annotate:all_correct", args=[trace.pk]), **HTMX)
    response = client.post(reverse("annotate:submit", args=[trace.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("annotate:trace", args=[second.pk])
    annotation = Annotation.objects.get(trace=trace)
    assert (annotation.status, annotation.finish_reason) == (AnnotationStatus.SUBMITTED, "solution")
    assert b"1 / 2 done" in response.content


def test_submit_error_is_shown_inline(annotator: AbstractBaseUser, trace: Trace) -> None:
    client = login(annotator)
    client.post(reverse("annotate:step_label", args=[trace.pk, 0]), {"value": "1"}, **HTMX)
    response = client.post(reverse("annotate:submit", args=[trace.pk]), {"finish_reason": ""})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="submit-error"' in html and "1 of 3 labelled" in html
    assert Annotation.objects.get(trace=trace).status == AnnotationStatus.IN_PROGRESS


def test_heartbeat_adds_active_time_and_the_page_shows_it(
    annotator: AbstractBaseUser, trace: Trace
) -> None:
    client = login(annotator)
    url = reverse("annotate:heartbeat", args=[trace.pk])
    assert client.post(url, {"seconds": "15"}).status_code == 200
    # A minute later (a heartbeat credits at most the wall time since the one before it):
    Annotation.objects.filter(trace=trace).update(
        last_heartbeat_at=timezone.now() - timedelta(seconds=60)
    )
    assert client.post(url, {"seconds": "50"}).content == b"65"
    assert client.post(url, {"seconds": "-3"}).status_code == 400
    assert Annotation.objects.get(trace=trace).active_seconds == 65
    html = client.get(reverse("annotate:trace", args=[trace.pk])).content.decode()
    assert '<span id="active-time">1:05</span>' in html


def test_step_text_cannot_inject_html_or_script(
    annotator: AbstractBaseUser, project: Project
) -> None:
    payloads = [
        "<script>alert('s')</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        "$\\href{javascript:alert(1)}{x}$",
        '</textarea><svg onload="alert(2)">',
    ]
    trace = make_trace(project, steps=payloads, problem_text="<iframe src=//evil></iframe> $x$")
    services.label_set(user=annotator, step=trace.steps.get(index=0), note="</textarea><b>note</b>")
    html = login(annotator).get(reverse("annotate:trace", args=[trace.pk])).content.decode()
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    # Event-handler text may appear as escaped text, never inside a tag.
    assert not re.search(r"<[a-z][^<>]*\son(error|load)=", html)
    assert 'href="javascript:' not in html
    assert "<svg" not in html and "<iframe" not in html and "<b>note</b>" not in html
    assert "&lt;script&gt;alert" in html
    assert '<span class="math-inline">\\href{javascript:alert(1)}{x}</span>' in html


# ---- upload ------------------------------------------------------------------------------------


@pytest.fixture
def project_admin(project: Project) -> AbstractBaseUser:
    admin = make_user("padmin")
    services.membership_set(project=project, user=admin, role="admin")
    return admin


def upload(client: Client, content: bytes, name: str = "sample.jsonl", **fields: str):
    data = {"format": "processbench", "project": "pb", "subset": "", **fields}
    data["file"] = io.BytesIO(content)
    data["file"].name = name
    return client.post(reverse("annotate:import"), data)


def test_upload_of_a_real_processbench_file_imports_it(project_admin: AbstractBaseUser) -> None:
    content = PROCESSBENCH.read_bytes()
    records = [json.loads(line) for line in content.decode().splitlines() if line.strip()]
    client = login(project_admin)
    assert client.get(reverse("annotate:import")).status_code == 200
    response = upload(client, content)
    assert response.status_code == 200
    assert f"{len(records)} traces" in response.content.decode()
    assert Trace.objects.filter(project__slug="pb").count() == len(records)
    # Twice adds nothing.
    upload(client, content)
    assert Trace.objects.filter(project__slug="pb").count() == len(records)


def test_a_corrupted_upload_names_the_line_and_imports_nothing(
    project_admin: AbstractBaseUser,
) -> None:
    lines = PROCESSBENCH.read_bytes().splitlines()
    broken = json.loads(lines[2])
    del broken["steps"]
    content = b"\n".join([lines[0], lines[1], json.dumps(broken).encode(), lines[3]])
    response = upload(login(project_admin), content, name="broken.jsonl")
    assert response.status_code == 400
    html = response.content.decode()
    assert "broken.jsonl" in html and "line 3" in html and "steps" in html
    assert "Nothing was imported" in html
    assert not Trace.objects.filter(source="processbench").exists()


def test_an_upload_over_the_limit_is_refused(project_admin: AbstractBaseUser, settings) -> None:
    settings.IMPORT_MAX_BYTES = 100
    response = upload(login(project_admin), PROCESSBENCH.read_bytes())
    assert response.status_code == 400
    assert "the largest import is 100" in response.content.decode()
    assert not Trace.objects.filter(source="processbench").exists()


def test_annotators_cannot_upload(annotator: AbstractBaseUser, project: Project) -> None:
    client = login(annotator)
    assert client.get(reverse("annotate:import")).status_code == 404
    assert upload(client, PROCESSBENCH.read_bytes()).status_code == 404
    assert not Trace.objects.filter(source="processbench").exists()


def test_site_admin_imports_into_a_new_project(db) -> None:
    root = make_user("root", is_superuser=True, is_staff=True)
    response = upload(login(root), PROCESSBENCH.read_bytes(), project="", new_project="fresh")
    assert response.status_code == 200
    assert Project.objects.get(slug="fresh").traces.exists()
    # A refused file leaves no new project behind.
    upload(login(root), b"{not json\n", project="", new_project="never")
    assert not Project.objects.filter(slug="never").exists()


# ---- the progress the pages show, against a plain count -----------------------------------------


@pytest.mark.parametrize("overlap", [1, 2])
def test_labelling_progress_counts_what_each_annotator_owes(overlap: int) -> None:
    from annotate import selectors
    from annotate.models import Annotation, AnnotationStatus

    users = [make_user() for _ in range(3)]
    project = make_project(members={u: "annotator" for u in users}, overlap=overlap)
    traces = [make_trace(project) for _ in range(8)]
    me, bob, eve = users
    # Traces 0-1 submitted by others (both), 2 by bob only, 3 started by me and submitted by
    # both others, 4 submitted by me, 5 started by me, 6 started by bob.
    for who in (bob, eve):
        for t in (traces[0], traces[1], traces[3]):
            services.annotation_submit(user=who, trace=t, finish_reason="give_up")
    services.annotation_submit(user=bob, trace=traces[2], finish_reason="give_up")
    services.label_set(user=me, step=traces[3].steps.first(), value=1)
    services.annotation_submit(user=me, trace=traces[4], finish_reason="give_up")
    services.label_set(user=me, step=traces[5].steps.first(), value=1)
    services.label_set(user=bob, step=traces[6].steps.first(), value=1)
    submitted = AnnotationStatus.SUBMITTED
    for user in users:
        # What the user owes, trace by trace: not submitted by them, and either started by them
        # or not yet filled to the overlap by others' submissions.
        done = owed = 0
        for t in traces:
            mine = Annotation.objects.filter(trace=t, annotator=user)
            if mine.filter(status=submitted).exists():
                done += 1
                continue
            others = Annotation.objects.filter(trace=t, status=submitted).exclude(annotator=user)
            if mine.exists() or others.count() < overlap:
                owed += 1
        progress = selectors.labelling_progress(user=user, project=project)
        assert (progress.done, progress.assigned) == (done, done + owed)


def _progress_by_hand(user, project):  # type: ignore[no-untyped-def]
    """(done, assigned) counted trace by trace, as test_labelling_progress_... defines them."""
    from annotate.models import Annotation, AnnotationStatus, Trace

    done = owed = 0
    for t in Trace.objects.filter(project=project):
        mine = Annotation.objects.filter(trace=t, annotator=user)
        if mine.filter(status=AnnotationStatus.SUBMITTED).exists():
            done += 1
            continue
        others = Annotation.objects.filter(trace=t, status=AnnotationStatus.SUBMITTED).exclude(
            annotator=user
        )
        if mine.exists() or others.count() < project.overlap:
            owed += 1
    return done, done + owed


def test_labelling_progress_stays_right_through_imports_deletions_and_overlap_changes() -> None:
    """The progress reads the project's kept count of filled traces (issue 16: grouping every
    submitted annotation of the project on each page grew with the project's progress) and each
    annotator's kept passes (reading all of them grew with the annotator's work); every write
    that fills or empties a trace keeps them: submits (one past the overlap too), an import
    of submitted passes (PRM800K), a trace's deletion one at a time and in bulk, an overlap
    change, a user's deletion. After each, every annotator's progress is the count by hand."""
    from annotate import imports, selectors
    from annotate.models import Project

    users = [make_user() for _ in range(4)]
    project = make_project(members={u: "annotator" for u in users}, overlap=2)
    traces = [make_trace(project) for _ in range(6)]

    def check() -> None:
        fresh = Project.objects.get(pk=project.pk)
        for user in users:
            progress = selectors.labelling_progress(user=user, project=fresh)
            assert (progress.done, progress.assigned) == _progress_by_hand(user, fresh), user

    for who in users[:3]:  # trace 0 filled, then one submission past the overlap
        services.annotation_submit(user=who, trace=traces[0], finish_reason="give_up")
        check()
    services.label_set(user=users[3], step=traces[0].steps.first(), value=-1)  # started, filled
    check()
    for who in users[1:3]:
        services.annotation_submit(user=who, trace=traces[1], finish_reason="give_up")
    services.annotation_submit(user=users[0], trace=traces[1], finish_reason="give_up")
    services.annotation_submit(user=users[0], trace=traces[1], finish_reason="give_up")  # revised
    services.label_set(user=users[3], step=traces[2].steps.first(), value=1)
    services.annotation_submit(user=users[1], trace=traces[2], finish_reason="give_up")
    check()
    # Two labelers' submitted passes over one solution: a trace filled by the import.
    record = json.loads((REPO_ROOT / "data/prm800k_sample.jsonl").read_text().splitlines()[0])
    lines = [json.dumps({**record, "labeler": who}) for who in ("lab-a", "lab-b")]
    imports.traces_import(
        project=project, stream=io.BytesIO("\n".join(lines).encode()), filename="p.jsonl",
        format="prm800k",
    )  # fmt: skip
    assert Project.objects.get(pk=project.pk).trace_count == 7
    check()
    traces[1].delete()  # one at a time
    check()
    services.traces_delete(trace_ids=[traces[0].pk, traces[3].pk])
    check()
    services.project_update(project=Project.objects.get(pk=project.pk), overlap=1)
    check()
    users.pop(1).delete()
    check()


def test_trace_page_offers_skip_with_a_reason(client):
    from review.models import Assignment, AssignmentStatus, SkipReason

    user = make_user()
    project = make_project(members={user: "annotator"})
    first, second = make_trace(project), make_trace(project)
    client.force_login(user)
    page = client.get(f"/t/{first.pk}/").content.decode()
    assert f'action="/t/{first.pk}/skip/"' in page and SkipReason.choices[0][1] in page
    response = client.post(f"/t/{first.pk}/skip/", {"reason": SkipReason.choices[0][0]})
    assert response.status_code == 302
    assert client.get(response["Location"])["Location"].endswith(f"/t/{second.pk}/")
    skipped = Assignment.objects.get(trace=first, annotator=user)
    assert (skipped.status, skipped.skip_reason) == (
        AssignmentStatus.SKIPPED,
        SkipReason.choices[0][0],
    )


def test_a_long_source_id_is_shown_short_with_the_full_id_on_hover(
    annotator: AbstractBaseUser, project: Project
) -> None:
    long_id = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"  # PRM800K-style
    trace = make_trace(project, external_id=long_id)
    client = Client()
    client.force_login(annotator)
    page = client.get(reverse("annotate:trace", args=[trace.pk])).content.decode()
    assert "<title>9f86d081…0a08 ·" in page
    assert f'title="test:{long_id}">9f86d081…0a08</span>' in page
    assert f">{long_id}<" not in page  # the 64 characters never reach a line of text


def test_the_legend_offers_only_what_the_trace_has(annotator: AbstractBaseUser) -> None:
    """Issue 14 item 8: no `r` (reference answer) on a trace without one."""
    project = make_project("legend", members={annotator: "annotator"})
    with_ref = make_trace(project)
    without = make_trace(project, problem_text="No reference here.")
    Problem.objects.filter(pk=without.problem_id).update(reference_answer="")
    client = login(annotator)
    assert (
        "reference answer"
        in client.get(reverse("annotate:trace", args=[with_ref.pk])).content.decode()
    )
    html = client.get(reverse("annotate:trace", args=[without.pk])).content.decode()
    assert "reference answer" not in html.split('id="shortcut-help"')[0].split("shortcuts-card")[1]


def test_project_hotkeys_set_the_keys_and_names_of_the_page(annotator: AbstractBaseUser) -> None:
    project = make_project("keys", members={annotator: "annotator"})
    services.project_update(
        project=project,
        hotkeys={"keys": {"plus": "y", "minus": "x"}, "names": {"1": "right", "-1": "broken"}},
    )
    trace = make_trace(project)
    html = login(annotator).get(reverse("annotate:trace", args=[trace.pk])).content.decode()
    config = json.loads(
        html.split('id="labelling-config" type="application/json">')[1].split("<")[0]
    )
    assert (config["keys"]["plus"], config["keys"]["minus"], config["keys"]["zero"]) == (
        "y",
        "x",
        "2",
    )
    assert "<kbd>y</kbd>" in html and "right (+1), then next" in html
    assert 'aria-label="Step 1: broken (−1)"' in html and 'aria-keyshortcuts="x"' in html
    with pytest.raises(ValidationError, match="keys.minus: 'y' is already the key of plus"):
        services.project_update(project=project, hotkeys={"keys": {"plus": "y", "minus": "y"}})


def test_step_forms_post_to_the_step_routes(annotator: AbstractBaseUser, trace: Trace) -> None:
    """The page builds the step forms' addresses from one prefix: they are the routes' own."""
    html = login(annotator).get(reverse("annotate:trace", args=[trace.pk])).content.decode()
    for index in (0, 2):
        label = reverse("annotate:step_label", args=[trace.pk, index])
        first_error = reverse("annotate:step_first_error", args=[trace.pk, index])
        assert f'id="step-{index}-controls" method="post" action="{label}"' in html
        assert f'formaction="{first_error}"' in html


def test_the_trace_page_is_eight_queries_with_the_trace_count_kept(
    annotator: AbstractBaseUser, trace: Trace
) -> None:
    """Session, user, the trace (project, problem, role), the annotation, its labels, the steps
    with their gold, the kept HTML, and the progress in one query reading the project's kept
    trace count (it was ten: three counts, one of them every trace of the project)."""
    client = login(annotator)
    url = reverse("annotate:trace", args=[trace.pk])
    client.post(reverse("annotate:step_label", args=[trace.pk, 0]), {"value": "1"}, **HTMX)
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    sqls = [query["sql"] for query in queries]
    assert len(sqls) == 8, [sql[:80] for sql in sqls]
    assert not any('FROM "annotate_trace" WHERE' in sql and "COUNT" in sql for sql in sqls)
    assert "0 / 1 done" in response.content.decode()
