"""Problem images: data:image/png|jpeg|webp URLs are shown, an allowed https host too; any other
address is named on the page with the reason it is refused; figures show on the labelling and
adjudication pages."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from annotate.images import image_address
from annotate.models import Trace
from tests.annotate.test_problem_identity import BLACK, WHITE, data_url
from tests.annotate.test_tables import labelling_and_adjudication
from tests.factories import import_jsonl, make_project, make_user

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "address",
    [
        data_url(WHITE),
        "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ==",
        "data:image/webp;base64,UklGRhYAAABXRUJQ",
        "data:image/PNG;name=fig.png;base64," + WHITE[:40] + "\n" + WHITE[40:],
        "https://images.example.org/fig.png",
    ],
)
def test_addresses_that_are_shown(address: str) -> None:
    shown = image_address(address, allowed_hosts=["images.example.org"])
    assert shown.refused == "" and shown.src == "".join(address.split())


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("fig1.png", "a relative path"),
        ("images/geo/12.png", "a relative path"),
        ("/data/geometry3k/12/img_diagram.png", "a path on the machine the data came from"),
        ("C:\\data\\fig.png", "a path on the machine the data came from"),
        ("file:///tmp/fig.png", "a path on the machine the data came from"),
        ("https://tracker.example.com/p.png", "tracker.example.com is not on the list"),
        ("http://images.example.org/fig.png", "plain http"),
        ("//images.example.org/fig.png", "protocol-relative"),
        ("data:image/svg+xml;base64,PHN2Zz4=", "of type image/svg+xml"),
        ("data:text/html;base64,PHNjcmlwdD4=", "of type text/html"),
        ("data:image/png,rawbytes", "not base64"),
        ("data:image/png;base64,@@@@", "not base64"),
        ("data:image/png;base64,abcde", "does not decode"),
        ("javascript:alert(1)", "the scheme javascript: is never loaded"),
        ("", "an empty address"),
    ],
)
def test_refused_addresses_say_why(address: str, reason: str) -> None:
    refused = image_address(address, allowed_hosts=["images.example.org"])
    assert refused.src == "" and reason in refused.refused


def test_figures_show_on_the_labelling_and_adjudication_pages_and_refusals_are_named() -> None:
    annotator, reviewer = make_user(), make_user()
    project = make_project(members={annotator: "annotator", reviewer: "reviewer"})
    import_jsonl(
        project,
        {
            "id": "geo-1",
            "problem": "Find $x$.",
            "images": [data_url(WHITE), "img_diagram.png", data_url(BLACK)],
            "steps": ["The angles sum to 180."],
        },
    )
    trace = Trace.objects.get(external_id="geo-1")
    for html in labelling_and_adjudication(trace, annotator=annotator, reviewer=reviewer):
        sources = re.findall(r'<img src="([^"]+)" alt="Problem image (\d)"', html)
        assert sources == [(data_url(WHITE), "1"), (data_url(BLACK), "3")]
        assert "Image 2: <code>img_diagram.png</code> is not shown: a relative path" in html


def test_a_project_may_allow_its_own_image_hosts_never_by_default() -> None:
    from annotate import services
    from annotate.models import Project

    admin, annotator = make_user(), make_user()
    project = make_project(members={admin: "admin", annotator: "annotator"})
    other = make_project(members={annotator: "annotator"})
    figure = "https://figures.example.org/geo/12.png"
    for p, record_id in ((project, "p-1"), (other, "o-1")):
        import_jsonl(
            p, {"id": record_id, "problem": "Find $x$.", "images": [figure], "steps": ["s"]}
        )
    assert Project.objects.get(pk=project.pk).image_hosts == []  # none by default

    client = Client()
    client.force_login(admin)
    response = client.post(
        reverse("annotate:project_settings", args=[project.slug]),
        {"name": "Geo", "label_scheme": "ternary", "overlap": "1", "image_hosts": "https://x.org/"},
    )
    assert "&#x27;https://x.org/&#x27; is not a host name" in response.content.decode()
    api = client.patch(
        f"/api/projects/{project.slug}/",
        {"image_hosts": ["Figures.Example.org"]},
        content_type="application/json",
    )
    assert api.status_code == 200 and api.json()["image_hosts"] == ["figures.example.org"]
    with pytest.raises(Exception, match="not a host name"):
        services.project_update(project=project, image_hosts=["figures.example.org:8443"])

    annotator_client = Client()
    annotator_client.force_login(annotator)
    shown = annotator_client.get(
        reverse("annotate:trace", args=[Trace.objects.get(external_id="p-1").pk])
    )
    assert f'<img src="{figure}"' in shown.content.decode()
    assert "https://figures.example.org" in shown["Content-Security-Policy"]
    refused = annotator_client.get(
        reverse("annotate:trace", args=[Trace.objects.get(external_id="o-1").pk])
    )
    assert "figures.example.org is not on the list" in refused.content.decode()
    assert "figures.example.org" not in refused["Content-Security-Policy"]
