"""The router's HTTP behaviour, each documented answer, framing, streaming and flow control.

Real emulator processes whose replicas serve the test-only app (tests/support/replica_app.py).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from collections.abc import Iterator

import psutil
import pytest

from modal_app.local.launch import Emulator, emulator
from tests.support.emulated import TEST_APP, live_ids, wait_for
from tests.support.http import address, call

MIB = 1 << 20


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with emulator(2, "--replica-app", TEST_APP, "--max-body-bytes", "100000") as e:
        yield e


def connect(emu: Emulator, timeout: float = 15.0) -> socket.socket:
    return socket.create_connection(address(emu.url), timeout=timeout)


def response(sock: socket.socket, method: str = "GET") -> http.client.HTTPResponse:
    answer = http.client.HTTPResponse(sock, method=method)
    answer.begin()
    return answer


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0


def test_413_for_an_announced_body_over_the_limit(emu: Emulator) -> None:
    with connect(emu) as sock:
        sock.sendall(b"POST /headers HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n")
        raw = read_until_closed(sock)  # answered before the body was sent
    assert status_of(raw) == 413


def test_413_for_a_chunked_body_over_the_limit(emu: Emulator) -> None:
    piece = b"%x\r\n%s\r\n" % (60000, b"a" * 60000)
    with connect(emu) as sock:
        sock.sendall(b"POST /headers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + piece + piece)
        raw = read_until_closed(sock)
    assert status_of(raw) == 413


def test_head_gets_headers_only_and_the_connection_goes_on(emu: Emulator) -> None:
    with connect(emu) as sock:
        sock.sendall(b"HEAD /hop HTTP/1.1\r\nHost: x\r\n\r\n")
        head = response(sock, "HEAD")
        assert head.status == 200 and head.getheader("content-length") == "5"
        assert head.read() == b""
        sock.sendall(b"GET /hop HTTP/1.1\r\nHost: x\r\n\r\n")
        assert response(sock).read() == b"hello"


def test_expect_100_continue(emu: Emulator) -> None:
    with connect(emu) as sock:
        sock.sendall(b"POST /headers HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        interim = sock.recv(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"{}")
        final = response(sock)
        seen = json.loads(final.read())
    assert final.status == 200 and "expect" not in seen and seen["content-length"] == "2"


def test_an_http10_client_gets_a_close_delimited_stream(emu: Emulator) -> None:
    with connect(emu) as sock:
        sock.sendall(b"GET /chunks?n=3&gap_ms=10 HTTP/1.0\r\n\r\n")
        raw = read_until_closed(sock)  # the router closes after the answer
    head, _, body = raw.partition(b"\r\n\r\n")
    assert status_of(head) == 200
    assert b"transfer-encoding" not in head.lower()
    assert [json.loads(line)["i"] for line in body.splitlines()] == [0, 1, 2]


def test_an_http10_client_with_a_known_length(emu: Emulator) -> None:
    with connect(emu) as sock:
        sock.sendall(b"GET /hop HTTP/1.0\r\n\r\n")
        raw = read_until_closed(sock)
    assert status_of(raw) == 200 and b"content-length: 5" in raw.lower()
    assert raw.endswith(b"\r\n\r\nhello")


def test_hop_by_hop_response_headers_are_dropped(emu: Emulator) -> None:
    with connect(emu) as sock:
        sock.sendall(b"GET /hop HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = response(sock)
        names = {name.lower() for name, _ in answer.getheaders()}
        assert answer.read() == b"hello"
    assert {"x-hop", "keep-alive", "trailer", "connection"}.isdisjoint(names)
    assert "x-end" in names


def test_hop_by_hop_request_headers_are_dropped(emu: Emulator) -> None:
    status, seen = call(emu.url, "GET", "/headers", headers={
        "Connection": "x-secret", "X-Secret": "1", "Keep-Alive": "timeout=5",
        "TE": "trailers", "Proxy-Connection": "keep-alive", "X-Keep": "1"})
    assert status == 200 and seen["x-keep"] == "1"
    assert {"x-secret", "keep-alive", "te", "proxy-connection", "connection"}.isdisjoint(seen)


def test_chunked_parts_reach_the_client_as_they_are_produced(emu: Emulator) -> None:
    arrivals: list[float] = []
    produced: list[float] = []
    line = re.compile(rb"\{[^\n]*\}\n")
    with connect(emu) as sock:
        sock.sendall(b"GET /chunks?n=10&gap_ms=100 HTTP/1.1\r\nHost: x\r\n\r\n")
        buffer = b""
        while not buffer.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk, "the stream ended early"
            buffer += chunk
            now = time.time()
            for match in line.finditer(buffer):
                part = json.loads(match.group())
                if part["i"] == len(produced):  # a part seen for the first time
                    produced.append(part["t"])
                    arrivals.append(now)
    assert len(produced) == 10
    assert arrivals == sorted(arrivals)
    # the first part was in the client's hands before the replica produced the last one
    assert arrivals[0] < produced[-1]


def rss(emu: Emulator) -> int:
    return int(psutil.Process(emu.process.pid).memory_info().rss)


def test_a_slow_reader_does_not_grow_the_router_memory(emu: Emulator) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.settimeout(30)
    sock.connect(address(emu.url))
    with sock:
        base = rss(emu)
        sock.sendall(b"GET /big?mib=100 HTTP/1.1\r\nHost: x\r\n\r\n")
        peak = base
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:  # read nothing for a while (loopback: GB/s)
            peak = max(peak, rss(emu))
            time.sleep(0.1)
        answer = response(sock)
        total = 0
        while piece := answer.read(MIB):
            total += len(piece)
    assert total == 100 * MIB  # everything arrived once the client read it
    assert peak - base < 32 * MIB, f"router grew by {(peak - base) / MIB:.0f} MiB"


def test_many_pipelined_requests_are_answered_in_order(emu: Emulator) -> None:
    requests = b"".join(b"GET /chunks?n=1&gap_ms=0 HTTP/1.1\r\nHost: x\r\n\r\n"
                        for _ in range(60))
    with connect(emu) as sock:
        sock.sendall(requests + b"GET /hop HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = read_until_closed(sock)
    assert raw.count(b"HTTP/1.1 200 OK") == 61 and raw.endswith(b"hello")


def test_a_replica_killed_mid_stream_cuts_the_stream() -> None:
    with emulator(2, "--replica-app", TEST_APP) as emu, connect(emu) as sock:
        sock.sendall(b"GET /chunks?n=100&gap_ms=50 HTTP/1.1\r\nHost: x\r\n"
                     b"Modal-Session-Id: s1\r\n\r\n")
        answer = response(sock)
        first = json.loads(answer.readline())
        assert first["i"] == 0
        victim = first["container"]
        assert victim in live_ids(emu.url)
        assert call(emu.url, "POST", f"/_emulator/replicas/{victim}/kill")[0] == 200
        with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
            answer.read()
        wait_for(lambda: victim not in live_ids(emu.url), what="the victim gone")


def test_an_http10_client_asking_for_keepalive_keeps_its_connection(emu: Emulator) -> None:
    with connect(emu) as sock:
        sock.sendall(b"GET /hop HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first = response(sock)
        assert first.getheader("connection") == "keep-alive" and first.read() == b"hello"
        sock.sendall(b"GET /hop HTTP/1.0\r\n\r\n")
        assert read_until_closed(sock).endswith(b"hello")
