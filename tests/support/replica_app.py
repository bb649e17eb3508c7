"""A test-only upstream that crashes, stalls and streams on demand: the ASGI app the emulator's
replicas serve in the emulator's tests.

    python -m modal_app.local --replica-app tests.support.replica_app:app

A module of its own so that a replica process imports nothing but it.
- GET  /health                   200 "ok" (the emulator's health check).
- GET  /crash                    the process exits at once (status 3), the request unanswered.
- GET  /chunks?n=10&gap_ms=100  n parts, one JSON line each {"i", "t" (time produced),
                                "container"}, `gap_ms` apart, chunked (no Content-Length).
       &crash_after=K            ... the process exits after K parts (a crash mid-stream);
       &stall_after=K            ... after K parts the replica sends nothing more (until the
                                 router drops the connection);
       &close=1                  ... with `Connection: close` on the answer.
- GET  /big?mib=100              that many MiB of b"x", as fast as the router takes them.
- GET|HEAD /hop                  "hello" with hop-by-hop headers the router must drop.
- GET  /headers                  the request headers the replica received, as JSON.
- POST /hold?ms=1000&mark=PATH   appends its container id to PATH on arrival, then answers
                                 after `ms`; {"container", "concurrent" (requests in flight
                                 here on arrival)}.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

CONTAINER = os.environ.get("MODAL_TASK_ID", "ta-unset")
IN_FLIGHT = [0]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    query = {k: v[-1] for k, v in urllib.parse.parse_qs(scope["query_string"].decode()).items()}
    await drain(receive)
    route = ROUTES.get(scope["path"])
    if route is None:
        await answer(send, 404, b"not found")
        return
    await route(scope, query, send, receive)


async def drain(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


async def answer(send: Send, status: int, body: bytes,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


async def chunks(scope: Scope, query: dict[str, str], send: Send,
             receive: Receive) -> None:
    n, gap = int(query.get("n", "10")), float(query.get("gap_ms", "100")) / 1000
    crash_after = int(query.get("crash_after", "-1"))
    stall_after = int(query.get("stall_after", "-1"))
    headers = [(b"content-type", b"application/x-ndjson")]
    if query.get("close") == "1":
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for i in range(n):
        if i == crash_after:
            await asyncio.sleep(0.05)  # let the parts sent so far leave the process
            os._exit(3)
        if i == stall_after:
            await receive()  # nothing more until the router drops the connection
            return
        if i:
            await asyncio.sleep(gap)
        line = json.dumps({"i": i, "t": time.time(), "container": CONTAINER}) + "\n"
        await send({"type": "http.response.body", "body": line.encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def big(scope: Scope, query: dict[str, str], send: Send,
             receive: Receive) -> None:
    piece = b"x" * (1 << 20)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for _ in range(int(query.get("mib", "100"))):
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def hop(scope: Scope, query: dict[str, str], send: Send,
             receive: Receive) -> None:
    await answer(send, 200, b"hello", [
        (b"connection", b"x-hop"), (b"x-hop", b"1"), (b"keep-alive", b"timeout=5"),
        (b"trailer", b"x-later"), (b"x-end", b"kept")])


async def headers(scope: Scope, query: dict[str, str], send: Send,
             receive: Receive) -> None:
    seen = {k.decode(): v.decode() for k, v in scope["headers"]}
    await answer(send, 200, json.dumps(seen).encode(),
                 [(b"content-type", b"application/json")])


async def hold(scope: Scope, query: dict[str, str], send: Send,
             receive: Receive) -> None:
    IN_FLIGHT[0] += 1
    concurrent = IN_FLIGHT[0]
    try:
        if "mark" in query:
            with open(query["mark"], "a", encoding="utf-8") as mark:
                mark.write(CONTAINER + "\n")
        await asyncio.sleep(float(query.get("ms", "1000")) / 1000)
    finally:
        IN_FLIGHT[0] -= 1
    body = json.dumps({"container": CONTAINER, "concurrent": concurrent}).encode()
    await answer(send, 200, body, [(b"content-type", b"application/json")])


async def health(scope: Scope, query: dict[str, str], send: Send,
             receive: Receive) -> None:
    await answer(send, 200, b"ok")


async def crash(scope: Scope, query: dict[str, str], send: Send,
             receive: Receive) -> None:
    sys.stderr.flush()
    os._exit(3)


ROUTES = {"/chunks": chunks, "/big": big, "/hop": hop, "/headers": headers, "/hold": hold,
          "/health": health, "/crash": crash}
