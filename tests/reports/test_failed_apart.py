"""The failed requests taken out of all rows (reports.metrics): the successes' flags, their
previous success, the (session, container) pairs and the containers' spans are read from every
row with the few failed ones taken off, never from a copy of the successful rows. Each equals
the same figure computed on the successful rows alone; and a run's success figures do not
move when failed requests are added to it."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports import metrics
from reports.api import load_run
from reports.columns import STREAM_CUT_PREFIX
from reports.metrics import OK, S503, Frame
from tests.support.rows import (
    CHANGE_AT,
    T0,
    A,
    B,
    C,
    D,
    Row,
    scale_up_events,
    session_ids,
    write_events,
    write_requests,
)


def random_frame(seed: int, n: int = 3000, sessions: int = 60, containers: int = 4) -> Frame:
    """Rows sorted by session then start; sticky containers with some switches; failed rows
    alone and in stretches (some across sessions, some a whole session), some of them with a
    container (a cut stream), most without."""
    rng = np.random.default_rng(seed)
    sess = np.sort(rng.integers(0, sessions, n)).astype(np.int32)
    sess = np.unique(sess, return_inverse=True)[1].astype(np.int32)  # dense codes
    ts = np.empty(n)
    for s in np.unique(sess):
        rows = np.flatnonzero(sess == s)
        ts[rows] = np.sort(rng.integers(0, 40, len(rows))) + T0 + rng.choice([0.0, 0.5])
    owner = rng.integers(0, containers, sessions)
    cont = np.where(rng.random(n) < 0.9, owner[sess], rng.integers(0, containers, n))
    failed = rng.random(n) < 0.08
    for start in rng.integers(0, n, 6):  # stretches, some across a session's end
        failed[start:start + rng.integers(2, 40)] = True
    whole = sess == sess[n // 2]
    failed |= whole  # a session with no success at all
    cls = np.where(failed, S503, OK).astype(np.int8)
    cont = np.where(failed & (rng.random(n) < 0.8), -1, cont).astype(np.int32)
    rt = rng.random(n) * 50
    n_sessions = int(sess.max()) + 1
    return Frame(sess, ts, ts + rt / 1000, rt, np.where(failed, 503, 200).astype(np.int32),
                 cont, cls, ~failed, np.flatnonzero(metrics.starts_of_runs(sess)),
                 n_sessions, containers, np.flatnonzero(failed))


def successes_alone(frame: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference: the successful rows, and run_flags on them alone."""
    rows = np.flatnonzero(frame.ok)
    first, switch = metrics.run_flags(frame.sess[rows], frame.cont[rows])
    return rows, first, switch


@pytest.mark.parametrize("seed", range(6))
def test_the_flags_of_the_successes_are_those_of_the_successes_alone(seed: int) -> None:
    frame = random_frame(seed)
    ok = metrics.successful_requests(frame, np.ones(frame.n_sessions, dtype=np.bool_))
    rows, first, switch = successes_alone(frame)
    assert not ok.everyone and ok.switch.any()
    assert np.array_equal(np.flatnonzero(ok.first), rows[first])
    assert np.array_equal(np.flatnonzero(ok.switch), rows[switch])
    repeat = rows[1:][~first[1:]]  # each success but a session's first: the one before it
    expected = rows[:-1][~first[1:]]
    assert np.array_equal(metrics.previous_successes(frame, ok, repeat), expected)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("slots", [0, metrics.PAIR_SLOTS_PER_ROW, 10**9])
def test_the_pairs_of_all_rows_but_the_failed_are_those_of_the_successes(
        seed: int, slots: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted in slots or by a sort (slots 0: always sorted), over blocks of whole sessions
    (blocks of 100 rows), with the failed rows taken off or a mask: the same pairs."""
    frame = random_frame(seed)
    monkeypatch.setattr(metrics, "PAIR_SLOTS_PER_ROW", slots)
    monkeypatch.setattr(metrics, "ANSWER_BLOCK_ROWS", 100)
    rows = np.flatnonzero(frame.ok)
    width = frame.n_containers
    keys, counts = np.unique(frame.sess[rows].astype(np.int64) * width + frame.cont[rows],
                             return_counts=True)
    for got in (metrics.pair_counts(frame.sess, frame.cont, width,
                                    without=frame.failed_rows),
                metrics.pair_counts(frame.sess, frame.cont, width, frame.ok)):
        assert np.array_equal(got[0], keys // width)
        assert np.array_equal(got[1], keys % width)
        assert np.array_equal(got[2], counts)


@pytest.mark.parametrize("seed", range(4))
def test_the_spans_of_the_containers_are_those_of_their_successes(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = random_frame(seed)
    monkeypatch.setattr(metrics, "ORDER_BLOCK_ROWS", 128)  # stretches cut at block edges
    rows = np.flatnonzero(frame.ok)
    c = frame.n_containers
    first, last = np.full(c, np.inf), np.full(c, -np.inf)
    np.minimum.at(first, frame.cont[rows], frame.ts[rows])
    np.maximum.at(last, frame.cont[rows], frame.ts[rows])
    spans = metrics.container_spans(frame)
    assert np.array_equal(spans.counts, np.bincount(frame.cont[rows], minlength=c))
    assert np.array_equal(spans.first, first) and np.array_equal(spans.last, last)


def test_an_outage_is_every_stretch_of_seconds_with_failures_and_no_success() -> None:
    frame = random_frame(1)
    quiet = (frame.ts - T0 >= 10) & (frame.ts - T0 < 14.5)  # every request failed here
    frame = replace(frame, ok=frame.ok & ~quiet, cls=np.where(quiet, S503, frame.cls),
                    failed_rows=np.flatnonzero(~(frame.ok & ~quiet)))
    start, end = float(frame.ts.min()), float(frame.end.max())
    found = metrics.outages(frame, start, end)
    second = np.floor(frame.ts - start).astype(np.int64)
    bad = set(np.unique(second[~frame.ok])) - set(np.unique(second[frame.ok]))
    inside = {s for o in found for s in range(round(o.start_offset_s), math.ceil(
        o.end_offset_s))}
    assert found and bad == inside & set(np.unique(second))
    assert sum(o.failed for o in found) == int(np.isin(second[~frame.ok], list(bad)).sum())


def moving_rows(sessions: int = 120, seed: int = 7) -> list[Row]:
    """Sessions on [A, B, C] that sometimes answer elsewhere (flaps), then D joins at
    CHANGE_AT (the scale-up's event log): switches, collateral and remaps to judge."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, sid in enumerate(session_ids(sessions)):
        owner = (A, B, C)[i % 3]
        for j in range(20):
            ts = T0 + j + 0.3 + (i % 40) * 0.01
            cid = D if ts > CHANGE_AT and i % 4 == 0 else owner
            if rng.random() < 0.05:
                cid = (A, B, C)[int(rng.integers(3))]
            rows.append(Row(ts, sid, cid, response_time_ms=float(rng.integers(5, 60))))
    return rows


def with_failures(rows: list[Row], seed: int = 8) -> list[Row]:
    """The rows with failed requests added (none removed): 503s and connection errors with no
    container, cut streams with one, alone and in stretches, a session's first requests and
    a session with nothing else."""
    rng = np.random.default_rng(seed)
    out = list(rows)
    for r in rows:
        if rng.random() < 0.1:
            for k in range(int(rng.integers(1, 4))):
                kind = int(rng.integers(3))
                ts = r.ts + 0.1 + 0.05 * k if rng.random() < 0.8 else r.ts - 0.2
                out.append(Row(ts, r.session_id, r.container_id if kind == 2 else None,
                               (503, 0, 200)[kind], 3.0, error=(
                                   None, "ConnectionRefusedError(111)",
                                   STREAM_CUT_PREFIX + "after 2 tokens")[kind]))
    out += [Row(T0 + 3.5 + k, "zz-failed", None, 503) for k in range(5)]
    return out


def test_adding_failed_requests_leaves_the_success_figures_as_they_were(
        tmp_path: Path) -> None:
    clean_rows = moving_rows()
    runs = []
    for name, rows in (("clean", clean_rows), ("failing", with_failures(clean_rows))):
        prefix = str(tmp_path / name)
        write_requests(Path(prefix + "_requests.parquet"), rows)
        write_events(Path(prefix + "_events.jsonl"), scale_up_events())
        runs.append(load_run(prefix, keep_rows=False))
    clean, failing = (r.summary() for r in runs)
    assert failing["errors"] > 100 and failing["switches"] > 20 and failing["collateral"]
    same = ["ok_requests", "sessions_multi_request", "sessions_multi_container",
            "session_stickiness", "same_container_rate", "transitions", "settled_stickiness",
            "request_stickiness", "switches", "forced_switches", "flaps", "collateral",
            "collateral_outside_changes", "warm_hit_upper_bound", "containers",
            "per_container", "balance"]
    assert {k: failing[k] for k in same} == {k: clean[k] for k in same}
    bounds = {"start", "end", "settled_start"}  # the run's: its first and last request's
    assert [{k: v for k, v in e.items() if k not in bounds} for e in failing["epochs"]] == \
        [{k: v for k, v in e.items() if k not in bounds} for e in clean["epochs"]]
    for got, want in zip(failing["membership_changes"], clean["membership_changes"],
                         strict=True):
        run_bound = {"in_flight", "at_offset_s"}  # every request's; from the run's start
        assert {k: v for k, v in got.items() if k not in run_bound} == \
            {k: v for k, v in want.items() if k not in run_bound}
    columns = ["session_id", "ok_requests", "containers", "main_container", "main_share",
               "switches", "flaps", "remaps"]
    table = runs[1].sessions[columns]
    table = table[table["session_id"] != "zz-failed"].reset_index(drop=True)
    pd.testing.assert_frame_equal(table.astype(str), runs[0].sessions[columns].astype(str))
