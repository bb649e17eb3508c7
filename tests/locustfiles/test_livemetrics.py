"""Live metrics in-process: synthetic rows in, prometheus-client's exposition out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gevent
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from locustfiles import requestwriter
from locustfiles.livemetrics import IDLE_S, LiveMetrics, port_number
from locustfiles.recorder import Recorder
from locustfiles.rowbuffer import RowBuffer
from locustfiles.summary import Stickiness


def samples(metrics: LiveMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """name + labels -> value, from the text prometheus-client serves."""
    text = generate_latest(metrics.registry).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def row(session: str | None, cls: str, status: int, container: str | None, *,
        cache: str | None = None, error: str | None = None, ms: float = 3.0,
        ttft: float | None = None, affinity: str = "session") -> tuple[Any, ...]:
    stream = None if ttft is None else (1.0, ttft, 8, 2.0)
    return (session, cls, status, container, cache, error, ms, stream, affinity)


def test_exposition_names_labels_values() -> None:
    metrics = LiveMetrics()
    counts = metrics.counts
    stickiness = Stickiness()
    rows = [
        row("s1", "StickyUser", 200, "ta-a", cache="miss", ms=20.0),
        row("s1", "StickyUser", 200, "ta-a", cache="hit", ms=2.0),
        row("s1", "StickyUser", 503, None, error="HTTPError('503')", ms=1.0),
        row("s2", "StickyUser", 200, "ta-b", ms=4000.0, ttft=30.0),
        row("c1", "NonStickyUser", 200, "ta-a", affinity="none"),
        row("c1", "NonStickyUser", 200, "ta-b", affinity="none"),
        row("c1", "NonStickyUser", 200, "ta-a", affinity="none"),
        row("c1", "NonStickyUser", 0, None, error="ConnectionRefusedError(111)",
            affinity="none"),
        row(None, "Other", 200, "ta-b", affinity="none"),
    ]
    for r in rows:
        counts.observe(*r)
        stickiness.add(r[0], r[1], r[8], r[2], r[3], r[5])
    found = samples(metrics)

    assert value(found, "sticky_requests_total", user_class="StickyUser", status="200",
                 error="none") == 3
    assert value(found, "sticky_requests_total", user_class="StickyUser", status="503",
                 error="503") == 1
    assert value(found, "sticky_requests_total", user_class="NonStickyUser", status="0",
                 error="connection") == 1
    assert value(found, "sticky_container_requests_total", user_class="NonStickyUser",
                 container="ta-a") == 2
    assert value(found, "sticky_container_requests_total", user_class="Other",
                 container="ta-b") == 1
    # histograms in seconds, by cache state; cumulative buckets
    assert value(found, "sticky_request_duration_seconds_count", user_class="StickyUser",
                 cache="miss") == 1
    assert value(found, "sticky_request_duration_seconds_sum", user_class="StickyUser",
                 cache="miss") == pytest.approx(0.020)
    assert value(found, "sticky_request_duration_seconds_bucket", user_class="StickyUser",
                 cache="hit", le="0.0025") == 1
    assert value(found, "sticky_request_duration_seconds_bucket", user_class="StickyUser",
                 cache="none", le="2.5") == 1  # the 503 of 1 ms
    assert value(found, "sticky_request_duration_seconds_bucket", user_class="StickyUser",
                 cache="none", le="5") == 2
    assert value(found, "sticky_request_duration_seconds_bucket", user_class="StickyUser",
                 cache="none", le="+Inf") == 2
    assert value(found, "sticky_time_to_first_token_seconds_sum", user_class="StickyUser",
                 cache="none") == pytest.approx(0.030)
    assert value(found, "sticky_time_to_first_token_seconds_bucket", user_class="StickyUser",
                 cache="none", le="0.05") == 1

    # the session figures are those of the live summary (summary.py), class by class
    summary = {c.user_class: c for c in stickiness.summarise().classes}
    for cls in ("StickyUser", "NonStickyUser"):
        assert value(found, "sticky_sessions", user_class=cls) == summary[cls].sessions
        assert value(found, "sticky_repeat_sessions",
                     user_class=cls) == summary[cls].repeat_sessions
        assert value(found, "sticky_multi_container_sessions",
                     user_class=cls) == summary[cls].multi_container
        assert value(found, "sticky_switches_total", user_class=cls) == summary[cls].switches
        assert value(found, "sticky_transitions_total",
                     user_class=cls) == summary[cls].transitions
    assert value(found, "sticky_multi_container_sessions", user_class="NonStickyUser") == 1
    assert value(found, "sticky_switches_total", user_class="NonStickyUser") == 2
    assert value(found, "sticky_user_class_info", user_class="NonStickyUser",
                 affinity="none") == 1
    assert ("sticky_sessions", frozenset({("user_class", "Other")})) not in found  # no session
    for name in ("sticky_requests_total", "sticky_sessions"):
        assert not any("session" in dict(labels) for n, labels in found if n == name)


def step(metrics: LiveMetrics, until: int) -> None:
    while metrics.counts.tick < until:
        metrics.counts.step()


def test_membership_flaps_remaps_collateral() -> None:
    metrics = LiveMetrics()
    counts = metrics.counts
    sessions = {"s1": "ta-a", "s2": "ta-b", "s3": "ta-a"}

    def traffic() -> None:
        for sid, container in sessions.items():
            counts.observe(*row(sid, "StickyUser", 200, container))

    for _ in range(5):  # a and b from the start: no change
        traffic()
        counts.step()
    sessions["s1"] = "ta-c"  # tick 5: c joins, s1 moves onto it: a remap
    sessions["s3"] = "ta-b"  # and s3 moves between two old containers: collateral
    for _ in range(4):
        traffic()
        counts.step()
    sessions["s2"] = "ta-a"  # tick 9 .. 20: b silent (s3 back on a, s2 too)
    sessions["s3"] = "ta-a"
    for _ in range(12):
        traffic()
        counts.step()
    found_mid = samples(metrics)
    assert value(found_mid, "sticky_membership_changes_total", change="added") == 1
    assert value(found_mid, "sticky_membership_changes_total", change="removed") == 1
    assert value(found_mid, "sticky_live_containers") == 2  # a and c
    sessions["s2"] = "ta-c"  # tick 21, far from any change: a flap
    traffic()
    step(metrics, 22)
    counts.classify()  # the end: everything pending classified
    found = samples(metrics)
    assert value(found, "sticky_switches_total", user_class="StickyUser") == 5
    # s1 a->c and s3 a->b at c's arrival; s2 b->a and s3 b->a as b fell silent
    assert value(found, "sticky_remapped_sessions_total", user_class="StickyUser") == 4
    assert value(found, "sticky_collateral_sessions_total", user_class="StickyUser") == 1
    assert value(found, "sticky_flaps_total", user_class="StickyUser") == 1
    assert IDLE_S < 12


def test_recorder_feeds_it_locally_and_on_the_master() -> None:
    """The recorder's two places: a local request, and a worker's batch on the master."""
    recorder, metrics = Recorder(), LiveMetrics()
    recorder.metrics, metrics.recorder = metrics.counts, recorder

    class Answer:
        status_code = 200
        content = b'{"CONTAINER_ID":"ta-a","cache":"hit"}'

    recorder.on_request(name="/", response_time=5.0, response=Answer(),
                        context={"session_id": "s1", "user_class": "StickyUser",
                                 "affinity": "session"})
    assert ("sticky_sessions", frozenset({("user_class", "StickyUser")})) not in samples(
        metrics)  # counted once a second, not per request
    recorder._full()  # a second has passed
    assert value(samples(metrics), "sticky_sessions", user_class="StickyUser") == 1
    buffer = RowBuffer()
    for i in range(3):
        buffer.add((1e9 + i, 7.0, "s2", "StickyUser", "/", 200, f"ta-{'ab'[i % 2]}", None,
                    "session", None, None, None, None, None))
    buffer.add((1e9, 7.0, "s2", "StickyUser", "/", 502, None, None, "session", "HTTPError",
                None, None, None, None))
    dense, notes = buffer.take()
    recorder.role = "master"
    recorder.ingest("worker-1", {"n": 4, "dense": dense, "notes": [list(n) for n in notes],
                                 "done": True})
    found = samples(metrics)
    assert value(found, "sticky_requests_total", user_class="StickyUser", status="200",
                 error="none") == 4
    assert value(found, "sticky_requests_total", user_class="StickyUser", status="502",
                 error="502") == 1
    assert value(found, "sticky_switches_total", user_class="StickyUser") == 2
    assert value(found, "sticky_sessions", user_class="StickyUser") == 2
    assert value(found, "sticky_request_duration_seconds_count", user_class="StickyUser",
                 cache="hit") == 1


def test_each_second_is_counted_whole_and_written_before_the_clock_moves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorder's ticker: the second's rows are counted as one batch, the writer takes
    the codes of that count, and only then does the metrics' clock move."""
    recorder, metrics = Recorder(flush_s=0.01), LiveMetrics()
    recorder.metrics, metrics.recorder = metrics.counts, recorder
    writer = recorder.open_file(str(tmp_path / "run"))
    reused: list[bool] = []
    encode = requestwriter.encode

    def spied(buffer: RowBuffer, workers: Any, schema: Any, coded: Any = None) -> Any:
        reused.append(coded is not None and coded.n == len(buffer))
        return encode(buffer, workers, schema, coded)

    monkeypatch.setattr(requestwriter, "encode", spied)

    class Answer:
        status_code = 200
        content = b'{"CONTAINER_ID":"ta-a","cache":"hit"}'

    for _ in range(5):
        recorder.on_request(name="/", response_time=5.0, response=Answer(),
                            context={"session_id": "s1", "user_class": "StickyUser",
                                     "affinity": "session"})
    ticker = gevent.spawn(recorder._tick)
    try:
        with gevent.Timeout(30):
            while metrics.counts.tick < 2:
                gevent.sleep(0.005)
    finally:
        ticker.kill()
    assert metrics.counts.seen == {"ta-a": 0}  # counted at tick 0: before the clock moved
    assert reused == [True]  # one count, one write, the same codes
    assert writer.written == 5 and not len(recorder._buffer)
    writer.close()


def test_reset_starts_from_zero_and_registries_are_per_run() -> None:
    a, b = LiveMetrics(), LiveMetrics()
    a.counts.observe(*row("s1", "StickyUser", 200, "ta-a"))
    assert value(samples(a), "sticky_sessions", user_class="StickyUser") == 1
    assert ("sticky_sessions", frozenset({("user_class", "StickyUser")})) not in samples(b)
    a.reset()
    assert ("sticky_sessions", frozenset({("user_class", "StickyUser")})) not in samples(a)


@pytest.mark.parametrize("text", ["-1", "65536", "x"])
def test_bad_port_is_a_usage_error(text: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        port_number(text)
