"""Faults of real replica processes, end to end: a crash or a stall in the middle of a stream,
a hung (SIGSTOPped) replica, a replica that crashes on every request. The replicas serve the
test app (tests/support/replica_app.py), which crashes and stalls on demand."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modal_app.local.launch import Emulator, emulator
from modal_app.local.rendezvous import pick
from modal_app.local.supervisor import has_died
from tests.support.emulated import TEST_APP, live_ids, replicas, wait_for
from tests.support.http import address, call


@pytest.fixture(scope="module")
def streams() -> Iterator[Emulator]:
    with emulator(1, "--replica-app", TEST_APP, "--response-idle-timeout", "1",
                  "--health-interval", "0.2") as e:
        yield e


def events(url: str) -> list[dict[str, Any]]:
    return list(call(url, "GET", "/_emulator/events?since=0")[1]["events"])


def read_to_the_end(emu: Emulator, request: bytes) -> bytes:
    """Send one request, read until the router closes; ConnectionResetError on an RST."""
    with socket.create_connection(address(emu.url), timeout=20) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def live_one(emu: Emulator) -> None:
    """One replica, live, its process not dying (the reaper may not have seen a crash yet)."""
    def ready() -> bool:
        rows = replicas(emu.url)
        return [r["state"] for r in rows] == ["live"] and not has_died(rows[0]["pid"])

    wait_for(ready, what="one live replica and no other")


def test_a_crash_mid_stream_is_never_a_complete_answer(streams: Emulator) -> None:
    """Chunked with Connection: close (uvicorn's own answer while it shuts down): still cut."""
    live_one(streams)
    with socket.create_connection(address(streams.url), timeout=20) as sock:
        sock.sendall(b"GET /chunks?n=50&gap_ms=20&crash_after=3&close=1 HTTP/1.1\r\n"
                     b"Host: x\r\n\r\n")
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        assert answer.status == 200
        with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
            answer.read()


def test_an_http10_client_sees_a_cut_stream_as_an_error(streams: Emulator) -> None:
    live_one(streams)
    with pytest.raises(ConnectionResetError):  # a clean close would end its body "complete"
        read_to_the_end(streams, b"GET /chunks?n=50&gap_ms=20&crash_after=3 HTTP/1.0\r\n\r\n")


def test_a_stall_mid_stream_is_cut_after_the_idle_timeout(streams: Emulator) -> None:
    live_one(streams)
    with socket.create_connection(address(streams.url), timeout=20) as sock:
        sock.sendall(b"GET /chunks?n=10&gap_ms=10&stall_after=2 HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        assert answer.readline() and answer.readline()  # two parts, then silence
        with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
            answer.read()  # cut after --response-idle-timeout 1 (the socket waits 20 s)
    cuts = [e for e in events(streams.url) if e["event"] == "cut"]
    assert cuts and cuts[-1]["cause"] == "idle"


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_hung_replica_leaves_the_live_set_and_its_sessions_move(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    with emulator(2, "--replica-app", TEST_APP, "--health-interval", "0.25",
                  "--health-timeout", "1", events=log) as emu:
        live = live_ids(emu.url)
        victim = live[0]
        session = next(f"s{i}" for i in range(100) if pick(f"s{i}", live) == victim)
        pid = next(r["pid"] for r in replicas(emu.url) if r["container_id"] == victim)
        with stopped(pid):
            wait_for(lambda: victim not in live_ids(emu.url), timeout=10,
                     what="the hung replica out of the live set")
            status, body = call(emu.url, "POST", "/hold?ms=0",
                                headers={"Modal-Session-Id": session})
            assert status == 200 and body["container"] == live[1]  # its session moved
        wait_for(lambda: victim in live_ids(emu.url), what="the replica back once it answers")
    mine = [(e["event"], e["cause"]) for e in events_of(log) if e.get("container_id") == victim]
    assert mine[:3] == [("added", "ready"), ("removed", "hung"), ("added", "ready")]


def events_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_replica_that_crashes_on_every_request_is_restarted_with_backoff() -> None:
    with emulator(1, "--replica-app", TEST_APP, "--health-interval", "0.2") as emu:
        for _ in range(2):
            live_one(emu)
            status, body = call(emu.url, "GET", "/crash")
            assert status == 502 and body["error"] == "replica failed"
        wait_for(lambda: any(e["event"] == "backoff" for e in events(emu.url)),
                 what="a backoff")
        live_one(emu)
        log = events(emu.url)
    backoffs = [e for e in log if e["event"] == "backoff"]
    assert [(e["attempt"], e["delay_s"]) for e in backoffs] == [(2, 1.0)]  # the first: at once
    added = [e for e in log if e["event"] == "added"]
    assert added[-1]["ts"] - backoffs[0]["ts"] >= 1.0  # the restart waited its delay
    exits = [e for e in log if e["event"] == "exited"]
    assert len(exits) == 2 and all(e["cause"] == "crash" for e in exits)
