"""Broken routers for the gallery (tests/test_gallery.py): a tiny HTTP proxy in front of a real
emulator, that routes wrongly on purpose.

    python -m tests.support.liars MODE --upstream http://127.0.0.1:PORT [--after S]

prints `liar listening on http://127.0.0.1:PORT` (port 0: the OS picks) and serves until
killed. It forwards each request to the upstream emulator, whose replicas answer, but chooses
the replica itself by the `Modal-Session-Id` it sends upstream (the emulator routes that id by
rendezvous hashing), so the answers are real replicas' answers. `/_emulator/...` (churn
control, the event log) passes through as it is. Modes:

- `connection`: pins by TCP connection and ignores the header (one upstream id per client
  connection);
- `random`: a new upstream id on every request;
- `one`: one upstream id for everything: one container answers all;
- `empty`: honest until `--after` seconds after its first request (the probe), then answers
  `{"CONTAINER_ID": ""}` itself;
- `outage`: honest until `--after` seconds after its first request, then 503 for everything;
- `hang`: honest until `--after` seconds after its first request (the probe), then never
  answers;
- `shift`: honest, but `--after` seconds after its first request moves half of the sessions
  once to another live replica (no membership change behind it).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import sys
import time
import uuid
from urllib.parse import urlsplit

SESSION = b"modal-session-id"
MODES = ("connection", "random", "one", "empty", "outage", "shift", "hang")


class Liar:
    def __init__(self, mode: str, upstream: str, after: float) -> None:
        parts = urlsplit(upstream)
        self.mode, self.after = mode, after
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.first: float | None = None
        self.connections = itertools.count()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = f"conn-{next(self.connections)}"
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                method, path, _ = lines[0].split(b" ", 2)
                headers = [(k, v) for k, sep, v in (line.partition(b":") for line in lines[1:])
                           if sep]
                length = next((int(v) for k, v in headers if k.strip().lower()
                               == b"content-length"), 0)
                body = await reader.readexactly(length) if length else b""
                status, answer = await self.answer(method, path, headers, body, conn)
                writer.write(b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n" % (status, len(answer)) + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def answer(self, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]],
                     body: bytes, conn: str) -> tuple[int, bytes]:
        if path.startswith(b"/_emulator"):
            return await self.forward(method, path, headers, body)
        now = time.monotonic()
        if self.first is None:  # the first request (the harness's probe) is always honest
            self.first = now
            late = False
        else:
            late = now - self.first >= self.after
        session = next((v.strip().decode() for k, v in headers if k.strip().lower() == SESSION),
                       None)
        if self.mode == "empty" and late:
            return 200, json.dumps({"CONTAINER_ID": ""}).encode()
        if self.mode == "hang" and late:
            await asyncio.sleep(3600)  # never answers
        if self.mode == "outage" and late:
            return 503, b'{"detail": "outage"}'
        if self.mode == "connection":
            session = conn
        elif self.mode == "random":
            session = uuid.uuid4().hex
        elif self.mode == "one":
            session = "one"
        elif self.mode == "shift" and late and session is not None \
                and hashlib.blake2b(session.encode()).digest()[0] % 2 == 0:
            session += "-moved"
        kept = [(k, v) for k, v in headers if k.strip().lower() != SESSION]
        if session is not None:
            kept.append((b"Modal-Session-Id", session.encode()))
        return await self.forward(method, path, kept, body)

    async def forward(self, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]],
                      body: bytes) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        skip = {b"connection", b"content-length", b"host", b"keep-alive"}
        lines = [b"%s %s HTTP/1.1" % (method, path), b"host: %s:%d" % (
            self.host.encode(), self.port), b"connection: close",
            b"content-length: %d" % len(body)]
        lines += [k.strip() + b": " + v.strip() for k, v in headers
                  if k.strip().lower() not in skip]
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()
        raw = await reader.read()
        writer.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if b"transfer-encoding: chunked" in head.lower():
            payload = dechunk(payload)
        return status, payload


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out


async def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.support.liars")
    p.add_argument("mode", choices=MODES)
    p.add_argument("--upstream", required=True)
    p.add_argument("--after", type=float, default=2.0)
    args = p.parse_args(argv)
    liar = Liar(args.mode, args.upstream, args.after)
    server = await asyncio.start_server(liar.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"liar listening on http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
