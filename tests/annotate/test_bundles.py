"""Image bundles: a zip of a records file and its images imports as one; paths resolve inside the
bundle, images are stored by content hash and served only to the project's members."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile

import pytest
from django.test import Client
from django.urls import reverse

from annotate.imports import ImportFileError, traces_import
from annotate.models import Problem, Trace
from tests.annotate.test_problem_identity import BLACK, WHITE
from tests.factories import make_project, make_user

pytestmark = pytest.mark.django_db

FIGURES = {"img/1.png": base64.b64decode(WHITE), "img/2.png": base64.b64decode(BLACK)}


def bundle(
    records: list[dict[str, object]], files: dict[str, bytes], folder: str = "geo/"
) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(folder + "records.jsonl", "\n".join(json.dumps(r) for r in records))
        for name, data in files.items():
            archive.writestr(folder + name, data)
    return out.getvalue()


def geometry(n: int, image: str, answer: str) -> dict[str, object]:
    return {
        "id": f"geo-{n}",
        "problem": "Find $x$.",
        "images": [image],
        "reference_answer": answer,
        "steps": ["The angles sum to $180$.", f"So $x = {answer}$."],
    }


def import_zip(project, data: bytes):  # type: ignore[no-untyped-def]
    return traces_import(
        project=project, stream=io.BytesIO(data), filename="geo.zip", format="jsonl"
    )


def test_a_zip_of_records_and_figures_imports_and_shows_them_to_members_only(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.VAR_DIR = tmp_path
    annotator, outsider = make_user(), make_user()
    project = make_project(members={annotator: "annotator"})
    make_project(members={outsider: "annotator"})
    result = import_zip(
        project, bundle([geometry(1, "img/1.png", "35"), geometry(2, "img/2.png", "62")], FIGURES)
    )
    assert (result.traces_created, result.problems_created) == (2, 2)
    sha = hashlib.sha256(FIGURES["img/1.png"]).hexdigest()
    problem = Trace.objects.get(external_id="geo-1").problem
    assert problem.images == [f"bundle:{sha}.png"]
    assert (tmp_path / "images" / str(project.pk) / f"{sha}.png").read_bytes() == FIGURES[
        "img/1.png"
    ]

    url = reverse("annotate:problem_image", args=[project.slug, f"{sha}.png"])
    member = Client()
    member.force_login(annotator)
    page = member.get(reverse("annotate:trace", args=[problem.traces.get().pk])).content.decode()
    assert f'<img src="{url}"' in page
    response = member.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == FIGURES["img/1.png"]
    assert response["X-Content-Type-Options"] == "nosniff"
    stranger = Client()
    stranger.force_login(outsider)
    assert stranger.get(url).status_code == 404
    assert Client().get(url).status_code == 302  # to the login page
    assert member.get(url.replace(sha, "0" * 64)).status_code == 404
    assert member.get(url.replace(".png", ".svg")).status_code == 404

    # The same import again adds nothing; the same figure in another record is the same problem.
    again = import_zip(project, bundle([geometry(3, "img/1.png", "35")], FIGURES))
    assert (again.problems_created, again.problems_shared) == (0, 1)
    assert Problem.objects.filter(project=project).count() == 2


@pytest.mark.parametrize(
    ("image", "files", "message"),
    [
        ("img/3.png", FIGURES, "'img/3.png' is not in the bundle (looked for 'geo/img/3.png'"),
        ("../../secret.png", FIGURES, "'../../secret.png' points outside the bundle"),
        ("notes.txt", {"notes.txt": b"<svg onload=alert(1)>"}, "is not a PNG, JPEG or WebP"),
    ],
)
def test_an_image_the_bundle_cannot_give_is_refused_naming_line_and_field(
    settings, tmp_path, image, files, message
) -> None:  # type: ignore[no-untyped-def]
    settings.VAR_DIR = tmp_path
    project = make_project()
    data = bundle([geometry(1, "img/1.png", "35"), geometry(2, image, "62")], files | FIGURES)
    with pytest.raises(ImportFileError) as caught:
        import_zip(project, data)
    assert (caught.value.line, caught.value.field) == (2, "images[0]")
    assert message in caught.value.message
    assert not Trace.objects.exists()


def test_a_zip_without_exactly_one_records_file_is_refused(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings.VAR_DIR = tmp_path
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("a.jsonl", "{}")
        archive.writestr("b.jsonl", "{}")
    with pytest.raises(ImportFileError) as caught:
        import_zip(make_project(), out.getvalue())
    assert "exactly one records file" in str(caught.value) and "a.jsonl, b.jsonl" in str(
        caught.value
    )


def test_the_api_imports_a_bundle_too(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.annotate.test_api import token_client

    settings.VAR_DIR = tmp_path
    owner = make_user()
    project = make_project("geo", members={owner: "admin"})
    data = bundle([geometry(1, "img/1.png", "35"), geometry(2, "img/2.png", "62")], FIGURES)
    upload = io.BytesIO(data)
    upload.name = "geometry3k.zip"
    response = token_client(owner).post(
        "/api/imports/", {"project": "geo", "format": "jsonl", "file": upload}
    )
    assert response.status_code == 201, response.content
    assert (response.json()["problems_created"], response.json()["problems_shared"]) == (2, 0)
    assert all(
        image.startswith("bundle:")
        for problem in Problem.objects.filter(project=project)
        for image in problem.images
    )


def test_a_scorer_receives_a_bundled_figure_as_a_data_url(settings, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # A remote vision-language PRM cannot reach this server's image route: the worker sends it
    # the figure itself.
    from scoring import engine, services

    settings.VAR_DIR = tmp_path
    project = make_project()
    import_zip(project, bundle([geometry(1, "img/1.png", "35")], FIGURES))
    trace = Trace.objects.get(external_id="geo-1")
    scorer = services.scorer_create(name="tool", backend="tool", projects=[project])
    (run,) = services.score_runs_enqueue(traces=[trace], scorers=[scorer])
    real = engine.engine_for(scorer)
    seen: list = []  # type: ignore[type-arg]

    class Spy:
        def score(self, traces):  # type: ignore[no-untyped-def]
            seen.extend(traces)
            return real.score(traces)

    monkeypatch.setattr(engine, "engine_for", lambda _: Spy())
    engine.score_and_write(run_ids=[run.pk])
    (sent,) = seen
    assert sent.images == ["data:image/png;base64," + WHITE]
