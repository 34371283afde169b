"""Token tag: a causal LM's logits for a good and a bad token at tag positions, P(good).

``style="math_shepherd"``: "Step n: ... ки" lines, logits of "+" / "-" AT each ``ки`` token,
softmax over the two, P("+") (Math-Shepherd's usage code).
``style="chat"``: RLHFlow PRMs: each step (stripped) a user turn answered "+"; the whole conversation is
teacher-forced in ONE pass and step k is scored where the model predicts the k-th "+" (the
reference code re-runs every prefix conversation and reads position -3; same numbers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from scoring.prm.backends._base import ForwardScorer
from scoring.prm.contract import ScorerError, TraceInput, parse_params
from scoring.prm.formatting import (
    Encoded,
    format_chat_turns,
    format_math_shepherd,
)
from scoring.prm.params import TokenTagParams


class TokenTagScorer(ForwardScorer):
    name = "token_tag"

    def __init__(
        self,
        model_path: str | None,
        *,
        device: str = "cpu",
        dtype: str = "auto",
        params: Mapping[str, Any] | None = None,
    ) -> None:
        p = parse_params(TokenTagParams, params, self.name)
        if p.style not in ("math_shepherd", "chat"):
            raise ScorerError(f"token_tag: unknown style {p.style!r} (math_shepherd | chat)")
        self.style_params = p
        super().__init__(model_path, device=device, dtype=dtype, common=p)
        good, bad = self._candidate_ids()
        self.candidates = torch.tensor([good, bad], dtype=torch.long, device=self.device)

    def _candidate_ids(self) -> tuple[int, int]:
        p, tok = self.style_params, self.tokenizer
        if p.good_token_id is not None and p.bad_token_id is not None:
            return p.good_token_id, p.bad_token_id
        if p.style == "math_shepherd":
            # Math-Shepherd: candidate_tokens = tokenizer.encode(f"{good} {bad}")[1:] (after BOS).
            pair = tok.encode(f"{p.good_token} {p.bad_token}", add_special_tokens=False)
            if len(pair) == 2:
                return int(pair[0]), int(pair[1])
        # RLHFlow: tokenizer.encode('+')[-1], tokenizer.encode('-')[-1].
        return int(tok.encode(p.good_token)[-1]), int(tok.encode(p.bad_token)[-1])

    def encode(self, trace: TraceInput) -> Encoded:
        p = self.style_params
        if p.style == "math_shepherd":
            return format_math_shepherd(self.tokenizer, trace, tag=p.tag, step_prefix=p.step_prefix)
        return format_chat_turns(
            self.tokenizer, trace, good=p.good_token, problem_joiner=p.problem_joiner
        )

    def rows(
        self,
        input_ids: torch.Tensor,  # (B, T)
        attention_mask: torch.Tensor,  # (B, T)
        batch_index: torch.Tensor,  # (N,)
        token_index: torch.Tensor,  # (N,)
    ) -> torch.Tensor:
        # Run the decoder, then the LM head on the N scored rows only: (B, T, vocab) logits
        # for a 150k vocabulary would be most of the memory of a long batch.
        decoder = self.model.get_decoder()
        hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        picked = hidden[batch_index, token_index]  # (N, H)
        logits = self.model.get_output_embeddings()(picked)  # (N, vocab)
        return logits[:, self.candidates]  # (N, 2): good, bad

    def activate(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.softmax(rows.float(), dim=-1)[:, 0]  # (N,) P(good)
