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


def test_each_format_shows_its_own_fields(client: Client) -> None:
    url = reverse("snapshots:exports", args=["exp"])
    common = {"name", "format", "labels", "min_agreement", "neutral", "test_fraction", "seed"}
    common |= {"subsets", "identities"}
    assert _fields(client.get(url).content.decode()) == common | {"file_format"}  # trl
    assert _fields(client.get(url + "?format=prm800k").content.decode()) == common
    sft = client.get(url + "?format=sft&name=kept").content.decode()
    assert _fields(sft) == common | {"file_format", "select", "scorer", "top_k"}
    assert 'value="kept"' in sft  # what was typed survives the redraw
    assert 'hx-get="/p/exp/exports/"' in sft  # changing the format redraws the form


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
