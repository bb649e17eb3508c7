"""Counting a batch at a time equals counting a request at a time, whatever the boundaries:
the summary's per-session counters and the live metrics against the row model
(tests/support/rowmodel.py), on random runs with failures, controls, rows without a session or
a class, streams and sessions that move."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from locustfiles.batch import Batch
from locustfiles.livemetrics import Counts
from locustfiles.recorder import Recorder
from locustfiles.rowbuffer import DENSE, RowBuffer
from locustfiles.summary import Stickiness
from tests.support.rowmodel import Model, Request

CONTAINERS = ("ta-a", "ta-b", "ta-c", "ta-d", "ta-e")


def random_run(rng: random.Random, n: int) -> list[Request]:
    sessions = {f"s{i}": (rng.choice(["StickyUser", "NonStickyUser", None]),
                          rng.choice(["session", "none", None])) for i in range(12)}
    home = {sid: rng.choice(CONTAINERS) for sid in sessions}
    rows: list[Request] = []
    for _ in range(n):
        sid: str | None = rng.choice([*sessions, None]) if rng.random() < 0.97 else None
        cls, affinity = sessions[sid] if sid is not None else ("Other", "none")
        if sid is not None and rng.random() < 0.1:
            home[sid] = rng.choice(CONTAINERS)  # the session moves
        container: str | None = home[sid] if sid is not None else rng.choice(CONTAINERS)
        status, error = 200, None
        cache: str | None = rng.choice(["hit", "miss", None])
        roll = rng.random()
        if roll < 0.05:
            status, error, container, cache = 503, "HTTPError('503 Server Error')", None, None
        elif roll < 0.08:
            status, error, container, cache = 0, "ConnectionRefusedError(111)", None, None
        elif roll < 0.10:
            error, container, cache = "body: not JSON", None, None
        elif roll < 0.12:
            error = "stream cut: the answer ended early"  # answered, then failed
        ms = rng.choice([0.5, 1.0, 2.5, 7.0, 30.0, 999.0, 1000.0, 70_000.0, rng.random() * 90])
        ttft = rng.random() * 60 if rng.random() < 0.2 else None
        rows.append((sid, cls, affinity, status, container, cache, error, ms, ttft))
    return rows


def buffer_of(rows: list[Request]) -> RowBuffer:
    buffer = RowBuffer()
    for sid, cls, affinity, status, container, cache, error, ms, ttft in rows:
        stream = None if ttft is None else (1.0, ttft, 8, 2.0)
        buffer.add((1e9, ms, sid, cls, "/", status, container, cache, affinity, error,
                    *(stream or (None,) * 4)))
    return buffer


def cut(rng: random.Random, n: int) -> list[int]:
    """Random batch boundaries: single rows, small and large batches."""
    bounds, at = [0], 0
    while at < n:
        at = min(n, at + rng.choice([1, 1, 2, 5, 17, 100, 400]))
        bounds.append(at)
    return bounds


@pytest.mark.parametrize("seed", range(12))
def test_batches_count_what_a_request_at_a_time_counts(seed: int) -> None:
    rng = random.Random(seed)
    rows = random_run(rng, 1500)
    buffer = RowBuffer()  # filled as the recorder's is, a batch counted from where the last ended
    stickiness, counts, model = Stickiness(), Counts(), Model()
    bounds = cut(rng, len(rows))
    for batch_no, (a, b) in enumerate(itertools.pairwise(bounds)):
        counts.tick = batch_no // 3  # a few batches a second
        more = buffer_of(rows[a:b])
        buffer.extend(more.dense, more.notes)
        batch = Batch(buffer.dense, buffer.notes, a)
        stickiness.add_batch(batch)
        counts.observe_batch(batch)
        for row in rows[a:b]:
            model.take(row, counts.tick)

    assert stickiness.no_session == model.no_session
    assert list(stickiness.errors.items()) == list(model.errors.items())
    assert list(stickiness.sessions) == list(model.sessions)  # the order first seen
    for sid, s in stickiness.sessions.items():
        m = model.sessions[sid]
        assert (s.user_class, s.affinity, list(s.containers), s.last_container, s.answered,
                s.switches, s.requests, s.errors, s.errors_503) == (
            m.user_class, m.affinity, list(m.containers), m.last, m.answered, m.switches,
            m.requests, m.errors, m.errors_503), sid
        state = counts.sessions[sid]
        assert (state.last, state.answered, state.moved) == (
            m.last, min(m.answered, 2), len(m.containers) > 1), sid
    assert counts.classes == model.classes
    assert counts.pending == model.pending
    assert counts.first == model.first_seen
    for mine, theirs in ((counts.cells, model.cells), (counts.ttft, model.ttft)):
        assert {k: v[0] for k, v in mine.items()} == {k: v[0] for k, v in theirs.items()}
        for key, (_, total) in mine.items():
            assert total == pytest.approx(theirs[key][1], rel=1e-12), key
    assert any(s.switches for s in stickiness.sessions.values())  # the run exercised moves


def test_a_batch_starts_where_asked_with_its_own_notes() -> None:
    buffer = buffer_of([("s1", "StickyUser", "session", 503, None, None, "HTTPError", 1.0, None),
                        ("s1", "StickyUser", "session", 200, "ta-a", "hit", None, 2.0, 30.0),
                        ("s2", None, None, 0, None, None, "ConnectionError", 3.0, None)])
    batch = Batch(buffer.dense, buffer.notes, 1)
    assert batch.n == 2
    assert batch.sessions.names == ["s1", "s2"]
    assert batch.errors() == [(1, "ConnectionError")]
    assert [(row, stream[1]) for row, _, stream in batch.notes if stream] == [(0, 30.0)]
    assert batch.status.tolist() == [200, 0]
    assert batch.column(DENSE.index("user_class")) == ["StickyUser", None]


def test_unhashable_and_odd_values_from_a_users_own_event_are_counted_not_raised() -> None:
    dense: list[list[Any]] = [[1e9, 1e9], ["2", None], [["odd"], "s1"], ["U", "U"], ["/", "/"],
                              [200, None], ["ta-a", {"x": 1}], [None, None], [None, None]]
    batch = Batch(dense, [])
    stickiness = Stickiness()
    stickiness.add_batch(batch)
    counts = Counts()
    counts.observe_batch(batch)
    assert set(stickiness.sessions) == {"['odd']", "s1"}
    assert batch.status.tolist() == [200, 0]
    assert batch.response_ms[1] != batch.response_ms[1]  # NaN: not a number, not a crash


def test_the_recorder_counts_its_rows_when_read_and_forgets_those_before_a_reset() -> None:
    recorder = Recorder()

    class Answer:
        status_code = 200
        content = b'{"CONTAINER_ID":"ta-a","cache":"hit"}'

    def request(sid: str) -> None:
        recorder.on_request(name="/", response_time=5.0, response=Answer(),
                            context={"session_id": sid, "user_class": "StickyUser",
                                     "affinity": "session"})

    request("s1")
    request("s1")
    assert recorder.stickiness.sessions["s1"].requests == 2  # read: counted up to now
    request("s2")  # taken before the reset, never counted after it
    recorder.on_reset()
    request("s3")
    assert set(recorder.stickiness.sessions) == {"s3"}
    assert (recorder.recorded, recorder.run_recorded) == (4, 1)
    recorder._full()  # a second passes: counted, then dropped (no --csv)
    request("s3")
    assert recorder.stickiness.sessions["s3"].requests == 2
    assert (recorder.recorded, recorder.run_recorded) == (5, 2)
