"""The router: Modal's HTTP Server proxy, in one asyncio process. It decides; others act.

Every request is routed on its own, never pinned to the client's connection (`policy.py`):
with a `Modal-Session-Id` to its session's owner, without one to the least-loaded live
replica; with no live replica, 503 at once with a short JSON reason (no queueing). A request
counts as in flight on its replica from the moment it is chosen, so the least-loaded choice
and `--max-concurrency` (429, `auth.py`) hold under bursts; every lease honours it, a request
moved after a refusal included. Strict sessions (`--sessioned`) are routed by `sessions.py`;
the control API (`/_emulator/`, `control.py`) is guarded by `auth.ControlGuard` (loopback
Host, own Origin, JSON only, the control token and under `--auth` the proxy credentials).
Bytes move in `transport.py`.

The retry rule: a request is sent again only when it provably never left the router.
- The connection was refused (connect() failed): the replica leaves the live set ("refused")
  and the request goes to the next replica in its session's order. A strict session's request
  never moves: its session ends, and it gets 410.
- A pooled connection was already closed when taken, or its first write failed at once (the
  kernel took no byte): another connection to the same replica carries it.
Anything else, a connection lost or reset after the request was written, a connect timeout,
a replica slower than `--upstream-timeout`, reaches the client as it is: 502 or 504 with a
JSON reason, or a cut stream when part of the answer was already sent. This is nginx's rule
for non-idempotent requests (`proxy_next_upstream`: a POST "is not passed to the next server
if a request has been sent to an upstream server", since 1.9.13) applied to every method,
and httpcore's (its pool moves a request to another connection only on
`ConnectionNotAvailable`, raised before any byte of it was written, and it drops idle
connections the server closed, `has_expired`). A proxy that re-sent requests that may have
run would hide crashes and run non-idempotent work twice.

Membership: the pool of idle connections is purged as soon as a replica leaves the live set.
The routing view follows the live set `--membership-delay-ms` later (0 = at once), to stand
for a proxy that learns of changes late; the event log has the real time of each change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from modal_app.local.auth import ControlGuard, ProxyAuth, over_limit
from modal_app.local.config import EmulatorConfig
from modal_app.local.policy import RoutingTable
from modal_app.local.sessions import SessionError, StrictSessions
from modal_app.local.supervisor import LIVE, Replica, ReplicaSet
from modal_app.local.transport import Client, Pool, Request, Upstream

CONTROL_PREFIX = b"/_emulator/"

ControlHandler = Callable[[Request], Awaitable[tuple[int, Any]]]


def is_live(replica: Replica) -> bool:
    return replica.state == LIVE


class Router:
    """Routing decisions, the lease of each request on its replica, and the timeouts sweep."""

    def __init__(self, config: EmulatorConfig, replicas: ReplicaSet, control: ControlHandler,
                 *, auth: ProxyAuth | None = None, strict: StrictSessions | None = None
                 ) -> None:
        self.config = config
        self.auth = auth
        self.guard = ControlGuard(config.control_token, config.host, auth)
        self.strict = strict
        self.replicas = replicas
        self.control = control
        self.loop = asyncio.get_running_loop()
        self.table: RoutingTable[Replica] = RoutingTable(config.policy)
        self.pool = Pool(self, config.connect_timeout_s, config.pool_idle_s)
        self.clients: set[Client] = set()
        self.busy: set[Upstream] = set()
        self.held_bytes = 0  # request body bytes the client connections hold
        self.tasks: set[asyncio.Task[None]] = set()
        self.table.update(replicas.live)
        replicas.on_change(self.membership_changed)
        self._sweeper = self.loop.call_later(self._sweep_interval(), self.sweep)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine in the background, holding a reference until it ends."""
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _sweep_interval(self) -> float:
        config = self.config
        return min(1.0, config.header_timeout_s / 4, config.response_idle_timeout_s / 4)

    def membership_changed(self, live: tuple[Replica, ...]) -> None:
        self.pool.purge(is_live)
        delay = self.config.membership_delay_ms / 1000
        if delay:
            self.loop.call_later(delay, self.table.update, live)
        else:
            self.table.update(live)

    # -- a request's way -------------------------------------------------------------------

    def dispatch(self, client: Client, request: Request) -> None:
        if request.url.startswith(CONTROL_PREFIX):
            self.spawn(self._control(client, request))
            return
        if self.auth is not None:
            denied = self.auth.check(request.proxy.get(b"modal-key"),
                                     request.proxy.get(b"modal-secret"))
            if denied:
                client.respond_local(401, {"error": denied})
                return
        replica = self._choose(client, request)
        if replica is None or self._full(client, request, replica):
            return
        self._lease(request, replica)
        self._send(client, request)

    def _full(self, client: Client, request: Request, replica: Replica) -> bool:
        """429 when one more request would exceed `--max-concurrency` on `replica`."""
        limit = self.config.max_concurrency
        if not over_limit(replica.in_flight, limit):
            return False
        request.strict = None  # never leased: nothing to count back
        client.respond_local(429, {
            "error": "too many requests",
            "detail": f"{limit} requests already in flight on {replica.container_id}"})
        return True

    def _choose(self, client: Client, request: Request) -> Replica | None:
        """The request's replica, or None after answering it here."""
        if self.strict is not None:
            try:
                if self.strict.is_call(request.url):
                    client.respond_local(200, self.strict.call(
                        request.method, request.url, request.bearer(), request.proxy))
                    return None
                request.strict = self.strict.route(request.bearer())
            except SessionError as exc:
                client.respond_local(exc.status, exc.payload)
                return None
            return request.strict.replica
        replica = self.table.choose(request.session)
        if replica is None:
            client.respond_local(503, {
                "error": "no live replica",
                "detail": "all replicas are starting or gone; retry shortly"})
        return replica

    def _lease(self, request: Request, replica: Replica) -> None:
        replica.in_flight += 1
        request.replica = replica
        if request.strict is not None and self.strict is not None:
            self.strict.begin(request.strict)

    def finish(self, request: Request) -> None:
        """The request is over (answered, failed or abandoned): it no longer counts."""
        replica, request.replica = request.replica, None
        if replica is not None:
            replica.in_flight -= 1
            if replica.in_flight == 0:
                replica.drained.set()
        session, request.strict = request.strict, None
        if session is not None and self.strict is not None:
            self.strict.finish(session)

    def _send(self, client: Client, request: Request) -> None:
        assert request.replica is not None
        conn = self.pool.take(request.replica)
        while conn is not None:
            if conn.send(client, request):
                return
            conn.close()  # closed under us before a byte left: the next one may carry it
            conn = self.pool.take(request.replica)
        self.spawn(self._connect_and_send(client, request))

    async def _connect_and_send(self, client: Client, request: Request) -> None:
        try:
            await self._connect_loop(client, request)
        except Exception as exc:  # never leak a lease or leave a client waiting
            if request.replica is not None:
                self._fail_local(client, request, 502, "router error",
                                 f"{type(exc).__name__}: {exc}")
            raise

    async def _connect_loop(self, client: Client, request: Request) -> None:
        while (replica := request.replica) is not None:
            try:
                conn = await self.pool.connect(replica)
            except TimeoutError:
                self._fail_local(client, request, 504, "replica timeout",
                                 f"no connection to {replica.container_id} within "
                                 f"{self.config.connect_timeout_s:g} s")
                return
            except OSError:
                if not self._next_after_refusal(client, request, replica):
                    return
                continue
            if client.closed:
                self.finish(request)
                self.release(conn)
                return
            if conn.send(client, request):
                return
            conn.close()  # a fresh connection closed before a byte left: try once more

    def _next_after_refusal(self, client: Client, request: Request, replica: Replica) -> bool:
        """Refused: the request never reached it. Move it to the next replica if it may."""
        self.replicas.mark_refused(replica)
        if request.strict is not None:  # a strict session cannot move
            if self.strict is not None:
                self.strict.container_gone(replica)
            self._fail_local(client, request, 410, "session ended", None,
                             reason="container gone")
            return False
        request.tried += (replica,)
        self.finish(request)
        following = self.table.choose(request.session, request.tried)
        if following is None:
            client.respond_local(503, {"error": "no live replica",
                                       "detail": "every live replica refused the connection"})
            return False
        if self._full(client, request, following):  # the limit holds for a moved request too
            return False
        self._lease(request, following)
        return True

    def _fail_local(self, client: Client, request: Request, status: int, error: str,
                    detail: str | None, **extra: str) -> None:
        self.finish(request)
        payload = {"error": error, **({"detail": detail} if detail else {}), **extra}
        client.respond_local(status, payload)

    def release(self, conn: Upstream) -> None:
        self.pool.put(conn, is_live)

    async def _control(self, client: Client, request: Request) -> None:
        refused = self.guard.check(
            request.method, request.header(b"host"), request.header(b"origin"),
            request.header(b"content-type"), request.authorization,
            request.proxy.get(b"modal-key"), request.proxy.get(b"modal-secret"))
        if refused:
            client.respond_local(refused[0], {"error": refused[1]})
            return
        try:
            status, payload = await self.control(request)
        except Exception as exc:  # the control API never takes the router down
            status, payload = 500, {"error": f"{type(exc).__name__}: {exc}"}
        client.respond_local(status, payload)

    # -- timeouts ----------------------------------------------------------------------

    def stalled(self, conn: Upstream) -> None:
        """A replica sent nothing for `--response-idle-timeout` in the middle of an answer:
        the client's connection is cut (RST), and the event log says so."""
        idle = self.config.response_idle_timeout_s
        self.replicas.events.write("cut", container_id=conn.replica.container_id,
                                   cause="idle", idle_timeout_s=idle)
        conn.fail(f"the replica sent nothing for {idle:g} s in the middle of its answer")

    def sweep(self) -> None:
        now = self.loop.time()
        for client in list(self.clients):
            client.check_timeouts(now)
        for conn in list(self.busy):
            if now - conn.sent_at > self.config.upstream_timeout_s:
                conn.timed_out()
        self.pool.expire(now)
        if self.strict is not None:
            self.strict.expire()
        self._sweeper = self.loop.call_later(self._sweep_interval(), self.sweep)

    def close(self) -> None:
        self._sweeper.cancel()
        for client in list(self.clients):
            client.close()
        self.pool.close()
