"""Training a PRM from TRL rows (scoring.prm.training): the labels sit where the backend reads,
the checkpoint reloads through the engine and scores as the model did in memory, a learnable
task is learnt, a cancelled run leaves nothing behind, and the package never imports Django."""

from __future__ import annotations

import doctest
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from scoring.prm import TraceInput, build_scorer
from scoring.prm.formatting import format_trl, prefix_trace
from scoring.prm.training import (
    IGNORE_INDEX,
    TrainingCancelled,
    TrainingError,
    TrainParams,
    TrainParamsError,
    evaluate_rows,
    learning_curve,
    load_base,
    make_trainer,
    processbench_rows,
    save_checkpoint,
    save_tiny_base,
    scorer_spec,
    tokenize_row,
    train_prm,
    write_model_card,
)

from .conftest import REPO_ROOT

HEADS = ["token_classification", "qwen_extra0"]
# Seconds on two CPU cores: a model a few thousand parameters wide.
TINY = {"tiny_vocab_size": 600, "tiny_hidden_size": 32, "tiny_num_layers": 1, "device": "cpu"}


def fast_params(**overrides: Any) -> TrainParams:
    values: dict[str, Any] = {
        "epochs": 1.0,
        "learning_rate": 3e-3,
        "batch_tokens": 4096,
        "max_length": 512,
        **TINY,
    }
    return TrainParams(**{**values, **overrides})


@pytest.fixture(scope="module")
def rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The 80 real ProcessBench records of the sample as TRL rows (first-error policy)."""
    return processbench_rows(records)


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, Any]]) -> dict[str, Path]:
    """An untrained tiny base per head, built from the rows' text."""
    root = tmp_path_factory.mktemp("train-bases")
    return {head: save_tiny_base(root / head, rows, fast_params(head=head)) for head in HEADS}


@pytest.fixture(scope="module")
def windowed_bases(
    tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, Any]]
) -> dict[str, Path]:
    """An untrained tiny base per head whose first of two layers attends to a 16-token window
    (rows are far longer, so the window matters)."""
    root = tmp_path_factory.mktemp("windowed-bases")
    return {
        head: save_tiny_base(
            root / head,
            rows,
            fast_params(head=head, tiny_num_layers=2, tiny_sliding_window=16),
        )
        for head in HEADS
    }


def toy_rows(n: int) -> list[dict[str, Any]]:
    """A task a one-layer model learns in seconds: a step is wrong exactly when it says so."""
    out = []
    for i in range(n):
        steps = ["we add the numbers", "so it is fine", "this step is wrong", "then we finish"]
        k = 2 + i % 3
        labels = [("wrong" not in s) for s in steps[:k]]
        out.append(
            {
                "prompt": f"problem {i}: add {i} and {i + 1}",
                "completions": steps[:k],
                "labels": labels,
            }
        )
    return out


# --- params -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("learning_rate", -1e-5),
        ("learning_rate", 3.0),
        ("batch_tokens", 0),
        ("max_length", 1),
        ("seed", -1),
        ("head", "value_head"),
        ("lr_scheduler", "sometimes"),
        ("warmup_ratio", 1.5),
        ("device", "tpu"),
        ("step_separator", ""),
        ("tiny_hidden_size", 30),
        ("tiny_num_heads", 0),
        ("wrong_class_weight", -1.0),
    ],
)
def test_an_invalid_parameter_is_refused_naming_its_field(field, value):
    with pytest.raises(TrainParamsError) as info:
        TrainParams(**{field: value})
    assert info.value.field == field
    assert f"TrainParams.{field}" in str(info.value)


def test_a_batch_budget_smaller_than_one_row_is_refused():
    with pytest.raises(TrainParamsError, match="batch_tokens.*max_length"):
        TrainParams(batch_tokens=1000, max_length=2048)


def test_params_round_trip_and_an_unknown_stored_key_is_named():
    params = TrainParams(head="qwen_extra0", epochs=2.5)
    assert TrainParams.from_dict(json.loads(json.dumps(params.as_dict()))) == params
    with pytest.raises(TrainParamsError, match="learning_rat") as info:
        TrainParams.from_dict({"learning_rat": 1e-5})
    assert info.value.field == "learning_rat"


# --- where the labels sit -----------------------------------------------------------------------


@pytest.mark.parametrize("head", HEADS)
def test_labels_sit_exactly_where_the_backend_reads(head, bases, rows):
    params = fast_params(head=head, max_length=100_000, batch_tokens=100_000)
    _, tokenizer = load_base(bases[head], params)
    backend, scorer_params = scorer_spec(params)
    scorer: Any = build_scorer(backend, model_path=str(bases[head]), params=scorer_params)
    for row in rows[:30]:
        tokenized = tokenize_row(tokenizer, row, params)
        enc = scorer.encode(TraceInput(row["prompt"], row["completions"]))
        labelled = [i for i, v in enumerate(tokenized.labels) if v != IGNORE_INDEX]
        assert labelled == enc.positions
        assert tokenized.input_ids == enc.input_ids[: enc.positions[-1] + 1]
        assert [tokenized.labels[i] for i in labelled] == [int(v) for v in row["labels"]]


def test_the_trl_head_is_tokenised_by_prm_trainer_as_the_backend_formats_it(bases, rows):
    from trl.experimental.prm import PRMTrainer

    params = fast_params(max_length=100_000, batch_tokens=100_000)
    _, tokenizer = load_base(bases["token_classification"], params)
    for row in rows[:20]:
        ours = tokenize_row(tokenizer, row, params)
        trl = PRMTrainer.tokenize_row(row, tokenizer, "\n", None, None, False, False)
        assert (ours.input_ids, ours.labels) == (trl["input_ids"], trl["labels"])
        enc = format_trl(tokenizer, TraceInput(row["prompt"], row["completions"]))
        assert [i for i, v in enumerate(trl["labels"]) if v != IGNORE_INDEX] == enc.positions


@pytest.mark.parametrize("head", HEADS)
def test_a_long_row_keeps_its_leading_whole_steps(head, bases, rows):
    params = fast_params(head=head, max_length=100_000, batch_tokens=100_000)
    _, tokenizer = load_base(bases[head], params)
    backend, scorer_params = scorer_spec(params)
    scorer: Any = build_scorer(backend, model_path=str(bases[head]), params=scorer_params)
    row = max(rows, key=lambda r: len(r["completions"]))
    full = tokenize_row(tokenizer, row, params)
    positions = [i for i, v in enumerate(full.labels) if v != IGNORE_INDEX]
    cut = tokenize_row(tokenizer, row, fast_params(head=head, max_length=positions[2] + 1))
    assert cut.truncated and cut.steps == 3
    shorter = scorer.encode(prefix_trace(TraceInput(row["prompt"], row["completions"]), 3))
    assert cut.input_ids == shorter.input_ids[: shorter.positions[-1] + 1]
    assert tokenize_row(tokenizer, row, fast_params(head=head, max_length=positions[0])) is None


# --- training, saving, reloading -------------------------------------------------------------


@pytest.mark.parametrize("head", HEADS)
def test_a_trained_checkpoint_reloads_through_the_backend_with_the_same_scores(
    head, bases, rows, tmp_path
):
    params = fast_params(head=head, learning_rate=1e-2)
    model, tokenizer = load_base(bases[head], params)
    tokenized = [tokenize_row(tokenizer, row, params) for row in rows[:24]]
    trainer, _ = make_trainer(
        model,
        [t for t in tokenized if t is not None],
        params,
        device="cpu",
        scratch=tmp_path / "scratch",
        pad_id=tokenizer.pad_token_id,
        tokenizer=tokenizer,
    )
    trainer.train()
    model = trainer.model.eval()
    backend, scorer_params = scorer_spec(params)
    save_checkpoint(model, tokenizer, tmp_path / "ckpt")
    scorer: Any = build_scorer(backend, model_path=str(tmp_path / "ckpt"), params=scorer_params)
    traces = [TraceInput(r["prompt"], r["completions"]) for r in rows[30:36]]
    from_disk = [r.scores for r in scorer.score(traces)]
    with torch.inference_mode():
        for trace, scores in zip(traces, from_disk, strict=True):
            enc = scorer.encode(trace)
            logits = model(input_ids=torch.tensor([enc.input_ids])).logits[0]  # (T, 2)
            expected = torch.softmax(logits[enc.positions], dim=-1)[:, 1]
            assert scores == pytest.approx(expected.tolist(), abs=1e-5)
    assert type(scorer.model).__name__ == type(model).__name__


@pytest.mark.parametrize("head", HEADS)
def test_loss_goes_down_and_the_task_is_learnt(head, tmp_path):
    train = toy_rows(48)
    progress: list[dict[str, Any]] = []
    params = fast_params(
        head=head, epochs=6.0, learning_rate=1e-2, batch_tokens=256, max_length=256
    )
    result = train_prm(
        rows=train,
        base="tiny",
        output_dir=tmp_path / "out",
        params=params,
        on_progress=progress.append,
        snapshot_sha256="ab" * 32,
    )
    losses = [p["loss"] for p in result.loss_curve]
    assert progress == result.loss_curve and len(losses) == result.optimizer_steps
    assert progress[-1]["step"] == progress[-1]["total_steps"] and progress[-1]["tokens_seen"] > 0
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.5 * first
    metrics = evaluate_rows(
        result.output_dir, toy_rows(12), backend=result.backend, scorer_params=result.scorer_params
    )
    assert metrics["step_auroc"] > 0.95
    assert result.tokens_seen > 0 and result.tokens_per_second > 0


@pytest.mark.parametrize("head", HEADS)
def test_the_wrong_class_weight_scales_the_wrong_steps_in_the_loss(head, bases, rows, tmp_path):
    from scoring.prm.training import collate

    losses = {}
    for weight in (1.0, 3.0):
        params = fast_params(head=head, wrong_class_weight=weight)
        model, tokenizer = load_base(bases[head], params)
        kept = [t for t in (tokenize_row(tokenizer, r, params) for r in rows[:8]) if t is not None]
        trainer, _ = make_trainer(
            model,
            kept,
            params,
            device="cpu",
            scratch=tmp_path / f"scratch-{weight}",
            pad_id=tokenizer.pad_token_id,
            tokenizer=tokenizer,
        )
        batch = collate(
            [{"input_ids": t.input_ids, "labels": t.labels} for t in kept],
            pad_id=tokenizer.pad_token_id,
        )
        with torch.no_grad():
            loss = trainer.compute_loss(trainer.model, dict(batch))
            logits = trainer.model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits
        labels = batch["labels"].flatten()
        picked = labels != IGNORE_INDEX
        nll = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1)[picked], labels[picked], reduction="none"
        )
        w = torch.where(labels[picked] == 0, weight, 1.0)
        assert 0 < int((labels[picked] == 0).sum()) < int(picked.sum())
        assert float(loss) == pytest.approx(float((w * nll).sum() / w.sum()), rel=1e-4)
        losses[weight] = float(loss)
    assert losses[3.0] != pytest.approx(losses[1.0], rel=1e-3)
    with pytest.raises(TrainParamsError) as info:
        TrainParams(wrong_class_weight=0)
    assert info.value.field == "wrong_class_weight"


def test_the_checkpoint_folder_holds_config_weights_tokenizer_and_a_model_card(tmp_path):
    result = train_prm(
        rows=toy_rows(12),
        base="tiny",
        output_dir=tmp_path / "out",
        params=fast_params(),
        snapshot_sha256="cd" * 32,
    )
    names = {p.name for p in result.output_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= names
    assert not any(n.endswith(".bin") for n in names) and ".owner" not in names
    card = (result.output_dir / "README.md").read_text()
    assert "cd" * 32 in card and "not a useful PRM" in card and "Not evaluated yet" in card
    assert '"style": "trl"' in card and "| learning_rate |" in card
    write_model_card(result.output_dir, metrics={"held_out": {"step_auroc": 0.8123}})
    card = (result.output_dir / "README.md").read_text()
    assert "0.8123" in card and "Not evaluated yet" not in card
    run = json.loads((result.output_dir / "training.json").read_text())
    assert run["metrics"]["held_out"]["step_auroc"] == 0.8123 and run["train_rows"] == 12


# --- cancelling, refusing --------------------------------------------------------------------


def test_should_stop_cancels_cleanly_and_leaves_no_half_written_output(tmp_path):
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 4  # a few checks before training, then one step

    progress: list[dict[str, Any]] = []
    with pytest.raises(TrainingCancelled):
        train_prm(
            rows=toy_rows(48),
            base="tiny",
            output_dir=tmp_path / "out",
            params=fast_params(epochs=5.0, batch_tokens=1024),
            on_progress=progress.append,
            should_stop=should_stop,
        )
    assert 1 <= len(progress) < 5
    assert list(tmp_path.iterdir()) == []  # neither the output nor the partial folder


def test_a_second_run_to_the_same_output_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    train_prm(rows=toy_rows(8), base="tiny", output_dir=out, params=fast_params())
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(TrainingError, match="already exists"):
        train_prm(rows=toy_rows(8), base="tiny", output_dir=out, params=fast_params())
    assert sorted(p.name for p in out.iterdir()) == before


def test_a_folder_another_live_run_writes_is_refused_and_a_dead_runs_is_taken_over(tmp_path):
    import socket

    partial = tmp_path / ".out.partial"
    partial.mkdir()
    (partial / ".owner").write_text(f"{socket.gethostname()} {os.getpid()}")
    with pytest.raises(TrainingError, match="another run"):
        train_prm(rows=toy_rows(8), base="tiny", output_dir=tmp_path / "out", params=fast_params())
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (partial / ".owner").write_text(f"{socket.gethostname()} {dead.stdout.strip()}")
    result = train_prm(
        rows=toy_rows(8), base="tiny", output_dir=tmp_path / "out", params=fast_params()
    )
    assert (result.output_dir / "model.safetensors").is_file() and not partial.exists()


def test_rows_that_are_not_trl_rows_are_refused_naming_the_row(tmp_path):
    bad = [*toy_rows(2), {"prompt": "q", "completions": ["a", "b"], "labels": [True]}]
    with pytest.raises(TrainingError, match="row 2: 2 completions but 1 labels"):
        train_prm(rows=bad, base="tiny", output_dir=tmp_path / "out", params=fast_params())
    assert not (tmp_path / "out").exists()


# --- learning curve, benchmark, imports --------------------------------------------------------


def test_learning_curve_trains_on_growing_fractions(tmp_path):
    points = learning_curve(
        rows=toy_rows(40),
        eval_rows=toy_rows(8),
        base="tiny",
        output_root=tmp_path,
        params=fast_params(epochs=2.0, learning_rate=1e-2, batch_tokens=1024),
        fractions=(0.5, 1.0),
    )
    assert [p["train_rows"] for p in points] == [20, 40]
    assert all(p["step_auroc"] is not None for p in points)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fraction-050", "fraction-100"]


def test_the_training_benchmark_runs_at_a_tiny_shape_on_cpu(capsys):
    from benchmarks import train_throughput

    argv = ["--tiny", "--steps", "3", "--warmup", "1", "--repeats", "1"]
    assert train_throughput.main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["benchmark"] == "train_throughput" and result["timed_steps"] == 3
    assert result["tokens_per_s"] > 0 and result["fraction_of_bound"] > 0
    assert result["non_embedding_params"] > 0


def test_the_training_engine_never_imports_django_and_its_params_need_no_torch():
    code = (
        "import sys, scoring.prm.training as t\n"
        "t.TrainParams.from_dict({'epochs': 2}); t.scorer_spec(t.TrainParams())\n"
        "t.processbench_rows([{'problem': 'q', 'steps': ['a'], 'label': -1}])\n"
        "print('torch' in sys.modules)\n"
        "t._trainer_class()\n"
        "print('torch' in sys.modules, sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-2:] == ["False", "True []"]


@pytest.mark.parametrize("name", ["scoring.prm.training", "scoring.prm.tiny"])
def test_doctests(name):
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("window", [0, 16])
def test_a_right_padded_batch_trains_the_same_without_its_padding_mask(
    head, window, bases, windowed_bases, rows
):
    """Training batches of a causal decoder go without an attention mask (faster: the model's
    unmasked causal path): a right-padded row's tokens never see the padding after them, and the
    padding has no label, so the loss and every gradient are those of the masked batch. The same
    holds with a sliding-window first layer (base ``tiny``'s shape), whose window is counted back
    from each token and so never reaches the padding after it either."""
    from scoring.prm.training import causal_decoder, collate

    params = fast_params(head=head)
    model, tokenizer = load_base((windowed_bases if window else bases)[head], params)
    if window:
        assert model.config.use_sliding_window and model.config.sliding_window == window
    assert causal_decoder(model)
    kept = [t for t in (tokenize_row(tokenizer, r, params) for r in rows[:6]) if t is not None]
    items = [{"input_ids": t.input_ids, "labels": t.labels} for t in kept]
    assert len({len(t.input_ids) for t in kept}) > 1  # rows of different lengths: padding
    masked = collate(items, pad_id=tokenizer.pad_token_id)
    bare = collate(items, pad_id=tokenizer.pad_token_id, padding_mask=False)
    assert "attention_mask" not in bare and bool((masked["attention_mask"] == 0).any())
    assert int(bare["real_tokens"]) == sum(len(t.input_ids) for t in kept)
    results = []
    for batch in (masked, bare):
        model.zero_grad()
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "real_tokens")}
        logits = model(**inputs).logits
        labels = batch["labels"].flatten()
        picked = labels != IGNORE_INDEX
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1)[picked], labels[picked])
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results.append((logits.flatten(0, 1)[picked].detach(), float(loss.detach()), grads))
    (logits_a, loss_a, grads_a), (logits_b, loss_b, grads_b) = results
    assert torch.allclose(logits_a, logits_b, atol=1e-5)
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    assert len(grads_a) == len(grads_b)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads_a, grads_b, strict=True))
