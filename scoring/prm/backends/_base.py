"""What the model-backed scorers share: typed params from a dict, and the one-pass scoring loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from scoring.prm.batching import gather_rows
from scoring.prm.contract import (
    FormattingError,
    StepScoreOut,
    TraceError,
    TraceInput,
    TraceScores,
)
from scoring.prm.formatting import Encoded
from scoring.prm.loading import (
    load_model,
    load_tokenizer,
    pad_token_id,
    require_model_dir,
    resolve_device,
    resolve_dtype,
)
from scoring.prm.params import ForwardParams


class ForwardScorer:
    """A PRM read at chosen positions of ONE forward pass per trace.

    Subclasses choose the positions (:meth:`encode`, via formatting.py), the head
    (:meth:`rows`) and the activation (:meth:`activate`).
    """

    name = "forward"

    def __init__(
        self,
        model_path: str | None,
        *,
        device: str,
        dtype: str,
        common: ForwardParams,
        model_class: str | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.params = common
        model_path = str(require_model_dir(model_path))
        self.tokenizer = load_tokenizer(model_path, trust_remote_code=common.trust_remote_code)
        self.model = load_model(
            model_path,
            model_class=model_class or common.model_class,
            device=self.device,
            dtype=self.dtype,
            trust_remote_code=common.trust_remote_code,
        )
        self.pad_id = pad_token_id(self.tokenizer)
        self.max_batch_size = common.max_batch_size or (64 if self.device.type == "cuda" else 1)
        config = getattr(self.model, "config", None)
        self.max_length = common.max_length or getattr(config, "max_position_embeddings", None)

    # --- which positions / which head / which activation ---

    def encode(self, trace: TraceInput) -> Encoded:
        raise NotImplementedError

    def rows(
        self,
        input_ids: torch.Tensor,  # (B, T)
        attention_mask: torch.Tensor,  # (B, T)
        batch_index: torch.Tensor,  # (N,)
        token_index: torch.Tensor,  # (N,)
    ) -> torch.Tensor:  # (N, C)
        raise NotImplementedError

    def activate(self, rows: torch.Tensor) -> torch.Tensor:  # (N, C) -> (N,)
        raise NotImplementedError

    def step_details(self, rows: torch.Tensor) -> list[dict[str, Any]]:
        return [{} for _ in range(rows.shape[0])]

    # --- the loop ---

    def encode_all(self, traces: Sequence[TraceInput]) -> list[Encoded]:
        encoded = []
        for trace in traces:
            if not trace.steps:
                encoded.append(Encoded([], []))  # nothing to score, no forward pass
                continue
            try:
                enc = self.encode(trace)
            except FormattingError as exc:
                raise TraceError(trace.key, str(exc)) from exc
            if self.max_length is not None and len(enc) > self.max_length:
                raise TraceError(
                    trace.key, f"{len(enc)} tokens, more than max_length={self.max_length}"
                )
            encoded.append(enc)
        return encoded

    def score(self, traces: Sequence[TraceInput]) -> list[TraceScores]:
        encoded = self.encode_all(traces)
        live = [
            i for i, e in enumerate(encoded) if e.positions or e.trajectory_position is not None
        ]
        rows = gather_rows(
            [encoded[i] for i in live],
            self.rows,
            pad_id=self.pad_id,
            max_tokens=self.params.max_tokens,
            max_batch_size=self.max_batch_size,
            device=self.device,
        )
        by_trace = dict(zip(live, rows, strict=True))
        out = []
        for i, (trace, enc) in enumerate(zip(traces, encoded, strict=True)):
            trace_rows = by_trace.get(i)
            if trace_rows is None:
                out.append(TraceScores(trace.key, []))
                continue
            probs = self.activate(trace_rows).clamp(0.0, 1.0).tolist()
            details = self.step_details(trace_rows)
            n = len(enc.positions)
            steps = [StepScoreOut(float(p), d) for p, d in zip(probs[:n], details[:n], strict=True)]
            trajectory = float(probs[n]) if enc.trajectory_position is not None else None
            out.append(TraceScores(trace.key, steps, trajectory))
        return out
