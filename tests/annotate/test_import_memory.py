"""Issue 11, item 8: an import's memory is bounded, not a multiple of the file's size.

The file is read twice (check every record, then write in chunks); neither pass holds the file or
its parsed records. Measured with tracemalloc (Python's own allocations) on generated
ProcessBench-like files; the chunk bound is made small so that a test-sized file spans many chunks.
"""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from annotate import imports, rendered, signals
from annotate.formats import base
from annotate.imports import ImportFileError, traces_import
from annotate.models import Annotation, Step, Trace
from benchmarks.corpus import iter_traces
from tests.factories import make_project

pytestmark = pytest.mark.django_db(transaction=True)

DATA = Path(__file__).resolve().parents[2] / "data"


def _write(path: Path, traces: int, *, array: bool = False) -> int:
    records = [json.dumps(r) for r in iter_traces(traces=traces, steps_per_trace=8)]
    text = ("[\n" + ",\n".join(records) + "\n]\n") if array else "\n".join(records) + "\n"
    path.write_text(text, encoding="utf-8")
    return path.stat().st_size


def _peak_bytes(path: Path, slug: str) -> tuple[int, int]:
    project = make_project(slug=slug)
    tracemalloc.start()
    try:
        with path.open("rb") as stream:
            result = traces_import(
                project=project, stream=stream, filename=path.name, format="jsonl"
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, result.steps_created


@pytest.mark.parametrize("array", [False, True], ids=["jsonl", "json-array"])
def test_peak_memory_is_bounded_not_a_multiple_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, array: bool
) -> None:
    monkeypatch.setattr(imports, "_CHUNK_BYTES", 128 * 1024)
    monkeypatch.setattr(base, "_READ_BYTES", 64 * 1024)  # a JSON array's blocks (1 MiB by default)
    # The import's own memory: the labelling-queue refresh it announces runs on a worker (here it
    # would run eagerly, inside the measurement).
    monkeypatch.setattr(signals.traces_imported, "send", lambda **kwargs: [])
    # Likewise the HTML fill of the new texts (annotate.rendered), sent to the bulk queue.
    sent: list[str] = []
    monkeypatch.setattr(imports, "task_send_on_commit", lambda name, *a, **k: sent.append(name))
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    _write(small, 300, array=array)
    size = _write(large, 1500, array=array)  # about 3.6 MB
    peak_small, steps_small = _peak_bytes(small, "small")
    peak_large, steps_large = _peak_bytes(large, "large")
    assert (steps_small, steps_large) == (2400, 12000)
    assert sent == [rendered.FILL_TASK, rendered.FILL_TASK]  # one fill per import, on a worker
    assert Step.objects.count() == 14400
    # Before: 2.6x the file (JSON Lines) and 3.9x (a JSON array): the parsed file held whole.
    # Now: a chunk and an index of ids.
    assert peak_large < size / 3, (
        f"peak {peak_large / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB file"
    )
    assert peak_large < 2 * peak_small + 512 * 1024


def test_a_bad_record_after_many_chunks_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "_CHUNK_BYTES", 16 * 1024)
    path = tmp_path / "bad.jsonl"
    _write(path, 200)
    with path.open("a", encoding="utf-8") as f:
        f.write('{"id": "x", "problem": "p", "steps": "not a list"}\n')
    project = make_project(slug="bad")
    with pytest.raises(ImportFileError) as err, path.open("rb") as stream:
        traces_import(project=project, stream=stream, filename="bad.jsonl", format="jsonl")
    assert (err.value.line, err.value.field) == (201, "steps")
    assert Trace.objects.count() == 0


def test_prm800k_passes_of_one_solution_in_different_chunks_make_one_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PRM800K repeats a solution once per labeler pass; chunks must not split it in two."""
    data = (DATA / "prm800k_sample.jsonl").read_bytes()
    whole = make_project(slug="whole")
    expected = traces_import(project=whole, stream=io.BytesIO(data), filename="a", format="prm800k")
    monkeypatch.setattr(imports, "_CHUNK_BYTES", 1)  # one record a chunk
    chunked = make_project(slug="chunked")
    result = traces_import(project=chunked, stream=io.BytesIO(data), filename="a", format="prm800k")
    fields = ("traces_created", "traces_skipped", "steps_created", "annotations_created")
    assert [getattr(result, f) for f in fields] == [getattr(expected, f) for f in fields]
    assert Annotation.objects.filter(trace__project=chunked).count() == expected.annotations_created


def _refusal(data: bytes) -> ImportFileError:
    project = make_project(slug="limits")
    with pytest.raises(ImportFileError) as err:
        traces_import(project=project, stream=io.BytesIO(data), filename="f.jsonl", format="jsonl")
    assert Trace.objects.count() == 0
    return err.value


GOOD = {"id": "a", "problem": "1 + 1?", "steps": ["1 + 1 = 2"]}


def test_metadata_nested_too_deep_is_refused_naming_line_and_path(settings: Any) -> None:
    settings.STEPLENS_IMPORT_MAX_DEPTH = 6
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(6):
        deep = {"x": deep}
    lines = [json.dumps(GOOD), json.dumps({**GOOD, "id": "b", "metadata": {"run": deep}})]
    err = _refusal("\n".join(lines).encode())
    assert (err.line, err.field) == (2, "metadata.run.x.x.x.x")
    assert "nested deeper than 6 levels (STEPLENS_IMPORT_MAX_DEPTH)" in err.message


def test_metadata_too_large_is_refused_naming_the_field(settings: Any) -> None:
    settings.STEPLENS_IMPORT_MAX_METADATA_BYTES = 1000
    record = {**GOOD, "metadata": {"blob": "x" * 2000}}
    err = _refusal(json.dumps(record).encode())
    assert (err.line, err.field) == (1, "metadata")
    assert "more than 1,000 (STEPLENS_IMPORT_MAX_METADATA_BYTES)" in err.message


@pytest.mark.parametrize("array", [False, True], ids=["jsonl", "json-array"])
def test_a_record_over_the_size_limit_is_refused_before_it_is_read_whole(
    settings: Any, array: bool
) -> None:
    settings.STEPLENS_IMPORT_MAX_RECORD_BYTES = 5000
    records = [json.dumps(GOOD), json.dumps({**GOOD, "id": "b", "problem": "y" * 9000})]
    data = ("[\n" + ",\n".join(records) + "\n]") if array else "\n".join(records)
    err = _refusal(data.encode())
    assert err.line == (3 if array else 2)  # an array's records start on line 2
    assert "longer than 5,000 bytes (STEPLENS_IMPORT_MAX_RECORD_BYTES)" in err.message


class _Pipe:
    """A stream that can be read once, like standard input: no seek."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._data.read(n)

    def seekable(self) -> bool:
        return False


def test_a_stream_that_cannot_seek_is_read_twice_through_a_temporary_file() -> None:
    lines = [json.dumps({**GOOD, "id": str(i)}) for i in range(3)] + [json.dumps(GOOD)]
    project = make_project(slug="pipe")
    result = traces_import(
        project=project, stream=_Pipe("\n".join(lines).encode()), filename="-", format="jsonl"
    )  # type: ignore[arg-type]
    assert (result.traces_created, result.traces_skipped) == (4, 0)
