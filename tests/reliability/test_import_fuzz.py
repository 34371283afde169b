"""Imports fuzzed with hypothesis: whatever the file holds, a clear ImportFileError or a clean import.

Malformed JSON, wrong types in any field of real records, huge fields and odd unicode: the import
either succeeds with the text stored exactly, or raises ImportFileError naming the file (and the
line when there is one) with the database unchanged. Never another exception, never half a file.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate import imports
from annotate.models import Annotation, GoldLabel, Problem, Project, Step, StepLabel, Trace
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI never flakes on a new one
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _first_record(name: str) -> dict[str, Any]:
    with open(REPO_ROOT / "data" / name) as stream:
        return json.loads(stream.readline())


GENERIC = {
    "id": "demo-1",
    "problem": "What is $2^{10}$?",
    "thinking": ["Powers of two: 2, 4, 8, ... 1024.", "So the tenth is 1024."],
    "response": ["$2^{10} = 1024$.", "The answer is $\\boxed{1024}$."],
    "labels": [1, 1, 1, None],
    "reference_answer": "1024",
    "final_answer": "1024",
    "final_answer_correct": True,
    "generator": "my-model-7b",
    "subset": "toy",
    "metadata": {"temperature": 0.7},
}
TRL = {"id": 7, "prompt": "1+1?", "completions": ["1+1=2.", "So 2."], "labels": [True, True]}
# A real record of each format: the fuzzers break one part of it at a time.
BASES: dict[str, dict[str, Any]] = {
    "processbench": _first_record("processbench_sample.jsonl"),
    "prm800k": _first_record("prm800k_sample.jsonl"),
    "prmbench": _first_record("prmbench_sample.jsonl"),
    "math_shepherd": _first_record("math_shepherd_sample.jsonl"),
    "trl": TRL,
    "jsonl": GENERIC,
}

# Characters that trip up storage and rendering: NUL, lone surrogates (as \\ud800 escapes),
# bidi overrides, a byte-order mark, astral planes, private use (combining marks: category M).
SPECIAL = ["\x00", "\ud800", "\udfff", "\u202e", "\ufeff", "\U0001f600", "\ue000"]
odd_text = st.text(
    alphabet=st.characters(categories=["L", "M", "N", "P", "S", "Z", "Cc", "Cf", "Co"])
    | st.sampled_from(SPECIAL),
    max_size=40,
)
json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | odd_text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4),
    max_leaves=12,
)
huge_text = st.sampled_from([10_000, 300_000]).map(lambda n: "é" * n)


def _counts() -> tuple[int, ...]:
    return tuple(
        model.objects.count()
        for model in (Project, Problem, Trace, Step, GoldLabel, Annotation, StepLabel)
    )


def _import(content: bytes, format: str) -> None:
    """Import `content`; an ImportFileError must be clear and leave the database as it was."""
    project, _ = imports.project_for_import(slug="fuzz")
    before = _counts()
    with transaction.atomic():  # every example starts from the same database
        try:
            imports.traces_import(
                project=project, stream=io.BytesIO(content), filename="fuzz.jsonl", format=format
            )
        except imports.ImportFileError as error:
            assert str(error).startswith("fuzz.jsonl"), str(error)
            assert error.message.strip()
            assert _counts() == before, "a refused file wrote something"
        transaction.set_rollback(True)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place inside a record where a value sits (dict keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:3]):
            found += _paths(item, (*prefix, index))
    return found


def _replace(record: Any, path: tuple[Any, ...], new: Any) -> Any:
    record = json.loads(json.dumps(record))
    target = record
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return record


@st.composite
def broken_records(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> tuple[str, bytes]:
    format = draw(st.sampled_from(sorted(BASES)))
    base = BASES[format]
    path = draw(st.sampled_from(_paths(base)))
    record = _replace(base, path, draw(values))
    # ensure_ascii: lone surrogates travel as \\ud800 escapes, as another JSON writer would send them
    line = json.dumps(record, ensure_ascii=draw(st.booleans()) or _has_surrogate(record))
    return format, line.encode("utf-8", "surrogatepass")


def _has_surrogate(value: Any) -> bool:
    return any(0xD800 <= ord(ch) <= 0xDFFF for ch in json.dumps(value, ensure_ascii=False))


@pytest.mark.parametrize(
    ("special", "refused"), [("\ud800", True), ("\x00", True), ("\u202e\ufeff", False)]
)
def test_text_that_cannot_be_stored_is_refused_where_it_is(special: str, refused: bool):
    record = _replace(BASES["processbench"], ("steps", 1), f"step {special} text")
    project, _ = imports.project_for_import(slug="special")
    content = json.dumps(record).encode()
    if refused:
        with pytest.raises(imports.ImportFileError, match=r"line 1, field 'steps\[1\]'"):
            imports.traces_import(
                project=project, stream=io.BytesIO(content), filename="f", format="processbench"
            )
        assert not Trace.objects.exists()
    else:
        imports.traces_import(
            project=project, stream=io.BytesIO(content), filename="f", format="processbench"
        )
        assert Step.objects.get(index=1).text == f"step {special} text"  # stored exactly


def test_every_base_record_imports_as_it_is():
    for format, record in BASES.items():
        project, _ = imports.project_for_import(slug=f"base-{format.replace('_', '-')}")
        result = imports.traces_import(
            project=project,
            stream=io.BytesIO(json.dumps(record).encode()),
            filename="base.jsonl",
            format=format,
        )
        assert result.traces_created == 1, format


@FUZZ
@given(
    format=st.sampled_from(sorted(BASES)),
    content=st.binary(max_size=200)
    | st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
)
def test_malformed_bytes_are_refused_cleanly(format: str, content: bytes):
    _import(content, format)


@FUZZ
@given(format=st.sampled_from(sorted(BASES)), record=json_values)
def test_any_json_value_as_a_record_is_refused_or_imported_cleanly(format: str, record: Any):
    _import(json.dumps(record).encode(), format)


@FUZZ
@given(broken=broken_records(json_values))
def test_a_wrong_type_anywhere_in_a_real_record(broken: tuple[str, bytes]):
    _import(broken[1], broken[0])


@FUZZ
@given(broken=broken_records(odd_text | huge_text))
def test_odd_unicode_and_huge_fields_in_a_real_record(broken: tuple[str, bytes]):
    _import(broken[1], broken[0])


@FUZZ
@given(
    format=st.sampled_from(sorted(BASES)),
    cut=st.integers(min_value=1, max_value=400),
    good_lines=st.integers(min_value=0, max_value=3),
)
def test_a_file_cut_short_after_good_lines_writes_nothing(format: str, cut: int, good_lines: int):
    good = [json.dumps(BASES[format])] * good_lines
    truncated = json.dumps({**BASES[format], "id": "other"} if format == "jsonl" else BASES[format])
    content = "\n".join([*good, truncated[: max(1, len(truncated) - cut)]]).encode()
    _import(content, format)
