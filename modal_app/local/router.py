"""The router: Modal's HTTP Server proxy, in one asyncio process.

Every request is routed on its own, never pinned to the client's connection:
- with a `Modal-Session-Id` header (any case), to the owner of its value by rendezvous
  hashing over the live replicas (`rendezvous.py`);
- without one, to the replica with the fewest requests in flight, ties broken at random;
- with no live replica, 503 at once with a short JSON reason (no queueing).
A replica that refuses the connection leaves the live set and the request goes to the next
ranked one (it never reached the dead one). A failure after the request was sent is a 502;
a replica that does not answer within `upstream_timeout_s` gets a 504: never a hang.

Requests are parsed with httptools (llhttp), buffered whole, and sent to the replica over a
pooled keep-alive connection; the replica's response bytes are relayed as they arrive.
Malformed or oversized requests get a 4xx and the connection is closed: 400 for a bad request
line, Content-Length or chunk, and for Content-Length together with Transfer-Encoding
(RFC 9112 6.1); 431 for headers over `max_header_bytes`; 413 for a body over
`max_body_bytes`; 408 for headers not complete within `header_timeout_s`.
Paths under `/_emulator/` go to the control API instead of a replica.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from http import HTTPStatus
from typing import Any, cast

import httptools

from modal_app.local.auth import ProxyAuth
from modal_app.local.config import EmulatorConfig
from modal_app.local.rendezvous import pick
from modal_app.local.sessions import Session, SessionError, SessionTable, parse_idle_timeout
from modal_app.local.supervisor import EXITED, LIVE, RETIRING, Replica, ReplicaSet

CONTROL_PREFIX = b"/_emulator/"
SESSION_HEADER = b"modal-session-id"
# Hop-by-hop headers (RFC 9110 7.6.1) and the framing we redo ourselves.
DROPPED = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te",
    b"trailer", b"upgrade", b"content-length", b"expect",
})
# Headers meant for Modal's proxy: read by the router, never forwarded to a replica.
PROXY_HEADERS = frozenset({
    b"modal-key", b"modal-secret", b"modal-authorization", b"x-modal-server-session-token",
    b"x-modal-server-session-idle-timeout", b"x-idempotency-key", b"x-modal-timestamp",
})
SESSIONS_PREFIX = b"/_modal/sessions/"

ControlHandler = Callable[["Request"], Awaitable[tuple[int, Any]]]


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


class Request:
    __slots__ = ("body", "head", "keep_alive", "method", "proxy", "session", "strict", "url")

    def __init__(self, method: bytes, url: bytes, head: bytes, body: bytes,
                 session: str | None, keep_alive: bool, proxy: dict[bytes, bytes]) -> None:
        self.method = method
        self.url = url
        self.head = head
        self.body = body
        self.session = session
        self.keep_alive = keep_alive
        self.proxy = proxy  # the proxy's own headers, consumed here, never forwarded
        self.strict: Session | None = None

    def bearer(self) -> str | None:
        value = self.proxy.get(b"modal-authorization", b"").decode("latin-1").strip()
        scheme, _, token = value.partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None

    def encode(self) -> bytes:
        return b"%scontent-length: %d\r\n\r\n%s" % (self.head, len(self.body), self.body)


class Router:
    """Routing decisions, upstream connection pools, and the sweep of slow peers."""

    def __init__(self, config: EmulatorConfig, replicas: ReplicaSet,
                 control: ControlHandler, auth: ProxyAuth | None = None) -> None:
        self.config = config
        self.auth = auth
        self.sessions = SessionTable() if config.sessioned else None
        replicas.sessions_on = self.sessions_on
        self.replicas = replicas
        self.control = control
        self.loop = asyncio.get_running_loop()
        self.live: tuple[Replica, ...] = replicas.live
        self._by_id: dict[str, Replica] = {}
        self._owner: dict[str, Replica] = {}
        self.idle: dict[Replica, list[Upstream]] = {}
        self.clients: set[Client] = set()
        self.busy: set[Upstream] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        replicas.on_change(self.membership_changed)
        self.membership_changed(replicas.live)
        self._sweeper = self.loop.call_later(self._sweep_interval(), self.sweep)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine in the background, holding a reference until it ends."""
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _sweep_interval(self) -> float:
        return min(1.0, self.config.header_timeout_s / 4)

    # -- routing -----------------------------------------------------------------------

    def membership_changed(self, live: tuple[Replica, ...]) -> None:
        self.live = live
        self._by_id = {r.container_id: r for r in live}
        self._owner.clear()
        for replica in list(self.idle):
            if replica.state != LIVE:
                for conn in self.idle.pop(replica):
                    conn.close()

    def choose(self, session: str | None) -> Replica | None:
        live = self.live
        if not live:
            return None
        if session is not None:
            owner = self._owner.get(session)
            if owner is None:
                owner = self._by_id[pick(session, list(self._by_id))]
                if len(self._owner) > 200_000:
                    self._owner.clear()
                self._owner[session] = owner
            return owner
        least = min(r.in_flight for r in live)
        return random.choice([r for r in live if r.in_flight == least])

    def forward(self, client: Client, request: Request) -> None:
        if self.auth is not None:
            denied = self.auth.check(request.proxy.get(b"modal-key"),
                                     request.proxy.get(b"modal-secret"))
            if denied:
                client.respond_local(401, {"error": denied})
                return
        if self.sessions is not None:
            replica = self._strict_route(client, request)
            if replica is None:
                return
        else:
            replica = self.choose(request.session)
            if replica is None:
                client.respond_local(503, {
                    "error": "no live replica",
                    "detail": "all replicas are starting or gone; retry shortly",
                })
                return
        limit = self.config.max_concurrency
        if limit and replica.in_flight >= limit:
            client.respond_local(429, {
                "error": "too many requests",
                "detail": f"{limit} requests already in flight on {replica.container_id}"})
            return
        if request.strict is not None:
            request.strict.in_flight += 1
        pool = self.idle.get(replica)
        if pool:
            pool.pop().send(client, request)
        else:
            self.spawn(self._connect_and_send(client, request, replica))

    async def _connect_and_send(self, client: Client, request: Request,
                                replica: Replica | None) -> None:
        while replica is not None:
            try:
                _, conn = await self.loop.create_connection(
                    partial(Upstream, self, replica), "127.0.0.1", replica.port)
            except OSError:
                # Refused: the request never reached it. Out of the live set, next in rank.
                self.replicas.mark_refused(replica)
                if request.strict is not None:  # a strict session cannot move
                    self._end_strict(request)
                    self.sessions_end_on(replica)
                    client.respond_local(410, {"error": "session ended",
                                               "reason": "container gone"})
                    return
                replica = self.choose(request.session)
                continue
            if client.closed:
                conn.close()
                return
            conn.send(client, request)
            return
        client.respond_local(503, {"error": "no live replica",
                                   "detail": "every live replica refused the connection"})

    # -- strict sessions (--sessioned) -------------------------------------------------------

    def _strict_route(self, client: Client, request: Request) -> Replica | None:
        """The session's container, or None after answering the request here."""
        assert self.sessions is not None
        try:
            if request.url.startswith(SESSIONS_PREFIX):
                client.respond_local(200, self._session_call(request))
                return None
            session = self.sessions.lookup(request.bearer())
            if session.replica.state == EXITED:
                self.sessions_end_on(session.replica)
                session = self.sessions.lookup(request.bearer())
        except SessionError as exc:
            client.respond_local(exc.status, exc.payload)
            return None
        session.last_active = self.loop.time()
        request.strict = session
        return session.replica

    def _session_call(self, request: Request) -> dict[str, str]:
        assert self.sessions is not None
        if request.method != b"POST":
            raise SessionError(405, "use POST")
        if not request.bearer():
            raise SessionError(401, "missing function token",
                               detail="send Modal-Authorization: Bearer <token>")
        action = request.url[len(SESSIONS_PREFIX):].split(b"?")[0].strip(b"/")
        if action == b"start":
            idle = parse_idle_timeout(request.proxy.get(
                b"x-modal-server-session-idle-timeout", b"").decode("latin-1") or None)
            key = request.proxy.get(b"x-idempotency-key", b"").decode("latin-1") or None
            session = self.sessions.start(self.live, idle, self.loop.time(), key)
            return {"session_id": session.session_id, "token": session.token}
        if action == b"terminate":
            token = request.proxy.get(b"x-modal-server-session-token", b"").decode("latin-1")
            session = self.sessions.terminate(token.strip() or None)
            self._retire_if_free(session.replica)
            return {"terminated": session.session_id}
        raise SessionError(404, "unknown sessions call")

    def _end_strict(self, request: Request) -> None:
        session = request.strict
        if session is not None:
            request.strict = None
            session.in_flight -= 1
            session.last_active = self.loop.time()

    def sessions_end_on(self, replica: Replica) -> None:
        if self.sessions is not None:
            self.sessions.container_gone(replica)

    def sessions_on(self, replica: Replica) -> int:
        return self.sessions.count(replica) if self.sessions is not None else 0

    def _retire_if_free(self, replica: Replica) -> None:
        if replica.state == RETIRING and not self.sessions_on(replica):
            self.replicas.stop(replica, cause="scale")

    def _expire_sessions(self) -> None:
        if self.sessions is None:
            return
        for session in self.sessions.expire(self.loop.time()):
            self._retire_if_free(session.replica)
        for replica in {s.replica for s in self.sessions.by_token.values()}:
            if replica.state == EXITED:
                self.sessions.container_gone(replica)

    def retry(self, client: Client, request: Request, replica: Replica) -> None:
        """A pooled connection closed under a request before any byte came back."""
        target = replica if replica.state == LIVE else self.choose(request.session)
        self.spawn(self._connect_and_send(client, request, target))

    def release(self, conn: Upstream) -> None:
        if conn.replica.state == LIVE and not conn.closing:
            self.idle.setdefault(conn.replica, []).append(conn)
        else:
            conn.close()

    # -- timeouts ----------------------------------------------------------------------

    def sweep(self) -> None:
        now = self.loop.time()
        cfg = self.config
        for client in list(self.clients):
            client.check_timeouts(now, cfg.header_timeout_s, cfg.keepalive_timeout_s)
        for conn in list(self.busy):
            if now - conn.sent_at > cfg.upstream_timeout_s:
                conn.timed_out()
        self._expire_sessions()
        self._sweeper = self.loop.call_later(self._sweep_interval(), self.sweep)

    def close(self) -> None:
        self._sweeper.cancel()
        for client in list(self.clients):
            client.close()
        for pool in self.idle.values():
            for conn in pool:
                conn.close()
        self.idle.clear()


class Client(asyncio.Protocol):
    """One client connection: parses requests and answers them in order."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.config = router.config
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: deque[Request] = deque()
        self.in_flight = False
        self.current: Request | None = None
        self.closed = False
        self.close_after = False
        self._reset()
        self.request_started: float | None = None
        self.last_active = router.loop.time()

    def _reset(self) -> None:
        self.url = b""
        self.head_parts: list[bytes] = []
        self.header_bytes = 0
        self.body_parts: list[bytes] = []
        self.body_bytes = 0
        self.session: str | None = None
        self.content_lengths = 0
        self.chunked = False
        self.headers_done = False
        self.expects_continue = False
        self.proxy: dict[bytes, bytes] = {}

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.router.clients.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.router.clients.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.close_after:
            return
        self.last_active = self.router.loop.time()
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
        self.request_started = self.router.loop.time()

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
        if lower == SESSION_HEADER:
            self.session = value.decode("latin-1").strip() or None
        elif lower == b"content-length":
            self.content_lengths += 1
            if self.content_lengths > 1:
                raise Rejected(400, "duplicate Content-Length")
        elif lower == b"transfer-encoding":
            self.chunked = True
        elif lower == b"expect" and value.lower() == b"100-continue":
            self.expects_continue = True
        elif lower in PROXY_HEADERS:
            self.proxy[lower] = value
            return
        if lower not in DROPPED:
            self.head_parts.append(b"%s: %s\r\n" % (name, value))

    def on_headers_complete(self) -> None:
        if self.content_lengths and self.chunked:
            raise Rejected(400, "Content-Length together with Transfer-Encoding")
        self.headers_done = True
        self.request_started = None
        if self.expects_continue:
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > self.config.max_body_bytes:
            raise Rejected(413, "request body too large")
        self.body_parts.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        head = b"%s %s HTTP/1.1\r\n%s" % (method, self.url, b"".join(self.head_parts))
        body = b"".join(self.body_parts) if self.body_parts else b""
        keep_alive = self.parser.should_keep_alive()
        self.queue.append(Request(method, self.url, head, body, self.session, keep_alive,
                                  self.proxy))
        if not self.in_flight:
            self._next()

    # -- answering ---------------------------------------------------------------------

    def _next(self) -> None:
        if not self.queue or self.closed:
            return
        request = self.queue.popleft()
        self.in_flight = True
        self.current = request
        if request.url.startswith(CONTROL_PREFIX):
            self.router.spawn(self._control(request))
        else:
            self.router.forward(self, request)

    async def _control(self, request: Request) -> None:
        try:
            status, payload = await self.router.control(request)
        except Exception as exc:  # the control API never takes the router down
            status, payload = 500, {"error": f"{type(exc).__name__}: {exc}"}
        self.respond_local(status, payload)

    def respond_local(self, status: int, payload: Any) -> None:
        """An answer made by the router itself (control API, 503, 502, 504)."""
        close = self.current is None or not self.current.keep_alive
        if self.transport is not None and not self.closed:
            self.transport.write(json_response(status, payload, close=close))
        self.response_done()

    def response_done(self) -> None:
        self.in_flight = False
        self.last_active = self.router.loop.time()
        if self.current is None or not self.current.keep_alive:
            self.close()
        elif self.queue:
            self._next()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def reject(self, status: int, reason: str) -> None:
        """Answer a bad request and close: the rest of the stream cannot be trusted."""
        if self.transport is not None and not self.closed and not self.in_flight:
            self.transport.write(json_response(status, {"error": reason}, close=True))
        self.close_after = True
        self.close()

    def check_timeouts(self, now: float, header_timeout: float, keepalive: float) -> None:
        if self.request_started is not None and now - self.request_started > header_timeout:
            self.reject(408, "request headers not received in time")
        elif not self.in_flight and not self.queue and now - self.last_active > keepalive:
            self.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()
        self.router.clients.discard(self)


class Upstream(asyncio.Protocol):
    """One keep-alive connection to a replica; carries one request at a time."""

    def __init__(self, router: Router, replica: Replica) -> None:
        self.router = router
        self.replica = replica
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: Client | None = None
        self.request: Request | None = None
        self.responded = False
        self.reused = False
        self.closing = False
        self.sent_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self, client: Client, request: Request) -> None:
        assert self.transport is not None
        self.client = client
        self.request = request
        self.responded = False
        self.replica.in_flight += 1
        self.sent_at = self.router.loop.time()
        self.router.busy.add(self)
        self.transport.write(request.encode())

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None:  # bytes with no request: the replica misbehaves
            self.close()
            return
        self.responded = True
        client.write(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.closing = True
            self._finish(ok=False)
            client.close()

    def on_headers_complete(self) -> None:
        if not self.parser.should_keep_alive():
            self.closing = True
        if self.request is not None and self.request.method == b"HEAD":
            self.closing = True  # the parser would wait for a body that never comes
            self.on_message_complete()

    def on_message_complete(self) -> None:
        client = self.client
        if client is None:
            return
        self._finish(ok=True)
        self.reused = True
        self.router.release(self)
        client.response_done()

    def _finish(self, *, ok: bool) -> None:
        if self.request is not None and self.request.strict is not None:
            self.router._end_strict(self.request)
        self.client = None
        self.request = None
        self.router.busy.discard(self)
        replica = self.replica
        replica.in_flight -= 1
        if replica.in_flight == 0:
            replica.drained.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        pool = self.router.idle.get(self.replica)
        if pool and self in pool:
            pool.remove(self)
        client, request = self.client, self.request
        if client is None or request is None:
            return
        self._finish(ok=False)
        if self.responded:
            client.close()  # part of the answer went out: all we can do is cut it
        elif self.reused and self.replica.state == LIVE:
            self.router.retry(client, request, self.replica)
        else:
            client.respond_local(502, {"error": "replica failed",
                                       "detail": "the connection to the replica was lost"})

    def timed_out(self) -> None:
        client = self.client
        if client is None:
            return
        responded = self.responded
        self._finish(ok=False)
        self.close()
        if responded:
            client.close()
        else:
            client.respond_local(504, {"error": "replica timeout",
                                       "detail": "the replica did not answer in time"})

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()
