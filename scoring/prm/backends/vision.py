"""Vision-language PRM: the problem's figures go into the model with the steps (MM-PRM's way).

MM-PRM (github.com/ModalMinds/MM-PRM @ b914fd6) scores a solution in ONE forward pass:
``eval/prm/evaluate_mathvista_prm.py`` lines 75-76 write the text as
``f"Question: {question}\\nProcess: {solution}"`` with the steps joined by ``<prm>`` and ending
with it; ``internvl/model/internvl_chat/modeling_internvl_chat.py`` ``batch_prm`` (lines
632-666) puts ``<image>\\n`` before that text (line 636), places it in the ASSISTANT turn of the
conversation after an empty user turn (lines 638-639), replaces ``<image>`` by the image's tokens
(line 647), and reads the logits AT each ``<prm>`` token (line 663), over the two reward tokens
``["Yes", "No"]`` (line 665), softmax, index 0: P(Yes) is the step score (line 666).

steplens runs that recipe on a transformers image-text-to-text checkpoint loaded from a local
directory (Qwen2-VL's layout: ``AutoModelForImageTextToText``, its image processor and tokenizer):
the chat is written with the tokenizer's chat template, each image is
``image_block`` (``<|vision_start|><|image_pad|><|vision_end|>``) with ``<|image_pad|>`` repeated
once per merged patch, as Qwen2-VL's processor does. Images arrive as ``data:image/...`` URLs
(the engine inlines the project's stored images); any other address is refused for that trace.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from scoring.prm import loading
from scoring.prm.contract import (
    ModelLoadError,
    ScorerError,
    StepScoreOut,
    TraceError,
    TraceInput,
    TraceScores,
    parse_params,
)
from scoring.prm.params import VisionParams


def decode_image(address: str, *, key: str) -> Any:
    """A ``data:image/png|jpeg|webp;base64,...`` URL as an RGB PIL image; else TraceError.
    Read as the page reads it (annotate/images.py): any case, base64 wrapped over lines."""
    from PIL import Image, UnidentifiedImageError

    head, sep, payload = address.strip().partition(",")
    lowered = head.lower()  # media types and `;base64` are case-insensitive (RFC 2397)
    if not sep or not lowered.startswith("data:image/") or not lowered.endswith(";base64"):
        raise TraceError(
            key,
            f"image {address[:60]!r}: the vision backend reads inline data:image/...;base64 "
            "images only (the engine inlines a project's stored images)",
        )
    try:
        # Whitespace is no part of base64: a payload wrapped at 76 columns reads as one line.
        data = base64.b64decode("".join(payload.split()), validate=True)
        return Image.open(io.BytesIO(data)).convert("RGB")
    except (binascii.Error, ValueError, UnidentifiedImageError) as exc:
        raise TraceError(key, f"image {head!r}: not a readable image ({exc})") from exc


class VisionScorer:
    name = "vision"

    def __init__(
        self,
        model_path: str | None,
        *,
        device: str = "cpu",
        dtype: str = "auto",
        params: Mapping[str, Any] | None = None,
    ) -> None:
        from transformers import AutoImageProcessor, AutoModelForImageTextToText

        p = parse_params(VisionParams, params, self.name)
        self.params = p
        path = loading.require_model_dir(model_path)
        self.device = loading.resolve_device(device)
        self.tokenizer = loading.load_tokenizer(path, trust_remote_code=p.trust_remote_code)
        try:
            self.image_processor = AutoImageProcessor.from_pretrained(
                str(path), local_files_only=True, trust_remote_code=p.trust_remote_code
            )
            self.model = (
                AutoModelForImageTextToText.from_pretrained(
                    str(path),
                    local_files_only=True,
                    trust_remote_code=p.trust_remote_code,
                    **{loading._dtype_kwarg(): loading.resolve_dtype(dtype, self.device)},
                )
                .to(self.device)
                .eval()
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"cannot load a vision-language model from {path}: {exc}") from exc
        self.prm_id = self._single_token(p.prm_token)
        self.reward_ids = [self._single_token(t) for t in p.reward_tokens]
        self.image_id = self._single_token(p.image_token)
        self.merge = int(getattr(self.image_processor, "merge_size", 1) or 1)

    def _single_token(self, text: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise ScorerError(f"vision: {text!r} is {len(ids)} tokens in this tokenizer, not one")
        return int(ids[0])

    def prompt(self, trace: TraceInput, images: int) -> str:
        """The chat text of one trace (images as one ``image_block`` each, not yet expanded)."""
        tag = self.params.prm_token
        process = "".join(step + tag for step in trace.steps)
        question = self.params.question_format.format(problem=trace.problem, process=process)
        if images:
            question = self.params.image_block * images + "\n" + question
        chat = [{"role": "user", "content": ""}, {"role": "assistant", "content": question}]
        text: str = self.tokenizer.apply_chat_template(
            chat, tokenize=False, add_generation_prompt=False
        )
        return text

    def encode(self, trace: TraceInput) -> dict[str, torch.Tensor]:
        if any(self.params.prm_token in step for step in trace.steps):
            raise TraceError(trace.key, f"a step contains the step tag {self.params.prm_token!r}")
        if len(trace.images) > self.params.max_images:
            raise TraceError(
                trace.key,
                f"{len(trace.images)} images, more than max_images={self.params.max_images}",
            )
        pictures = [decode_image(a, key=trace.key) for a in trace.images]
        text = self.prompt(trace, len(pictures))
        inputs: dict[str, torch.Tensor] = {}
        if pictures:
            pixels = self.image_processor(images=pictures, return_tensors="pt")
            inputs.update(pixels)
            for grid in pixels["image_grid_thw"]:  # (t, h, w) patches of one image
                n = int(grid.prod()) // self.merge**2
                text = text.replace(
                    self.params.image_block,
                    self.params.image_block.replace(
                        self.params.image_token, "\0" * n
                    ),  # placeholder: not matched again by the next replace
                    1,
                )
            text = text.replace("\0", self.params.image_token)
        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        if ids["input_ids"].shape[1] > self.params.max_length:
            raise TraceError(
                trace.key,
                f"{ids['input_ids'].shape[1]} tokens, more than max_length={self.params.max_length}",
            )
        inputs.update(ids)
        # Qwen2-VL's M-RoPE needs each token's modality (0 text, 1 image), as its processor gives.
        inputs["mm_token_type_ids"] = (ids["input_ids"] == self.image_id).long()
        found = int((ids["input_ids"] == self.prm_id).sum())
        if found != len(trace.steps):
            raise TraceError(trace.key, f"{found} step tags for {len(trace.steps)} steps")
        return inputs

    @torch.inference_mode()
    def score(self, traces: Sequence[TraceInput]) -> list[TraceScores]:
        encoded = [self.encode(t) for t in traces]  # every refusal before any forward pass
        out: list[TraceScores] = []
        for trace, inputs in zip(traces, encoded, strict=True):
            if not trace.steps:
                out.append(TraceScores(trace.key, []))
                continue
            batch = {k: v.to(self.device) for k, v in inputs.items()}
            logits = self.model(**batch).logits  # (1, T, vocab): ONE forward pass per trace
            at_tags = logits[batch["input_ids"] == self.prm_id]  # (steps, vocab)
            p_yes = torch.softmax(at_tags[:, self.reward_ids].float(), dim=-1)[:, 0]  # (steps,)
            out.append(
                TraceScores(
                    trace.key,
                    [StepScoreOut(float(s), {"images": len(trace.images)}) for s in p_yes.tolist()],
                )
            )
        return out
