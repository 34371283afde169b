"""`manage.py render_html` and the task after an import: every text the pages show is rendered
and kept before anyone opens a page; a second run renders nothing; --prune drops old versions."""

from __future__ import annotations

import io
import json
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from annotate import rendered, rendering
from annotate.models import Project, RenderedHtml, Trace
from annotate.rendering import render_markdown
from tests.factories import import_jsonl, make_project, make_trace, make_user

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[dict[str, object], str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("render_html", *args, stdout=out, stderr=err)
    return json.loads(out.getvalue().strip().splitlines()[-1]), err.getvalue()


def markdown_renders():  # type: ignore[no-untyped-def]
    return mock.patch.object(rendering._MD, "render", wraps=rendering._MD.render)


@pytest.fixture
def projects() -> tuple[Project, Project]:
    ann = make_user("ann")
    one = make_project("one", members={ann: "annotator"})
    Project.objects.filter(pk=one.pk).update(guidelines="Read **twice**.")
    for i in range(5):
        make_trace(one, external_id=f"a{i}", steps=[f"Step {i} $x$.", "Shared *step*."])
    Trace.objects.filter(project=one).update(final_answer="$42$ " + "words " * 20)
    make_trace(make_project("two"), external_id="b", steps=["Other project."])
    return one, Project.objects.get(slug="two")


def test_the_command_renders_what_the_pages_show_once_and_a_second_run_nothing(
    projects: tuple[Project, Project],
) -> None:
    one, _ = projects
    summary, progress = run("--project", "one", "--batch", "2")
    assert summary["project"] == "one" and summary["traces"] == 5
    assert summary["rendered"] == RenderedHtml.objects.count() > 0
    assert summary["checked"] > summary["rendered"]  # the shared step, in each batch
    assert summary["renderer_version"] == rendering.RENDERER_VERSION
    assert progress.count("render_html:") == 3  # batches of 2 traces: 2, 4, 5
    assert "5/5 traces" in progress
    assert not RenderedHtml.objects.filter(pk=rendered.html_digest("Other project.")).exists()
    stored = RenderedHtml.objects.get(pk=rendered.html_digest("Shared *step*."))
    assert stored.html == render_markdown("Shared *step*.")

    again, _ = run("--project", "one")
    assert again["rendered"] == 0 and again["checked"] == summary["rendered"]  # one batch
    # Every page of the project now reads what was kept: no view renders anything.
    client = Client()
    client.force_login(one.members.get())
    with markdown_renders() as render:
        for trace in Trace.objects.filter(project=one):
            assert client.get(reverse("annotate:trace", args=[trace.pk])).status_code == 200
        assert client.get(reverse("review:queue", args=["one"])).status_code == 200
    assert render.call_count == 0


def test_without_a_project_it_renders_every_project_and_names_a_wrong_one(
    projects: tuple[Project, Project],
) -> None:
    summary, _ = run()
    assert summary["project"] is None and summary["traces"] == 6
    assert RenderedHtml.objects.filter(pk=rendered.html_digest("Other project.")).exists()
    with pytest.raises(CommandError, match="--project 'nope': no such project"):
        run("--project", "nope")
    with pytest.raises(CommandError, match="--batch: must be 1 or more, not 0"):
        run("--batch", "0")


def test_a_stopped_run_keeps_what_it_stored_and_the_next_renders_the_rest(
    projects: tuple[Project, Project],
) -> None:
    calls = 0

    def failing(text: str) -> str:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise KeyboardInterrupt
        return render_markdown(text)

    with mock.patch.object(rendered, "render_markdown", failing), pytest.raises(KeyboardInterrupt):
        run("--project", "one", "--batch", "1")
    kept = RenderedHtml.objects.count()
    assert 0 < kept < 20
    summary, _ = run("--project", "one")
    assert summary["rendered"] == summary["checked"] - kept
    assert RenderedHtml.objects.count() == summary["checked"]


def test_prune_deletes_older_renderer_versions_only(projects: tuple[Project, Project]) -> None:
    run("--project", "one")
    old = RenderedHtml.objects.count()
    with mock.patch.object(rendering, "RENDERER_VERSION", rendering.RENDERER_VERSION + 1):
        summary, _ = run("--project", "one", "--prune")
        assert summary["rendered"] == old and summary["pruned"] == old
        assert set(RenderedHtml.objects.values_list("version", flat=True)) == {
            rendering.RENDERER_VERSION
        }
        assert run("--prune")[0]["pruned"] == 0


def test_an_import_sends_its_new_traces_texts_to_be_rendered_once_committed(
    django_capture_on_commit_callbacks,
) -> None:
    project = make_project("imp")
    import_jsonl(project, {"id": "old", "problem": "Old $p$.", "steps": ["Old step."]})
    RenderedHtml.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        import_jsonl(project, {"id": "new", "problem": "New $p$.", "steps": ["New *step*."]})
    assert RenderedHtml.objects.filter(pk=rendered.html_digest("New *step*.")).exists()
    assert RenderedHtml.objects.filter(pk=rendered.html_digest("New $p$.")).exists()
    # Only the new traces' texts: the earlier import's were sent with it.
    assert not RenderedHtml.objects.filter(pk=rendered.html_digest("Old step.")).exists()
