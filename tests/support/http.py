"""HTTP for the tests: a free port, a server's address, a raw answer's status, a tiny client
over one keep-alive connection (http.client), and the emulator's control API."""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.parse
import urllib.request
from typing import Any


def free_port() -> int:
    """A port the OS has just given out on 127.0.0.1 (for a process that must be told one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def address(url: str) -> tuple[str, int]:
    """(host, port) of an http:// URL."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname and parts.port, url
    return parts.hostname, parts.port


def status_of(raw: bytes) -> int:
    """The status code of a raw HTTP/1.1 answer; 0 when there is none."""
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0


class Conn:
    def __init__(self, url: str, timeout: float = 15.0) -> None:
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                               timeout=timeout)

    def request(self, method: str, path: str = "/", body: Any = None,
                headers: dict[str, str] | None = None, raw: bytes | None = None
                ) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        hdrs = {"content-type": "application/json", **(headers or {})}
        self.conn.request(method, path, body=data, headers=hdrs)
        resp = self.conn.getresponse()
        payload = resp.read()
        try:
            return resp.status, json.loads(payload)
        except ValueError:
            return resp.status, payload

    def post(self, path: str = "/", body: Any = None, **kw: Any) -> tuple[int, Any]:
        return self.request("POST", path, body if body is not None else {}, **kw)

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def call(url: str, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
    with Conn(url) as conn:
        return conn.request(method, path, body, **kw)


def emulator_control(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One call of the emulator's control API (`/_emulator` + path): GET without a body,
    POST with one; the decoded JSON answer. It sends what the control API asks: JSON, and the
    proxy credentials of the environment (an emulator under --auth needs them)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    key, secret = os.environ.get("MODAL_PROXY_KEY"), os.environ.get("MODAL_PROXY_SECRET")
    if key and secret:
        headers.update({"Modal-Key": key, "Modal-Secret": secret})
    request = urllib.request.Request(url + "/_emulator" + path, data=data,
                                     method="GET" if body is None else "POST", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def wait_for_live(url: str, count: int, timeout: float = 60.0) -> None:
    """Until the emulator has at least COUNT live replicas, with a deadline."""
    deadline = time.monotonic() + timeout
    while sum(r["state"] == "live" for r in emulator_control(url, "/replicas")) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} live replicas after {timeout} s")
        time.sleep(0.05)
