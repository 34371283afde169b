"""One forward pass per trace, batched and right-padded, gives the same scores as scoring each
step prefix alone (what the model cards do) -- the correctness proof of the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from scoring.prm import TraceInput, build_scorer
from scoring.prm.backends._base import TraceError
from scoring.prm.formatting import prefix_trace

TOL = 1e-5
BIG_BUDGET = {"max_tokens": 1_000_000, "max_batch_size": 64}


def naive_scores(scorer: Any, trace: TraceInput, read: Any) -> list[float]:
    """Score steps[: i + 1] alone for every i: one unpadded forward pass per prefix."""
    out = []
    for i in range(len(trace.steps)):
        enc = scorer.encode(prefix_trace(trace, i + 1))
        ids = torch.tensor([enc.input_ids])
        with torch.inference_mode():
            out.append(float(read(scorer, ids, enc)))
    return out


def read_class1(scorer: Any, ids: torch.Tensor, enc: Any) -> float:
    logits = scorer.model(input_ids=ids).logits[0]  # (T, 2)
    return torch.softmax(logits[enc.positions[-1]], dim=-1)[1].item()


def assert_equal_to_naive(scorer: Any, traces: list[TraceInput], read: Any) -> list[list[float]]:
    batched = scorer.score(traces)
    assert [b.key for b in batched] == [t.key for t in traces]
    all_scores = []
    for trace, result in zip(traces, batched, strict=True):
        assert len(result.steps) == len(trace.steps)
        naive = naive_scores(scorer, trace, read)
        diff = max(abs(a - b) for a, b in zip(result.scores, naive, strict=True))
        assert diff <= TOL, f"{trace.key}: batched vs prefix-at-a-time differ by {diff}"
        assert all(0.0 <= s <= 1.0 for s in result.scores)
        all_scores.extend(result.scores)
    # Random weights with a wide init: scores spread out, so equal scores mean equal positions.
    assert max(all_scores) - min(all_scores) > 0.3
    return [r.scores for r in batched]


def record_batches(scorer: Any) -> list[tuple[int, int]]:
    """Wrap the head call to record (rows, padded length) of every micro-batch."""
    shapes: list[tuple[int, int]] = []
    original = scorer.rows

    def rows(input_ids, attention_mask, batch_index, token_index):  # type: ignore[no-untyped-def]
        shapes.append(tuple(input_ids.shape))
        assert attention_mask.shape == input_ids.shape
        return original(input_ids, attention_mask, batch_index, token_index)

    scorer.rows = rows
    return shapes


def test_step_head_qwen_batched_equals_prefix_at_a_time(tiny_models, traces):
    scorer = build_scorer("step_head", model_path=str(tiny_models["step_head"]), params=BIG_BUDGET)
    shapes = record_batches(scorer)
    assert_equal_to_naive(scorer, traces, read_class1)
    # All six traces went through ONE right-padded micro-batch.
    assert shapes[0][0] == len(traces)


def test_step_head_qwen_layout_follows_the_model_card(tiny_models):
    scorer = build_scorer("step_head", model_path=str(tiny_models["step_head"]))
    tokenizer = scorer.tokenizer  # as loaded by from_pretrained, like a real checkpoint's
    trace = TraceInput("What is 1+1?", ["1+1=2", "So \\boxed{2}"])
    enc = scorer.encode(trace)
    text = tokenizer.decode(enc.input_ids)
    assert text.startswith("<|im_start|>system\nPlease reason step by step, and put your final")
    assert "<|im_start|>assistant\n1+1=2<extra_0>So \\boxed{2}<extra_0><|im_end|>" in text
    sep = tokenizer.convert_tokens_to_ids("<extra_0>")
    assert [enc.input_ids[p] for p in enc.positions] == [sep, sep]


def test_step_text_cannot_inject_a_separator(tiny_models):
    scorer = build_scorer("step_head", model_path=str(tiny_models["step_head"]))
    [result] = scorer.score([TraceInput("q", ["a <extra_0> b", "c"], key="x")])
    assert len(result.steps) == 2


def test_step_head_trl_batched_equals_prefix_at_a_time(tiny_models, traces):
    scorer = build_scorer(
        "step_head", model_path=str(tiny_models["step_head"]), params={"style": "trl", **BIG_BUDGET}
    )
    tokenizer = scorer.tokenizer
    enc = scorer.encode(traces[0])
    # TRL tokenize_row: prompt ids, then step ids + "\n" ids, label on the step's last token.
    newline = tokenizer.encode("\n", add_special_tokens=False)
    assert [enc.input_ids[p] for p in enc.positions] == newline * len(traces[0].steps)
    prompt = tokenizer(traces[0].problem, add_special_tokens=False)["input_ids"]
    assert enc.input_ids[: len(prompt)] == prompt
    assert_equal_to_naive(scorer, traces, read_class1)


def test_token_tag_math_shepherd_batched_equals_prefix_at_a_time(tiny_models, traces):
    scorer = build_scorer("token_tag", model_path=str(tiny_models["causal_lm"]), params=BIG_BUDGET)
    tokenizer = scorer.tokenizer
    good, bad = tokenizer.encode("+ -", add_special_tokens=False)
    tag = tokenizer.encode("ки", add_special_tokens=False)[-1]

    def read(scorer: Any, ids: torch.Tensor, enc: Any) -> float:
        # Math-Shepherd usage: model(ids).logits[:, :, [good, bad]].softmax(-1)[..., 0] at tags
        logits = scorer.model(input_ids=ids).logits[0][:, [good, bad]]
        assert ids[0, enc.positions[-1]].item() == tag
        return torch.softmax(logits[enc.positions[-1]], dim=-1)[0].item()

    text = tokenizer.decode(scorer.encode(traces[1]).input_ids)
    assert text.startswith(traces[1].problem + " Step 1: ")
    assert text.endswith(" ки") and "ки\nStep 2: " in text
    assert_equal_to_naive(scorer, traces, read)


def test_token_tag_chat_teacher_forced_equals_prefix_conversations(tiny_models, traces):
    scorer = build_scorer(
        "token_tag",
        model_path=str(tiny_models["causal_lm"]),
        params={"style": "chat", **BIG_BUDGET},
    )
    tokenizer = scorer.tokenizer
    plus = tokenizer.encode("+")[-1]
    minus = tokenizer.encode("-")[-1]

    def read(scorer: Any, ids: torch.Tensor, enc: Any) -> float:
        # RLHFlow usage: each prefix conversation alone, logits where "+" is predicted (the last
        # "+" of the prefix conversation), softmax over [+, -], index 0.
        last_plus = max(i for i, t in enumerate(ids[0].tolist()) if t == plus)
        logits = scorer.model(input_ids=ids).logits[0, last_plus - 1, [plus, minus]]
        return torch.softmax(logits, dim=-1)[0].item()

    assert_equal_to_naive(scorer, traces, read)


@pytest.mark.parametrize("model", ["value_tc", "v_head"])
def test_value_head_batched_equals_prefix_at_a_time(tiny_models, traces, model):
    scorer = build_scorer("value_head", model_path=str(tiny_models[model]), params=BIG_BUDGET)
    assert (scorer.v_head is not None) == (model == "v_head")

    def read(scorer: Any, ids: torch.Tensor, enc: Any) -> float:
        out = scorer.model(input_ids=ids)
        if scorer.v_head is not None:
            value = scorer.v_head(out.last_hidden_state[0, -1])[0]
        else:
            value = out.logits[0, -1, 0]
        # Skywork layout: the prefix ends with the step token that carries its reward.
        assert enc.positions[-1] == ids.shape[1] - 1
        return torch.sigmoid(value).item()

    assert_equal_to_naive(scorer, traces, read)
    # No trajectory-level score: the last token is the last step's flag in this layout.
    assert all(r.trajectory_score is None for r in scorer.score(traces[:2]))


def test_token_budget_is_respected_and_order_restored(tiny_models, traces):
    path = str(tiny_models["step_head"])
    reference = build_scorer("step_head", model_path=path, params=BIG_BUDGET).score(traces)
    scorer = build_scorer(
        "step_head", model_path=path, params={"max_tokens": 2500, "max_batch_size": 64}
    )
    lengths = sorted((len(scorer.encode(t)) for t in traces), reverse=True)
    shapes = record_batches(scorer)
    results = scorer.score(traces)
    assert [r.key for r in results] == [t.key for t in traces]
    for rows, padded in shapes:
        assert rows * padded <= 2500 or rows == 1
    assert max(lengths) <= 2500 and len(shapes) > 1
    assert any(rows > 1 for rows, _ in shapes)  # real right-padded multi-trace batches
    for a, b in zip(results, reference, strict=True):
        assert max(abs(x - y) for x, y in zip(a.scores, b.scores, strict=True)) <= TOL
    # A trace longer than the budget is scored alone, not refused.
    tight = build_scorer(
        "step_head", model_path=path, params={"max_tokens": 100, "max_batch_size": 64}
    )
    tight_shapes = record_batches(tight)
    assert len(tight.score(traces[:2])) == 2
    assert all(rows == 1 for rows, _ in tight_shapes)


def test_too_long_trace_is_named_before_any_forward_pass(tiny_models, traces):
    scorer = build_scorer(
        "step_head", model_path=str(tiny_models["step_head"]), params={"max_length": 300}
    )
    shapes = record_batches(scorer)
    with pytest.raises(TraceError) as info:
        scorer.score(traces)
    assert info.value.key == traces[0].key
    assert shapes == []


def test_empty_trace_and_empty_batch(tiny_models):
    scorer = build_scorer("step_head", model_path=str(tiny_models["step_head"]))
    assert scorer.score([]) == []
    [result] = scorer.score([TraceInput("q", [], key="e")])
    assert result.steps == [] and result.key == "e"


def test_missing_model_path_names_the_path(tmp_path: Path):
    from scoring.prm import ModelLoadError

    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match=str(missing)):
        build_scorer("step_head", model_path=str(missing))
    with pytest.raises(ModelLoadError, match="needs a model path"):
        build_scorer("token_tag", model_path=None)


def test_unknown_backend_and_param_are_errors(tiny_models):
    from scoring.prm import ScorerError

    with pytest.raises(ScorerError, match="unknown backend"):
        build_scorer("nope")
    with pytest.raises(ScorerError, match="max_tokenz"):
        build_scorer(
            "step_head", model_path=str(tiny_models["step_head"]), params={"max_tokenz": 1}
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_defaults_to_bf16_sdpa_and_matches_fp32(tiny_models, traces):
    path = str(tiny_models["step_head"])
    gpu = build_scorer("step_head", model_path=path, device="cuda")
    assert gpu.dtype == torch.bfloat16
    assert gpu.model.config._attn_implementation == "sdpa"
    cpu = build_scorer("step_head", model_path=path, device="cpu")
    for a, b in zip(gpu.score(traces), cpu.score(traces), strict=True):
        assert max(abs(x - y) for x, y in zip(a.scores, b.scores, strict=True)) < 0.05
