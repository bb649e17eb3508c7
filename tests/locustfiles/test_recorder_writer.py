"""The row writer: tuples to Arrow batches, the stream file, compaction, fail closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from locustfiles.batch import Batch
from locustfiles.requestwriter import (
    ROW_COLUMNS,
    RequestFileWriter,
    RowBuffer,
    encode,
    stream_schema,
)
from reports.columns import COLUMNS, STREAM_SUFFIX, SUFFIX, arrow_schema
from reports.requestfile import read_request_table


def row(i: int, **changes: Any) -> tuple[Any, ...]:
    values: dict[str, Any] = {
        "ts": 1000.0 + i, "response_time_ms": 2.5, "session_id": f"s{i % 3}",
        "user_class": "StickyUser", "name": "/", "status": 200, "container_id": f"ta-{i % 2}",
        "cache": None, "error": None, "affinity": "session", "ttfb_ms": None, "ttft_ms": None,
        "tokens": None, "max_gap_ms": None}
    values.update(changes)
    return tuple(values[c] for c in ROW_COLUMNS)


def buffered(rows: list[tuple[Any, ...]]) -> RowBuffer:
    buffer = RowBuffer()
    for r in rows:
        buffer.add(r)
    return buffer


def columns(rows: list[tuple[Any, ...]]) -> tuple[list[list[Any]], list[Any]]:
    """As a worker ships them."""
    return buffered(rows).take()


def as_dicts(rows: list[tuple[Any, ...]], worker: str = "local") -> list[dict[str, Any]]:
    return [{**dict(zip(ROW_COLUMNS, r, strict=True)), "worker": worker} for r in rows]


def test_encode_keeps_every_value_and_null() -> None:
    rows = [row(0), row(1, cache="hit", error="body: not JSON", affinity=None),
            row(2, session_id=None, container_id=None, status=0, user_class=None),
            row(3, ttfb_ms=1.5, ttft_ms=9.0, tokens=32, max_gap_ms=12.0, name="POST /generate"),
            row(4, session_id="", error="ünïcödé ✓"), row(5, response_time_ms=7)]
    batch = encode(buffered(rows), [("local", len(rows))], stream_schema())
    got = batch.to_pylist()
    want = as_dicts(rows)
    want[5]["response_time_ms"] = 7.0
    assert got == [{c: w[c] for c in COLUMNS} for w in want]
    assert batch.schema == stream_schema()


def test_a_stray_value_from_a_users_own_event_becomes_null_not_an_error() -> None:
    rows = [row(0, tokens="many"), row(1, tokens=5)]
    got = encode(buffered(rows), [("local", 2)], stream_schema()).column("tokens").to_pylist()
    assert got == [None, 5]


def test_the_worker_column_follows_the_runs(tmp_path: Path) -> None:
    writer = RequestFileWriter(str(tmp_path / "m"), worker="?")
    writer.extend(*columns([row(0), row(1)]), "w1")
    writer.extend(*columns([row(2)]), "w2")
    writer.extend(*columns([row(3)]), "w1")
    writer.close()
    table = pq.read_table(tmp_path / f"m{SUFFIX}")
    assert table.column("worker").to_pylist() == ["w1", "w1", "w2", "w1"]


def test_rows_added_before_a_shipment_keep_the_writers_own_worker(tmp_path: Path) -> None:
    writer = RequestFileWriter(str(tmp_path / "m"))
    writer.buffer.add(row(0))
    writer.extend(*columns([row(1)]), "w1")
    writer.flush()
    writer.buffer.add(row(2))  # after a flush the writer's worker is the last one's
    writer.close()
    table = pq.read_table(tmp_path / f"m{SUFFIX}")
    assert table.column("worker").to_pylist() == ["local", "w1", "w1"]


def test_flushes_append_batches_and_close_compacts_them(tmp_path: Path) -> None:
    prefix = str(tmp_path / "run")
    writer = RequestFileWriter(prefix, batch_rows=4)
    rows = [row(i) for i in range(10)]
    for r in rows[:3]:
        writer.buffer.add(r)
    writer.flush()
    writer.extend(*columns(rows[3:]), "local")  # 7 rows at once: past batch_rows, one flush
    assert (writer.batches, writer.written, len(writer.buffer)) == (2, 3 + 7, 0)
    midway = read_request_table(prefix)  # what a crash now would leave
    assert midway.path == Path(prefix + STREAM_SUFFIX) and midway.table.num_rows == 10
    writer.close()
    writer.close()
    assert not Path(prefix + STREAM_SUFFIX).exists()
    final = pq.read_table(prefix + SUFFIX)
    assert final.schema.equals(arrow_schema())
    assert final.to_pylist() == as_dicts(rows)
    assert read_request_table(prefix).notes == []


def test_a_new_run_removes_the_files_of_an_earlier_one(tmp_path: Path) -> None:
    prefix = str(tmp_path / "run")
    old = RequestFileWriter(prefix)
    old.buffer.add(row(0))
    old.close()
    new = RequestFileWriter(prefix)
    new.buffer.add(row(1))
    new.flush()  # then the new run is killed: its stream must be what is read
    assert not Path(prefix + SUFFIX).exists()
    assert read_request_table(prefix).table.column("ts").to_pylist() == [1001.0]


def test_a_write_error_is_one_line_and_nothing_grows_after_it(tmp_path: Path) -> None:
    prefix = str(tmp_path / "run")
    failures: list[str] = []
    writer = RequestFileWriter(prefix, batch_rows=100, on_failure=failures.append)
    writer.buffer.add(row(0))
    writer.flush()
    writer._file.close()  # the disk goes away under the open file
    for i in range(1000):
        writer.buffer.add(row(i))
        if len(writer.buffer) >= writer.batch_rows:
            writer.flush()
        assert len(writer.buffer) < writer.batch_rows
    writer.close()
    assert len(failures) == 1 and failures[0].startswith(f"cannot write {prefix}{STREAM_SUFFIX}: ")
    assert "\n" not in failures[0]
    assert (writer.written, writer.dropped) == (1, 1000)
    assert read_request_table(prefix).table.num_rows == 1  # the rows before it stay readable
    assert not Path(prefix + SUFFIX).exists()


def test_a_final_file_that_cannot_be_written_leaves_the_stream(tmp_path: Path) -> None:
    prefix = str(tmp_path / "run")
    failures: list[str] = []
    writer = RequestFileWriter(prefix, on_failure=failures.append)
    writer.buffer.add(row(0))
    writer.flush()
    Path(prefix + SUFFIX + ".tmp").mkdir()  # the temporary name is taken: the write fails
    writer.close()
    assert failures == [writer.failure]
    assert str(writer.failure).startswith(f"cannot write {prefix}{SUFFIX}.tmp: ")
    read = read_request_table(prefix)
    assert read.path == Path(prefix + STREAM_SUFFIX) and read.table.num_rows == 1


@pytest.mark.parametrize("n", [1, 5000])
def test_the_stream_schema_is_the_request_files_with_dictionary_strings(n: int) -> None:
    batch = encode(buffered([row(i) for i in range(n)]), [("local", n)], stream_schema())
    assert pa.Table.from_batches([batch]).cast(arrow_schema()).num_rows == n


def test_the_buffer_keeps_sparse_columns_as_notes() -> None:
    rows = [row(0), row(1, error="boom"), row(2, tokens=4, ttft_ms=9.5), row(3)]
    buffer = buffered(rows)
    assert len(buffer) == 4
    assert buffer.notes == [(1, "boom", None), (2, None, (None, 9.5, 4, None))]
    assert buffer.rows() == rows
    dense, notes = buffer.take()
    assert len(buffer) == 0 and buffer.notes == []
    again = RowBuffer()
    again.add(row(9))
    again.extend(dense, notes)  # after a row of its own: the notes move with their rows
    assert again.rows() == [row(9), *rows]


@pytest.mark.parametrize(("dense", "notes"), [
    ([[1.0]] * 8, []),  # a column short
    ([[1.0]] * 8 + [[]], []),  # unequal lengths
    ([[1.0]] * 9, [(3, "x", None)]),  # a note past the rows
])
def test_a_bad_shipment_is_refused_whole(dense: list[list[Any]], notes: list[Any]) -> None:
    buffer = RowBuffer()
    with pytest.raises(ValueError):
        buffer.extend(dense, notes)


@pytest.mark.parametrize("cache", [None, "hit", "cycle"])
def test_the_counted_rows_codes_make_the_same_batch(cache: str | None) -> None:
    """The strings the recorder coded when it counted the rows (batch.py) are written as the
    writer would have coded them itself: the same arrays, dictionaries and indices."""
    caches = ["hit", None, "miss"]
    rows = [row(i, session_id=None if i % 7 == 3 else f"s{i % 5}",
                container_id=None if i % 4 == 1 else f"ta-{i % 3}",
                cache=caches[i % 3] if cache == "cycle" else cache,
                status=503 if i % 4 == 1 else 200) for i in range(40)]
    buffer = buffered(rows)
    runs = [("local", len(rows))]
    mine = encode(buffer, runs, stream_schema())
    counted = Batch(buffer.dense, buffer.notes)
    counted.steps([None] * len(counted.sessions.names))  # a code added past the column's own
    counted.containers.code("ta-elsewhere")
    reused = encode(buffer, runs, stream_schema(), counted)
    assert reused.equals(mine)
    for name in ("session_id", "user_class", "container_id", "cache"):
        a, b = mine.column(name), reused.column(name)
        if isinstance(a, pa.DictionaryArray):
            assert a.dictionary.equals(b.dictionary) and a.indices.equals(b.indices), name
    part = Batch(buffer.dense, buffer.notes, 1)  # not the same rows: the writer codes its own
    assert encode(buffer, runs, stream_schema(), part).equals(mine)
