"""Generative: the model writes K critiques of each step and ends with a Yes/No verdict.

R-PRM (NJUNLP/R-PRM, src/prompts/GenPRM and src/evaluate/GenPRM/evaluate-PRM-CoT.py): one
prompt per step with the question, the previous steps and the "Now Step"; K critiques sampled;
each critique is cut after "Is the step correct (Yes/No)?" (or, without it, followed by
"\\nBased on your analysis. Is the answer correct (Yes/No)?"), re-read in one forward pass, and
P(Yes) = softmax over the logits of " Yes" and " No" at its last token; the step score is the
mean over the K critiques (inference-time scaling). The critique texts are kept in details.

Cost: one generation per step (x K); that is the method, not the engine: use it on few traces.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from scoring.prm.backends._base import ForwardParams, ForwardScorer
from scoring.prm.contract import StepScoreOut, TraceInput, TraceScores, parse_params
from scoring.prm.formatting import Encoded

VERDICT_QUESTION = "Is the step correct (Yes/No)?"
VERDICT_FALLBACK = "\nBased on your analysis. Is the answer correct (Yes/No)?"
R_PRM_INSTRUCTION = """You are an excellent math teacher. Please verify the correctness of the Now Step.

You first need to analyze the Now Step and the Previous Steps and then summarize based on your analysis.
Analysis:
You need to analyze the following aspects.
**Previous Steps Analysis**: You need to analyze the Previous Steps step by step. For each step, you need to first explain what the current step is doing, then you try to find any error in the current step.
**Now Step Analysis**: You first need to explain what the Now Step is doing, and then point out which part of the Question it is trying to solve or which part of the information it states.
**Data Source Analysis**: First you need to find out what data are used in the Now Step, and then you need to determine whether the source of the data is reasonable and correct. When you judge whether the source of a data is reasonable and correct, you need to specify the specific source of this data: such as which part of the question, or which content of the previous step; and then determine the source and current use is consistent, the Now Step is used correctly.
**Consistency Analysis**: You need to check that the Now Step is consistent with the contents of the Previous Steps, and then you need to check that all the information inside the Now Step is consistent.
**Calculation Analysis**: If the Now Step involves any calculations, such as addition, subtraction, multiplication, division, equations, modulo operations, etc., you will first need to perform a check on the calculation, such as a reverse operation, to see if the calculation was done correctly, and then analyze the results of your check to see if there was an error in the calculation.
Conclusion: 
Please verify the correctness of the Now Step based on your analysis, if there is any error in the Now Step then the Now Step is wrong and vice versa the Now Step is correct. At the end of the Conclusion, when you give your final answer, write it in the form "Verification: Is the step correct (Yes/No)? X", where X is either Yes or No.

Question: {question}
Previous Steps: {previous}
Now Step: {now}
Please carefully analyze the correctness of the Now Step.
Reply: """  # noqa: E501, W291 (the model's training prompt, verbatim)


@dataclasses.dataclass(frozen=True)
class GenerativeParams(ForwardParams):
    model_class: str = "causal_lm"
    k: int = 4  # critiques per step
    temperature: float = 0.7  # 0: greedy (then K identical critiques: use k=1)
    top_p: float = 1.0
    max_new_tokens: int = 1024
    seed: int = 0
    generation_batch_size: int = 8  # prompts per generate() call (x K sequences)
    system_prompt: str | None = "You are a helpful assistant."
    yes_token: str = " Yes"
    no_token: str = " No"


def step_prompt(trace: TraceInput, index: int) -> str:
    """The R-PRM user message for step ``index`` (previous steps numbered "Step n: ...")."""
    previous = "\n".join(f"Step {n + 1}: {s}" for n, s in enumerate(trace.steps[:index]))
    return R_PRM_INSTRUCTION.format(
        question=trace.problem, previous=previous, now=trace.steps[index]
    )


def cut_at_verdict(critique: str) -> str:
    """The critique up to the verdict question, where P(Yes) is read (R-PRM's evaluation).

    >>> cut_at_verdict("ok. Verification: Is the step correct (Yes/No)? No, because")
    'ok. Verification: Is the step correct (Yes/No)?'
    >>> cut_at_verdict("rambling")
    'rambling\\nBased on your analysis. Is the answer correct (Yes/No)?'
    """
    if VERDICT_QUESTION in critique:
        return critique.split(VERDICT_QUESTION)[0] + VERDICT_QUESTION
    return critique + VERDICT_FALLBACK


def written_verdict(critique: str) -> str | None:
    """The Yes / No the critique itself wrote after the verdict question, if any."""
    m = re.search(re.escape(VERDICT_QUESTION) + r"\s*\**\s*(Yes|No)\b", critique)
    return m.group(1) if m else None


class GenerativeScorer(ForwardScorer):
    name = "generative"

    def __init__(
        self,
        model_path: str | None,
        *,
        device: str = "cpu",
        dtype: str = "auto",
        params: Mapping[str, Any] | None = None,
    ) -> None:
        p = parse_params(GenerativeParams, params, self.name)
        self.gen = p
        super().__init__(model_path, device=device, dtype=dtype, common=p)
        yes = self.tokenizer.encode(p.yes_token, add_special_tokens=False)[0]
        no = self.tokenizer.encode(p.no_token, add_special_tokens=False)[0]
        self.candidates = torch.tensor([yes, no], dtype=torch.long, device=self.device)

    def prompt_text(self, trace: TraceInput, index: int) -> str:
        messages = []
        if self.gen.system_prompt is not None:
            messages.append({"role": "system", "content": self.gen.system_prompt})
        messages.append({"role": "user", "content": step_prompt(trace, index)})
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def generate(self, prompts: Sequence[str]) -> list[list[str]]:
        """K sampled critiques per prompt; seeded, without touching the global RNG."""
        p = self.gen
        out: list[list[str]] = []
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(p.seed)
            for start in range(0, len(prompts), p.generation_batch_size):
                chunk = prompts[start : start + p.generation_batch_size]
                self.tokenizer.padding_side = "left"  # generation continues from the right end
                enc = self.tokenizer(
                    list(chunk), add_special_tokens=False, padding=True, return_tensors="pt"
                ).to(self.device)
                sampled = self.model.generate(
                    **enc,
                    do_sample=p.temperature > 0,
                    temperature=p.temperature if p.temperature > 0 else None,
                    top_p=p.top_p if p.temperature > 0 else None,
                    max_new_tokens=p.max_new_tokens,
                    num_return_sequences=p.k,
                    pad_token_id=self.pad_id,
                )  # (len(chunk) * K, prompt + new)
                new = sampled[:, enc["input_ids"].shape[1] :]
                texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
                out.extend(texts[i * p.k : (i + 1) * p.k] for i in range(len(chunk)))
        return out

    def encode(self, trace: TraceInput) -> Encoded:  # pragma: no cover - not used per trace
        raise NotImplementedError("the generative scorer encodes critiques, see score()")

    def rows(
        self,
        input_ids: torch.Tensor,  # (B, T)
        attention_mask: torch.Tensor,  # (B, T)
        batch_index: torch.Tensor,  # (N,)
        token_index: torch.Tensor,  # (N,)
    ) -> torch.Tensor:
        hidden = self.model.get_decoder()(
            input_ids=input_ids, attention_mask=attention_mask
        ).last_hidden_state  # (B, T, H)
        logits = self.model.get_output_embeddings()(hidden[batch_index, token_index])  # (N, V)
        return logits[:, self.candidates]  # (N, 2): Yes, No

    def activate(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.softmax(rows.float(), dim=-1)[:, 0]  # (N,) P(Yes)

    def score(self, traces: Sequence[TraceInput]) -> list[TraceScores]:
        from scoring.prm.batching import gather_rows

        slots = [(t, i) for t, trace in enumerate(traces) for i in range(len(trace.steps))]
        prompts = [self.prompt_text(traces[t], i) for t, i in slots]
        critiques = self.generate(prompts)
        verdict_inputs: list[Encoded] = []
        for prompt, texts in zip(prompts, critiques, strict=True):
            for text in texts:
                ids = self.tokenizer(prompt + cut_at_verdict(text), add_special_tokens=False)[
                    "input_ids"
                ]
                verdict_inputs.append(Encoded(list(ids), [len(ids) - 1]))
        rows = gather_rows(
            verdict_inputs,
            self.rows,
            pad_id=self.pad_id,
            max_tokens=self.params.max_tokens,
            max_batch_size=self.max_batch_size,
            device=self.device,
        )
        p_yes = [float(self.activate(r)[0]) for r in rows]
        per_trace: list[list[StepScoreOut]] = [[] for _ in traces]
        k = self.gen.k
        for n, ((t, _), texts) in enumerate(zip(slots, critiques, strict=True)):
            probs = p_yes[n * k : (n + 1) * k]
            details = {
                "critiques": list(texts),
                "p_yes": probs,
                "verdicts": [written_verdict(c) for c in texts],
            }
            per_trace[t].append(StepScoreOut(sum(probs) / len(probs), details))
        return [
            TraceScores(trace.key, steps) for trace, steps in zip(traces, per_trace, strict=True)
        ]
