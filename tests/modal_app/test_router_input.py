"""Bad input at the router: each gets a 4xx or a closed connection; normal traffic goes on."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from modal_app.local.launch import Emulator, emulator
from tests.support.http import call


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with emulator(2, "--header-timeout", "1") as e:
        yield e


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


def exchange(url: str, raw: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the router closes the connection."""
    with socket.create_connection(address(url), timeout=timeout) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


BAD = {
    "malformed request line": b"GARBAGE\r\n\r\n",
    "bad method": b"P(ST / HTTP/1.1\r\nHost: x\r\n\r\n",
    "invalid content-length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "negative content-length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -2\r\n\r\n",
    "duplicate content-length": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                 b"Content-Length: 2\r\n\r\n{}"),
    "invalid chunk size": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"ZZ\r\n{}\r\n0\r\n\r\n"),
    "content-length with transfer-encoding": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
    "space before colon": b"POST / HTTP/1.1\r\nHost : x\r\n\r\n",
}


@pytest.mark.parametrize("raw", BAD.values(), ids=BAD.keys())
def test_bad_requests_get_400_and_a_closed_connection(emu: Emulator, raw: bytes) -> None:
    assert status_of(exchange(emu.url, raw)) == 400
    assert call(emu.url, "POST", "/")[0] == 200


def test_headers_over_the_limit_get_431(emu: Emulator) -> None:
    raw = b"POST / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n"
    assert status_of(exchange(emu.url, raw)) == 431
    assert call(emu.url, "POST", "/")[0] == 200


def test_a_chunked_body_is_forwarded(emu: Emulator) -> None:
    raw = (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           b"Content-Type: application/json\r\nConnection: close\r\n\r\n"
           b"2\r\n{}\r\n0\r\n\r\n")
    answer = exchange(emu.url, raw)
    assert status_of(answer) == 200 and b"CONTAINER_ID" in answer


def test_pipelined_requests_are_answered_in_order(emu: Emulator) -> None:
    one = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: 16\r\n\r\n{\"work_ms\": 300}")
    two = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = exchange(emu.url, one + two)
    assert answer.count(b"HTTP/1.1 200") == 2
    assert answer.index(b'"CONTAINER_ID"') < answer.index(b'"status"')


def test_100_clients_trickling_half_a_header_are_cut_off(emu: Emulator) -> None:
    slow = []
    for _ in range(100):
        sock = socket.create_connection(address(emu.url), timeout=5)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.append(sock)
    try:
        answered: dict[socket.socket, bytes] = {}
        deadline = time.monotonic() + 30
        normal = 0
        while len(answered) < len(slow) and time.monotonic() < deadline:
            assert call(emu.url, "POST", "/")[0] == 200  # normal traffic goes on
            normal += 1
            for sock in slow:
                if sock in answered:
                    continue
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    answered[sock] = sock.recv(65536)
                else:
                    try:
                        sock.sendall(b"a")  # one more byte of the header, never the end
                    except OSError:
                        answered[sock] = b""
            time.sleep(0.1)
        assert len(answered) == 100, "some slow clients were never cut off"
        assert all(status_of(a) in (408, 0) for a in answered.values())
        assert any(status_of(a) == 408 for a in answered.values())
        assert normal > 0
    finally:
        for sock in slow:
            sock.close()
