"""Qwen2.5-Math-PRM's architecture, built in: no ``trust_remote_code`` needed to load it.

The checkpoints (Qwen2.5-Math-PRM-7B / -72B, and PRMs fine-tuned from them) name
``Qwen2ForProcessRewardModel`` in ``config.json`` and ship their own modelling file for
``AutoModel``. The architecture is a Qwen2 decoder followed by a two-layer head,
``score = Sequential(Linear(H, H), ReLU, Linear(H, num_labels))`` applied at every position
(the same layout vLLM and SGLang implement natively); the weights are ``model.*`` and
``score.0.*`` / ``score.2.*``. Loading it with this class instead of the remote file means a
worker runs no code downloaded with the weights, and it keeps working when that file falls
behind the installed transformers.

Loaded without a head (``AutoModel`` and no remote code gives a bare ``Qwen2Model``), such a
checkpoint would silently read hidden states as logits; ``loading.load_model`` picks this class
for that architecture instead.
"""

from __future__ import annotations

from typing import Any

ARCHITECTURE = "Qwen2ForProcessRewardModel"

_CLASS: Any = None


def process_reward_model_class() -> Any:
    """The class (built on first use, so that importing this module does not import torch)."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS

    import torch
    from transformers import Qwen2Model, Qwen2PreTrainedModel
    from transformers.modeling_outputs import TokenClassifierOutput

    class Qwen2ForProcessRewardModel(Qwen2PreTrainedModel):  # type: ignore[misc]
        """Qwen2 decoder + MLP head; ``forward`` returns ``.logits`` of shape (B, T, labels)."""

        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.num_labels = config.num_labels
            self.model = Qwen2Model(config)
            hidden = config.hidden_size
            self.score = torch.nn.Sequential(
                torch.nn.Linear(hidden, hidden),
                torch.nn.ReLU(),
                torch.nn.Linear(hidden, self.num_labels),
            )
            self.post_init()

        def get_input_embeddings(self) -> Any:
            return self.model.embed_tokens

        def set_input_embeddings(self, value: Any) -> None:
            self.model.embed_tokens = value

        def forward(
            self,
            input_ids: torch.Tensor | None = None,
            attention_mask: torch.Tensor | None = None,
            **kwargs: Any,
        ) -> TokenClassifierOutput:
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **kwargs
            ).last_hidden_state
            return TokenClassifierOutput(logits=self.score(hidden))

    Qwen2ForProcessRewardModel.__module__ = __name__
    _CLASS = Qwen2ForProcessRewardModel
    return _CLASS
