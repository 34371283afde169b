"""Value head: one scalar per position, sigmoid, read at step ends (and the last token).

Skywork-o1-Open-PRM (``head="v_head"``): a Qwen2 base model plus ``v_head.summary`` (Linear
hidden -> 1) stored beside the base weights; steps are laid out by ``prepare_input`` (BOS +
problem + "\\n", each step + "\\n", flag at the step token) and the reward is the sigmoid of the
value there. ``head="token_classification"``: an AutoModelForTokenClassification with one label
(what TRL-style training of a scalar head saves). No trajectory-level score: ReasonFlux-PRM-1.5B's
(a ``reward_head.pt`` beside a causal LM, read at the last token of problem + completion, no step
scores) is not a step scorer; ReasonFlux-PRM-7B's is step_head's ``trajectory=True``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from scoring.prm.backends._base import ForwardScorer
from scoring.prm.contract import ModelLoadError, ScorerError, TraceInput, parse_params
from scoring.prm.formatting import (
    QWEN_PRM_SEPARATOR,
    QWEN_PRM_SYSTEM_PROMPT,
    Encoded,
    format_separator_chat,
    format_value_steps,
)
from scoring.prm.loading import read_tensors, refuse_missing, weight_files
from scoring.prm.params import ValueHeadParams

V_HEAD_PREFIX = "v_head.summary."


def find_v_head(model_path: str | Path) -> dict[str, torch.Tensor] | None:
    """The ``v_head.summary.*`` tensors of the checkpoint, from its safetensors or its
    ``pytorch_model*.bin`` files (Skywork's official repos ship the latter), if any."""
    return read_tensors(model_path, V_HEAD_PREFIX) or None


class ValueHeadScorer(ForwardScorer):
    name = "value_head"

    def __init__(
        self,
        model_path: str | None,
        *,
        device: str = "cpu",
        dtype: str = "auto",
        params: Mapping[str, Any] | None = None,
    ) -> None:
        p = parse_params(ValueHeadParams, params, self.name)
        if p.layout not in ("skywork", "qwen"):
            raise ScorerError(f"value_head: unknown layout {p.layout!r} (skywork | qwen)")
        if p.head not in ("auto", "v_head", "token_classification"):
            raise ScorerError(f"value_head: unknown head {p.head!r}")
        if p.trajectory:
            raise ScorerError(
                "value_head has no trajectory-level score: its last token is the last step's "
                "reward flag, so it would only repeat the last step's score. ReasonFlux-PRM-7B's "
                "trajectory reward is step_head with trajectory=True"
            )
        self.style_params = p
        v_head = None
        if p.head in ("auto", "v_head") and model_path and Path(model_path).is_dir():
            v_head = find_v_head(model_path)
        if p.head == "v_head" and (v_head is None or "weight" not in v_head):
            refuse_missing(str(model_path), "value_head head='v_head'", [f"{V_HEAD_PREFIX}weight"])
        model_class = "base" if v_head is not None else "token_classification"
        try:
            super().__init__(
                model_path, device=device, dtype=dtype, common=p, model_class=model_class
            )
        except ModelLoadError as exc:
            if v_head is None and p.head == "auto":
                # Neither head is in the file: say both, not only the fallback's.
                raise ModelLoadError(
                    f"{exc}; nor has it Skywork's {V_HEAD_PREFIX}weight (looked in "
                    f"{[f.name for f in weight_files(str(model_path))]})"
                ) from exc
            raise
        self.v_head: torch.nn.Linear | None = None
        if v_head is not None:
            weight = v_head["weight"]  # (1, H)
            linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias="bias" in v_head)
            with torch.no_grad():
                linear.weight.copy_(weight)
                if "bias" in v_head:
                    linear.bias.copy_(v_head["bias"])
            self.v_head = linear.to(device=self.device, dtype=self.dtype).eval()

    def encode(self, trace: TraceInput) -> Encoded:
        p = self.style_params
        if p.layout == "skywork":
            enc = format_value_steps(self.tokenizer, trace, step_token=p.step_token)
        else:
            enc = format_separator_chat(
                self.tokenizer,
                trace,
                separator=QWEN_PRM_SEPARATOR,
                system_prompt=QWEN_PRM_SYSTEM_PROMPT,
            )
        return enc

    def rows(
        self,
        input_ids: torch.Tensor,  # (B, T)
        attention_mask: torch.Tensor,  # (B, T)
        batch_index: torch.Tensor,  # (N,)
        token_index: torch.Tensor,  # (N,)
    ) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        if self.v_head is not None:
            hidden = out.last_hidden_state[batch_index, token_index]  # (N, H)
            return self.v_head(hidden)  # (N, 1)
        logits = out.logits if hasattr(out, "logits") else out[0]  # (B, T, 1)
        return logits[batch_index, token_index]  # (N, 1)

    def activate(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(rows.float()[:, 0])  # (N,)
