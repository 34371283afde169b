"""Generative: the model writes K critiques of each step and ends with a Yes/No verdict.

R-PRM (github.com/NJUNLP/R-PRM), as its ProcessBench evaluation runs it:
- the prompt is ``src/prompts/GenPRM/GenPRM-evaluate-new3-qwen.txt`` verbatim (the Qwen chat
  markup is written in the file, not applied by a chat template, and its last line holds a
  literal backslash-n twice: ``Reply: <|im_end|>\\n<|im_start|>assistant\\n``), filled with
  ``str.format(question, previous_steps, now_step)`` (``src/evaluate/GenPRM/evaluate-PRM-CoT.py``
  line 84); the data writes the Now Step as ``Step k: ...`` and the previous steps as such lines
  joined by newlines, or "Since the Now Step is the first step, there are no Previous Steps."
  (``src/datasets/ProcessBench/gsm8k_filtered.json``, all 1,568 rows);
- K=10 critiques per step sampled at temperature 0.95, top-p 0.95, up to 4,096 new tokens
  (``src/scripts/examples/eval-ProcessBench.sh`` lines 48-49, ``src/utils/inference.py`` line 84,
  ``src/evaluate/GenPRM/scripts/generate-PRM-CoT.sh`` line 151); each critique is cleaned as
  ``inference.py`` line 167 and ``split_text`` (lines 31-36) clean it;
- each critique is cut after "Is the step correct (Yes/No)?" (or, without it, followed by
  "\\nBased on your analysis. Is the answer correct (Yes/No)?"), appended to the prompt and re-read
  in one forward pass; P(Yes) = softmax over the logits of " Yes" and " No" at its last token; the
  step score is the mean over the K critiques (``evaluate-PRM-CoT.py`` lines 79-103).

Cost: one generation per step (x K); that is the method, not the engine: use it on few traces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from scoring.prm.backends._base import ForwardScorer
from scoring.prm.contract import (
    ScorerError,
    StepScoreOut,
    TraceError,
    TraceInput,
    TraceScores,
    parse_params,
)
from scoring.prm.formatting import Encoded, number_step
from scoring.prm.params import GenerativeParams

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


# src/prompts/GenPRM/GenPRM-evaluate-new3-qwen.txt: the system turn and the user turn's opening
# written in the file, and its last line, whose "\\n" are a backslash and an "n" (not newlines).
R_PRM_PROMPT_HEAD = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
R_PRM_PROMPT_TAIL = "<|im_end|>\\n<|im_start|>assistant\\n"
NO_PREVIOUS_STEPS = "Since the Now Step is the first step, there are no Previous Steps."
STEP_PREFIX = "Step {n}: "


def previous_steps_text(trace: TraceInput, index: int) -> str:
    """R-PRM's "Previous Steps" for step ``index``: "Step n: ..." lines, or its sentence for the
    first step.

    >>> previous_steps_text(TraceInput("q", ["a", "b", "c"]), 0)
    'Since the Now Step is the first step, there are no Previous Steps.'
    >>> previous_steps_text(TraceInput("q", ["a", "b", "c"]), 2)
    'Step 1: a\\nStep 2: b'
    """
    if index == 0:
        return NO_PREVIOUS_STEPS
    return "\n".join(number_step(STEP_PREFIX, n + 1, s) for n, s in enumerate(trace.steps[:index]))


def step_prompt(trace: TraceInput, index: int) -> str:
    """The R-PRM instruction for step ``index``: question, previous steps, "Step k: <now step>"."""
    return R_PRM_INSTRUCTION.format(
        question=trace.problem,
        previous=previous_steps_text(trace, index),
        now=number_step(STEP_PREFIX, index + 1, trace.steps[index]),
    )


def authors_prompt(trace: TraceInput, index: int) -> str:
    """The whole text R-PRM's evaluation feeds the model for step ``index`` (its prompt file,
    filled)."""
    return R_PRM_PROMPT_HEAD + step_prompt(trace, index) + R_PRM_PROMPT_TAIL


def clean_critique(text: str) -> str:
    """A generated critique as R-PRM's inference.py stores it before the verdict pass: ends
    stripped of whitespace, backslashes and "n"s (``strip("\\\\").strip("\\\\n")``), then every
    line (split on newlines and on a literal backslash-n) stripped.

    >>> clean_critique("  Analysis:  \\n  ok \\\\n fine\\\\n ")
    'Analysis:\\nok\\nfine'
    """
    text = text.strip().strip("\\").strip("\\n").strip()
    lines = [piece.strip() for line in text.split("\n") for piece in line.split("\\n")]
    return "\n".join(lines)


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


def check_sampling(p: GenerativeParams) -> None:
    """Params transformers would reject mid-run (or that make no sense) are errors up front.

    >>> check_sampling(GenerativeParams(k=10, temperature=0))
    Traceback (most recent call last):
    ...
    scoring.prm.contract.ScorerError: generative: temperature=0 is greedy decoding, which gives k=10 identical critiques; set k=1 for greedy, or a temperature > 0 (R-PRM samples k=10 at 0.95)
    """
    if p.prompt_format not in ("authors", "chat_template"):
        raise ScorerError(
            f"generative: unknown prompt_format {p.prompt_format!r} (authors | chat_template)"
        )
    if p.k < 1 or p.max_new_tokens < 1 or p.generation_batch_size < 1:
        raise ScorerError("generative: k, max_new_tokens and generation_batch_size must be >= 1")
    if p.temperature < 0 or not 0 < p.top_p <= 1:
        raise ScorerError("generative: temperature must be >= 0 and top_p in (0, 1]")
    if p.temperature == 0 and p.k > 1:
        raise ScorerError(
            f"generative: temperature=0 is greedy decoding, which gives k={p.k} identical "
            "critiques; set k=1 for greedy, or a temperature > 0 (R-PRM samples k=10 at 0.95)"
        )


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
        check_sampling(p)
        self.gen = p
        super().__init__(model_path, device=device, dtype=dtype, common=p)
        yes = self.tokenizer.encode(p.yes_token, add_special_tokens=False)[0]
        no = self.tokenizer.encode(p.no_token, add_special_tokens=False)[0]
        self.candidates = torch.tensor([yes, no], dtype=torch.long, device=self.device)

    def prompt_text(self, trace: TraceInput, index: int) -> str:
        if self.gen.prompt_format == "authors":
            return authors_prompt(trace, index)
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
                texts = [
                    clean_critique(t)
                    for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)
                ]
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
        if self.max_length is not None:
            # Before any generation, as the forward backends do: the caller drops the trace.
            for (t, i), prompt in zip(slots, prompts, strict=True):
                n = len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
                if n > self.max_length:
                    raise TraceError(
                        traces[t].key,
                        f"step {i + 1}: the prompt is {n} tokens, more than "
                        f"max_length={self.max_length}",
                    )
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
