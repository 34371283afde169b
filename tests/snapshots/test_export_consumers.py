"""The `trl` export as its consumers read it: `datasets` (JSONL and Parquet) and TRL's PRMTrainer tokenisation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from annotate.imports import traces_import
from snapshots import selectors as export_selectors
from snapshots import services as exports
from snapshots.models import ExportSnapshot
from tests.factories import make_project

pytestmark = pytest.mark.django_db

datasets = pytest.importorskip("datasets")
DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture
def cache_dir(tmp_path: Path) -> str:
    return str(tmp_path / "hf-cache")  # nothing written to the user's ~/.cache


@pytest.fixture
def snapshots() -> dict[str, ExportSnapshot]:
    project = make_project("consumers")
    with (DATA / "processbench_sample.jsonl").open("rb") as stream:
        traces_import(project=project, stream=stream, filename="pb", format="processbench")
    built = {}
    for file_format in ("jsonl", "parquet"):
        snapshot = exports.export_snapshot_create(
            project=project,
            user=None,
            name=file_format,
            format="trl",
            file_format=file_format,
            test_fraction=0.25,
            enqueue=False,
        )
        built[file_format] = exports.export_snapshot_build(snapshot_id=snapshot.pk)
    return built


def _load(snapshot: ExportSnapshot, builder: str, cache_dir: str) -> Any:
    files = {
        f["split"]: str(export_selectors.export_file_path(snapshot=snapshot, filename=f["name"]))
        for f in snapshot.files
    }
    return datasets.load_dataset(builder, data_files=files, cache_dir=cache_dir)


def test_datasets_reads_jsonl_and_parquet_alike(
    snapshots: dict[str, ExportSnapshot], cache_dir: str
) -> None:
    jsonl = _load(snapshots["jsonl"], "json", cache_dir)
    parquet = _load(snapshots["parquet"], "parquet", cache_dir)
    for split in ("train", "test"):
        assert jsonl[split].num_rows == snapshots["jsonl"].row_counts[split] > 0
        assert jsonl[split].features["labels"].feature.dtype == "bool"
        assert jsonl[split].features == parquet[split].features
        assert jsonl[split].to_list() == parquet[split].to_list()
    path = export_selectors.export_file_path(snapshot=snapshots["jsonl"], filename="train.jsonl")
    first = json.loads(path.read_text().splitlines()[0])
    assert jsonl["train"][0] == first


def _tiny_tokenizer(tmp_path: Path) -> object:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [line for line in (DATA / "processbench_sample.jsonl").read_text().splitlines()]
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=400, special_tokens=["[UNK]", "<s>"])
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="<s>")
    fast.save_pretrained(tmp_path / "tok")
    return PreTrainedTokenizerFast.from_pretrained(tmp_path / "tok")


def test_prm_trainer_tokenises_every_row_with_one_label_per_step(
    snapshots: dict[str, ExportSnapshot], tmp_path: Path, cache_dir: str
) -> None:
    prm = pytest.importorskip("trl.experimental.prm")
    tokenizer = _tiny_tokenizer(tmp_path)
    dataset = _load(snapshots["parquet"], "parquet", cache_dir)["train"]
    tokenized = dataset.map(
        prm.PRMTrainer.tokenize_row,
        fn_kwargs={
            "tokenizer": tokenizer,
            "step_separator": "\n",
            "max_length": None,
            "max_completion_length": None,
            "train_on_last_step_only": False,
            "is_eval": False,
        },
        remove_columns=dataset.features,
        # As PRMTrainer maps it (without, `datasets` casts the new labels back to bool).
        features=datasets.Features(
            {
                "labels": datasets.Sequence(datasets.Value("int64")),
                "input_ids": datasets.Sequence(datasets.Value("int64")),
            }
        ),
    )
    for row, out in zip(dataset, tokenized, strict=True):
        supervised = [label for label in out["labels"] if label != -100]
        assert supervised == [int(value) for value in row["labels"]]
        assert len(out["input_ids"]) == len(out["labels"])


def test_datasets_reads_the_label_sources_of_annotators_rows_from_jsonl_and_parquet(
    cache_dir: str,
) -> None:
    """Label policy "all": `label_sources` is one more column, the same from either file."""
    from annotate import services
    from tests.factories import make_trace, make_user

    user = make_user()
    project = make_project("sources", members={user: "annotator"})
    trace = make_trace(project, steps=("a", "b", "c"))
    services.label_first_error(user=user, step=trace.steps.get(index=1))
    services.annotation_submit(user=user, trace=trace)
    loaded = {}
    for file_format, builder in (("jsonl", "json"), ("parquet", "parquet")):
        snapshot = exports.export_snapshot_create(
            project=project,
            user=None,
            name=file_format,
            format="trl",
            labels="all",
            file_format=file_format,
            enqueue=False,
        )
        loaded[builder] = _load(
            exports.export_snapshot_build(snapshot_id=snapshot.pk), builder, cache_dir
        )
    jsonl, parquet = loaded["json"]["train"], loaded["parquet"]["train"]
    assert jsonl.features == parquet.features
    assert jsonl.to_list() == parquet.to_list()
    assert jsonl[0]["labels"] == [True, False]
    assert jsonl[0]["label_sources"] == ["filled", "first_error"]
