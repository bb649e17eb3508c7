"""Streaming users (`--stream-tokens`): the SSE reader on scripted lines; Locust's own
FastHttpSession against the real emulator (first token before the last, a replica killed
mid-stream); real Locust runs with the KV-cache simulation (hit TTFT below miss TTFT when
sticky, a miss-heavy control)."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from locust.contrib.fasthttp import FastHttpSession
from locust.event import EventHook

from locustfiles.streaming import StreamError, StreamStats, generate, read_stream
from modal_app.local.launch import emulator
from tests.support.http import emulator_control
from tests.support.locust import STICKY, finish, locust_process

# ## The reader, on scripted lines and a scripted clock


def script(*lines: bytes | Exception) -> tuple[Any, Any]:
    """A readline over these lines (an exception is raised in its turn), and a clock that
    advances 10 ms per line read."""
    queue = list(lines)
    now = [0.0]

    def readline() -> bytes:
        now[0] += 0.010
        item = queue.pop(0) if queue else b""
        if isinstance(item, Exception):
            raise item
        return item

    return readline, lambda: now[0]


def events_of(n: int) -> list[bytes]:
    lines = [b'data: {"CONTAINER_ID": "ta-1", "cache": "hit"}\n', b"\n"]
    for i in range(n):
        lines += [f'data: {{"index": {i}, "token": "x"}}\n'.encode(), b"\n"]
    return lines


def test_a_whole_stream_gives_its_numbers() -> None:
    readline, clock = script(*events_of(3), b"data: [DONE]\r\n", b"\r\n")
    stats = StreamStats()
    assert read_stream(readline, stats, 0.0, 3, clock) is None
    # an event counts when it is complete (its blank line): 10 ms per line read
    assert stats.context() == {"container_id": "ta-1", "cache": "hit",
                               "ttfb_ms": pytest.approx(10.0), "ttft_ms": pytest.approx(40.0),
                               "tokens": 3, "max_gap_ms": pytest.approx(20.0)}


def test_fewer_tokens_than_asked_is_a_short_stream() -> None:
    readline, clock = script(*events_of(2), b"data: [DONE]\n", b"\n")
    assert read_stream(readline, StreamStats(), 0.0, 5, clock) == (
        "stream short: got 2 of 5 tokens")


def test_a_dropped_connection_is_a_cut_stream() -> None:
    readline, clock = script(*events_of(2), ConnectionResetError("reset"))
    stats = StreamStats()
    assert read_stream(readline, stats, 0.0, 5, clock) == (
        "stream cut: ConnectionResetError after 2 of 5 tokens")
    assert stats.tokens == 2 and stats.container_id == "ta-1"


def test_an_end_before_done_is_a_cut_stream() -> None:
    readline, clock = script(*events_of(5))
    assert read_stream(readline, StreamStats(), 0.0, 5, clock) == (
        "stream cut: the stream ended before [DONE] after 5 tokens")


def test_a_first_event_without_a_container_is_a_body_error() -> None:
    readline, clock = script(b'data: {"cache": null}\n', b"\n", b"data: [DONE]\n", b"\n")
    assert read_stream(readline, StreamStats(), 0.0, 0, clock) == "body: no CONTAINER_ID event"
    readline, clock = script(b"data: {not json\n", b"\n")
    assert read_stream(readline, StreamStats(), 0.0, 1, clock) == "body: an event is not JSON"


def test_the_failure_reads_as_its_message() -> None:
    assert repr(StreamError("stream cut: x")) == "stream cut: x"


# ## Locust's FastHttpSession against the real emulator


class Fired:
    """The request events a session fires."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.hook = EventHook()
        self.hook.add_listener(lambda **kw: self.events.append(kw))


@pytest.fixture()
def slow_tokens() -> Iterator[str]:
    """One replica producing a token every 20 ms; not replaced when killed."""
    with emulator(1, "--token-ms", "20", "--no-replace") as emu:
        yield emu.url


def test_the_first_token_arrives_long_before_the_last_is_produced(slow_tokens: str) -> None:
    fired = Fired()
    session = FastHttpSession(slow_tokens, fired.hook, None)
    stats = generate(session, {"max_tokens": 40, "prompt_tokens": 0}, {})
    assert len(fired.events) == 1  # once per request, at the end of the stream
    event = fired.events[0]
    assert event["exception"] is None and stats.tokens == 40
    total = event["response_time"]
    # the last token is produced 39 x 20 ms after the first: the first must not wait for it
    assert stats.ttft_ms is not None and stats.ttft_ms < total - 0.5 * 39 * 20
    assert event["context"]["stream"]["tokens"] == 40
    assert event["context"]["stream"]["max_gap_ms"] >= 15
    assert event["response_length"] > 40 * len('data: {"index":0,"token":""}')


def kill_after(url: str, seconds: float) -> threading.Thread:
    def kill() -> None:
        time.sleep(seconds)
        for replica in emulator_control(url, "/replicas"):
            emulator_control(url, f"/replicas/{replica['container_id']}/kill", {})

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_a_replica_killed_mid_stream_is_a_cut_stream(slow_tokens: str) -> None:
    fired = Fired()
    session = FastHttpSession(slow_tokens, fired.hook, None)
    killer = kill_after(slow_tokens, 0.5)  # 200 tokens take 4 s
    stats = generate(session, {"max_tokens": 200, "prompt_tokens": 0}, {})
    killer.join(10)
    assert len(fired.events) == 1
    event = fired.events[0]
    assert repr(event["exception"]).startswith("stream cut: "), event["exception"]
    assert 0 < stats.tokens < 200
    assert event["context"]["stream"]["tokens"] == stats.tokens
    assert event["response_time"] >= stats.ttft_ms  # the total, to the cut


# ## Real Locust runs: what a warm KV cache does to time to first token

USERS, REPLICAS, CAPACITY = 40, 4, 18  # 10 sessions per replica when sticky, room for 18


def stream_run(url: str, user_class: str, tmp: Path) -> pa.Table:
    """A paced streaming run; its request file's rows (the recorder's stream columns)."""
    args = ["-f", STICKY, user_class, "--headless", "-u", str(USERS), "-r", str(USERS), "-t",
            "4s", "--host", url, "--stream-tokens", "4", "--prompt-tokens", "400",
            "--cache-key", "--pace-rps", "3"]
    if user_class == "NonStickyUser":
        args.append("--no-judgement")  # a control baseline asks for no verdict (else exit 4)
    with locust_process(*args, tmp=tmp, name=user_class) as run:
        result = finish(run, timeout=90)
    assert result.code == 0, result.output[-3000:]
    rows = result.rows
    assert rows.num_rows == result.locust_requests > 0
    assert rows["error"].null_count == rows.num_rows  # no cut, short or bad stream
    assert set(rows.column("name").to_pylist()) == {"/generate"}
    assert set(rows.column("tokens").to_pylist()) == {4}
    expected = "session" if user_class == "StickyUser" else "none"
    assert set(rows.column("affinity").to_pylist()) == {expected}
    for row in rows.select(["ttfb_ms", "ttft_ms", "max_gap_ms", "response_time_ms"]
                           ).to_pylist():
        assert row["ttfb_ms"] <= row["ttft_ms"] <= row["response_time_ms"], row
        assert row["max_gap_ms"] is not None
    return rows


def by_cache(rows: pa.Table) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"hit": [], "miss": []}
    for row in rows.select(["cache", "ttft_ms"]).to_pylist():
        found[row["cache"]].append(row["ttft_ms"])
    return found


def test_sticky_hits_reach_the_first_token_sooner_and_the_control_misses(
        tmp_path: Path) -> None:
    # a miss prefills 400 tokens (100 ms), a hit the 32 new ones (8 ms)
    with emulator(REPLICAS, "--cache-sessions", str(CAPACITY), "--prefill-ms-per-token",
                  "0.25", "--token-ms", "5") as emu:
        sticky = by_cache(stream_run(emu.url, "StickyUser", tmp_path))
        control = by_cache(stream_run(emu.url, "NonStickyUser", tmp_path))
    assert statistics.median(sticky["hit"]) < statistics.median(sticky["miss"]) - 50
    sticky_hits = len(sticky["hit"]) / (len(sticky["hit"]) + len(sticky["miss"]))
    control_hits = len(control["hit"]) / (len(control["hit"]) + len(control["miss"]))
    assert sticky_hits > 0.75, sticky_hits
    assert control_hits < sticky_hits - 0.2, (control_hits, sticky_hits)
    assert len(control["miss"]) > 0.4 * (len(control["hit"]) + len(control["miss"]))
    # the control's TTFT distribution is the misses': its median pays the prefill
    control_all = control["hit"] + control["miss"]
    assert statistics.median(control_all) > statistics.median(sticky["hit"] + sticky["miss"])


def test_a_kill_during_a_run_records_cut_streams(tmp_path: Path) -> None:
    """A replica SIGKILLed while streams are open: those rows are "stream cut", the rest whole."""
    # 16 users over 2 replicas: the chance that the killed one holds no session is 2**-16
    with emulator(2, "--token-ms", "20") as emu:
        args = ["-f", STICKY, "StickyUser", "--headless", "-u", "16", "-r", "16", "-t", "4s",
                "--host", emu.url, "--stream-tokens", "50", "--prompt-tokens", "0",
                "--churn", "2s:kill=1", "--exit-code-on-error", "0",
                "--max-multi-container-sessions", "16"]
        with locust_process(*args, tmp=tmp_path) as run:
            result = finish(run, timeout=90)
    assert result.code == 0, result.output[-3000:]
    events = [json.loads(line) for line in
              Path(f"{run.prefix}_events.jsonl").read_text().splitlines()]
    kills = [e for e in events if e["event"] == "removed" and e["cause"] == "kill"]
    assert len(kills) == 1, (events, result.output[-3000:])
    killed, at = kills[0]["container_id"], kills[0]["ts"]
    rows = result.rows.select(["ts", "container_id", "error", "tokens", "status"]).to_pylist()
    # the precondition: streams were open on the killed replica when it died
    assert any(r["container_id"] == killed and r["ts"] < at for r in rows), (killed, at)
    failed = [r for r in rows if r["error"] is not None]
    cut = [r for r in failed if r["error"].startswith("stream cut: ")]
    assert cut, f"the kill cut no stream: {failed}"
    assert all(r["status"] == 200 and r["tokens"] < 50 and r["container_id"] == killed
               for r in cut), cut
    # anything else failed at the kill as an HTTP error of the proxy, never as a whole stream
    assert all(r["status"] in (502, 503) for r in failed if r not in cut), failed
