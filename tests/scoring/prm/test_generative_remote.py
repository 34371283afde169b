"""Generative critiques with a tiny causal LM, and the remote scorer against a fake vLLM."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from scoring.prm import ScorerError, TraceInput, build_scorer

GEN = {"k": 3, "temperature": 1.0, "max_new_tokens": 8, "seed": 7}


def test_generative_keeps_k_critiques_and_is_reproducible(tiny_models, records):
    trace = TraceInput(records[3]["problem"], records[3]["steps"][:2], key="g")
    scorer = build_scorer("generative", model_path=str(tiny_models["causal_lm"]), params=GEN)
    [first] = scorer.score([trace])
    [again] = scorer.score([trace])
    assert len(first.steps) == 2
    for step in first.steps:
        assert len(step.details["critiques"]) == 3 and len(step.details["p_yes"]) == 3
        assert all(isinstance(c, str) and c for c in step.details["critiques"])
        assert 0.0 <= step.score <= 1.0
        assert step.score == pytest.approx(sum(step.details["p_yes"]) / 3)
    assert [s.details["critiques"] for s in first.steps] == [
        s.details["critiques"] for s in again.steps
    ]
    assert first.scores == again.scores
    # sampling: the K critiques differ; another seed gives other critiques
    assert len(set(first.steps[0].details["critiques"])) > 1
    other = build_scorer(
        "generative", model_path=str(tiny_models["causal_lm"]), params={**GEN, "seed": 8}
    ).score([trace])[0]
    assert other.steps[0].details["critiques"] != first.steps[0].details["critiques"]


def test_generative_prompt_is_r_prm_per_step(tiny_models):
    from scoring.prm.backends.generative import step_prompt

    trace = TraceInput("What is 2+3?", ["2+3=5", "So \\boxed{5}"])
    text = step_prompt(trace, 1)
    assert (
        "Question: What is 2+3?\nPrevious Steps: Step 1: 2+3=5\nNow Step: Step 2: So \\boxed{5}"
        in (text)
    )
    assert text.endswith("Reply: ")


class FakeVLLM(BaseHTTPRequestHandler):
    """Answers POST /pooling like vLLM's STEP pooler: one [p_wrong, p_right] row per <extra_0>."""

    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeVLLM.requests.append(body)
        if self.path != "/pooling" or body.get("task") != "token_classify":
            self.send_error(404)
            return
        steps = body["messages"][-1]["content"].count("<extra_0>")
        rows = [[1 - 0.1 * (i + 1), 0.1 * (i + 1)] for i in range(steps)]
        if "logits" in body["model"]:
            rows = [[0.0, 2.0] for _ in range(steps)]
        payload = {"id": "pool-1", "object": "list", "model": body["model"],
                   "data": [{"index": 0, "object": "pooling", "data": rows}], "usage": {}}  # fmt: skip
        raw = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_vllm():
    server = HTTPServer(("127.0.0.1", 0), FakeVLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeVLLM.requests = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_remote_scores_over_the_pooling_api(fake_vllm, traces):
    scorer = build_scorer("remote", params={"url": fake_vllm, "model": "Qwen/Qwen2.5-Math-PRM-7B"})
    results = scorer.score(traces[:3])
    assert [r.key for r in results] == [t.key for t in traces[:3]]
    for trace, result in zip(traces[:3], results, strict=True):
        assert result.scores == pytest.approx([0.1 * (i + 1) for i in range(len(trace.steps))])
    request = FakeVLLM.requests[0]
    assert request["task"] == "token_classify"
    assert [m["role"] for m in request["messages"]] == ["system", "user", "assistant"]
    assert request["messages"][-1]["content"].endswith("<extra_0>")
    # logits instead of probabilities are soft-maxed on our side
    [logits] = build_scorer("remote", params={"url": fake_vllm, "model": "logits"}).score(
        traces[:1]
    )
    assert logits.scores[0] == pytest.approx(0.8808, abs=1e-4)


def test_remote_errors_are_clear(fake_vllm):
    wrong_path = build_scorer("remote", params={"url": fake_vllm + "/v1", "model": "m"})
    with pytest.raises(ScorerError, match="HTTP 404"):
        wrong_path.score([TraceInput("q", ["a"])])
    down = build_scorer(
        "remote", params={"url": "http://127.0.0.1:9", "model": "m", "timeout_s": 2}
    )
    with pytest.raises(ScorerError, match="127.0.0.1:9"):
        down.score([TraceInput("q", ["a"])])
    with pytest.raises(ScorerError, match="model"):
        build_scorer("remote", params={"url": fake_vllm})


def test_remote_sends_the_problems_figures_as_openai_image_parts(fake_vllm):
    # A vision-language PRM served by vLLM reads the figure: the user turn carries each image as
    # an OpenAI-style image_url part, then the problem's text; a text-only trace is unchanged.
    figure = "data:image/png;base64,iVBORw0KGgo="
    scorer = build_scorer("remote", params={"url": fake_vllm, "model": "Qwen/Qwen2.5-Math-PRM-7B"})
    scorer.score([TraceInput("Find $x$.", ["x = 35."], images=[figure], key="g1")])
    scorer.score([TraceInput("Find $x$.", ["x = 35."], key="g2")])
    with_figure, text_only = FakeVLLM.requests
    assert with_figure["messages"][1]["content"] == [
        {"type": "image_url", "image_url": {"url": figure}},
        {"type": "text", "text": "Find $x$."},
    ]
    assert text_only["messages"][1]["content"] == "Find $x$."
