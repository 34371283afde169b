"""Exports of problems with figures and tables: the snapshot carries the image files (by content
hash, in SHA256SUMS and the card), every row references its problem's images and table, and
`datasets` reads them; downloads of the images follow the export permissions."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.imports import traces_import
from annotate.models import Project
from snapshots import selectors as export_selectors
from snapshots import services as exports
from snapshots.models import ExportSnapshot
from tests.annotate.test_bundles import bundle
from tests.annotate.test_problem_identity import BLACK, WHITE, data_url
from tests.factories import make_project, make_user

pytestmark = pytest.mark.django_db

PNG = {"white": base64.b64decode(WHITE), "black": base64.b64decode(BLACK)}
SHA = {name: hashlib.sha256(data).hexdigest() for name, data in PNG.items()}
TABLE = {"header": ["quarter", "revenue"], "rows": [["Q3", 120], ["Q4", 110]]}


def _records() -> list[dict[str, Any]]:
    """Geometry3K's pattern (same text, two figures) from the bundle, a data: URL of the black
    figure again, a TaTToo-like table problem, and a plain one."""

    def record(n: int, problem: str, labels: list[int], **extra: Any) -> dict[str, Any]:
        steps = [f"Step {i + 1} of problem {n}." for i in range(len(labels))]
        return {"id": f"r-{n}", "problem": problem, "steps": steps, "labels": labels, **extra}

    return [
        record(1, "Find $x$.", [1, 1], images=["img/white.png"], reference_answer="35"),
        record(2, "Find $x$.", [1, -1], images=["img/black.png"], reference_answer="62"),
        record(3, "Find $y$.", [1], images=[data_url(BLACK), "img/white.png"]),
        record(4, "What was Q4 revenue?", [1, 1], table=TABLE),
        record(5, "1+1?", [1]),
    ]


def _project(tmp_path: Path, records: list[dict[str, Any]] | None = None) -> Project:
    project = make_project("figs")
    files = {"img/white.png": PNG["white"], "img/black.png": PNG["black"]}
    traces_import(
        project=project,
        stream=io.BytesIO(bundle(records or _records(), files)),
        filename="figs.zip",
        format="jsonl",
    )
    return project


def build(project: Project, **kwargs: Any) -> ExportSnapshot:
    kwargs.setdefault("name", "ds")
    kwargs.setdefault("format", "trl")
    snapshot = exports.export_snapshot_create(project=project, user=None, enqueue=False, **kwargs)
    return exports.export_snapshot_build(snapshot_id=snapshot.pk)


def folder(snapshot: ExportSnapshot) -> Path:
    return export_selectors.exports_root() / snapshot.path


def rows(snapshot: ExportSnapshot) -> list[dict[str, Any]]:
    text = (folder(snapshot) / "train.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(autouse=True)
def var_dir(settings: Any, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path / "var"


def test_a_snapshot_carries_its_problems_images_and_tables(tmp_path: Path) -> None:
    project = _project(tmp_path)
    snapshot = build(project)
    assert snapshot.status == "done", snapshot.error
    by_prompt = {}
    for row in rows(snapshot):
        assert set(row) == {"prompt", "completions", "labels", "images", "table"}
        by_prompt.setdefault(row["prompt"], []).append(row)
    white, black = f"images/{SHA['white']}.png", f"images/{SHA['black']}.png"
    assert [r["images"] for r in by_prompt["Find $x$."]] == [[white], [black]]
    assert by_prompt["Find $y$."][0]["images"] == [black, white]  # data: URL and bundle, one file
    assert by_prompt["1+1?"][0]["images"] == [] and by_prompt["1+1?"][0]["table"] is None
    assert by_prompt["What was Q4 revenue?"][0]["table"] == {
        "header": ["quarter", "revenue"],
        "rows": [["Q3", "120"], ["Q4", "110"]],
    }
    assert by_prompt["Find $x$."][0]["table"] is None

    # Every path opens inside the snapshot, and its bytes are the stored image's.
    store = Path(project.pk and (tmp_path / "var" / "images" / str(project.pk)))
    for row in rows(snapshot):
        for path in row["images"]:
            data = (folder(snapshot) / path).read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            assert path == f"images/{sha}.png"
            assert data == (store / f"{sha}.png").read_bytes()
    assert sorted(p.name for p in (folder(snapshot) / "images").iterdir()) == sorted(
        f"{SHA[n]}.png" for n in PNG
    )

    # SHA256SUMS lists every file it holds, and each sum checks (`sha256sum -c SHA256SUMS`).
    sums = (folder(snapshot) / "SHA256SUMS").read_text().splitlines()
    listed = {line.split("  ")[1]: line.split("  ")[0] for line in sums}
    assert set(listed) == {"train.jsonl", white, black}
    for name, sha in listed.items():
        assert hashlib.sha256((folder(snapshot) / name).read_bytes()).hexdigest() == sha
    assert snapshot.sha256 == hashlib.sha256("\n".join(sums).encode() + b"\n").hexdigest()
    card = (folder(snapshot) / "README.md").read_text()
    assert f"| {white} | | {len(PNG['white'])} | `{SHA['white']}` |" in card
    assert "## Images and tables" in card and "cast_column" in card
    assert snapshot.stats["images"] == {
        "files": 2,
        "bytes": len(PNG["white"]) + len(PNG["black"]),
        "remote_urls": 0,
        "left_out": {},
    }


def test_a_project_without_images_or_tables_exports_no_such_columns(tmp_path: Path) -> None:
    project = _project(tmp_path, [r for r in _records() if "images" not in r and "table" not in r])
    snapshot = build(project)
    assert [set(row) for row in rows(snapshot)] == [{"prompt", "completions", "labels"}]
    assert not (folder(snapshot) / "images").exists()
    assert "## Images and tables" not in snapshot.card
    assert "images" not in snapshot.stats and "tables" not in snapshot.stats


def test_a_problem_left_out_by_the_filters_leaves_its_images_out(tmp_path: Path) -> None:
    records = _records()
    records[0]["subset"] = "kept"
    for record in records[1:]:
        record["subset"] = "other"
    snapshot = build(_project(tmp_path, records), filters={"subsets": ["kept"]})
    assert [row["images"] for row in rows(snapshot)] == [[f"images/{SHA['white']}.png"]]
    assert [p.name for p in (folder(snapshot) / "images").iterdir()] == [f"{SHA['white']}.png"]
    assert "table" not in rows(snapshot)[0]  # no problem of this export has a table


def test_datasets_reads_the_images_from_jsonl_and_parquet_as_the_card_says(
    tmp_path: Path,
) -> None:
    datasets = pytest.importorskip("datasets")
    project = _project(tmp_path)
    loaded = []
    for file_format in ("jsonl", "parquet"):
        snapshot = build(project, name=file_format, file_format=file_format)
        root = str(folder(snapshot))
        ds = datasets.load_dataset(root, cache_dir=str(tmp_path / "hf-cache"))["train"]
        assert ds.features["images"] == datasets.List(datasets.Value("string"))
        # The card's recipe: join the folder, then cast to images.
        ds = ds.map(
            lambda row, root=root: {
                "images": [p if "://" in p else f"{root}/{p}" for p in row["images"]]
            }
        ).cast_column("images", datasets.List(datasets.Image()))
        figures = [row["images"] for row in ds]
        assert [[image.getpixel((0, 0)) for image in images] for images in figures] == [
            [255],
            [0],
            [0, 255],
            [],
            [],
        ]
        plain = ds.remove_columns("images").to_list()
        loaded.append(plain)
        assert plain[3]["table"]["rows"] == [["Q3", "120"], ["Q4", "110"]]
    assert loaded[0] == loaded[1]


def test_addresses_the_pages_refuse_are_left_out_and_counted_on_the_card(
    tmp_path: Path,
) -> None:
    project = _project(tmp_path)
    plain = {"id": "r-6", "problem": "Find $z$.", "steps": ["z = 1."], "labels": [1]}
    plain["images"] = ["https://cdn.example.org/fig.png", "figure-7.png"]
    traces_import(
        project=project,
        stream=io.BytesIO(json.dumps(plain).encode()),
        filename="plain.jsonl",
        format="jsonl",
    )
    snapshot = build(project)
    row = next(row for row in rows(snapshot) if row["prompt"] == "Find $z$.")
    assert row["images"] == []
    left_out = snapshot.stats["images"]["left_out"]
    assert sorted(left_out.values()) == [1, 1]
    assert any(
        reason.startswith("the host cdn.example.org is not on the list") for reason in left_out
    )
    assert any(
        reason.startswith("a relative path, which nothing here resolves") for reason in left_out
    )
    assert "left out of the rows: 1 image address that steplens never shows (a relative" in (
        snapshot.card
    )

    project.image_hosts = ["cdn.example.org"]
    project.save(update_fields=["image_hosts"])
    snapshot = build(project, name="allowed")
    row = next(row for row in rows(snapshot) if row["prompt"] == "Find $z$.")
    assert row["images"] == ["https://cdn.example.org/fig.png"]  # kept as a URL, not fetched
    assert snapshot.stats["images"]["remote_urls"] == 1
    assert "(1 such addresses, not copied)" in snapshot.card


def test_a_missing_stored_image_fails_the_build_naming_it_and_leaves_no_files(
    tmp_path: Path,
) -> None:
    project = _project(tmp_path)
    (tmp_path / "var" / "images" / str(project.pk) / f"{SHA['white']}.png").unlink()
    snapshot = exports.export_snapshot_create(
        project=project, user=None, name="ds", format="trl", enqueue=False
    )
    with pytest.raises(ValueError, match=f"bundle:{SHA['white']}.png"):
        exports.export_snapshot_build(snapshot_id=snapshot.pk)
    snapshot.refresh_from_db()
    assert snapshot.status == "failed" and "missing from the server's image store" in snapshot.error
    assert not any(p.is_file() for p in export_selectors.exports_root().rglob("*"))


def _member(project: Project, role: str) -> Any:
    user = make_user()
    project.memberships.create(user=user, role=role)
    return user


def test_images_download_only_for_who_may_see_the_export_page_and_api(tmp_path: Path) -> None:
    project = _project(tmp_path)
    snapshot = build(project)
    name = f"images/{SHA['white']}.png"
    page = reverse("snapshots:export_download", args=[snapshot.pk, name])
    api = f"/api/exports/{snapshot.pk}/files/{name}"
    assert page.endswith(f"/files/{name}")

    reviewer = _member(project, "reviewer")
    browser = Client()
    browser.force_login(reviewer)
    listing = browser.get(reverse("snapshots:exports", kwargs={"slug": project.slug}))
    assert "images/: 2 image files the rows reference" in listing.content.decode()
    for client in (Client(), APIClient()):
        client.force_login(reviewer)
        response = client.get(page if isinstance(client, Client) else api)
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == PNG["white"]
        assert name.replace("/", "-") in response["Content-Disposition"]
        for wrong in (
            f"images/{'0' * 64}.png",  # not in this snapshot
            "images/../README.md",
            f"images/{SHA['white']}.svg",
            f"other/{SHA['white']}.png",
        ):
            url = f"/exports/{snapshot.pk}/files/{wrong}"
            path = url if isinstance(client, Client) else "/api" + url
            assert client.get(path).status_code == 404, wrong

    annotator, outsider = _member(project, "annotator"), make_user()
    make_project(members={outsider: "admin"})
    for user, status in ((annotator, 403), (outsider, 404)):
        client = Client()
        client.force_login(user)
        assert client.get(page).status_code == status
        api_client = APIClient()
        api_client.force_authenticate(user)
        assert api_client.get(api).status_code == status
    assert APIClient().get(api).status_code == 401
    assert Client().get(page).status_code == 302  # to the log-in page


def test_the_command_and_the_api_write_the_same_snapshot(
    tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    project = _project(tmp_path)
    out = tmp_path / "out"
    call_command("export_dataset", "--project", project.slug, "--format", "trl", "--out", str(out))
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    images = sorted(f"images/{SHA[n]}.png" for n in PNG)
    assert names == sorted(["README.md", "SHA256SUMS", "train.jsonl", *images])
    for line in (out / "SHA256SUMS").read_text().splitlines():
        sha, name = line.split("  ")
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == sha

    api = APIClient()
    api.force_authenticate(_member(project, "reviewer"))
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post(
            f"/api/projects/{project.slug}/exports/", {"name": "api", "format": "trl"}, "json"
        )
    detail = api.get(f"/api/exports/{created.json()['id']}/").json()
    assert detail["status"] == "done"
    assert detail["stats"]["images"]["files"] == 2
    for name in ["train.jsonl", "SHA256SUMS", *images]:
        body = b"".join(api.get(f"/api/exports/{detail['id']}/files/{name}").streaming_content)
        assert body == (out / name).read_bytes(), name
