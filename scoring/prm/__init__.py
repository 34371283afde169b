"""The Django-free PRM engine: build a scorer once, then score batches of traces.

    from scoring.prm import TraceInput, build_scorer
    scorer = build_scorer("step_head", model_path="/models/Qwen2.5-Math-PRM-7B", device="cuda",
                          params={"trust_remote_code": True})
    [result] = scorer.score([TraceInput(problem="1+1?", steps=["1+1=2", "\\\\boxed{2}"])])
    result.scores  # one float in [0, 1] per step

Backends are imported lazily: ``build_scorer("tool")`` never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from scoring.prm.contract import (
    FormattingError,
    ModelLoadError,
    Scorer,
    ScorerError,
    StepScoreOut,
    TraceError,
    TraceInput,
    TraceScores,
    score_each,
)

# backend name -> (module, class); every class takes (model_path, *, device, dtype, params).
BACKENDS: dict[str, tuple[str, str]] = {
    "step_head": ("scoring.prm.backends.step_head", "StepHeadScorer"),
    "token_tag": ("scoring.prm.backends.token_tag", "TokenTagScorer"),
    "value_head": ("scoring.prm.backends.value_head", "ValueHeadScorer"),
    "generative": ("scoring.prm.backends.generative", "GenerativeScorer"),
    "tool": ("scoring.prm.backends.tool", "ToolScorer"),
    "remote": ("scoring.prm.backends.remote", "RemoteScorer"),
    "vision": ("scoring.prm.backends.vision", "VisionScorer"),
}


def build_scorer(
    backend: str,
    *,
    model_path: str | None = None,
    device: str = "cpu",
    dtype: str = "auto",
    params: Mapping[str, Any] | None = None,
) -> Scorer:
    """Build (load once) the scorer for ``backend``; raises ScorerError with a clear message.

    ``device``: "cpu", "cuda", "cuda:1" or "auto". ``dtype``: "auto" (bf16 on CUDA, fp32 on
    CPU), "bf16", "fp16", "fp32". ``params``: backend-specific (see docs/engine.md); an
    unknown key is an error.
    """
    try:
        module_name, class_name = BACKENDS[backend]
    except KeyError:
        raise ScorerError(f"unknown backend {backend!r}; known: {sorted(BACKENDS)}") from None
    cls = getattr(importlib.import_module(module_name), class_name)
    scorer: Scorer = cls(model_path, device=device, dtype=dtype, params=params)
    return scorer


__all__ = [
    "BACKENDS",
    "FormattingError",
    "ModelLoadError",
    "Scorer",
    "ScorerError",
    "StepScoreOut",
    "TraceError",
    "TraceInput",
    "TraceScores",
    "build_scorer",
    "score_each",
]
