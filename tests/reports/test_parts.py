"""A run written as parts (locustfiles/requestwriter.py, --request-file-part-mb/-minutes): the
rotation, the layout, the record of the recording in every part, fail closed; the reader reads
the parts as one run, and a part missing or left in stream form makes the run NOT JUDGED."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from locustfiles.partoptions import positive, writer_options
from locustfiles.requestwriter import ROW_COLUMNS, RequestFileWriter
from reports import load_run
from reports.__main__ import main
from reports.columns import PART_KEY, RECORDING_KEY, STREAM_SUFFIX, SUFFIX, part_path
from reports.errors import MissingInput
from reports.requestfile import read_request_table


def row(i: int, sessions: int = 7) -> tuple[Any, ...]:
    values: dict[str, Any] = {
        "ts": 1_700_000_000.0 + i * 0.01, "response_time_ms": 2.0 + i % 5,
        "session_id": f"s{i % sessions}", "user_class": "StickyUser", "name": "/",
        "status": 200, "container_id": f"ta-{(i % sessions) % 3}", "cache": None,
        "error": None, "affinity": "session", "ttfb_ms": None, "ttft_ms": None, "tokens": None,
        "max_gap_ms": None}
    return tuple(values[c] for c in ROW_COLUMNS)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def recording(rows: int) -> dict[str, Any]:
    return {"ended": "normally", "locust_requests": rows, "recorded": rows, "lost": [],
            "processes": {"local": {"recorded": rows, "done": True}}}


def write(prefix: str, rows: int, per_flush: int = 100, **options: Any) -> RequestFileWriter:
    writer = RequestFileWriter(prefix, **options)
    for start in range(0, rows, per_flush):
        for i in range(start, min(rows, start + per_flush)):
            writer.buffer.add(row(i))
        writer.flush()
    writer.close(recording(rows))
    return writer


def metadata(path: Path) -> dict[str, Any]:
    raw = pq.read_schema(path).metadata
    return {"recording": json.loads(raw[RECORDING_KEY.encode()]),
            "part": json.loads(raw[PART_KEY.encode()])}


def test_parts_rotate_by_size_and_read_back_as_the_one_file_would(tmp_path: Path) -> None:
    single = str(tmp_path / "single")
    parted = str(tmp_path / "parted")
    write(single, 1000)
    writer = write(parted, 1000, part_bytes=3000)
    parts = sorted(tmp_path.glob("parted_requests-*"))
    assert len(parts) >= 3 and all(p.suffix == ".parquet" for p in parts)
    assert [p.name for p in parts] == [Path(part_path(parted, i, ".parquet")).name
                                       for i in range(1, len(parts) + 1)]
    assert not list(tmp_path.glob("*.arrows")) and not Path(parted + SUFFIX).exists()
    # every part records the whole run's recording, its index, the count, its own rows
    records = [metadata(p) for p in parts]
    assert all(r["recording"] == {**recording(1000), "parts": len(parts)} for r in records)
    assert [r["part"]["index"] for r in records] == list(range(1, len(parts) + 1))
    assert {r["part"]["of"] for r in records} == {len(parts)}
    assert [r["part"]["rows"] for r in records] == [pq.read_metadata(p).num_rows for p in parts]
    assert sum(r["part"]["rows"] for r in records) == 1000
    assert writer.stream_rows == [r["part"]["rows"] for r in records]
    whole = read_request_table(single)
    read = read_request_table(parted)
    assert read.table.to_pylist() == whole.table.to_pylist()
    assert read.incomplete == [] and read.notes == []
    assert read.path == Path(parted + "_requests-*.parquet")
    assert load_run(parted).summary() | {"prefix": "", "request_file": ""} == \
        load_run(single).summary() | {"prefix": "", "request_file": ""}
    # a part's own file names the run too, as the request file does
    assert read_request_table(parts[1]).table.num_rows == 1000


def test_parts_rotate_by_time(tmp_path: Path) -> None:
    clock = Clock()
    prefix = str(tmp_path / "timed")
    writer = RequestFileWriter(prefix, part_s=60.0, clock=clock)
    for minute in range(3):
        for second in range(0, 60, 20):
            clock.now = minute * 60 + second
            for i in range(5):
                writer.buffer.add(row(minute * 100 + second + i))
            writer.flush()
    writer.close(recording(45))
    assert writer.stream_rows == [15, 15, 15]
    assert [pq.read_metadata(part_path(prefix, i, ".parquet")).num_rows
            for i in (1, 2, 3)] == [15, 15, 15]


def test_the_options_and_their_env_vars_reach_the_writer(tmp_path: Path) -> None:
    class Options:
        request_file_part_mb = 0.5
        request_file_part_minutes = 2.0

    assert writer_options(Options()) == {"part_bytes": 500_000, "part_s": 120.0}
    assert writer_options(None) == {}
    for bad in ("0", "-1", "nan", "inf", "x"):
        with pytest.raises(Exception, match="not a"):
            positive(bad)


def test_a_crash_leaves_the_stream_parts_read_as_a_run_that_did_not_end_normally(
        tmp_path: Path) -> None:
    prefix = str(tmp_path / "crash")
    writer = RequestFileWriter(prefix, part_bytes=3000)
    for i in range(500):
        writer.buffer.add(row(i))
        if len(writer.buffer) >= 50:
            writer.flush()
    writer.flush()  # then SIGKILL: no close(), the last part has no end-of-stream marker
    streams = sorted(tmp_path.glob("crash_requests-*.arrows"))
    assert len(streams) >= 2
    read = read_request_table(prefix)
    assert read.table.num_rows == 500
    assert any("did not end normally" in line for line in read.incomplete)
    assert load_run(prefix).summary()["not_judged"]
    assert main([prefix, "--out", str(tmp_path / "out")]) == 4


def test_a_part_that_cannot_be_written_fails_closed_and_keeps_every_row(
        tmp_path: Path) -> None:
    prefix = str(tmp_path / "full")
    failures: list[str] = []
    writer = RequestFileWriter(prefix, part_bytes=3000, on_failure=failures.append)
    for i in range(300):
        writer.buffer.add(row(i))
        if len(writer.buffer) >= 50:
            writer.flush()
    # the disk fails under the next part's temporary name: compaction of that part fails
    Path(part_path(prefix, 2, ".parquet") + ".tmp").mkdir()
    writer.close(recording(300))
    assert len(failures) == 1 and failures[0].startswith(
        f"cannot write {part_path(prefix, 2, '.parquet')}.tmp: ")
    # nothing measured is lost: every part stays in stream form (the compacted first part is
    # removed with the rest), and the run is read whole but not judged
    assert not list(tmp_path.glob("full_requests-*.parquet"))
    read = read_request_table(prefix)
    assert read.table.num_rows == 300 and read.incomplete
    assert main([prefix, "--out", str(tmp_path / "out")]) == 4


def test_a_part_whose_stream_cannot_be_closed_fails_closed(tmp_path: Path) -> None:
    prefix = str(tmp_path / "eio")
    failures: list[str] = []
    writer = RequestFileWriter(prefix, part_bytes=10**9, on_failure=failures.append)
    writer.buffer.add(row(0))
    writer.flush()
    writer._file.close()  # the disk goes away under the open part
    writer.part_bytes = 1  # the next flush rotates: its write fails first
    for i in range(1, 100):
        writer.buffer.add(row(i))
    writer.flush()
    writer.close(recording(100))
    assert len(failures) == 1 and part_path(prefix, 1, ".arrows") in failures[0]
    assert (writer.written, writer.dropped) == (1, 99)
    assert not list(tmp_path.glob("eio_requests-*.parquet"))
    assert read_request_table(prefix).table.num_rows == 1


def test_a_missing_part_is_lost_rows_not_judged(tmp_path: Path) -> None:
    prefix = str(tmp_path / "gap")
    write(prefix, 1000, part_bytes=3000)
    parts = sorted(tmp_path.glob("gap_requests-*.parquet"))
    parts[1].unlink()
    read = read_request_table(prefix)
    assert any(f"parts 2 of {len(parts)} missing" in line for line in read.incomplete)
    assert main([prefix, "--out", str(tmp_path / "out")]) == 4
    parts[-1].unlink()  # the last one too: the others still say how many there were
    read = read_request_table(prefix)
    assert any(f"parts 2, {len(parts)} of {len(parts)} missing" in line
               for line in read.incomplete)


def test_a_selection_of_parts_or_a_window_is_not_the_whole_run(tmp_path: Path) -> None:
    prefix = str(tmp_path / "sel")
    write(prefix, 1000, part_bytes=3000)
    n = len(list(tmp_path.glob("sel_requests-*.parquet")))
    first = pq.read_metadata(part_path(prefix, 1, ".parquet")).num_rows
    some = load_run(Path(prefix), parts=[1])
    assert some.summary()["requests"] == first
    assert any("parts 1 of 1-" in line for line in some.summary()["not_judged"])
    with pytest.raises(ValueError, match=f"no part {n + 1}"):
        load_run(prefix, parts=[n + 1])
    for bad_parts in ("1", [], [1.0], [True]):
        with pytest.raises(TypeError, match="parts="):
            load_run(prefix, parts=bad_parts)  # type: ignore[arg-type]
    for bad_window in ((1.0,), [1.0, 2.0], ("a", None), (float("nan"), None)):
        with pytest.raises(TypeError, match="window="):
            load_run(prefix, window=bad_window)  # type: ignore[arg-type]
    start = 1_700_000_000.0 + 2.0
    window = load_run(prefix, window=(start, start + 3.0))
    assert window.summary()["requests"] == 300
    assert window.requests["ts"].between(start, start + 3.0, inclusive="left").all()
    assert window.summary()["not_judged"]
    full = load_run(prefix, window=(None, None))  # no bound: every row, still a selection
    assert full.summary()["requests"] == 1000


def test_a_new_run_removes_the_parts_of_an_earlier_one(tmp_path: Path) -> None:
    prefix = str(tmp_path / "again")
    write(prefix, 1000, part_bytes=3000)
    write(prefix, 10)  # one file this time: no part of the earlier run may be read with it
    assert not list(tmp_path.glob("again_requests-*"))
    assert read_request_table(prefix).table.num_rows == 10
    os.remove(prefix + SUFFIX)
    with pytest.raises(MissingInput, match="parts"):
        read_request_table(prefix)


def test_no_rows_with_parts_leave_one_readable_empty_part(tmp_path: Path) -> None:
    prefix = str(tmp_path / "empty")
    RequestFileWriter(prefix, part_bytes=3000).close(recording(0))
    assert pq.read_metadata(part_path(prefix, 1, ".parquet")).num_rows == 0
    assert not Path(prefix + STREAM_SUFFIX).exists()


def test_a_lossy_recording_in_parts_is_not_judged(tmp_path: Path) -> None:
    """The record every part carries: rows lost by a process, or more rows recorded than the
    parts hold, make the run NOT JUDGED as they do for one file."""
    prefix = str(tmp_path / "lossy")
    writer = RequestFileWriter(prefix, part_bytes=3000)
    for i in range(300):
        writer.buffer.add(row(i))
        if len(writer.buffer) >= 50:
            writer.flush()
    lost = "worker w2 ended without its final batch: up to 2000 rows lost"
    writer.close({**recording(300), "ended": "with lost rows", "lost": [lost],
                  "processes": {"w1": {"recorded": 300, "done": True},
                                "w2": {"recorded": 0, "done": False}}})
    read = read_request_table(prefix)
    assert read.table.num_rows == 300
    assert any(lost in line for line in read.incomplete)
    assert main([prefix, "--out", str(tmp_path / "out")]) == 4
    assert main([prefix, "--out", str(tmp_path / "out"), "--accept-incomplete"]) != 4

    short = str(tmp_path / "short")
    write(short, 300, part_bytes=3000)
    parts = sorted(tmp_path.glob("short_requests-*.parquet"))
    # a part rewritten with fewer rows than the run recorded (its record kept)
    table = pq.read_table(parts[0])
    pq.write_table(table.slice(0, 10), parts[0])
    assert any("the parts hold" in line for line in read_request_table(short).incomplete)
