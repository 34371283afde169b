"""The export form shows only the chosen format's fields, speaks in the page's words (its field
labels, not the command's flags), and its link to the exports documentation opens in the app."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import make_project, make_trace, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    rev = make_user("rev")
    project = make_project("exp", members={rev: "reviewer"})
    make_trace(project)
    client = Client()
    client.force_login(rev)
    return client


def _fields(html: str) -> set[str]:
    form = html.split('id="export-form"', 1)[1].split("</form>", 1)[0]
    return set(re.findall(r'name="(\w+)"', form)) - {"csrfmiddlewaretoken"}


def _shown_when(html: str) -> dict[str, str]:
    form = html.split('id="export-form"', 1)[1].split("</form>", 1)[0]
    return dict(
        (m[2], m[1])
        for m in re.finditer(r'<\w+[^>]*data-shown-when="([^"]+)"[^>]*name="(\w+)"', form)
    ) | dict(
        (m[1], m[2])
        for m in re.finditer(r'<\w+[^>]*name="(\w+)"[^>]*data-shown-when="([^"]+)"', form)
    )


def test_each_format_shows_its_own_fields(client: Client) -> None:
    url = reverse("snapshots:exports", args=["exp"])
    common = {"name", "format", "labels", "min_agreement", "neutral", "test_fraction", "seed"}
    common |= {"subsets", "identities"}
    page = client.get(url + "?format=sft&name=kept").content.decode()
    # Every field is in the page; the format-only ones say when they show (forms.js hides the
    # others in the page as the format changes, so nothing typed is redrawn away).
    assert _fields(page) == common | {"file_format", "select", "scorer", "top_k"}
    assert 'value="kept"' in page  # a link may preset fields
    assert _shown_when(page) == {
        "file_format": "format=trl,pairs,sft",
        "select": "format=sft",
        "scorer": "format=sft",
        "top_k": "format=sft",
    }


def test_a_post_reads_only_the_chosen_formats_fields(client: Client) -> None:
    from annotate.models import GoldLabel, Project, Step
    from snapshots.models import ExportSnapshot

    project = Project.objects.get(slug="exp")
    # Enough problems that a half split cannot put them all in the test split (with 6, the
    # problems' generated texts did so one run in 64: a flaky refusal, not this test's subject).
    for _ in range(15):
        make_trace(project)
    for step in Step.objects.all():
        GoldLabel.objects.create(step=step, value=1, source="imported")
    response = client.post(
        reverse("snapshots:exports", args=["exp"]),
        {
            "name": "p8",
            "format": "prm800k",
            "labels": "gold",
            "min_agreement": "0",
            "test_fraction": "0.5",
            "seed": "1",
            # another format's fields, left from before the format changed: not read
            "file_format": "nonsense",
            "top_k": "-3",
        },
    )
    assert response.status_code == 302, re.findall(
        r"form-error[^>]*>([^<]*)", response.content.decode()
    )
    snapshot = ExportSnapshot.objects.get(name="p8")
    assert (snapshot.format, snapshot.test_fraction, snapshot.file_format) == (
        "prm800k",
        0.5,
        "jsonl",
    )


def test_a_refusal_names_the_pages_fields_not_the_commands_flags(client: Client) -> None:
    response = client.post(
        reverse("snapshots:exports", args=["exp"]),
        {
            "name": "g",
            "format": "prm800k",
            "labels": "gold",
            "min_agreement": "0",
            "test_fraction": "0",
            "seed": "0",
        },
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "There is no gold label on the 1 traces of this export, so Labels “Gold labels" in html
    assert "--labels" not in html and "field in the API" not in html


def test_the_exports_documentation_is_a_link_that_opens(client: Client) -> None:
    page = client.get(reverse("snapshots:exports", args=["exp"])).content.decode()
    assert f'href="{reverse("annotate:doc", args=["exports"])}"' in page
    doc = client.get(reverse("annotate:doc", args=["exports"]))
    assert doc.status_code == 200 and "<h1>" in doc.content.decode()
    assert client.get(reverse("annotate:doc", args=["nope"])).status_code == 404
    assert Client().get(reverse("annotate:doc", args=["exports"])).status_code == 302


def test_a_data_browser_selection_becomes_an_export_of_exactly_those_traces(
    django_capture_on_commit_callbacks,
) -> None:
    from annotate import services as annotate_services
    from annotate.models import Trace
    from snapshots.models import ExportSnapshot
    from snapshots.services import _traces

    rev = make_user("rev")
    project = make_project("sel", members={rev: "reviewer"})
    traces = [make_trace(project, external_id=f"t{i}") for i in range(4)]
    for trace in traces:
        annotate_services.label_all_correct(user=rev, trace=trace)
        annotate_services.annotation_submit(user=rev, trace=trace)
    client = Client()
    client.force_login(rev)
    picked = [traces[1].pk, traces[3].pk]
    response = client.post(
        reverse("review:data_bulk", args=["sel"]),
        {"action": "export", "scope": "picked", "trace": picked},
    )
    assert response.status_code == 302 and "/p/sel/exports/?selection=" in response["Location"]
    page = client.get(response["Location"]).content.decode()
    assert "Only the 2 traces picked in the" in page
    selection = response["Location"].rsplit("=", 1)[1]
    with django_capture_on_commit_callbacks(execute=True):
        made = client.post(
            reverse("snapshots:exports", args=["sel"]),
            {
                "name": "picked",
                "format": "trl",
                "file_format": "jsonl",
                "labels": "all",
                "min_agreement": "0",
                "test_fraction": "0",
                "seed": "0",
                "selection": selection,
            },
        )
    assert made.status_code == 302
    snapshot = ExportSnapshot.objects.get()
    assert snapshot.filters["traces"] == picked
    assert set(
        Trace.objects.filter(_traces(project, snapshot.filters)).values_list("pk", flat=True)
    ) == set(picked)
    assert sum(snapshot.row_counts.values()) == 2
    other = make_project("other", members={rev: "reviewer"})
    assert (
        other
        and client.get(
            reverse("snapshots:exports", args=["other"]) + f"?selection={selection}"
        ).status_code
        == 404
    )  # another project's selection
