"""The exports page, its API and `manage.py export_dataset`: permissions, progress, downloads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.imports import traces_import
from annotate.models import Project
from snapshots.models import ExportSnapshot, ExportStatus
from tests.factories import make_project, make_user

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture
def project() -> Project:
    project = make_project("exp")
    for name, fmt in (
        ("processbench_sample.jsonl", "processbench"),
        ("prm800k_sample.jsonl", "prm800k"),
    ):
        with (DATA / name).open("rb") as stream:
            traces_import(project=project, stream=stream, filename=name, format=fmt)
    return project


def member(project: Project, role: str) -> Any:
    user = make_user()
    project.memberships.create(user=user, role=role)
    return user


def download(client: Client, snapshot: ExportSnapshot, name: str) -> bytes:
    response = client.get(reverse("snapshots:export_download", args=[snapshot.pk, name]))
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def test_reviewer_creates_an_export_on_the_page_and_downloads_it(
    project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    client = Client()
    client.force_login(member(project, "reviewer"))
    url = reverse("snapshots:exports", args=[project.slug])
    form = {
        "name": "gsm",
        "format": "trl",
        "file_format": "jsonl",
        "labels": "gold",
        "min_agreement": "0",
        "test_fraction": "0.25",
        "seed": "1",
        "subsets": "gsm8k",
    }
    with django_capture_on_commit_callbacks(execute=True):  # the task runs eagerly on commit
        response = client.post(url, form)
    assert response.status_code == 302
    snapshot = ExportSnapshot.objects.get()
    assert snapshot.status == ExportStatus.DONE
    assert sum(snapshot.row_counts.values()) == 20  # the 20 gsm8k traces of the sample
    page = client.get(url).content.decode()
    # Done: the row no longer polls (the form's format select redraws on change, not a poll).
    assert "gsm" in page and "README.md" in page and 'hx-trigger="load delay' not in page
    card = download(client, snapshot, "README.md").decode()
    for f in snapshot.files:
        first, second = download(client, snapshot, f["name"]), download(client, snapshot, f["name"])
        assert first == second and hashlib.sha256(first).hexdigest() == f["sha256"]
        assert f["sha256"] in card


def test_a_running_export_polls_and_stops_when_done(project: Project) -> None:
    client = Client()
    client.force_login(member(project, "admin"))
    snapshot = ExportSnapshot.objects.create(
        project=project,
        name="x",
        version=1,
        format="trl",
        status=ExportStatus.RUNNING,
        progress_done=3,
        progress_total=10,
    )
    row_url = reverse("snapshots:export_row", args=[snapshot.pk])
    running = client.get(row_url).content.decode()
    assert f'hx-get="{row_url}"' in running and "hx-trigger" in running and "3 / 10" in running
    ExportSnapshot.objects.filter(pk=snapshot.pk).update(
        status=ExportStatus.FAILED, error="OSError: disk full"
    )
    failed = client.get(row_url).content.decode()
    assert "hx-trigger" not in failed and "disk full" in failed


def test_annotators_and_outsiders_cannot_export(project: Project) -> None:
    snapshot = ExportSnapshot.objects.create(project=project, name="x", version=1, format="trl")
    annotator, outsider = Client(), Client()
    annotator.force_login(member(project, "annotator"))
    outsider.force_login(make_user())
    page = reverse("snapshots:exports", args=[project.slug])
    file_url = reverse("snapshots:export_download", args=[snapshot.pk, "train.jsonl"])
    assert annotator.get(page).status_code == 403
    assert annotator.get(file_url).status_code == 403
    assert outsider.get(page).status_code == 404
    assert outsider.get(file_url).status_code == 404
    assert Client().get(page).status_code == 302  # to the login page
    assert APIClient().get(f"/api/exports/{snapshot.pk}/").status_code == 401


def test_the_page_refuses_a_post_without_csrf(project: Project) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(member(project, "reviewer"))
    response = client.post(
        reverse("snapshots:exports", args=[project.slug]), {"name": "x", "format": "trl"}
    )
    assert response.status_code == 403
    assert not ExportSnapshot.objects.exists()


def test_api_refuses_neutral_labels_then_builds_with_a_mapping(
    project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    api = APIClient()
    api.force_authenticate(member(project, "reviewer"))
    url = f"/api/projects/{project.slug}/exports/"
    refused = api.post(url, {"name": "prm", "format": "trl", "labels": "all"}, format="json")
    assert refused.status_code == 400
    assert "neutral (0) labels" in refused.json()["neutral"][0]
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post(
            url,
            {
                "name": "prm",
                "format": "trl",
                "labels": "all",
                "neutral": "negative",
                "sources": ["prm800k"],
            },
            format="json",
        )
    assert created.status_code == 202 and created.json()["version"] == 1
    detail = api.get(f"/api/exports/{created.json()['id']}/").json()
    assert detail["status"] == "done" and detail["row_counts"] == {"train": 8}
    body = b"".join(api.get(f"/api/exports/{detail['id']}/files/train.jsonl").streaming_content)
    assert hashlib.sha256(body).hexdigest() == detail["files"][0]["sha256"]
    # every annotator's pass: each label says who set it how (hand, first_error, filled)
    keys = {"prompt", "completions", "labels", "label_sources"}
    assert all(set(json.loads(line)) == keys for line in body.splitlines())
    assert api.get(url).json()["count"] == 1


def test_export_dataset_command_writes_the_snapshot_files(project: Project, tmp_path: Path) -> None:
    out = tmp_path / "out"
    call_command(
        "export_dataset",
        "--project",
        project.slug,
        "--format",
        "processbench",
        "--out",
        str(out),
        "--split",
        "test=0.2",
        "--source",
        "processbench",
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "SHA256SUMS",
        "test.jsonl",
        "train.jsonl",
    ]
    rows = (out / "train.jsonl").read_text().splitlines() + (
        out / "test.jsonl"
    ).read_text().splitlines()
    assert len(rows) == 80
    sums = dict(line.split("  ")[::-1] for line in (out / "SHA256SUMS").read_text().splitlines())
    assert sums["train.jsonl"] == hashlib.sha256((out / "train.jsonl").read_bytes()).hexdigest()
    with pytest.raises(CommandError, match="--neutral"):
        call_command(
            "export_dataset",
            "--project",
            project.slug,
            "--format",
            "trl",
            "--labels",
            "all",
            "--out",
            str(out),
        )


def test_an_export_without_rows_is_refused_on_the_page_in_the_api_and_the_command(
    tmp_path: Path,
) -> None:
    project = make_project("only-prm800k")
    with (DATA / "prm800k_sample.jsonl").open("rb") as stream:
        traces_import(project=project, stream=stream, filename="p", format="prm800k")
    reviewer = member(project, "reviewer")
    client = Client()
    client.force_login(reviewer)
    page = client.post(
        reverse("snapshots:exports", args=[project.slug]),
        {
            "name": "gold",
            "format": "prm800k",
            "file_format": "jsonl",
            "labels": "gold",
            "min_agreement": "0",
            "test_fraction": "0",
            "seed": "0",
        },
    )
    assert page.status_code == 400
    html = page.content.decode()
    # The page names its own field ("Labels"), the command its flag (below).
    assert "no gold label" in html and "Labels “Every annotator" in html
    api = APIClient()
    api.force_authenticate(reviewer)
    refused = api.post(
        f"/api/projects/{project.slug}/exports/",
        {"name": "gold", "format": "prm800k", "labels": "gold"},
        format="json",
    )
    assert refused.status_code == 400 and "no gold label" in refused.json()["labels"][0]
    with pytest.raises(CommandError, match="labels: .*no gold label.*--labels all"):
        call_command(
            "export_dataset",
            "--project",
            project.slug,
            "--format",
            "prm800k",
            "--out",
            str(tmp_path / "out"),
        )
    assert not ExportSnapshot.objects.exists() and not (tmp_path / "out").exists()
