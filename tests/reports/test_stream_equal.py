"""The streaming pass (reports.load.read_run: row group by row group into compact columns)
gives exactly what the in-memory path gives (reports.load.read_run_whole: the whole file as
one Arrow table, then converted; kept as the reference), on the real runs of
tests/support/recorded.py (read only): every summary figure, the sessions CSV and every
DataFrame of the API; and the same run written as parts reads as the one file does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from locustfiles.requestwriter import write_parquet
from reports import api, load, metrics
from reports.columns import CSV_SUFFIX, RECORDING_KEY, STREAM_SUFFIX, SUFFIX, part_path
from reports.config import ReportConfig
from reports.report import sessions_csv
from tests.support.recorded import RecordedPair

FRAMES = ("requests", "sessions", "containers", "changes", "epochs", "timeline", "latency")


def both(prefix: str, events: Path | None) -> tuple[api.Run, api.Run]:
    config = ReportConfig()
    streamed = api.analysed(load.read_run(prefix, events), config)
    whole = api.analysed(load.read_run_whole(prefix, events), config)
    return streamed, whole


def assert_same_run(a: api.Run, b: api.Run, ignore: tuple[str, ...] = ()) -> None:
    sa, sb = a.summary(), b.summary()
    for key in ignore:
        sa.pop(key), sb.pop(key)
    assert sa == sb
    assert sessions_csv(a.sessions) == sessions_csv(b.sessions)
    for name in FRAMES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)


def assert_same_requests(a: load.Requests, b: load.Requests) -> None:
    for name in ("ts", "response_time_ms", "status", "ttfb_ms", "ttft_ms", "tokens",
                 "max_gap_ms"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name
    for name in ("session", "user_class", "container", "cache", "error", "worker", "affinity"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.names == y.names, name
        assert np.array_equal(x.codes, y.codes), name


@pytest.mark.parametrize("side", ["sticky", "control"])
def test_the_streaming_pass_equals_the_in_memory_path_on_a_real_run(
        recorded_pair: RecordedPair, side: str) -> None:
    prefix = getattr(recorded_pair, side)
    events = recorded_pair.events if side == "sticky" else None
    raw_stream = load.read_run(prefix, events)
    raw_whole = load.read_run_whole(prefix, events)
    assert_same_requests(raw_stream.requests, raw_whole.requests)
    assert (raw_stream.notes, raw_stream.incomplete) == (raw_whole.notes, raw_whole.incomplete)
    streamed, whole = both(prefix, events)
    assert streamed.analysis.summary.requests > 100  # a real run, with something to compare
    if side == "sticky":
        assert streamed.analysis.summary.membership_changes
    assert_same_run(streamed, whole)


def test_the_real_run_as_parts_reads_as_its_one_file(recorded_pair: RecordedPair,
                                                     tmp_path: Path) -> None:
    source = Path(recorded_pair.sticky + SUFFIX)
    table = pq.read_table(source)
    record = json.loads(pq.read_schema(source).metadata[RECORDING_KEY.encode()])
    single, parted = str(tmp_path / "single"), str(tmp_path / "parted")
    shutil.copy(source, single + SUFFIX)
    cuts = [0, table.num_rows // 3, 2 * table.num_rows // 3, table.num_rows]
    for i in range(3):
        piece = table.slice(cuts[i], cuts[i + 1] - cuts[i])
        write_parquet(Path(part_path(parted, i + 1, ".parquet")), piece.to_batches(),
                      {**record, "parts": 3}, {"index": i + 1, "of": 3, "rows": piece.num_rows})
    events = recorded_pair.events
    streamed, whole = both(parted, events)
    assert_same_run(streamed, whole, ignore=("prefix", "request_file"))
    reference = api.analysed(load.read_run_whole(single, events), ReportConfig())
    assert_same_run(streamed, reference, ignore=("prefix", "request_file"))
    assert streamed.summary()["request_file"] == parted + "_requests-*.parquet"


def test_collateral_judged_by_blocks_of_sessions_adds_up_to_the_whole(
        recorded_pair: RecordedPair, monkeypatch: pytest.MonkeyPatch) -> None:
    """reports.metrics.judge_answers cuts a large run into blocks of whole sessions: with
    blocks of 50 requests, the real sticky run (with its changes) gives the same figures, and
    the blocks' repeat answers add up to the run's transitions."""
    prefix, events = recorded_pair.sticky, recorded_pair.events
    whole = api.analysed(load.read_run(prefix, events), ReportConfig())
    monkeypatch.setattr(metrics, "ANSWER_BLOCK_ROWS", 50)
    seen: list[int] = []
    judge = metrics.per_answer.judge_answers

    def counted(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[1])  # the block's judged repeat answers
        return judge(*args, **kwargs)

    monkeypatch.setattr(metrics.per_answer, "judge_answers", counted)
    blocked = api.analysed(load.read_run(prefix, events), ReportConfig())
    assert len(seen) > 3 and sum(seen) == blocked.analysis.summary.transitions > 0
    assert blocked.analysis.summary.collateral is not None
    assert any(c.answers for c in blocked.analysis.summary.membership_changes)
    assert_same_run(blocked, whole)


@pytest.mark.parametrize("form", ["arrows", "csv"])
def test_the_crash_form_and_csv_stream_as_they_read_whole(recorded_pair: RecordedPair,
                                                          tmp_path: Path, form: str) -> None:
    table = pq.read_table(recorded_pair.control + SUFFIX)
    prefix = str(tmp_path / form)
    if form == "csv":
        table.to_pandas().to_csv(prefix + CSV_SUFFIX, index=False)
    else:
        with ipc.new_stream(prefix + STREAM_SUFFIX, table.schema) as stream:
            for batch in table.to_batches(max_chunksize=100):
                stream.write_batch(batch)
    streamed, whole = both(prefix, None)
    assert streamed.analysis.summary.requests == table.num_rows
    assert_same_run(streamed, whole)
