"""Training a PRM from TRL stepwise rows (a snapshot's train split) into a checkpoint the engine's
step-head backend loads, plus the evaluation and learning curve that judge it. No Django.

    from scoring.prm.training import TrainParams, train_prm, evaluate_rows
    result = train_prm(rows=train_rows, base="/models/Qwen2.5-Math-1.5B", output_dir=out,
                       params=TrainParams(head="qwen_extra0", epochs=1, learning_rate=1e-5))
    metrics = evaluate_rows(result.output_dir, test_rows, backend=result.backend,
                            scorer_params=result.scorer_params)

Rows are what the TRL exporter writes: ``{"prompt": str, "completions": [str], "labels": [bool]}``
(True: the step is correct). Two heads, each trained exactly where its backend reads at scoring
time (tests/scoring/prm/test_training.py checks the positions against the backend's own
``encode``):

- ``token_classification``: TRL's layout. ``PRMTrainer.tokenize_row`` (prompt, each step + the
  ``step_separator`` ids, the label on the last token of each); ``AutoModelForTokenClassification``
  with 2 labels; scored by ``step_head`` with ``style="trl"`` and the same separator.
- ``qwen_extra0``: Qwen2.5-Math-PRM's layout. Chat template (system, user = problem, assistant =
  steps joined by ``<extra_0>`` and ending with it), the label on each ``<extra_0>``;
  ``Qwen2ForProcessRewardModel`` (decoder + 2-class ``score`` MLP); scored by ``step_head`` with
  ``style="qwen"``. Tokenised by ``formatting.format_separator_chat``, the backend's function.

Both run in TRL's ``PRMTrainer`` (trl.experimental.prm, trl 1.13; the rows are pre-tokenised so
the trainer takes them as they are), with batches packed to a token budget. Heavy libraries
(torch, transformers, trl) are imported inside the functions that need them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from scoring.prm.contract import FormattingError, TraceInput
from scoring.prm.formatting import QWEN_PRM_SEPARATOR, QWEN_PRM_SYSTEM_PROMPT

HEADS = ("token_classification", "qwen_extra0")
SCHEDULERS = ("linear", "cosine", "constant_with_warmup")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "fp32", "bf16")
IGNORE_INDEX = -100  # positions without a label (the loss skips them)
TRAINER = "trl.experimental.prm.PRMTrainer"
TINY_DEMO_NOTE = (
    "This model was trained from `tiny`, a few-layer Qwen2-shaped model with a tokenizer built "
    "offline from the training text. It demonstrates the training loop; it is not a useful PRM: "
    "shallow cues such as step length already give a step AUROC of about 0.7 on ProcessBench."
)


class TrainingError(Exception):
    """A training run could not start or could not finish (the message says why)."""


class TrainParamsError(TrainingError, ValueError):
    """A training parameter is invalid; ``field`` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"TrainParams.{field_name}: {message}")
        self.field = field_name


class TrainingCancelled(TrainingError):
    """``should_stop()`` asked the run to stop; nothing was written to the output folder."""


ProgressFn = Callable[[dict[str, Any]], None]
StopFn = Callable[[], bool]


@dataclass(frozen=True)
class TrainParams:
    """Hyperparameters of one training run (JSON-serialisable: :meth:`as_dict`/:meth:`from_dict`)."""

    epochs: float = 1.0
    learning_rate: float = 1e-5
    batch_tokens: int = 16384  # token budget of one optimizer step: rows x longest row
    max_length: int = 2048  # a longer row keeps its leading whole steps that fit
    seed: int = 0
    head: str = "token_classification"  # token_classification | qwen_extra0
    step_separator: str = "\n"  # token_classification only (TRL's PRMConfig default)
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    lr_scheduler: str = "linear"  # linear | cosine | constant_with_warmup
    max_grad_norm: float = 1.0
    gradient_checkpointing: bool = False
    device: str = "auto"  # auto (CUDA when there is one) | cpu | cuda
    dtype: str = "auto"  # auto (bf16 mixed precision on CUDA, fp32 on CPU) | fp32 | bf16
    # Base "tiny" only: the tokenizer's vocabulary, the model's shape, LM pre-training epochs.
    tiny_vocab_size: int = 4096
    tiny_hidden_size: int = 128
    tiny_num_layers: int = 2
    lm_pretrain_epochs: float = 0.0
    tiny_sliding_window: int = 0  # > 0: the first layer sees only that many recent tokens
    tiny_num_heads: int = 4  # attention heads (key/value heads: half of them, at least 1)
    # Weight of the "wrong" class (0) in the cross-entropy, "correct" (1) weighing 1: > 1 counts
    # the rare wrong steps more (both heads; 1.0 is the plain loss PRMTrainer trains with).
    wrong_class_weight: float = 1.0

    def __post_init__(self) -> None:
        def positive(name: str, value: float) -> None:
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise TrainParamsError(name, f"must be a number > 0 (got {value!r})")

        def integer(name: str, value: Any, low: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise TrainParamsError(name, f"must be an integer >= {low} (got {value!r})")

        def choice(name: str, value: Any, choices: Sequence[str]) -> None:
            if value not in choices:
                raise TrainParamsError(name, f"must be one of {', '.join(choices)} (got {value!r})")

        positive("epochs", self.epochs)
        positive("learning_rate", self.learning_rate)
        if self.learning_rate >= 1:
            raise TrainParamsError("learning_rate", f"must be < 1 (got {self.learning_rate!r})")
        integer("batch_tokens", self.batch_tokens, 1)
        integer("max_length", self.max_length, 2)
        if self.batch_tokens < self.max_length:
            raise TrainParamsError(
                "batch_tokens",
                f"must be >= max_length ({self.max_length}) so that the longest row fits "
                f"(got {self.batch_tokens})",
            )
        integer("seed", self.seed, 0)
        choice("head", self.head, HEADS)
        if not isinstance(self.step_separator, str) or not self.step_separator:
            raise TrainParamsError("step_separator", "must be a non-empty string")
        if not 0 <= self.warmup_ratio < 1:
            raise TrainParamsError("warmup_ratio", f"must be in [0, 1) (got {self.warmup_ratio!r})")
        if not self.weight_decay >= 0:
            raise TrainParamsError("weight_decay", f"must be >= 0 (got {self.weight_decay!r})")
        choice("lr_scheduler", self.lr_scheduler, SCHEDULERS)
        positive("max_grad_norm", self.max_grad_norm)
        choice("device", self.device, DEVICES)
        choice("dtype", self.dtype, DTYPES)
        integer("tiny_vocab_size", self.tiny_vocab_size, 300)
        integer("tiny_hidden_size", self.tiny_hidden_size, 8)
        integer("tiny_num_heads", self.tiny_num_heads, 1)
        if self.tiny_hidden_size % (2 * self.tiny_num_heads):
            raise TrainParamsError(
                "tiny_hidden_size",
                f"must be a multiple of 2 x tiny_num_heads ({2 * self.tiny_num_heads}): an even "
                f"head size for rotary positions (got {self.tiny_hidden_size})",
            )
        positive("wrong_class_weight", self.wrong_class_weight)
        integer("tiny_num_layers", self.tiny_num_layers, 1)
        integer("tiny_sliding_window", self.tiny_sliding_window, 0)
        if not self.lm_pretrain_epochs >= 0:
            raise TrainParamsError(
                "lm_pretrain_epochs", f"must be >= 0 (got {self.lm_pretrain_epochs!r})"
            )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TrainParams:
        """Params from a stored dict; an unknown key is an error naming it (never ignored)."""
        data = dict(data or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise TrainParamsError(unknown[0], f"unknown parameter (known: {sorted(names)})")
        return cls(**data)


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced: the checkpoint and how the engine scores with it."""

    output_dir: Path
    backend: str  # build_scorer(backend, model_path=output_dir, params=scorer_params)
    scorer_params: dict[str, Any]
    train_rows: int  # rows trained on
    skipped_rows: int  # rows whose first step does not fit in max_length
    truncated_rows: int  # rows that lost trailing steps to max_length
    labelled_steps: int
    optimizer_steps: int
    seconds: float  # the whole run: base, tokenisation, training, saving
    train_seconds: float  # the training loop only
    loss_curve: list[dict[str, Any]] = field(default_factory=list)
    tokens_seen: int = 0
    tokens_per_second: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["output_dir"] = str(self.output_dir)
        return out


# --- rows -------------------------------------------------------------------------------------


def check_rows(rows: Sequence[dict[str, Any]]) -> None:
    """Every row must be a TRL stepwise row with one boolean label per step.

    >>> check_rows([{"prompt": "q", "completions": ["a"], "labels": [True, False]}])
    Traceback (most recent call last):
    ...
    scoring.prm.training.TrainingError: row 0: 1 completions but 2 labels
    """
    for i, row in enumerate(rows):
        try:
            prompt, completions, labels = row["prompt"], row["completions"], row["labels"]
        except (KeyError, TypeError):
            raise TrainingError(
                f"row {i}: not a TRL stepwise row (prompt, completions, labels)"
            ) from None
        if not isinstance(prompt, str) or not all(isinstance(c, str) for c in completions):
            raise TrainingError(f"row {i}: prompt and completions must be strings")
        if len(completions) != len(labels):
            raise TrainingError(f"row {i}: {len(completions)} completions but {len(labels)} labels")
        if not completions:
            raise TrainingError(f"row {i}: no steps")
        if not all(isinstance(v, bool) for v in labels):
            raise TrainingError(f"row {i}: labels must be booleans")


def processbench_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """ProcessBench records as TRL rows, the exporter's first-error policy: True before the
    earliest wrong step, False at it, the steps after it dropped (their labels are unknown).

    >>> processbench_rows([{"problem": "q", "steps": ["a", "b", "c"], "label": 1}])
    [{'prompt': 'q', 'completions': ['a', 'b'], 'labels': [True, False]}]
    >>> processbench_rows([{"problem": "q", "steps": ["a", "b"], "label": -1}])[0]["labels"]
    [True, True]
    """
    rows = []
    for record in records:
        label, steps = int(record["label"]), list(record["steps"])
        kept = steps if label == -1 else steps[: label + 1]
        labels = [True] * len(kept) if label == -1 else [True] * label + [False]
        rows.append({"prompt": record["problem"], "completions": kept, "labels": labels})
    return rows


def split_by_problem(
    rows: Sequence[dict[str, Any]], *, test_fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, test): whole problems go to one side (every trace of a problem with it), chosen by
    a seeded shuffle of the distinct problems; no problem text is on both sides.

    >>> rows = [{"prompt": p} for p in "aabbccdd"]
    >>> train, test = split_by_problem(rows, test_fraction=0.25, seed=0)
    >>> len(test), {r["prompt"] for r in train} & {r["prompt"] for r in test}
    (2, set())
    """
    problems = sorted({hashlib.sha256(r["prompt"].encode()).hexdigest() for r in rows})
    random.Random(seed).shuffle(problems)
    test_keys = set(problems[: round(test_fraction * len(problems))])
    train: list[dict[str, Any]] = []
    test: list[dict[str, Any]] = []
    for row in rows:
        key = hashlib.sha256(row["prompt"].encode()).hexdigest()
        (test if key in test_keys else train).append(row)
    return train, test


def first_error_label(labels: Sequence[bool]) -> int:
    """ProcessBench's label of a row: the index of its first False step, -1 when none.

    >>> first_error_label([True, False]), first_error_label([True, True])
    (1, -1)
    """
    return next((i for i, ok in enumerate(labels) if not ok), -1)


# --- tokenisation: the labels sit where the backend reads -------------------------------------


@dataclass(frozen=True)
class TokenizedRow:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX except at the scored positions (1 correct, 0 wrong)
    steps: int  # steps kept
    truncated: bool  # trailing steps were dropped to fit max_length


def scorer_spec(params: TrainParams) -> tuple[str, dict[str, Any]]:
    """The backend and params that make the engine read a checkpoint of ``params.head`` exactly
    where it was trained.

    >>> scorer_spec(TrainParams())
    ('step_head', {'style': 'trl', 'separator': '\\n'})
    """
    if params.head == "token_classification":
        return "step_head", {"style": "trl", "separator": params.step_separator}
    return "step_head", {
        "style": "qwen",
        "separator": QWEN_PRM_SEPARATOR,
        "system_prompt": QWEN_PRM_SYSTEM_PROMPT,
    }


def tokenize_row(tokenizer: Any, row: dict[str, Any], params: TrainParams) -> TokenizedRow | None:
    """One row as model inputs and per-token labels; None when not even its first step fits.

    A row longer than ``max_length`` keeps its leading whole steps: with causal attention the
    ids up to a step's scored position are the same whether or not later steps follow, so the
    cut is exactly the shorter row (never a step without its label).
    """
    completions, labels = list(row["completions"]), list(row["labels"])
    if params.head == "token_classification":
        _quiet_trl()
        from trl.experimental.prm import PRMTrainer

        tokenized = PRMTrainer.tokenize_row(
            {"prompt": row["prompt"], "completions": completions, "labels": labels},
            tokenizer,
            params.step_separator,
            max_length=None,
            max_completion_length=None,
            train_on_last_step_only=False,
            is_eval=False,
        )
        ids, token_labels = list(tokenized["input_ids"]), list(tokenized["labels"])
        positions = [i for i, v in enumerate(token_labels) if v != IGNORE_INDEX]
    else:
        from scoring.prm.formatting import format_separator_chat

        enc = format_separator_chat(
            tokenizer,
            TraceInput(row["prompt"], completions),
            separator=QWEN_PRM_SEPARATOR,
            system_prompt=QWEN_PRM_SYSTEM_PROMPT,
        )
        ids, positions = list(enc.input_ids), list(enc.positions)
        token_labels = [IGNORE_INDEX] * len(ids)
        for position, ok in zip(positions, labels, strict=True):
            token_labels[position] = int(ok)
    if len(positions) != len(labels):
        raise FormattingError(f"{len(positions)} labelled positions for {len(labels)} steps")
    kept = sum(1 for p in positions if p < params.max_length)
    if kept == 0:
        return None
    end = positions[kept - 1] + 1
    return TokenizedRow(ids[:end], token_labels[:end], kept, kept < len(labels))


# --- batches to a token budget ------------------------------------------------------------------


class TokenBudgetBatches:
    """Batch sampler: rows grouped by length so that rows x longest row stays within the budget
    (``batching.plan_micro_batches``), the batch order reshuffled every epoch from the seed."""

    def __init__(self, lengths: Sequence[int], *, batch_tokens: int, seed: int) -> None:
        from scoring.prm.batching import plan_micro_batches

        self.batches = plan_micro_batches(lengths, max_tokens=batch_tokens)
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        order = list(range(len(self.batches)))
        random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        self.epoch += 1
        for b in order:
            yield self.batches[b]


def collate(
    rows: Sequence[dict[str, Any]], *, pad_id: int, padding_mask: bool = True
) -> dict[str, Any]:
    """Right-padded ``input_ids`` / ``attention_mask`` (B, T) and ``labels`` (B, T) padded with
    IGNORE_INDEX. Without ``padding_mask`` the batch has no ``attention_mask`` (``real_tokens``
    counts its tokens for the trainer, which takes it out before the model's forward): for a causal
    decoder (`causal_decoder`) a right-padded row's tokens never see the padding after them and
    the padding's positions carry no label, so the loss and its gradients are the same, and the
    model takes its unmasked causal path (PyTorch's SDPA without a mask: measured 17-20% more
    tokens per second on 2 cores, docs/training.md)."""
    import torch

    from scoring.prm.batching import pad_right

    input_ids, attention_mask = pad_right([r["input_ids"] for r in rows], pad_id)
    labels = torch.full(input_ids.shape, IGNORE_INDEX, dtype=torch.long)
    for i, r in enumerate(rows):
        labels[i, : len(r["labels"])] = torch.tensor(r["labels"], dtype=torch.long)
    if not padding_mask:  # how many tokens are real, for the trainer's count (not a model input)
        return {"input_ids": input_ids, "labels": labels, "real_tokens": attention_mask.sum()}
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


# Decoder families whose every layer attends causally, with positions counted from the row's
# start whatever the mask (so right padding changes nothing before it). Any other model keeps its
# padding mask.
CAUSAL_DECODERS = frozenset(
    {"qwen2", "qwen3", "qwen2_moe", "qwen3_moe", "llama", "mistral", "gemma", "gemma2", "phi3"}
)

# Of those, the families whose sliding-window attention was checked against the masked batch.
WINDOW_CHECKED = frozenset({"qwen2"})


def causal_decoder(model: Any) -> bool:
    """Whether ``model`` is a causal decoder of a family in CAUSAL_DECODERS (its config's
    ``model_type``); with a sliding window only for a family in WINDOW_CHECKED (its window counts
    back from each token, so it never reaches the padding after it either: checked against the
    masked batch in tests/scoring/prm/test_training.py; other families' windows keep their mask).

    >>> from types import SimpleNamespace as NS
    >>> causal_decoder(NS(config=NS(model_type="qwen2", sliding_window=None, use_sliding_window=False)))
    True
    >>> causal_decoder(NS(config=NS(model_type="qwen2", sliding_window=64, use_sliding_window=True)))
    True
    >>> causal_decoder(NS(config=NS(model_type="mistral", sliding_window=64, use_sliding_window=True)))
    False
    >>> causal_decoder(NS(config=NS(model_type="bert")))
    False
    """
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in CAUSAL_DECODERS:
        return False
    return model_type in WINDOW_CHECKED or not getattr(config, "use_sliding_window", False)


# --- the output folder: written aside, renamed into place -------------------------------------


def _claim(output_dir: Path) -> Path:
    """The partial folder the run writes into; refuses an output folder that already holds a
    checkpoint, or one another live run is writing (a dead run's leftover is taken over)."""
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise TrainingError(f"output folder {str(output_dir)!r} already exists and is not empty")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = output_dir.with_name(f".{output_dir.name}.partial")
    owner = f"{socket.gethostname()} {os.getpid()}"
    try:
        partial.mkdir()
    except FileExistsError:
        if not _stale(partial):
            raise TrainingError(
                f"another run is writing {str(output_dir)!r} ({str(partial)!r} exists)"
            ) from None
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
    (partial / ".owner").write_text(owner, encoding="utf-8")
    return partial


def _stale(partial: Path) -> bool:
    """A partial folder left by a process of this host that is no longer alive."""
    try:
        host, pid = (partial / ".owner").read_text(encoding="utf-8").split()
    except (OSError, ValueError):
        return False
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _publish(partial: Path, output_dir: Path) -> None:
    (partial / ".owner").unlink(missing_ok=True)
    if output_dir.is_dir():
        output_dir.rmdir()  # empty (checked by _claim); a non-empty one makes this fail loudly
    os.rename(partial, output_dir)


# --- model card --------------------------------------------------------------------------------

RUN_FILE = "training.json"


def write_model_card(output_dir: str | Path, *, metrics: dict[str, Any] | None = None) -> Path:
    """(Re)write README.md, the model card, from the run's ``training.json``; ``metrics`` (e.g.
    the audit on the snapshot's test split) are merged into that file first."""
    output_dir = Path(output_dir)
    run_file = output_dir / RUN_FILE
    run = json.loads(run_file.read_text(encoding="utf-8"))
    if metrics:
        run["metrics"] = {**run.get("metrics", {}), **metrics}
        run_file.write_text(json.dumps(run, indent=2, sort_keys=True), encoding="utf-8")
    params = run["params"]
    lines = [
        "---",
        "library_name: transformers",
        "tags: [process-reward-model, prm, steplens, trl]",
        "---",
        f"# PRM trained by steplens ({params['head']} head)",
        "",
        f"- base: `{run['base']}`",
        f"- snapshot sha256: `{run['snapshot_sha256'] or 'not given'}`",
        f"- trainer: {run['trainer']} (trl {run['versions'].get('trl')}, transformers "
        f"{run['versions'].get('transformers')}, torch {run['versions'].get('torch')})",
        f"- train rows: {run['train_rows']} ({run['labelled_steps']} labelled steps; "
        f"{run['truncated_rows']} rows cut to max_length, {run['skipped_rows']} skipped)",
        f"- optimizer steps: {run['optimizer_steps']}, tokens seen: {run['tokens_seen']}, "
        f"{run['seconds']:.1f} s",
        "",
        "## How to score with it",
        "",
        "```python",
        "from scoring.prm import TraceInput, build_scorer",
        f"scorer = build_scorer({run['backend']!r}, model_path=PATH, "
        f"params={json.dumps(run['scorer_params'])})",
        "```",
        "",
        "## Parameters",
        "",
        "| parameter | value |",
        "|---|---|",
        *[f"| {k} | `{json.dumps(v)}` |" for k, v in sorted(params.items())],
        "",
        "## Metrics",
        "",
    ]
    metrics_now = run.get("metrics") or {}
    if metrics_now:
        lines += ["```json", json.dumps(metrics_now, indent=2, sort_keys=True), "```"]
    else:
        lines.append("Not evaluated yet.")
    if run["base"] == "tiny":
        lines += ["", "## Note", "", TINY_DEMO_NOTE]
    card = output_dir / "README.md"
    card.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return card


# --- training ---------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("torch", "transformers", "trl"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "missing"
    return out


def _resolve_device(params: TrainParams) -> str:
    import torch

    if params.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if params.device == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device 'cuda' asked for, but torch sees no CUDA device")
    return params.device


def corpus_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The text of rows (problems once each, then every step): the tiny base's corpus."""
    prompts = list(dict.fromkeys(r["prompt"] for r in rows))
    return prompts + [c for r in rows for c in r["completions"]]


def save_tiny_base(
    directory: str | Path,
    rows: Sequence[dict[str, Any]],
    params: TrainParams,
    *,
    corpus_texts: Sequence[str] | None = None,
    should_stop: StopFn | None = None,
) -> Path:
    """The base ``"tiny"`` stands for, saved to ``directory``: built from ``corpus_texts`` (default:
    the rows' own text, so nothing outside the train split) with the ``tiny_*`` params; the same
    arguments give the same base (what an evaluation of the untrained base needs)."""
    from scoring.prm.tiny import save_train_base

    return save_train_base(
        directory,
        list(corpus_texts) if corpus_texts is not None else corpus_of(rows),
        kind="token_classification" if params.head == "token_classification" else "qwen2_prm",
        vocab_size=params.tiny_vocab_size,
        shape={
            "hidden_size": params.tiny_hidden_size,
            "num_layers": params.tiny_num_layers,
            "num_heads": params.tiny_num_heads,
            "num_kv_heads": max(1, params.tiny_num_heads // 2),
        },
        lm_epochs=params.lm_pretrain_epochs,
        sliding_window=params.tiny_sliding_window,
        seed=params.seed,
        should_stop=should_stop,
    )


def load_base(base_dir: Path, params: TrainParams) -> tuple[Any, Any]:
    """(model in fp32 with a fresh 2-class head of ``params.head``, tokenizer) from a local
    directory, ``from_pretrained`` with local files only."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from scoring.prm.formatting import single_token_id
    from scoring.prm.loading import _dtype_kwarg
    from scoring.prm.qwen_prm import process_reward_model_class

    if not (base_dir / "config.json").is_file():
        raise TrainingError(f"base {str(base_dir)!r} is not a model directory (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir), local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    cls = (
        AutoModelForTokenClassification
        if params.head == "token_classification"
        else process_reward_model_class()
    )
    model = cls.from_pretrained(
        str(base_dir),
        local_files_only=True,
        num_labels=2,
        ignore_mismatched_sizes=True,
        attn_implementation="sdpa",
        **{_dtype_kwarg(): torch.float32},
    )
    if params.head == "qwen_extra0":
        try:
            single_token_id(tokenizer, QWEN_PRM_SEPARATOR)
        except FormattingError:
            tokenizer.add_special_tokens({"additional_special_tokens": [QWEN_PRM_SEPARATOR]})
            model.resize_token_embeddings(len(tokenizer))
    model.config.id2label = {0: "wrong", 1: "correct"}
    model.config.label2id = {"wrong": 0, "correct": 1}
    return model, tokenizer


def _quiet_trl() -> None:
    # PRMTrainer lives in trl.experimental, which warns on import; the pin makes it stable here.
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def class_weighted_loss(logits: Any, labels: Any, wrong_class_weight: float = 1.0) -> Any:
    """Cross-entropy of (B, T, 2) logits at the labelled positions of (B, T) ``labels``, class 0
    (wrong) weighted ``wrong_class_weight`` and class 1 (correct) 1: a weighted mean, so 1.0 is
    the plain mean that PRMTrainer's token-classification loss computes.

    >>> import torch
    >>> logits = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [0.0, 0.0]]])
    >>> labels = torch.tensor([[1, 0, IGNORE_INDEX]])
    >>> round(float(class_weighted_loss(logits, labels)), 4)
    0.41
    >>> round(float(class_weighted_loss(logits, labels, 3.0)), 4)
    0.2685
    """
    import torch

    weight = None
    if wrong_class_weight != 1.0:
        weight = torch.tensor([wrong_class_weight, 1.0], device=logits.device)
    return torch.nn.functional.cross_entropy(
        logits.flatten(0, 1).float(), labels.flatten(), weight=weight, ignore_index=IGNORE_INDEX
    )


def _trainer_class() -> Any:
    _quiet_trl()
    from transformers import TrainerCallback
    from trl.experimental.prm import PRMTrainer

    class TokenBudgetPRMTrainer(PRMTrainer):  # type: ignore[misc]
        """PRMTrainer fed token-budget batches; counts the tokens it trains on. The loss is the
        model's own for a token-classification model (as PRMTrainer trains it), and the same
        cross-entropy at the labelled positions for a head whose forward takes no labels."""

        def __init__(
            self, *args: Any, batch_sampler: Any, wrong_class_weight: float = 1.0, **kwargs: Any
        ) -> None:
            self.batch_sampler = batch_sampler
            self.wrong_class_weight = wrong_class_weight
            self.tokens_seen = 0
            super().__init__(*args, **kwargs)

        def get_train_dataloader(self) -> Any:
            from torch.utils.data import DataLoader

            loader = DataLoader(
                self.train_dataset,  # type: ignore[arg-type]  # set by __init__
                batch_sampler=self.batch_sampler,
                collate_fn=self.data_collator,
            )
            return self.accelerator.prepare(loader)

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:

            real = inputs.pop("real_tokens", None)  # a batch without its padding mask
            self.tokens_seen += int(inputs["attention_mask"].sum() if real is None else real)
            if self.model_accepts_labels and self.wrong_class_weight == 1.0:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs.pop("labels")  # (B, T)
            outputs = model(**inputs)
            logits = outputs.logits  # (B, T, 2)
            loss = class_weighted_loss(logits, labels, self.wrong_class_weight)
            return (loss, outputs) if return_outputs else loss

        @property
        def model_accepts_labels(self) -> bool:
            import inspect

            forward = self.accelerator.unwrap_model(self.model).forward
            return "labels" in inspect.signature(forward).parameters

    class Hooks(TrainerCallback):  # type: ignore[misc]
        def __init__(self, on_progress: ProgressFn | None, should_stop: StopFn | None) -> None:
            self.on_progress = on_progress
            self.should_stop = should_stop
            self.cancelled = False
            self.curve: list[dict[str, Any]] = []
            self.trainer: Any = None

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.should_stop is not None and self.should_stop():
                self.cancelled = True
                control.should_training_stop = True

        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> None:
            if not logs or "loss" not in logs:
                return
            point = {
                "step": int(state.global_step),
                "total_steps": int(state.max_steps),
                "epoch": round(float(state.epoch or 0.0), 4),
                "loss": float(logs["loss"]),
                "learning_rate": float(logs.get("learning_rate", 0.0)),
                "tokens_seen": self.trainer.tokens_seen if self.trainer else 0,
            }
            self.curve.append(point)
            if self.on_progress is not None:
                self.on_progress(point)

    return TokenBudgetPRMTrainer, Hooks


def train_prm(
    *,
    rows: Sequence[dict[str, Any]],
    base: str | Path,
    output_dir: str | Path,
    params: TrainParams,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    corpus_texts: Sequence[str] | None = None,
    snapshot_sha256: str = "",
) -> TrainResult:
    """Train a PRM on TRL stepwise ``rows`` from ``base`` and save it to ``output_dir``.

    ``base``: ``"tiny"`` (built here from ``corpus_texts``, default the rows' text: see
    ``scoring.prm.tiny.save_train_base``) or a local model directory. ``on_progress`` gets a dict
    per optimizer step (step, total_steps, epoch, loss, learning_rate, tokens_seen);
    ``should_stop()`` is checked every step, and a True stops the run with TrainingCancelled.
    The checkpoint (config, safetensors weights, tokenizer, README.md model card, training.json)
    is written to a partial folder beside ``output_dir`` and renamed into place at the end, so
    ``output_dir`` never holds half a checkpoint; an existing non-empty one is refused.
    """
    started = time.perf_counter()
    output_dir = Path(output_dir)
    check_rows(rows)
    if not rows:
        raise TrainingError("no rows to train on")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # a worker never calls home
    partial = _claim(output_dir)
    try:
        result = _train(
            rows=rows,
            base=base,
            output_dir=output_dir,
            partial=partial,
            params=params,
            on_progress=on_progress,
            should_stop=should_stop,
            corpus_texts=corpus_texts,
            snapshot_sha256=snapshot_sha256,
            started=started,
        )
        _publish(partial, output_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return result


def save_checkpoint(model: Any, tokenizer: Any, directory: Path) -> None:
    """Config, fp32 safetensors weights and tokenizer, with ``save_pretrained`` (what the
    engine's ``from_pretrained`` path loads)."""
    import torch

    model.to("cpu", torch.float32).eval()
    model.save_pretrained(str(directory), safe_serialization=True)
    tokenizer.save_pretrained(str(directory))


def make_trainer(
    model: Any,
    rows: Sequence[TokenizedRow],
    params: TrainParams,
    *,
    device: str,
    scratch: Path,
    pad_id: int,
    tokenizer: Any = None,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    max_steps: int | None = None,
) -> tuple[Any, Any]:
    """(trainer, hooks): PRMTrainer over pre-tokenised rows in token-budget batches, logging every
    step to ``on_progress``, stopping when ``should_stop()``; ``max_steps`` overrides the epochs
    (the throughput benchmark). ``trainer.train()`` runs it; ``hooks.cancelled`` tells a stop."""
    _quiet_trl()
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl.experimental.prm import PRMConfig

    dataset = Dataset.from_dict(
        {"input_ids": [r.input_ids for r in rows], "labels": [r.labels for r in rows]}
    )
    sampler = TokenBudgetBatches(
        [len(r.input_ids) for r in rows], batch_tokens=params.batch_tokens, seed=params.seed
    )
    total_steps = max_steps or math.ceil(params.epochs * len(sampler))
    bf16 = params.dtype == "bf16" or (params.dtype == "auto" and device == "cuda")
    config = PRMConfig(
        output_dir=str(scratch),
        num_train_epochs=params.epochs,
        max_steps=max_steps or -1,
        learning_rate=params.learning_rate,
        weight_decay=params.weight_decay,
        warmup_steps=math.floor(params.warmup_ratio * total_steps),
        lr_scheduler_type=params.lr_scheduler,
        max_grad_norm=params.max_grad_norm,
        seed=params.seed,
        per_device_train_batch_size=1,  # unused: batches come from the token budget
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        **_checkpointing_kwarg(PRMConfig, params.gradient_checkpointing),
        bf16=bf16,
        use_cpu=device == "cpu",
        remove_unused_columns=False,
        step_separator=params.step_separator,
        max_length=None,  # rows arrive cut to whole steps
        dataloader_num_workers=0,
    )
    trainer_cls, hooks_cls = _trainer_class()
    hooks = hooks_cls(on_progress, should_stop)
    trainer = trainer_cls(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        data_collator=partial(collate, pad_id=pad_id, padding_mask=not causal_decoder(model)),
        callbacks=[hooks],
        batch_sampler=sampler,
        wrong_class_weight=params.wrong_class_weight,
    )
    hooks.trainer = trainer
    trainer.remove_callback(PrinterCallback)  # progress goes to on_progress, not stdout
    return trainer, hooks


def _checkpointing_kwarg(config_cls: Any, enabled: bool) -> dict[str, Any]:
    """transformers 5 renamed ``gradient_checkpointing`` to ``activation_checkpointing``."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    key = (
        "activation_checkpointing"
        if "activation_checkpointing" in names
        else "gradient_checkpointing"
    )
    return {key: enabled}


def _check_stop(should_stop: StopFn | None) -> None:
    if should_stop is not None and should_stop():
        raise TrainingCancelled("training cancelled")


def _train(
    *,
    rows: Sequence[dict[str, Any]],
    base: str | Path,
    output_dir: Path,
    partial: Path,
    params: TrainParams,
    on_progress: ProgressFn | None,
    should_stop: StopFn | None,
    corpus_texts: Sequence[str] | None,
    snapshot_sha256: str,
    started: float,
) -> TrainResult:

    device = _resolve_device(params)
    scratch = Path(tempfile.mkdtemp(prefix="steplens-train-"))
    try:
        if str(base) == "tiny":
            base_dir = save_tiny_base(
                scratch / "base", rows, params, corpus_texts=corpus_texts, should_stop=should_stop
            )
        else:
            base_dir = Path(base).expanduser()
        _check_stop(should_stop)
        model, tokenizer = load_base(base_dir, params)

        tokenized = [tokenize_row(tokenizer, row, params) for row in rows]
        kept = [t for t in tokenized if t is not None]
        if not kept:
            raise TrainingError(f"no row fits in max_length={params.max_length}")
        _check_stop(should_stop)
        trainer, hooks = make_trainer(
            model,
            kept,
            params,
            device=device,
            scratch=scratch / "trainer",
            pad_id=tokenizer.pad_token_id,
            tokenizer=tokenizer,
            on_progress=on_progress,
            should_stop=should_stop,
        )
        _check_stop(should_stop)
        loop_started = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - loop_started
        if hooks.cancelled:
            raise TrainingCancelled(f"training cancelled at step {trainer.state.global_step}")

        save_checkpoint(trainer.accelerator.unwrap_model(trainer.model), tokenizer, partial)
        backend, scorer_params = scorer_spec(params)
        result = TrainResult(
            output_dir=output_dir,
            backend=backend,
            scorer_params=scorer_params,
            train_rows=len(kept),
            skipped_rows=len(rows) - len(kept),
            truncated_rows=sum(t.truncated for t in kept),
            labelled_steps=sum(t.steps for t in kept),
            optimizer_steps=int(trainer.state.global_step),
            seconds=round(time.perf_counter() - started, 3),
            train_seconds=round(train_seconds, 3),
            loss_curve=hooks.curve,
            tokens_seen=trainer.tokens_seen,
            tokens_per_second=round(trainer.tokens_seen / max(train_seconds, 1e-9), 1),
        )
        run = {
            "base": "tiny" if str(base) == "tiny" else str(base),
            "snapshot_sha256": snapshot_sha256,
            "trainer": TRAINER,
            "versions": _versions(),
            "device": device,
            "params": params.as_dict(),
            "backend": backend,
            "scorer_params": scorer_params,
            "total_steps_planned": int(trainer.state.max_steps),
            "metrics": {},
            **{
                k: v
                for k, v in result.as_dict().items()
                if k not in ("output_dir", "backend", "scorer_params")
            },
        }
        (partial / RUN_FILE).write_text(json.dumps(run, indent=2, sort_keys=True), "utf-8")
        write_model_card(partial)
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --- evaluation --------------------------------------------------------------------------------


def evaluate_rows(
    model_dir: str | Path,
    rows: Sequence[dict[str, Any]],
    *,
    backend: str,
    scorer_params: dict[str, Any],
    device: str = "cpu",
    max_tokens: int = 16384,
) -> dict[str, Any]:
    """Score held-out TRL rows with the real backend (``build_scorer``, the checkpoint loaded from
    disk) and compare with their labels: step AUROC (positive = correct step), PRMBench score and
    ProcessBench F1 at threshold 0.5, ProcessBench F1 at its best threshold (each row's label is
    its first False step, -1 when none: right for first-error rows like ProcessBench's), ECE."""
    from scoring.prm import build_scorer

    check_rows(rows)
    scorer = build_scorer(
        backend,
        model_path=str(model_dir),
        device=device,
        params={**scorer_params, "max_tokens": max_tokens},
    )
    traces = [
        TraceInput(r["prompt"], list(r["completions"]), key=str(i)) for i, r in enumerate(rows)
    ]
    started = time.perf_counter()
    scores = [t.scores for t in scorer.score(traces)]
    seconds = time.perf_counter() - started
    return {**rows_metrics(rows, scores), "scoring_seconds": round(seconds, 3)}


def rows_metrics(
    rows: Sequence[dict[str, Any]], scores: Sequence[Sequence[float]], *, threshold: float = 0.5
) -> dict[str, Any]:
    """Step scores of TRL rows (one list per row, one score per completion) against the rows'
    labels: step AUROC (positive = correct step), PRMBench score and ProcessBench F1 at
    ``threshold``, ProcessBench F1 at its best threshold (a row's label is its first False step,
    -1 when none), ECE. Plain numpy: any scorer's stored scores can be compared the same way.

    >>> rows = [{"labels": [True, False]}, {"labels": [True, True]}]
    >>> m = rows_metrics(rows, [[0.9, 0.2], [0.8, 0.7]])
    >>> m["step_auroc"], m["processbench_f1"]
    (1.0, 1.0)
    """
    from scoring.prm.metrics import (
        auroc,
        best_threshold,
        calibration,
        first_error_prediction,
        prmbench,
        processbench,
    )

    flat_scores = [float(s) for trace in scores for s in trace]
    flat_labels = [bool(v) for r in rows for v in r["labels"]]
    first_errors = [first_error_label(r["labels"]) for r in rows]
    pb = processbench(first_errors, [first_error_prediction(t, threshold) for t in scores])
    best, best_f1 = best_threshold(first_errors, [list(t) for t in scores])
    calib = calibration(flat_labels, flat_scores)
    return {
        "rows": len(rows),
        "steps": len(flat_labels),
        "error_steps": flat_labels.count(False),
        "step_auroc": auroc(flat_labels, flat_scores),
        "prmbench_score": prmbench(flat_labels, flat_scores).score,
        "processbench_f1": pb.f1,
        "processbench_best_threshold": best,
        "processbench_best_f1": best_f1,
        "ece": calib.ece,
        "ece_top_label": calib.top_label_ece,
    }


def learning_curve(
    *,
    rows: Sequence[dict[str, Any]],
    eval_rows: Sequence[dict[str, Any]],
    base: str | Path,
    output_root: str | Path,
    params: TrainParams,
    fractions: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
    device: str = "cpu",
    should_stop: StopFn | None = None,
    snapshot_sha256: str = "",
) -> list[dict[str, Any]]:
    """Train on growing fractions of ``rows`` (nested subsets of one seeded shuffle, the same
    params and seed), evaluate each on ``eval_rows``; one dict per fraction (checkpoints under
    ``output_root/fraction-NNN``)."""
    for f in fractions:
        if not 0 < f <= 1:
            raise TrainingError(f"fraction {f!r} is not in (0, 1]")
    order = list(range(len(rows)))
    random.Random(params.seed).shuffle(order)
    points = []
    for f in fractions:
        subset = [rows[i] for i in order[: max(1, round(f * len(rows)))]]
        result = train_prm(
            rows=subset,
            base=base,
            output_dir=Path(output_root) / f"fraction-{round(100 * f):03d}",
            params=params,
            should_stop=should_stop,
            snapshot_sha256=snapshot_sha256,
        )
        metrics = evaluate_rows(
            result.output_dir,
            eval_rows,
            backend=result.backend,
            scorer_params=result.scorer_params,
            device=device,
        )
        write_model_card(result.output_dir, metrics={"held_out": metrics})
        points.append(
            {
                "fraction": f,
                "train_rows": result.train_rows,
                "seconds": result.seconds,
                "final_loss": result.loss_curve[-1]["loss"] if result.loss_curve else None,
                **metrics,
            }
        )
    return points
