"""A figure problem scored by a vision-language PRM (the `vision` backend, MM-PRM's reading) the
way the app does it (issue 17): imported as an image bundle (a zip of JSONL and PNG files) and as
a ``data:`` URL, a scorer registered with a tiny Qwen2-VL's local directory, scored by
``manage.py score --sync`` and by the Celery task that opening a trace sends, shown on the score
panel. The model receives the stored figure's own pixels, in ONE forward pass per trace, and its
scores equal MM-PRM's reference reading computed from the same image bytes; the same text with
another figure scores otherwise."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from annotate.imports import traces_import
from annotate.models import Trace
from scoring import engine, services
from scoring.models import RunStatus, Scorer, ScoreRun, StepScore
from tests.annotate.test_bundles import bundle, import_zip
from tests.factories import make_project, make_user

pytest.importorskip("torch")
pytest.importorskip("PIL")

from PIL import Image, ImageDraw  # noqa: E402

from scoring.prm import TraceInput  # noqa: E402
from tests.scoring.prm.test_vision import mm_prm_reference  # noqa: E402

pytestmark = pytest.mark.django_db

# Geometry3K's pattern: one text, several diagrams, each with its own answer.
PROBLEM = "In the figure, find $x$."
STEPS = [
    "The angles of a triangle sum to $180$ degrees.",
    "The marked angles are $40$ and $75$ degrees.",
    "So $x = 180 - 40 - 75 = 65$.",
]


def diagram(apex: tuple[int, int], fill: tuple[int, int, int]) -> bytes:
    """A PNG of a triangle diagram (not a flat colour: lines, a filled region, a mark)."""
    image = Image.new("RGB", (112, 84), "white")
    draw = ImageDraw.Draw(image)
    draw.polygon([(8, 76), (104, 76), apex], outline=(0, 0, 0), fill=fill)
    draw.arc((apex[0] - 10, apex[1] - 10, apex[0] + 10, apex[1] + 10), 40, 140, fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


FIGURE_1 = diagram((30, 10), (250, 210, 120))
FIGURE_2 = diagram((90, 20), (120, 160, 250))
FIGURE_3 = diagram((56, 6), (150, 230, 150))


def record(n: int, image: str, answer: str) -> dict[str, object]:
    return {
        "id": f"geo-{n}",
        "problem": PROBLEM,
        "images": [image],
        "reference_answer": answer,
        "steps": STEPS,
    }


def data_url(data: bytes, *, wrapped: bool = False) -> str:
    # `base64.encodebytes` (and the `base64` tool) wrap at 76 characters: the page shows such a
    # URL (whitespace is not part of base64), so a scorer must read it too.
    payload = base64.encodebytes(data).decode() if wrapped else base64.b64encode(data).decode()
    return "data:image/png;base64," + payload


def as_url(data: bytes) -> str:
    return data_url(data)


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scoring.prm.tiny import save_tiny_vlm

    texts = [PROBLEM, *STEPS, f"Question: {PROBLEM}\nProcess: {'<prm>'.join(STEPS)} Yes No"] * 20
    return save_tiny_vlm(tmp_path_factory.mktemp("vlm") / "mm-prm-tiny", texts, seed=5)


@pytest.fixture(autouse=True)
def fresh_engines(settings: Any, tmp_path: Path) -> Any:
    """Each test's scorer is built anew (no engine cached under a reused scorer id), and images
    are stored under this test's own folder."""
    settings.VAR_DIR = tmp_path
    engine._ENGINES.clear()
    yield
    engine._ENGINES.clear()


@pytest.fixture
def geometry_project(tmp_path: Path):  # type: ignore[no-untyped-def]
    """geo-1 and geo-2: the same text with two figures, in a zip bundle; geo-3: a third figure
    as a wrapped data: URL, imported from plain JSONL."""
    annotator = make_user()
    project = make_project("geo", members={annotator: "annotator"})
    result = import_zip(
        project,
        bundle(
            [record(1, "img/1.png", "65"), record(2, "img/2.png", "55")],
            {"img/1.png": FIGURE_1, "img/2.png": FIGURE_2},
        ),
    )
    assert (result.traces_created, result.problems_created) == (2, 2)
    traces_import(
        project=project,
        stream=io.BytesIO(json.dumps(record(3, data_url(FIGURE_3, wrapped=True), "70")).encode()),
        filename="geo3.jsonl",
        format="jsonl",
    )
    return annotator, project


class Spy:
    """What the built vision scorer's image processor receives, and how many forward passes its
    model runs."""

    def __init__(self, scorer: Any) -> None:
        self.images: list[list[bytes]] = []  # per call: each image's RGB pixels
        self.forwards = 0
        real = self.processor = scorer.image_processor
        self.scorer = scorer
        spy = self

        class Processor:
            def __call__(self, *, images: list[Any], **kwargs: Any) -> Any:
                spy.images.append([image.tobytes() for image in images])
                return real(images=images, **kwargs)

            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

        scorer.image_processor = Processor()
        scorer.model.register_forward_hook(lambda *_: self._forward())

    def _forward(self) -> None:
        self.forwards += 1


def pixels(data: bytes) -> bytes:
    return Image.open(io.BytesIO(data)).convert("RGB").tobytes()


def spy_on_engine(monkeypatch: pytest.MonkeyPatch) -> list[Spy]:
    spies: list[Spy] = []
    real = engine.engine_for

    def engine_for(scorer: Scorer) -> Any:
        built = real(scorer)
        if not any(s.scorer is built for s in spies):
            spies.append(Spy(built))
        return built

    monkeypatch.setattr(engine, "engine_for", engine_for)
    return spies


def stored_scores(scorer: Scorer, trace: Trace) -> list[float]:
    run = ScoreRun.objects.get(trace=trace, scorer=scorer, scorer_version=scorer.version)
    assert run.status == RunStatus.DONE, run.error
    return list(
        StepScore.objects.filter(run=run).order_by("step__index").values_list("score", flat=True)
    )


def test_score_sync_reads_each_stored_figure_once_per_trace_as_mm_prm_does(
    geometry_project, vlm_dir, monkeypatch, capsys
) -> None:
    annotator, project = geometry_project
    client = Client()
    client.force_login(annotator)
    wrapped = project.traces.get(external_id="geo-3")
    page = client.get(reverse("annotate:trace", args=[wrapped.pk])).content.decode()
    assert f'<img src="{as_url(FIGURE_3)}"' in page  # the page shows the wrapped data: URL
    call_command(
        "add_scorer", "mm-prm", "--backend", "vision", "--model", str(vlm_dir),
        "--params", '{"max_images": 2, "prm_token": "<prm>"}', "--project", "geo",
    )  # fmt: skip
    scorer = Scorer.objects.get(name="mm-prm")
    spies = spy_on_engine(monkeypatch)
    call_command("score", "--project", "geo", "--scorer", "mm-prm", "--sync")
    assert "mm-prm: 3 traces scored, 0 failed." in capsys.readouterr().out

    (spy,) = spies
    traces = {t.external_id: t for t in project.traces.all()}
    # The bundle's files as stored (content-addressed), byte for byte the zip's members.
    store = Path(engine.settings.VAR_DIR) / "images" / str(project.pk)
    for figure in (FIGURE_1, FIGURE_2):
        name = f"{hashlib.sha256(figure).hexdigest()}.png"
        assert (store / name).read_bytes() == figure
        assert any(t.problem.images == [f"bundle:{name}"] for t in traces.values())
    # One processor call and one forward pass per trace; each with the pixels of its own figure.
    assert spy.forwards == 3
    assert sorted(spy.images) == sorted([[pixels(f)] for f in (FIGURE_1, FIGURE_2, FIGURE_3)])

    for key, figure in (("geo-1", FIGURE_1), ("geo-2", FIGURE_2), ("geo-3", FIGURE_3)):
        trace = traces[key]
        scores = stored_scores(scorer, trace)
        assert len(scores) == trace.steps.count() == len(STEPS)
        reference = mm_prm_reference(
            spy.scorer.model,
            spy.scorer.tokenizer,
            spy.processor,
            TraceInput(PROBLEM, STEPS, images=[as_url(figure)], key=key),
        )
        assert scores == pytest.approx(reference, abs=1e-5), key
    # The same text with another figure is another problem, and the model sees the difference.
    one, two = stored_scores(scorer, traces["geo-1"]), stored_scores(scorer, traces["geo-2"])
    assert max(abs(a - b) for a, b in zip(one, two, strict=True)) > 1e-4


def test_opening_the_trace_scores_it_and_the_panel_shows_the_vision_scores(
    geometry_project, vlm_dir, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    annotator, project = geometry_project
    scorer = services.scorer_create(
        name="mm-prm", backend="vision", model_path=str(vlm_dir), projects=[project]
    )
    spies = spy_on_engine(monkeypatch)
    trace = project.traces.get(external_id="geo-1")
    client = Client()
    client.force_login(annotator)
    page = client.get(reverse("annotate:trace", args=[trace.pk])).content.decode()
    name = f"{hashlib.sha256(FIGURE_1).hexdigest()}.png"
    assert reverse("annotate:problem_image", args=["geo", name]) in page  # the figure shown
    with django_capture_on_commit_callbacks(execute=True):  # the Celery task runs eagerly
        assert client.post(reverse("scoring:open", args=[trace.pk])).status_code == 200

    (spy,) = spies
    assert (spy.forwards, spy.images) == (1, [[pixels(FIGURE_1)]])
    scores = stored_scores(scorer, trace)
    reference = mm_prm_reference(
        spy.scorer.model,
        spy.scorer.tokenizer,
        spy.processor,
        TraceInput(PROBLEM, STEPS, images=[as_url(FIGURE_1)], key="geo-1"),
    )
    assert scores == pytest.approx(reference, abs=1e-5)
    panel = client.get(reverse("scoring:panel", args=[trace.pk])).content.decode()
    assert 'data-testid="run-status">done</span>' in panel
    badges = [line for line in panel.splitlines() if 'data-testid="step-score"' in line]
    assert len(badges) == len(STEPS)
    for badge, score in zip(badges, scores, strict=True):
        assert f"mm-prm {score:.2f}" in badge, badge


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ('{"max_image": 2}', "params.max_image: not a parameter of the vision backend"),
        ('{"max_images": "two"}', "params.max_images: expected an integer, got a string"),
    ],
)
def test_a_vision_scorer_is_registered_with_its_params_checked(params, error) -> None:
    make_project("geo")
    call_command(
        "add_scorer", "ok", "--backend", "vision", "--model", "/models/mm-prm",
        "--params", '{"max_images": 2, "prm_token": "<prm>", "reward_tokens": ["Yes", "No"]}',
        "--project", "geo",
    )  # fmt: skip
    assert Scorer.objects.get(name="ok").params["max_images"] == 2
    with pytest.raises(CommandError, match=error):
        call_command(
            "add_scorer", "bad", "--backend", "vision", "--model", "/m", "--params", params
        )
    with pytest.raises(CommandError, match="the vision backend reads a model"):
        call_command("add_scorer", "nomodel", "--backend", "vision")
    assert not Scorer.objects.filter(name__in=["bad", "nomodel"]).exists()
