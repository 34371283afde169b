"""The vision backend (MM-PRM's way of scoring a step with the problem's figure) on a tiny
Qwen2-VL-shaped model built offline (random weights, saved and loaded with from_pretrained).

The reference below transcribes MM-PRM (github.com/ModalMinds/MM-PRM @ b914fd6):
``eval/prm/evaluate_mathvista_prm.py`` lines 75-76 (the text) and
``internvl/model/internvl_chat/modeling_internvl_chat.py`` ``batch_prm`` lines 635-666 (the image
before the text in the assistant turn after an empty user turn; the logits at each ``<prm>``
token over ``Yes``/``No``, softmax, index 0), with Qwen2-VL's image tokens in place of InternVL's.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from scoring.prm import TraceError, TraceInput, build_scorer
from scoring.prm.tiny import save_tiny_vlm

TEXTS = [
    "Question: In the figure, find x. Process: The angle at A is 30 degrees. So x = 60. Yes No",
    "Question: What is the area of the triangle? Process: base 4, height 3, area 6. Yes No",
] * 20


def png(color: tuple[int, int, int], size: int = 60) -> str:
    image = Image.new("RGB", (size, size), color)
    for i in range(size):  # a diagonal line: a figure, not a flat colour
        image.putpixel((i, i), (255 - color[0], 255 - color[1], 255 - color[2]))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_vlm(tmp_path_factory.mktemp("vlm") / "m", TEXTS, seed=3)


@pytest.fixture(scope="module")
def scorer(vlm_dir: Path) -> Any:
    return build_scorer("vision", model_path=str(vlm_dir))


def mm_prm_reference(model: Any, tokenizer: Any, processor: Any, trace: TraceInput) -> list[float]:
    """MM-PRM's batch_prm for one trace, written out again from its source."""
    solution = "<prm>".join(trace.steps) + "<prm>"
    question = f"Question: {trace.problem}\nProcess: {solution}"
    pixels = None
    if trace.images:
        question = "<image>\n" + question
        pictures = [
            Image.open(io.BytesIO(base64.b64decode(a.split(",", 1)[1]))).convert("RGB")
            for a in trace.images
        ]
        pixels = processor(images=pictures, return_tensors="pt")
        tokens = "".join(
            "<|vision_start|>" + "<|image_pad|>" * (int(g.prod()) // 4) + "<|vision_end|>"
            for g in pixels["image_grid_thw"]
        )
        question = question.replace("<image>", tokens, 1)
    query = tokenizer.apply_chat_template(
        [{"role": "user", "content": ""}, {"role": "assistant", "content": question}],
        tokenize=False,
    )
    model_inputs = tokenizer(query, return_tensors="pt", add_special_tokens=False)
    input_ids = model_inputs["input_ids"]
    kwargs: dict[str, Any] = {"attention_mask": model_inputs["attention_mask"]}
    if pixels is not None:
        kwargs.update(pixels)
        image_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
        kwargs["mm_token_type_ids"] = (input_ids == image_id).long()
    with torch.no_grad():
        logits = model(input_ids=input_ids, **kwargs).logits
    prm_token_id = tokenizer.convert_tokens_to_ids("<prm>")
    reward_token_ids = tokenizer.convert_tokens_to_ids(["Yes", "No"])
    placeholder_mask = input_ids == prm_token_id
    selected_logits = logits[placeholder_mask]
    selected_logits = selected_logits[..., reward_token_ids]
    return selected_logits.softmax(dim=-1)[..., 0].tolist()


def geometry(image: str | None, key: str) -> TraceInput:
    return TraceInput(
        "In the figure, find x.",
        ["The angle at A is 30 degrees.", "So x = 60."],
        key=key,
        images=[image] if image else [],
    )


def test_scores_equal_mm_prm_reference_reading(scorer: Any) -> None:
    traces = [geometry(png((200, 20, 20)), "red"), geometry(None, "none")]
    results = scorer.score(traces)
    for trace, result in zip(traces, results, strict=True):
        expected = mm_prm_reference(scorer.model, scorer.tokenizer, scorer.image_processor, trace)
        assert len(result.scores) == 2
        assert result.scores == pytest.approx(expected, abs=1e-5)
        assert all(0.0 <= s <= 1.0 for s in result.scores)


def test_the_image_reaches_the_model(scorer: Any) -> None:
    """Same text, another figure (the Geometry3K pattern): other scores. One forward pass per
    trace."""
    calls = []
    handle = scorer.model.register_forward_hook(lambda *args: calls.append(1))
    try:
        red, green, none = scorer.score(
            [
                geometry(png((200, 20, 20)), "red"),
                geometry(png((20, 200, 20)), "green"),
                geometry(None, "none"),
            ]
        )
    finally:
        handle.remove()
    assert len(calls) == 3
    assert max(abs(a - b) for a, b in zip(red.scores, green.scores, strict=True)) > 1e-4
    assert max(abs(a - b) for a, b in zip(red.scores, none.scores, strict=True)) > 1e-4


def test_a_remote_or_broken_image_is_refused_for_that_trace_alone(scorer: Any) -> None:
    from scoring.prm import score_each

    done, refused = score_each(
        scorer,
        [
            geometry("https://example.org/figure.png", "remote"),
            geometry("data:image/png;base64,bm90IGFuIGltYWdl", "broken"),
            geometry(png((0, 0, 200)), "ok"),
        ],
    )
    assert [d.key for d in done] == ["ok"]
    assert "data:image" in refused["remote"] and "not a readable image" in refused["broken"]
    with pytest.raises(TraceError, match="step tag"):
        scorer.score([TraceInput("q", ["a <prm> b"], key="tag")])


def test_a_data_url_reads_as_the_page_reads_it() -> None:
    """Media type and `;base64` in any case, and base64 wrapped over lines (the page shows
    both: annotate/images.py) give the same picture."""
    from scoring.prm.backends.vision import decode_image

    url = png((10, 120, 30))
    head, payload = url.split(",", 1)
    wrapped = "\n".join(payload[i : i + 76] for i in range(0, len(payload), 76))
    expected = decode_image(url, key="k").tobytes()
    assert decode_image("DATA:Image/PNG;BASE64," + payload, key="k").tobytes() == expected
    assert decode_image(f"{head},{wrapped}\n", key="k").tobytes() == expected
