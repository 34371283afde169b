"""Remote: the same contract over HTTP to a vLLM server running a PRM as a pooling model.

vLLM's pooling API (vllm/entrypoints/pooling/pooling/protocol.py, PoolingChatRequest and
PoolingResponse): ``POST {url}/pooling`` with ``{"model": ..., "messages": [...], "task":
"token_classify"}``; vLLM applies the model's chat template. The answer is ``{"data": [{"index":
0, "object": "pooling", "data": [[p0, p1], ...]}], ...}``. For Qwen2ForProcessRewardModel the
default pooler is STEP with ``step_tag_id`` 151651 (``<extra_0>``) and softmax on
(vllm/model_executor/models/config.py, Qwen2ForProcessRewardModelConfig), so ``data`` holds one
``[p_wrong, p_right]`` row per step; the step score is ``row[1]``. Rows that are not
probabilities (a server started without the activation) are soft-maxed here.

Server: ``vllm serve /models/Qwen2.5-Math-PRM-7B --runner pooling --trust-remote-code``.
Standard library only (urllib), a timeout per request, errors that name the URL (without its
credentials or query: `redact_url`). The API key is never a parameter: `api_key_env` names the
environment variable of the worker that holds it.
"""

from __future__ import annotations

import json
import math
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from scoring.prm.contract import ScorerError, StepScoreOut, TraceInput, TraceScores, parse_params
from scoring.prm.formatting import clean_step
from scoring.prm.params import RemoteParams
from scoring.prm.redact import redact_text, redact_url


def pooling_request(trace: TraceInput, p: RemoteParams, model: str) -> dict[str, Any]:
    """The request body for one trace: the Qwen2.5-Math-PRM conversation as chat messages (the
    problem's figures, if any, as image parts of the user turn)."""
    steps = [clean_step(s, [p.separator]) for s in trace.steps]
    messages = []
    if p.system_prompt is not None:
        messages.append({"role": "system", "content": p.system_prompt})
    question = clean_step(trace.problem, [p.separator])
    if trace.images:
        # A vision-language PRM reads the figures: OpenAI-style content parts, which vLLM's
        # chat-style pooling request takes as it takes a chat completion's (images first, as
        # MM-PRM's and VisualPRM's prompts put them).
        content: Any = [
            *({"type": "image_url", "image_url": {"url": url}} for url in trace.images),
            {"type": "text", "text": question},
        ]
    else:
        content = question
    messages.append({"role": "user", "content": content})
    messages.append({"role": "assistant", "content": p.separator.join(steps) + p.separator})
    return {"model": model, "messages": messages, "task": "token_classify"}


def _as_probability(row: Sequence[float], positive: int) -> float:
    values = [float(v) for v in row]
    if len(values) == 1:
        v = values[0]
        return v if 0.0 <= v <= 1.0 else 1.0 / (1.0 + math.exp(-v))
    if all(0.0 <= v <= 1.0 for v in values) and abs(sum(values) - 1.0) < 1e-3:
        return values[positive]
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    return exps[positive] / sum(exps)


class RemoteScorer:
    name = "remote"

    def __init__(
        self,
        model_path: str | None = None,
        *,
        device: str = "cpu",
        dtype: str = "auto",
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.params = parse_params(RemoteParams, params, self.name)
        model = self.params.model or model_path
        if not model:
            raise ScorerError("remote: set params['model'] (the served model name) or model_path")
        self.model = model
        self.endpoint = self.params.url.rstrip("/") + "/pooling"
        self.api_key: str | None = None
        if self.params.api_key_env:
            self.api_key = os.environ.get(self.params.api_key_env)
            if not self.api_key:
                raise ScorerError(
                    f"remote: the environment variable {self.params.api_key_env} is not set on "
                    "this worker (params['api_key_env'] names the variable holding the API key)"
                )

    def score(self, traces: Sequence[TraceInput]) -> list[TraceScores]:
        with ThreadPoolExecutor(max_workers=max(1, self.params.concurrency)) as pool:
            return list(pool.map(self._score_one, traces))

    def _score_one(self, trace: TraceInput) -> TraceScores:
        if not trace.steps:
            return TraceScores(trace.key, [])
        body = json.dumps(pooling_request(trace, self.params, self.model)).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
        shown = redact_url(self.endpoint)
        try:
            with urllib.request.urlopen(request, timeout=self.params.timeout_s) as response:
                payload = json.loads(response.read().decode())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise ScorerError(f"remote {shown}: HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise ScorerError(f"remote {shown}: {redact_text(str(exc))}") from exc
        except json.JSONDecodeError as exc:
            raise ScorerError(f"remote {shown}: not JSON: {exc}") from exc
        except Exception as exc:  # e.g. http.client.InvalidURL, whose text quotes the URL
            raise ScorerError(f"remote {shown}: {redact_text(str(exc))}") from None
        try:
            rows = payload["data"][0]["data"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ScorerError(f"remote {shown}: unexpected answer shape") from exc
        if len(rows) != len(trace.steps):
            raise ScorerError(
                f"remote {shown}: {len(rows)} rows for {len(trace.steps)} steps of trace "
                f"{trace.key!r}; serve the PRM with the STEP pooler (the default for "
                "Qwen2ForProcessRewardModel) so that one row comes back per step"
            )
        steps = [
            StepScoreOut(
                _as_probability(row if isinstance(row, list) else [row], self.params.positive_label)
            )
            for row in rows
        ]
        return TraceScores(trace.key, steps)
