"""The training parameters of the tiny demonstration PRM (docs/training.md, "Measured"):
`benchmarks.train_demo`'s defaults, and what `train_prm` on base tiny (and so the demo's own PRM,
`demo_setup`) starts from. Plain data: importing it loads neither torch nor Django."""

from __future__ import annotations

from typing import Any

TINY_DEMO_PARAMS: dict[str, Any] = {
    "head": "qwen_extra0",
    "epochs": 2.0,
    "learning_rate": 1e-3,
    "batch_tokens": 4096,
    "max_length": 1024,
    "seed": 0,
    "tiny_vocab_size": 4096,
    "tiny_hidden_size": 128,
    "tiny_num_layers": 2,
    "lm_pretrain_epochs": 0.5,
    "tiny_sliding_window": 0,
    "tiny_num_heads": 4,
    "wrong_class_weight": 1.0,
    "warmup_ratio": 0.05,
    "weight_decay": 0.0,
    "lr_scheduler": "linear",
    "step_separator": "\n",
}

# What a training run on base "tiny" starts from, for every parameter its request leaves out
# (snapshots.training.training_run_create: the command, the API and the form). The engine's own
# defaults suit a pre-trained base (one epoch at 1e-5) and teach a tiny model trained from
# scratch nothing. This is the configuration with the best held-out AUROC measured on all of
# ProcessBench (docs/training.md, "Measured"): no LM pre-training, 3 epochs at 2e-4, and the first
# layer attending to the last 64 tokens only (Qwen2's own sliding window: a local view of the step
# it scores), held-out AUROC 0.721 / 0.720 / 0.714 over seeds 0 / 1 / 2 (tenth session), against
# 0.696 / 0.674 / 0.676 with full attention in both layers. Its time depends on the machine: about
# 4 to 4.5 minutes on the tenth session's 2 cores (17,500-19,600 tokens/s; full attention: 20,600); without the
# window 167 s on the eighth session's, 392 s on the ninth session's AMD EPYC. The demo's PRM
# (data/demo-prm/, shipped) was trained with these.
TINY_BASE_PARAMS: dict[str, Any] = {
    **TINY_DEMO_PARAMS,
    "epochs": 3.0,
    "learning_rate": 2e-4,
    "lm_pretrain_epochs": 0.0,
    "tiny_sliding_window": 64,
}
