"""Step head: a 2-class head read at step-separator positions, class-1 probability.

Serves Qwen2.5-Math-PRM / ReasonFlux-PRM-7B (``style="qwen"``: chat template, steps joined by
``<extra_0>`` and ending with it; the model card's ``make_step_rewards`` is softmax over the two
logits at the separator tokens, class 1) and AutoModelForTokenClassification models trained
with TRL's PRMTrainer (``style="trl"``: prompt + each step + ``step_separator`` ids, read at the
last token of each step, exactly where the trainer put the labels).

ReasonFlux-PRM-7B has Qwen2.5-Math-PRM's layout (its README: user turn = the problem, no system
turn, steps joined by ``<extra_0>``: ``system_prompt=None``); ``trajectory=True`` adds its
trajectory-level reward.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from scoring.prm.backends._base import ForwardScorer
from scoring.prm.contract import (
    ModelLoadError,
    ScorerError,
    TraceInput,
    TraceScores,
    parse_params,
)
from scoring.prm.formatting import (
    QWEN_PRM_SEPARATOR,
    TRL_STEP_SEPARATOR,
    Encoded,
    format_separator_chat,
    format_trl,
)
from scoring.prm.params import StepHeadParams


def _response_steps(trace: TraceInput) -> list[str]:
    """The response steps of a trajectory-response trace, in order; [] when the trace has no
    thinking part (all response: the response is the trajectory) or no response part."""
    parts = list(trace.parts or [])
    if "thinking" not in parts or "response" not in parts:
        return []
    return [step for step, part in zip(trace.steps, parts, strict=True) if part == "response"]


class StepHeadScorer(ForwardScorer):
    name = "step_head"

    def __init__(
        self,
        model_path: str | None,
        *,
        device: str = "cpu",
        dtype: str = "auto",
        params: Mapping[str, Any] | None = None,
    ) -> None:
        p = parse_params(StepHeadParams, params, self.name)
        if p.style not in ("qwen", "trl"):
            raise ScorerError(f"step_head: unknown style {p.style!r} (qwen | trl)")
        if p.trajectory and p.style != "qwen":
            raise ScorerError("step_head: trajectory=True is ReasonFlux-PRM's, style 'qwen' only")
        self.style_params = p
        default_sep = QWEN_PRM_SEPARATOR if p.style == "qwen" else TRL_STEP_SEPARATOR
        self.separator = p.separator if p.separator is not None else default_sep
        super().__init__(model_path, device=device, dtype=dtype, common=p)
        if getattr(self.model, "base_model", None) is self.model:
            # A bare decoder (e.g. AutoModel on a checkpoint whose head class is unknown): its
            # hidden states would be read as logits. Refuse instead of scoring nonsense.
            architectures = getattr(getattr(self.model, "config", None), "architectures", None)
            raise ModelLoadError(
                f"{model_path!r} loaded as {type(self.model).__name__}, a model without a "
                f"scoring head (config architectures: {architectures}); step_head needs a "
                "token-classification head: set params model_class='token_classification' "
                "(or 'qwen2_prm'), or trust_remote_code=True for a checkpoint with its own code"
            )

    def score(self, traces: Sequence[TraceInput]) -> list[TraceScores]:
        """Step scores; with ``trajectory=True`` also ReasonFlux-PRM's trajectory-level reward:
        the response as ONE step (steps joined by ``trajectory_joiner``, "\\n\\n" as its README
        splits an answer into steps), read at its single separator, class 1 (ReasonFlux
        ``Application/verl/workers/fsdp_workers.py`` lines 1274-1277 and 1358-1373). The extra
        rows go through the same micro-batches as the step rows.

        A trajectory-response trace (``parts`` with both ``thinking`` and ``response`` steps)
        also gets a response-level score: the same reading of the response steps alone (the
        final answer a reader sees, scored against the problem without the thinking)."""
        if not self.style_params.trajectory:
            return super().score(traces)
        joiner = self.style_params.trajectory_joiner
        whole = [
            TraceInput(t.problem, [joiner.join(t.steps)] if t.steps else [], key=t.key)
            for t in traces
        ]
        responses = [_response_steps(t) for t in traces]
        answer_rows = [
            TraceInput(t.problem, [joiner.join(r)], key=t.key)
            for t, r in zip(traces, responses, strict=True)
            if r
        ]
        results = super().score([*traces, *whole, *answer_rows])
        n = len(traces)
        steps, trajectories, answers = results[:n], results[n : 2 * n], iter(results[2 * n :])
        return [
            TraceScores(
                r.key,
                r.steps,
                w.steps[0].score if w.steps else None,
                next(answers).steps[0].score if response else None,
            )
            for r, w, response in zip(steps, trajectories, responses, strict=True)
        ]

    def encode(self, trace: TraceInput) -> Encoded:
        if self.style_params.style == "qwen":
            return format_separator_chat(
                self.tokenizer,
                trace,
                separator=self.separator,
                system_prompt=self.style_params.system_prompt,
            )
        return format_trl(self.tokenizer, trace, step_separator=self.separator)

    def rows(
        self,
        input_ids: torch.Tensor,  # (B, T)
        attention_mask: torch.Tensor,  # (B, T)
        batch_index: torch.Tensor,  # (N,)
        token_index: torch.Tensor,  # (N,)
    ) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        # Token-classification models return .logits; Qwen's remote PRM code returns a tuple
        # whose first item is the logits (the model card reads outputs[0]).
        logits = out.logits if hasattr(out, "logits") else out[0]  # (B, T, num_labels)
        return logits[batch_index, token_index]  # (N, num_labels)

    def activate(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.softmax(rows.float(), dim=-1)[:, self.style_params.positive_label]  # (N,)
