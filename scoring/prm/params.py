"""Every backend's parameters as typed dataclasses, and their check: Django-free and torch-free,
so the web process checks a scorer's params when it is registered (the form, the API,
`add_scorer`) with the same parser the worker builds the scorer with (`contract.parse_params`).
The backends import their params from here; what a backend checks only once the model is loaded
(a token missing from the vocabulary, say) stays in the backend."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from scoring.prm.contract import ScorerError, parse_params
from scoring.prm.formatting import (
    MATH_SHEPHERD_STEP_PREFIX,
    MATH_SHEPHERD_TAG,
    QWEN_PRM_SEPARATOR,
    QWEN_PRM_SYSTEM_PROMPT,
    RLHFLOW_PROBLEM_JOINER,
)


@dataclasses.dataclass(frozen=True)
class ForwardParams:
    """Params every forward-pass backend takes (the worker's knobs)."""

    max_tokens: int = 16384  # batch token budget: rows x longest row of a micro-batch
    # None: 64 on CUDA, 1 on CPU (a padding mask sends CPU attention to its slow kernel, and
    # CPU matmuls gain nothing from more rows; measured in benchmarks/scoring_throughput.py)
    max_batch_size: int | None = None
    max_length: int | None = None  # longest trace in tokens; default: the model's positions
    model_class: str = "auto"  # auto | token_classification | causal_lm | base
    trust_remote_code: bool = False  # Qwen2.5-Math-PRM's own modelling code needs True


@dataclasses.dataclass(frozen=True)
class StepHeadParams(ForwardParams):
    style: str = "qwen"  # qwen | trl
    separator: str | None = None  # default: "<extra_0>" (qwen) or "\n" (trl)
    system_prompt: str | None = QWEN_PRM_SYSTEM_PROMPT  # qwen style only; None: no system turn
    positive_label: int = 1  # the class whose probability is the step score
    # ReasonFlux-PRM-7B's trajectory-level reward (qwen style): the whole response, its steps
    # joined by ``trajectory_joiner``, scored as ONE step (see StepHeadScorer.score).
    trajectory: bool = False
    trajectory_joiner: str = "\n\n"


@dataclasses.dataclass(frozen=True)
class TokenTagParams(ForwardParams):
    model_class: str = "causal_lm"
    style: str = "math_shepherd"  # math_shepherd | chat
    good_token: str = "+"
    bad_token: str = "-"
    tag: str = MATH_SHEPHERD_TAG  # math_shepherd only
    step_prefix: str = MATH_SHEPHERD_STEP_PREFIX  # math_shepherd only; "{n}" is the step number
    # chat only: between the problem and the first step in the first user turn (RLHFlow's
    # prm_evaluate.py: " "; ProcessBench's run_eval_prm_rlhflow.py: "\n\n")
    problem_joiner: str = RLHFLOW_PROBLEM_JOINER
    good_token_id: int | None = None  # override the ids derived from the strings
    bad_token_id: int | None = None


@dataclasses.dataclass(frozen=True)
class ValueHeadParams(ForwardParams):
    head: str = "auto"  # auto | v_head | token_classification
    layout: str = "skywork"  # skywork | qwen (chat template + <extra_0>)
    step_token: str = "\n"  # skywork layout
    # Refused when True: a value head has no trajectory-level score (the last token is the last
    # step's flag in Skywork's layout: it was the last step's score under another name).
    trajectory: bool = False


@dataclasses.dataclass(frozen=True)
class GenerativeParams(ForwardParams):
    model_class: str = "causal_lm"
    # R-PRM's ProcessBench evaluation: N=10, temperature 0.95, top_p 0.95, 4096 new tokens.
    k: int = 10  # critiques per step
    temperature: float = 0.95  # 0: greedy decoding, which needs k=1 (K identical critiques)
    top_p: float = 0.95
    max_new_tokens: int = 4096
    seed: int = 0
    generation_batch_size: int = 8  # prompts per generate() call (x K sequences)
    # "authors": R-PRM's evaluation prompt file verbatim (its own chat markup);
    # "chat_template": the instruction as one user turn through the tokenizer's chat template,
    # after ``system_prompt`` (for a generative PRM with another template).
    prompt_format: str = "authors"
    system_prompt: str | None = "You are a helpful assistant."  # chat_template only
    yes_token: str = " Yes"
    no_token: str = " No"


@dataclasses.dataclass(frozen=True)
class ToolParams:
    false_score: float = 0.05
    pass_score: float = 0.9
    neutral_score: float = 0.5
    check_answer: bool = True
    time_budget_s: float = 2.0


@dataclasses.dataclass(frozen=True)
class RemoteParams:
    url: str = "http://127.0.0.1:8000"  # the vLLM server (without /pooling)
    model: str | None = None  # the served model name; default: model_path
    timeout_s: float = 60.0
    concurrency: int = 4  # requests in flight (vLLM batches them on its side)
    separator: str = QWEN_PRM_SEPARATOR
    system_prompt: str | None = QWEN_PRM_SYSTEM_PROMPT
    positive_label: int = 1
    # The name of the environment variable that holds the server's API key (sent as a bearer
    # token); the key itself is never stored with the scorer.
    api_key_env: str | None = None


# MM-PRM's text (eval/prm/evaluate_mathvista_prm.py lines 75-76); see backends/vision.py.
MM_PRM_QUESTION = "Question: {problem}\nProcess: {process}"


@dataclasses.dataclass(frozen=True)
class VisionParams:
    prm_token: str = "<prm>"  # MM-PRM's step tag
    reward_tokens: tuple[str, str] = ("Yes", "No")  # P(first) is the step score
    image_block: str = "<|vision_start|><|image_pad|><|vision_end|>"
    image_token: str = "<|image_pad|>"  # repeated once per merged patch of the image
    question_format: str = MM_PRM_QUESTION
    max_images: int = 8
    max_length: int = 8192
    trust_remote_code: bool = False


BACKEND_PARAMS: dict[str, type] = {
    "step_head": StepHeadParams,
    "token_tag": TokenTagParams,
    "value_head": ValueHeadParams,
    "generative": GenerativeParams,
    "tool": ToolParams,
    "remote": RemoteParams,
    "vision": VisionParams,
}

_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_VALUE_WORDS = {**_TYPE_WORDS, list: "a list", dict: "an object", type(None): "null"}


def _accepts(hint: Any, value: Any) -> bool:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_accepts(arm, value) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def _describe(hint: Any) -> str:
    arms = (
        typing.get_args(hint)
        if typing.get_origin(hint) in (typing.Union, types.UnionType)
        else (hint,)
    )
    words = [
        _TYPE_WORDS.get(a, "null" if a is type(None) else getattr(a, "__name__", str(a)))
        for a in arms
    ]
    return " or ".join(words)


def params_known(backend: str) -> list[str]:
    """The backend's parameter names (none for a backend without params, e.g. `external`).

    >>> "max_tokens" in params_known("step_head"), params_known("external")
    (True, [])
    """
    cls = BACKEND_PARAMS.get(backend)
    return sorted(f.name for f in dataclasses.fields(cls)) if cls else []


def params_check(backend: str, params: Mapping[str, Any] | None) -> Any:
    """The backend's typed params, or a ScorerError naming the parameter at fault (never its
    value: it could be a secret typed in the wrong place). Backends without params (`external`)
    take none.

    >>> params_check("tool", {"pass_score": 0.8}).pass_score
    0.8
    >>> params_check("tool", {"pass_scor": 0.8})
    Traceback (most recent call last):
    ...
    scoring.prm.contract.ScorerError: params.pass_scor: not a parameter of the tool backend (known: check_answer, false_score, neutral_score, pass_score, time_budget_s)
    >>> params_check("step_head", {"max_tokens": "lots"})
    Traceback (most recent call last):
    ...
    scoring.prm.contract.ScorerError: params.max_tokens: expected an integer, got a string
    """
    params = dict(params or {})
    cls = BACKEND_PARAMS.get(backend)
    if cls is None:
        if params:
            raise ScorerError(f"params: the {backend} backend takes no parameters")
        return None
    hints = typing.get_type_hints(cls)
    names = sorted(f.name for f in dataclasses.fields(cls))
    for key, value in params.items():
        if key not in hints:
            raise ScorerError(
                f"params.{key}: not a parameter of the {backend} backend (known: {', '.join(names)})"
            )
        if not _accepts(hints[key], value):
            got = _VALUE_WORDS.get(type(value), type(value).__name__)
            raise ScorerError(f"params.{key}: expected {_describe(hints[key])}, got {got}")
    return parse_params(cls, params, backend)
