"""reports/requestfile.py: every form of the request file, old and new, whole or cut short."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from locustfiles.requestwriter import ROW_COLUMNS, RequestFileWriter
from reports.columns import COLUMNS, LATER_COLUMNS, STREAM_SUFFIX, SUFFIX, arrow_schema
from reports.errors import ColumnMismatch, CorruptInput, EmptyRun, MissingInput
from reports.load import read_run as load_run
from reports.requestfile import STRING, read_request_table

OLD_COLUMNS = [c for c in COLUMNS if c not in LATER_COLUMNS]


def record(i: int, **changes: Any) -> dict[str, Any]:
    values = {"ts": 1000.0 + i, "response_time_ms": 2.5, "session_id": f"s{i % 2}",
              "user_class": "StickyUser", "name": "/", "status": 200, "container_id": "ta-1",
              "cache": None, "error": None, "worker": "local", "affinity": "session",
              "ttfb_ms": None, "ttft_ms": None, "tokens": None, "max_gap_ms": None}
    values.update(changes)
    return values


def old_parquet(path: Path, n: int = 4) -> None:
    """A file of the recorder before the affinity and streaming columns."""
    rows = [{c: record(i)[c] for c in OLD_COLUMNS} for i in range(n)]
    pq.write_table(pa.Table.from_pylist(rows), path)


def stream(prefix: str, batches: list[list[dict[str, Any]]]) -> Path:
    writer = RequestFileWriter(prefix)
    for batch in batches:
        for r in batch:
            writer.buffer.add(tuple(r[c] for c in ROW_COLUMNS))
        writer.flush()
    writer._close_stream()  # as a crash right after the last flush, but with the end marker
    return Path(prefix + STREAM_SUFFIX)


def test_a_file_written_before_the_new_columns_reads_them_as_nulls(tmp_path: Path) -> None:
    old_parquet(tmp_path / f"old{SUFFIX}")
    read = read_request_table(str(tmp_path / "old"))
    assert tuple(read.table.column_names) == COLUMNS
    for name in LATER_COLUMNS:
        assert read.table.column(name).null_count == 4
    assert read.table.column("session_id").type == STRING
    assert read.notes == [f"{tmp_path}/old{SUFFIX} predates the columns affinity, ttfb_ms, "
                          "ttft_ms, tokens, max_gap_ms: read as nulls"]
    assert load_run(str(tmp_path / "old")).requests.ts.tolist()[:2] == [1000.0, 1001.0]


def test_a_csv_without_the_new_columns_reads(tmp_path: Path) -> None:
    path = tmp_path / "peer_requests.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, OLD_COLUMNS)
        writer.writeheader()
        writer.writerows({c: record(i)[c] for c in OLD_COLUMNS} for i in range(3))
    read = read_request_table(str(path))  # the file itself as well as its prefix
    assert read.table.num_rows == 3 and read.table.column("affinity").null_count == 3
    assert read.table.column("container_id").to_pylist() == ["ta-1"] * 3


def test_a_stream_cut_mid_batch_reads_its_whole_batches(tmp_path: Path) -> None:
    path = stream(str(tmp_path / "run"), [[record(i) for i in range(5)],
                                          [record(i) for i in range(5, 9)]])
    whole = path.read_bytes()
    path.write_bytes(whole[:-200])  # the crash cut the last batch (and the end marker)
    read = read_request_table(str(tmp_path / "run"))
    assert read.table.column("ts").to_pylist() == [1000.0 + i for i in range(5)]
    (note,) = read.notes
    assert note.startswith(f"run did not end normally (no run{SUFFIX}): read 1 closed batches, "
                           f"5 requests, from {path}; the batch after them was cut short")


def test_the_final_file_wins_over_a_stream_left_beside_it(tmp_path: Path) -> None:
    stream(str(tmp_path / "run"), [[record(0)]])
    pq.write_table(pa.Table.from_pylist([record(i) for i in range(3)]),
                   tmp_path / f"run{SUFFIX}")
    read = read_request_table(str(tmp_path / "run"))
    assert read.path == tmp_path / f"run{SUFFIX}" and read.table.num_rows == 3


def test_rows_without_a_session_are_accepted(tmp_path: Path) -> None:
    rows = [record(0), record(1, session_id=None, user_class=None, affinity=None)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / f"run{SUFFIX}")
    read = read_request_table(str(tmp_path / "run"))
    assert read.table.column("session_id").to_pylist() == ["s0", None]
    run = load_run(str(tmp_path / "run"))  # today's report counts sessions: it sets them apart
    assert len(run.requests) == 1
    assert run.notes == [f"{tmp_path}/run{SUFFIX}: 1 requests of users with no session id "
                         "left out"]


def test_columns_can_be_asked_for_and_constant_ones_are_built_from_statistics(
        tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pylist([record(i) for i in range(6)]),
                   tmp_path / f"run{SUFFIX}")
    read = read_request_table(str(tmp_path / "run"), ["worker", "ts", "cache"])
    assert read.table.column_names == ["worker", "ts", "cache"]
    assert read.table.column("worker").to_pylist() == ["local"] * 6
    assert read.table.column("cache").null_count == 6
    with pytest.raises(ValueError, match="no such request-file columns: nope"):
        read_request_table(str(tmp_path / "run"), ["nope"])


@pytest.mark.parametrize(("rows", "error", "message"), [
    ([], EmptyRun, "no requests"),
    ([record(0, ts=None)], CorruptInput, "1 rows with no ts"),
    ([record(0, affinity="sometimes")], CorruptInput, "affinity sometimes is none of"),
    ([record(0, response_time_ms=float("inf"))], CorruptInput, "not a finite number"),
    ([record(0, status="200")], ColumnMismatch, "column status is string, expected int32"),
])
def test_bad_files_raise_one_line_naming_the_file(tmp_path: Path, rows: list[dict[str, Any]],
                                                  error: type[Exception], message: str) -> None:
    path = tmp_path / f"run{SUFFIX}"
    table = pa.Table.from_pylist(rows) if rows else arrow_schema().empty_table()
    pq.write_table(table, path)
    with pytest.raises(error, match=message) as caught:
        read_request_table(str(tmp_path / "run"))
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(MissingInput, match=f"no request file {tmp_path}/none{SUFFIX}"):
        read_request_table(str(tmp_path / "none"))
    (tmp_path / f"junk{SUFFIX}").write_bytes(b"PAR1 not really")
    with pytest.raises(CorruptInput, match="not a readable Parquet file"):
        read_request_table(str(tmp_path / "junk"))
    (tmp_path / f"empty{STREAM_SUFFIX}").write_bytes(b"")
    with pytest.raises(EmptyRun, match="before its first flush"):
        read_request_table(str(tmp_path / "empty"))
    (tmp_path / f"bad{STREAM_SUFFIX}").write_bytes(b"\x00" * 64)
    with pytest.raises((CorruptInput, EmptyRun)):
        read_request_table(str(tmp_path / "bad"))
