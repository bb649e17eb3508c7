"""Transport: the HTTP/1.1 connections on both sides of the router, and the flow between them.

Modelled on uvicorn's `protocols/http/httptools_impl.py` (downstream) and httpcore's
connection pool (upstream). The router (`router.py`) decides where a request goes; this
module moves its bytes.

Downstream (`Client`, one per client connection):
- Requests are parsed with httptools (llhttp) and buffered whole (at most `max_body_bytes`,
  copied at most once), then answered strictly in order. Pipelined requests wait in a queue;
  the router stops reading the connection while the queue holds `max_pipeline` requests or
  `max_body_bytes` of bodies, or while all connections together hold more than
  `max_buffered_bytes` of request bodies (a connection whose next request is at the head of
  its pipeline is never paused: over that total it gets 503). The next queued request starts
  only once the client has read enough of the previous answers (its write buffer is under
  `WRITE_HIGH`).
- Malformed or oversized requests get a 4xx and the connection is closed: 400 for a bad
  request line, Content-Length or chunk, and for Content-Length together with
  Transfer-Encoding (RFC 9112 6.1); 431 for headers over `max_header_bytes`; 413 for a body
  (announced or received) over `max_body_bytes`; 408 for headers not complete within
  `header_timeout_s`. An idle keep-alive connection is closed after `keepalive_timeout_s`.
- `Expect: 100-continue` is answered by the router once the headers passed the checks and the
  request is at the head of the pipeline (never between the bytes of an earlier answer).
- A protocol upgrade (`Connection: upgrade` with `Upgrade`, or CONNECT) gets 501 before it
  is dispatched: it never reaches a replica.
- HTTP/1.0 clients get their answer with a Content-Length when the replica gave one, else
  close-delimited; the connection closes after it unless they asked for keep-alive.

Upstream (`Upstream`, one keep-alive connection to a replica, one request at a time):
- Hop-by-hop headers (RFC 9110 7.6.1: Connection, the headers it names, Keep-Alive,
  Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade) are dropped in both directions;
  the router redoes the framing itself: Content-Length when the replica sent one, else
  chunked (HTTP/1.1 clients) or close-delimited (HTTP/1.0 clients).
- The response is relayed as the replica produces it, piece by piece, never buffered whole.
- Flow control: when a client's write buffer passes `WRITE_HIGH`, the router stops reading
  from the replica that feeds it and resumes when the buffer drains below `WRITE_LOW`. A slow
  reader therefore costs the router at most one buffer, whatever the replica sends.

An answer is complete only by its own framing: its Content-Length reached, its terminal chunk
seen, or, with neither header, the replica's close. Failure (see `router.py` for the retry
rule): a connection lost before any byte of the answer reached the client gives a 502 with a
JSON reason; once bytes went out, the client's connection is reset (RST), so that every
client, HTTP/1.0 ones reading to the close included, sees a cut stream as one. So is an answer
whose replica sends nothing for `response_idle_timeout_s` (checked by the router's sweep from
a counter of reads, no clock read per read).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections import deque
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol, cast

import httptools

from modal_app.local.config import EmulatorConfig

if TYPE_CHECKING:
    from modal_app.local.sessions import Session
    from modal_app.local.supervisor import Replica

# Idle keep-alive connections kept per replica (httpcore's max_keepalive_connections); more
# are closed when their answer completes.
MAX_IDLE_PER_REPLICA = 256
WRITE_HIGH = 64 * 1024
WRITE_LOW = 16 * 1024
# SO_LINGER on, 0 s: close() then resets the connection (RST) instead of a clean FIN.
LINGER_RESET = struct.pack("ii", 1, 0)
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# Bodies up to this size go out in one write with their head (one copy); larger ones are
# handed to the transport as they are (no copy).
SMALL_BODY = 64 * 1024
SESSION_HEADER = b"modal-session-id"
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
    b"transfer-encoding", b"upgrade",
})
# Request headers the router consumes or redoes: hop-by-hop, framing, Expect (answered here).
REQUEST_DROPPED = HOP_BY_HOP | {b"content-length", b"expect"}
# Headers meant for Modal's proxy: read by the router, never forwarded to a replica.
PROXY_HEADERS = frozenset({
    b"modal-key", b"modal-secret", b"modal-authorization", b"x-modal-server-session-token",
    b"x-modal-server-session-idle-timeout", b"x-idempotency-key", b"x-modal-timestamp",
})
# Request headers the router looks at (the others pass on untouched).
NOTED = PROXY_HEADERS | {SESSION_HEADER, b"content-length", b"transfer-encoding",
                         b"connection", b"expect", b"authorization", b"upgrade"}


class Rejected(Exception):
    """A request the router refuses: answered with `status` and the connection closed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def json_response(status: int, payload: Any, *, close: bool = False) -> bytes:
    body = json.dumps(payload).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"server: modal-emulator\r\n{'connection: close' + chr(13) + chr(10) if close else ''}"
        "\r\n"
    )
    return head.encode() + body


def connection_tokens(value: bytes) -> set[bytes]:
    """The header names a Connection header lists (RFC 9110 7.6.1), lower case."""
    return {t.strip().lower() for t in value.split(b",") if t.strip()}


class Request:
    """One parsed request, and what the router attached to it on its way."""

    __slots__ = ("authorization", "body", "head", "held", "http10", "keep_alive", "method",
                 "proxy", "replica", "session", "strict", "tried", "url")

    def __init__(self, method: bytes, url: bytes, head: bytes, body: bytes,
                 session: str | None, keep_alive: bool, http10: bool,
                 proxy: dict[bytes, bytes], authorization: bytes | None) -> None:
        self.method = method
        self.url = url
        self.head = head
        self.body = body
        self.session = session
        self.keep_alive = keep_alive
        self.http10 = http10
        self.proxy = proxy  # the proxy's own headers, consumed here, never forwarded
        self.authorization = authorization
        self.strict: Session | None = None
        self.replica: Replica | None = None  # the replica it counts against (in flight)
        self.tried: tuple[Replica, ...] = ()  # replicas that refused it (rarely any)
        self.held = len(body)  # body bytes counted in the hub's `held_bytes` until answered

    def bearer(self) -> str | None:
        value = self.proxy.get(b"modal-authorization", b"").decode("latin-1").strip()
        scheme, _, token = value.partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None

    def write_to(self, transport: asyncio.Transport) -> None:
        """The request on the wire; the body is copied only when small (into one write)."""
        body = self.body
        if len(body) <= SMALL_BODY:
            transport.write(b"%scontent-length: %d\r\n\r\n%s" % (self.head, len(body), body))
        else:
            transport.writelines((b"%scontent-length: %d\r\n\r\n" % (self.head, len(body)),
                                  body))

    def header(self, name: bytes) -> bytes | None:
        """One end-to-end header's value, read from the head (for rare requests only)."""
        prefix = name + b":"
        for line in self.head.split(b"\r\n")[1:]:
            if line[:len(prefix)].lower() == prefix:
                return line[len(prefix):].strip()
        return None


class Hub(Protocol):
    """What the connections need from the router."""

    config: EmulatorConfig
    loop: asyncio.AbstractEventLoop
    clients: set[Client]
    busy: set[Upstream]
    held_bytes: int  # request body bytes all client connections hold

    def dispatch(self, client: Client, request: Request) -> None: ...

    def finish(self, request: Request) -> None: ...

    def release(self, conn: Upstream) -> None: ...

    def stalled(self, conn: Upstream) -> None: ...


class Client(asyncio.Protocol):
    """One client connection: parses requests and answers them in order."""

    __slots__ = ("authorization", "body_bytes", "body_parts", "chunked", "close_after", "closed",
                 "config", "connection", "content_lengths", "continue_pending", "corked",
                 "current", "expects_continue", "has_te", "header_bytes", "headers", "hub",
                 "in_flight", "last_active", "parser", "proxy", "queue", "queued_bytes",
                 "reading_paused", "request_started", "session", "transport", "upgrade",
                 "upstream", "url", "writing_paused")

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.config = hub.config
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: deque[Request] = deque()
        self.in_flight = False
        self.current: Request | None = None
        self.upstream: Upstream | None = None  # the connection answering `current`
        self.closed = False
        self.close_after = False
        self.reading_paused = False
        self.writing_paused = False
        self.chunked = False  # framing of the response being written
        self.corked: list[bytes] | None = None  # writes held to go out as one
        self.queued_bytes = 0  # body bytes of the queued requests
        self._reset()
        self.request_started: float | None = None
        self.last_active = hub.loop.time()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.body_parts: list[bytes] = []
        self.body_bytes = 0
        self.session: str | None = None
        self.content_lengths = 0
        self.has_te = False
        self.expects_continue = False
        self.continue_pending = False  # 100 Continue owed once the request heads the pipeline
        self.upgrade = False
        self.connection: set[bytes] = set()
        self.authorization: bytes | None = None
        self.proxy: dict[bytes, bytes] = {}

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)
        self.hub.clients.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.hub.clients.discard(self)
        self._release_all()
        upstream = self.upstream
        if upstream is not None:  # nobody reads the answer any more: stop producing it
            upstream.abandon()

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.upstream is not None:
            self.upstream.resume_reading()
        elif not self.in_flight and self.queue:
            self._next()  # answers held back while the client did not read

    def data_received(self, data: bytes) -> None:
        if self.close_after:
            return
        self.last_active = self.hub.loop.time()
        try:
            self.parser.feed_data(data)
        except Rejected as exc:
            self.reject(exc.status, exc.reason)
        except httptools.HttpParserUpgrade:
            self.reject(501, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, Rejected):
                self.reject(cause.status, cause.reason)
            else:
                self.reject(400, f"malformed request: {exc}")

    # -- httptools callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset()
        self.request_started = self.last_active  # data_received has just read the clock

    def _count(self, n: int) -> None:
        self.header_bytes += n
        if self.header_bytes > self.config.max_header_bytes:
            raise Rejected(431, "request headers too large")

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        lower = name.lower()
        if lower in NOTED:  # one set lookup for the common headers, which pass straight on
            if lower in PROXY_HEADERS:
                self.proxy[lower] = value
                return
            self._note(lower, value)
        if lower not in REQUEST_DROPPED:
            self.headers.append((lower, b"%s: %s\r\n" % (name, value)))

    def _note(self, lower: bytes, value: bytes) -> None:
        if lower == SESSION_HEADER:
            self.session = value.decode("latin-1").strip() or None
        elif lower == b"content-length":
            self.content_lengths += 1
            if self.content_lengths > 1:
                raise Rejected(400, "duplicate Content-Length")
            if value.strip().isdigit() and int(value) > self.config.max_body_bytes:
                raise Rejected(413, "request body too large")
        elif lower == b"transfer-encoding":
            self.has_te = True
        elif lower == b"connection":
            self.connection |= connection_tokens(value)
        elif lower == b"expect" and value.strip().lower() == b"100-continue":
            self.expects_continue = True
        elif lower == b"authorization":
            self.authorization = value
        elif lower == b"upgrade":
            self.upgrade = True

    def on_headers_complete(self) -> None:
        if self.content_lengths and self.has_te:
            raise Rejected(400, "Content-Length together with Transfer-Encoding")
        if self.upgrade and b"upgrade" in self.connection:
            raise Rejected(501, "protocol upgrades are not supported")  # never dispatched
        self.request_started = None
        if self.expects_continue:
            if self.in_flight or self.queue:  # an earlier answer may be on the wire
                self.continue_pending = True
            elif self.transport is not None:
                self.transport.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        n = len(body)
        if self.body_bytes + n > self.config.max_body_bytes:
            raise Rejected(413, "request body too large")
        self.body_bytes += n  # counted in `held_bytes` too, until answered or dropped
        self.body_parts.append(body)
        hub = self.hub
        hub.held_bytes += n
        if self.in_flight or self.queue:  # behind earlier answers: it may wait for them
            if (hub.held_bytes > self.config.max_buffered_bytes
                    or self.queued_bytes + self.body_bytes > self.config.max_body_bytes):
                self._pause()  # its own answers go on without reading: no deadlock
        elif hub.held_bytes > self.config.max_buffered_bytes:  # the head: it cannot wait
            raise Rejected(503, "the router holds too many request bodies; retry shortly")

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        if method == b"CONNECT":  # llhttp treats it as an upgrade: refused before dispatch
            raise Rejected(501, "protocol upgrades are not supported")
        named = self.connection
        lines = [line for lower, line in self.headers if lower not in named] if named else [
            line for _, line in self.headers]
        head = b"%s %s HTTP/1.1\r\n%s" % (method, self.url, b"".join(lines))
        parts = self.body_parts
        body = (parts[0] if len(parts) == 1 else b"".join(parts)) if parts else b""
        http10 = self.parser.get_http_version() == "1.0"
        self.queue.append(Request(method, self.url, head, body, self.session,
                                  self.parser.should_keep_alive(), http10, self.proxy,
                                  self.authorization))
        self.continue_pending = False  # the body came without it
        if body:
            self.queued_bytes += len(body)
            self.body_bytes = 0  # now counted in the queue (body_parts are reset per message)
        if self.in_flight or self.writing_paused or len(self.queue) > 1:  # it waits: bounds
            if self._must_wait():
                self._pause()
            if not self.in_flight and not self.writing_paused:
                self._next()
        else:
            self._next()

    # -- reading: the pipeline's bounds ------------------------------------------------

    def _must_wait(self) -> bool:
        """True while the connection may not be read: its queue is full, or its queued bodies
        (or those of all connections) are over their bound while an earlier answer runs."""
        if len(self.queue) >= self.config.max_pipeline:
            return True
        if not (self.in_flight or self.queue):
            return False
        return (self.queued_bytes + self.body_bytes > self.config.max_body_bytes
                or self.hub.held_bytes > self.config.max_buffered_bytes)

    def _pause(self) -> None:
        if not self.reading_paused:
            self.reading_paused = True
            if self.transport is not None:
                self.transport.pause_reading()

    def _maybe_resume(self) -> None:
        if self.reading_paused and not self._must_wait():
            self.reading_paused = False
            if self.request_started is not None:  # the header clock ran only while reading
                self.request_started = self.hub.loop.time()
            if self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def _release(self, request: Request | None) -> None:
        if request is not None and request.held:
            self.hub.held_bytes -= request.held
            request.held = 0

    def _release_all(self) -> None:
        """The connection is gone: its bodies, queued or half read, no longer count."""
        self._release(self.current)
        for request in self.queue:
            self._release(request)
        self.queue.clear()
        self.queued_bytes = 0
        self.hub.held_bytes -= self.body_bytes
        self.body_bytes = 0

    # -- answering ---------------------------------------------------------------------

    def _next(self) -> None:
        if not self.queue or self.closed:
            return
        request = self.queue.popleft()
        self.queued_bytes -= request.held
        self.in_flight = True
        self.current = request
        if self.reading_paused:
            self._maybe_resume()
        self.hub.dispatch(self, request)

    def respond_local(self, status: int, payload: Any) -> None:
        """An answer made by the router itself (control API, 4xx, 502, 503, 504)."""
        close = self.current is None or not self.current.keep_alive
        self.write(json_response(status, payload, close=close))
        self.response_done()

    def start_response(self, head: bytes, length: int | None, bodyless: bool) -> None:
        """The status line and the end-to-end headers of a replica's answer: add framing."""
        request = self.current
        close = request is None or not request.keep_alive
        self.chunked = False
        if bodyless or length is not None:
            framing = b""
        elif request is not None and request.http10:
            framing, close = b"", True  # close-delimited: HTTP/1.0 has no chunked coding
        else:
            framing, self.chunked = b"transfer-encoding: chunked\r\n", True
        if close and request is not None:
            request.keep_alive = False
        if close:
            end = b"connection: close\r\n\r\n"
        elif request is not None and request.http10:  # HTTP/1.0 closes unless told otherwise
            end = b"connection: keep-alive\r\n\r\n"
        else:
            end = b"\r\n"
        self.write(head + framing + end)

    def send_body(self, data: bytes) -> None:
        if self.chunked:
            self.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.write(data)

    def end_response(self) -> None:
        if self.chunked:
            self.write(b"0\r\n\r\n")
            self.chunked = False
        self.upstream = None
        self.response_done()

    def cut(self) -> None:
        """The answer broke off after part of it went out: reset the connection (RST), so
        that the client sees an error whatever the framing (a clean close would end an
        HTTP/1.0 client's close-delimited body as if it were complete)."""
        self.upstream = None
        self.close_after = True
        self.corked = None  # the rest of a broken answer is not sent
        transport = self.transport
        if transport is not None and not self.closed:
            self.closed = True
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
            transport.abort()
        self.hub.clients.discard(self)
        self._release_all()

    def response_done(self) -> None:
        self.in_flight = False
        current = self.current
        if current is not None and current.held:
            self.hub.held_bytes -= current.held
            current.held = 0
        self.last_active = self.hub.loop.time()
        if current is None or not current.keep_alive:
            self.close()
        elif self.queue:
            if not self.writing_paused:
                self._next()  # else resume_writing goes on: a client that does not read waits
        else:
            if self.reading_paused:
                self._maybe_resume()
            if self.continue_pending and self.transport is not None and not self.closed:
                self.continue_pending = False  # its request now heads the pipeline
                self.write(CONTINUE)  # after the end of the answer before it (corked)

    def write(self, data: bytes) -> None:
        if self.corked is not None:
            self.corked.append(data)
        elif self.transport is not None and not self.closed:
            self.transport.write(data)

    def cork(self) -> None:
        """Hold writes until `uncork`: the pieces of one upstream read go out in one write."""
        if self.corked is None:
            self.corked = []

    def uncork(self) -> None:
        held, self.corked = self.corked, None
        if held:
            self.write(b"".join(held))

    def reject(self, status: int, reason: str) -> None:
        """Answer a bad request and close: the rest of the stream cannot be trusted."""
        if self.transport is not None and not self.closed and not self.in_flight:
            self.transport.write(json_response(status, {"error": reason}, close=True))
        self.close_after = True
        self.close()

    def check_timeouts(self, now: float) -> None:
        upstream = self.upstream
        if upstream is not None and upstream.responded:
            # idle between the bytes of an answer: the replica's reads did not move since the
            # last sweep (a client that does not read is not the replica's silence)
            if upstream.reads != upstream.seen_reads or self.writing_paused:
                upstream.seen_reads = upstream.reads
                upstream.quiet_since = now
            elif now - upstream.quiet_since > self.config.response_idle_timeout_s:
                self.hub.stalled(upstream)
                return
        if (self.request_started is not None and not self.reading_paused
                and now - self.request_started > self.config.header_timeout_s):
            self.reject(408, "request headers not received in time")
        elif (not self.in_flight and not self.queue
              and now - self.last_active > self.config.keepalive_timeout_s):
            self.close()

    def close(self) -> None:
        self.uncork()
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()
        self.hub.clients.discard(self)
        self._release_all()


class Upstream(asyncio.Protocol):
    """One keep-alive connection to a replica; carries one request at a time."""

    __slots__ = ("_chunked", "_head", "_length", "_named", "_reason", "_skip", "client",
                 "closing", "hub", "idle_since", "parser", "quiet_since", "reads", "replica",
                 "request", "responded", "seen_reads", "sent_at", "transport")

    def __init__(self, hub: Hub, replica: Replica) -> None:
        self.hub = hub
        self.replica = replica
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: Client | None = None
        self.request: Request | None = None
        self.responded = False  # some byte of the answer went to the client
        self.closing = False
        self.sent_at = 0.0
        self.idle_since = 0.0
        self.reads = 0  # data_received calls; the sweep compares it to `seen_reads`
        self.seen_reads = -1
        self.quiet_since = 0.0
        self._head: list[bytes] = []
        self._named: set[bytes] = set()
        self._reason = b""
        self._length: int | None = None
        self._chunked = False  # the answer is framed by chunks (a close does not end it)
        self._skip = False  # a 1xx interim answer, or a HEAD answer already finished

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def usable(self) -> bool:
        return not self.closing and self.transport is not None and not (
            self.transport.is_closing())

    def send(self, client: Client, request: Request) -> bool:
        """Write the request. False when not a byte of it can have left (closed connection,
        or the very first write failed at once): then it may go elsewhere."""
        transport = self.transport
        if transport is None or not self.usable():
            return False
        request.write_to(transport)
        if transport.is_closing():  # the first send() failed: nothing went out
            self.closing = True
            return False
        self.client = client
        self.request = request
        self.responded = False  # (`reads` moves at its first byte: the idle clock restarts)
        self.sent_at = self.hub.loop.time()
        self.hub.busy.add(self)
        client.upstream = self
        if client.writing_paused:
            transport.pause_reading()
        else:
            transport.resume_reading()  # a no-op unless a previous client left it paused
        return True

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None:  # bytes with no request: the replica misbehaves
            self.close()
            return
        self.reads += 1
        client.cork()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.fail("the replica sent a malformed answer")
        finally:
            client.uncork()

    # -- httptools callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        self._head = []
        self._named = set()
        self._reason = b""
        self._length = None
        self._chunked = False
        self._skip = False

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower in HOP_BY_HOP:
            if lower == b"connection":
                self._named |= connection_tokens(value)
            elif lower == b"transfer-encoding":
                self._chunked = value.rsplit(b",", 1)[-1].strip().lower() == b"chunked"
            return
        if lower == b"content-length":
            self._length = int(value)
        self._head.append(b"%s: %s\r\n" % (name, value))

    def on_headers_complete(self) -> None:
        client, request = self.client, self.request
        status = self.parser.get_status_code()
        if client is None or request is None or status < 200:
            self._skip = True  # an interim answer (the router answered 100-continue itself)
            return
        if not self.parser.should_keep_alive():
            self.closing = True
        named = self._named
        lines = [h for h in self._head if h.split(b":", 1)[0].lower() not in named] if (
            named) else self._head
        head = b"HTTP/1.1 %d %s\r\n%s" % (status, self._reason, b"".join(lines))
        bodyless = request.method == b"HEAD" or status in (204, 304)
        self._begin_answer()
        client.start_response(head, self._length, bodyless)
        if request.method == b"HEAD":
            # llhttp would wait for the body a Content-Length announces: finish here, and do
            # not reuse the connection (its parser is now out of step).
            self.closing = True
            self._skip = True
            self._complete()

    def on_body(self, body: bytes) -> None:
        if self.client is not None and not self._skip:
            self.client.send_body(body)

    def on_message_complete(self) -> None:
        if self._skip:
            self._skip = False
            return
        if self.client is not None:
            self._complete()

    # -- endings -------------------------------------------------------------------------

    def _begin_answer(self) -> None:
        self.responded = True
        self.hub.busy.discard(self)  # the upstream timeout covers the wait for an answer

    def _unbind(self) -> tuple[Client | None, Request | None]:
        client, request = self.client, self.request
        self.client = None
        self.request = None
        self.hub.busy.discard(self)
        if client is not None and client.upstream is self:
            client.upstream = None
        if request is not None:
            self.hub.finish(request)
        return client, request

    def _complete(self) -> None:
        client, _ = self._unbind()
        self.idle_since = self.hub.loop.time()
        self.hub.release(self)
        if client is not None:
            client.end_response()

    def fail(self, detail: str, status: int = 502, error: str = "replica failed") -> None:
        """The request failed on this connection: 502/504 if nothing went out, else a cut."""
        responded = self.responded
        client, request = self._unbind()
        self.close()
        if client is None or request is None:
            return
        if responded:
            client.cut()
        else:
            client.respond_local(status, {"error": error, "detail": detail,
                                          "container_id": self.replica.container_id})

    def abandon(self) -> None:
        """The client went away mid-answer: the connection cannot be reused."""
        self._unbind()
        self.close()

    def timed_out(self) -> None:
        self.fail("the replica did not answer in time", 504, "replica timeout")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.client is None:
            return
        if self.responded and self._length is None and not self._chunked:
            self._complete()  # a close-delimited answer (neither header) ends with the close
            return
        self.fail("the connection to the replica was lost before the answer was complete")

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Idle keep-alive connections per replica, as httpcore's pool keeps them.

    A connection goes back to its replica's pool when its answer is complete and the replica
    is live (at most MAX_IDLE_PER_REPLICA idle per replica); it is closed when the replica
    leaves the live set, when the replica closes it, or after `idle_s` unused (before the
    replica's own keep-alive timeout closes it under a request)."""

    def __init__(self, hub: Hub, connect_timeout_s: float, idle_s: float) -> None:
        self.hub = hub
        self.connect_timeout_s = connect_timeout_s
        self.idle_s = idle_s
        self.idle: dict[Replica, list[Upstream]] = {}

    def take(self, replica: Replica) -> Upstream | None:
        """The most recently used idle connection; `Upstream.send` checks it is still usable
        (the router then closes it and takes the next)."""
        conns = self.idle.get(replica)
        return conns.pop() if conns else None

    def put(self, conn: Upstream, live: Callable[[Replica], bool]) -> None:
        if live(conn.replica) and conn.usable():
            conns = self.idle.setdefault(conn.replica, [])
            if len(conns) < MAX_IDLE_PER_REPLICA:
                conns.append(conn)
                return
        conn.close()

    async def connect(self, replica: Replica) -> Upstream:
        """A new connection; raises OSError (refused) or TimeoutError (connect timeout)."""
        _, conn = await asyncio.wait_for(self.hub.loop.create_connection(
            partial(Upstream, self.hub, replica), "127.0.0.1", replica.port),
            self.connect_timeout_s)
        return conn

    def purge(self, live: Callable[[Replica], bool]) -> None:
        """Close the idle connections of replicas that are no longer live."""
        for replica in [r for r in self.idle if not live(r)]:
            for conn in self.idle.pop(replica):
                conn.close()

    def expire(self, now: float) -> None:
        for replica, conns in list(self.idle.items()):
            keep = []
            for conn in conns:  # one pass: kept in order, the others closed
                if conn.usable() and now - conn.idle_since < self.idle_s:
                    keep.append(conn)
                else:
                    conn.close()
            if keep:
                self.idle[replica] = keep
            else:
                del self.idle[replica]

    def close(self) -> None:
        for conns in self.idle.values():
            for conn in conns:
                conn.close()
        self.idle.clear()
