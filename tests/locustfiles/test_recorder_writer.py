"""The row writer: tuples to Arrow batches, the stream file, compaction, fail closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from locustfiles.requestwriter import ROW_COLUMNS, RequestFileWriter, encode, stream_schema
from reports.columns import COLUMNS, STREAM_SUFFIX, SUFFIX, arrow_schema
from reports.requestfile import read_request_table


def row(i: int, **changes: Any) -> tuple[Any, ...]:
    values = dict(zip(ROW_COLUMNS, (
        1000.0 + i, 2.5, f"s{i % 3}", "StickyUser", "/", 200, f"ta-{i % 2}", None, None,
        "session", None, None, None, None), strict=True))
    values.update(changes)
    return tuple(values[c] for c in ROW_COLUMNS)


def as_dicts(rows: list[tuple[Any, ...]], worker: str = "local") -> list[dict[str, Any]]:
    return [{**dict(zip(ROW_COLUMNS, r, strict=True)), "worker": worker} for r in rows]


def test_encode_keeps_every_value_and_null() -> None:
    rows = [row(0), row(1, cache="hit", error="body: not JSON", affinity=None),
            row(2, session_id=None, container_id=None, status=0, user_class=None),
            row(3, ttfb_ms=1.5, ttft_ms=9.0, tokens=32, max_gap_ms=12.0, name="POST /generate"),
            row(4, session_id="", error="ünïcödé ✓"), row(5, response_time_ms=7)]
    batch = encode(rows, [("local", len(rows))], stream_schema())
    got = batch.to_pylist()
    want = as_dicts(rows)
    want[5]["response_time_ms"] = 7.0
    assert got == [{c: w[c] for c in COLUMNS} for w in want]
    assert batch.schema == stream_schema()


def test_a_stray_value_from_a_users_own_event_becomes_null_not_an_error() -> None:
    rows = [row(0, tokens="many"), row(1, tokens=5)]
    got = encode(rows, [("local", 2)], stream_schema()).column("tokens").to_pylist()
    assert got == [None, 5]


def test_the_worker_column_follows_the_runs(tmp_path: Path) -> None:
    writer = RequestFileWriter(str(tmp_path / "m"), worker="?")
    writer.extend([row(0), row(1)], "w1")
    writer.extend([row(2)], "w2")
    writer.extend([row(3)], "w1")
    writer.close()
    table = pq.read_table(tmp_path / f"m{SUFFIX}")
    assert table.column("worker").to_pylist() == ["w1", "w1", "w2", "w1"]


def test_flushes_append_batches_and_close_compacts_them(tmp_path: Path) -> None:
    prefix = str(tmp_path / "run")
    writer = RequestFileWriter(prefix, batch_rows=4)
    rows = [row(i) for i in range(10)]
    writer.rows.extend(rows[:3])
    writer.flush()
    writer.extend(rows[3:], "local")  # 7 rows: one flush at 4 (the batch), 3 left
    assert (writer.batches, writer.written, len(writer.rows)) == (2, 3 + 7, 0)
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
    old.rows.append(row(0))
    old.close()
    new = RequestFileWriter(prefix)
    new.rows.append(row(1))
    new.flush()  # then the new run is killed: its stream must be what is read
    assert not Path(prefix + SUFFIX).exists()
    assert read_request_table(prefix).table.column("ts").to_pylist() == [1001.0]


def test_a_write_error_is_one_line_and_nothing_grows_after_it(tmp_path: Path) -> None:
    prefix = str(tmp_path / "run")
    failures: list[str] = []
    writer = RequestFileWriter(prefix, batch_rows=100, on_failure=failures.append)
    writer.rows.append(row(0))
    writer.flush()
    writer._file.close()  # the disk goes away under the open file
    for i in range(1000):
        writer.rows.append(row(i))
        if len(writer.rows) >= writer.batch_rows:
            writer.flush()
        assert len(writer.rows) < writer.batch_rows
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
    writer.rows.append(row(0))
    writer.flush()
    Path(prefix + SUFFIX + ".tmp").mkdir()  # the temporary name is taken: the write fails
    writer.close()
    assert failures == [writer.failure]
    assert str(writer.failure).startswith(f"cannot write {prefix}{SUFFIX}.tmp: ")
    read = read_request_table(prefix)
    assert read.path == Path(prefix + STREAM_SUFFIX) and read.table.num_rows == 1


@pytest.mark.parametrize("n", [1, 5000])
def test_the_stream_schema_is_the_request_files_with_dictionary_strings(n: int) -> None:
    batch = encode([row(i) for i in range(n)], [("local", n)], stream_schema())
    assert pa.Table.from_batches([batch]).cast(arrow_schema()).num_rows == n
