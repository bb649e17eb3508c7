"""A tiny HTTP client over one keep-alive connection (http.client), for the tests."""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse
import urllib.request
from typing import Any


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
