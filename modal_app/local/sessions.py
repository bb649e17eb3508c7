"""Strict sessions, as `@modal.sessioned()` servers have them (GA form, emulated).

    POST /_modal/sessions/start      Modal-Authorization: Bearer <function token>
                                     x-idempotency-key, x-modal-timestamp,
                                     x-modal-server-session-idle-timeout: <seconds>
        -> 200 {"session_id": "se-...", "token": "st-..."}
    POST /_modal/sessions/terminate  Modal-Authorization: Bearer <function token>
                                     x-modal-server-session-token: <token>
        -> 200 {"terminated": "se-..."}, or 404 when it already ended

Every other request carries `Modal-Authorization: Bearer <session token>` and reaches the
session's container for as long as the session lives. Locally any non-empty function token is
accepted. A session ends when terminated, or after its idle timeout with no request in flight.
Rejections (our choice where Modal documents none): no token, 401; an unknown token, 401; a
token whose session ended, 410 `{"error": "session ended", "reason": "terminated" | "idle" |
"container gone"}`. A new session goes to the live container holding the fewest sessions.

A strict session's request is never re-routed: when its container refuses the connection or
dies, the session ends ("container gone") and the request gets 410 or 502, never another
container's answer.
"""

from __future__ import annotations

import random
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from modal_app.local.supervisor import EXITED, RETIRING, Replica, ReplicaSet

DEFAULT_IDLE_TIMEOUT_S = 600.0
MAX_IDLE_TIMEOUT_S = 86_400.0
TOMBSTONES = 100_000


@dataclass(eq=False)
class Session:
    session_id: str
    token: str
    replica: Replica
    idle_timeout_s: float
    last_active: float
    in_flight: int = 0


class SessionError(Exception):
    def __init__(self, status: int, error: str, **detail: str) -> None:
        super().__init__(error)
        self.status = status
        self.payload = {"error": error, **detail}


class SessionTable:
    def __init__(self) -> None:
        self.by_token: dict[str, Session] = {}
        self.ended: OrderedDict[str, str] = OrderedDict()  # token -> why it ended
        self.by_key: OrderedDict[str, Session] = OrderedDict()  # idempotency key -> session

    def count(self, replica: Replica) -> int:
        return sum(1 for s in self.by_token.values() if s.replica is replica)

    def start(self, live: tuple[Replica, ...], idle_timeout_s: float, now: float,
              idempotency_key: str | None) -> Session:
        if idempotency_key and idempotency_key in self.by_key:
            known = self.by_key[idempotency_key]
            if known.token in self.by_token:
                return known
        if not live:
            raise SessionError(503, "no live replica")
        loads = {r: 0 for r in live}
        for session in self.by_token.values():
            if session.replica in loads:
                loads[session.replica] += 1
        least = min(loads.values())
        replica = random.choice([r for r, n in loads.items() if n == least])
        session = Session("se-" + secrets.token_hex(12), "st-" + secrets.token_urlsafe(24),
                          replica, idle_timeout_s, now)
        self.by_token[session.token] = session
        if idempotency_key:
            self.by_key[idempotency_key] = session
            while len(self.by_key) > TOMBSTONES:
                self.by_key.popitem(last=False)
        return session

    def lookup(self, token: str | None) -> Session:
        if not token:
            raise SessionError(401, "missing session token",
                               detail="send Modal-Authorization: Bearer <session token>")
        session = self.by_token.get(token)
        if session is not None:
            return session
        if token in self.ended:
            raise SessionError(410, "session ended", reason=self.ended[token])
        raise SessionError(401, "unknown session token")

    def end(self, session: Session, reason: str) -> None:
        if self.by_token.pop(session.token, None) is not None:
            self.ended[session.token] = reason
            while len(self.ended) > TOMBSTONES:
                self.ended.popitem(last=False)

    def terminate(self, token: str | None) -> Session:
        if not token or token not in self.by_token:
            raise SessionError(404, "no such live session")
        session = self.by_token[token]
        self.end(session, "terminated")
        return session

    def expire(self, now: float) -> list[Session]:
        """End the sessions idle for longer than their timeout; returns them."""
        idle = [s for s in self.by_token.values()
                if s.in_flight == 0 and now - s.last_active > s.idle_timeout_s]
        for session in idle:
            self.end(session, "idle")
        return idle

    def container_gone(self, replica: Replica) -> list[Session]:
        gone = [s for s in self.by_token.values() if s.replica is replica]
        for session in gone:
            self.end(session, "container gone")
        return gone


def parse_idle_timeout(value: str | None) -> float:
    if value is None or value == "":
        return DEFAULT_IDLE_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        raise SessionError(400, "x-modal-server-session-idle-timeout must be seconds") from None
    if not 0 < seconds <= MAX_IDLE_TIMEOUT_S:
        raise SessionError(400, f"idle timeout must be in (0, {MAX_IDLE_TIMEOUT_S:.0f}] s")
    return seconds


SESSIONS_PREFIX = b"/_modal/sessions/"


class StrictSessions:
    """Strict sessions of a `--sessioned` emulator: the calls, the routing, the expiry.

    `route` gives the replica of a request's session (raising SessionError for a request the
    router must answer itself); `begin`/`finish` count the session's requests in flight."""

    def __init__(self, table: SessionTable, replicas: ReplicaSet,
                 clock: Callable[[], float]) -> None:
        self.table = table
        self.replicas = replicas
        self.clock = clock

    def is_call(self, url: bytes) -> bool:
        return url.startswith(SESSIONS_PREFIX)

    def call(self, method: bytes, url: bytes, bearer: str | None,
             headers: Mapping[bytes, bytes]) -> dict[str, str]:
        """POST /_modal/sessions/start|terminate."""
        if method != b"POST":
            raise SessionError(405, "use POST")
        if not bearer:
            raise SessionError(401, "missing function token",
                               detail="send Modal-Authorization: Bearer <token>")
        action = url[len(SESSIONS_PREFIX):].split(b"?")[0].strip(b"/")
        if action == b"start":
            idle = parse_idle_timeout(headers.get(
                b"x-modal-server-session-idle-timeout", b"").decode("latin-1") or None)
            key = headers.get(b"x-idempotency-key", b"").decode("latin-1") or None
            session = self.table.start(self.replicas.live, idle, self.clock(), key)
            return {"session_id": session.session_id, "token": session.token}
        if action == b"terminate":
            token = headers.get(b"x-modal-server-session-token", b"").decode("latin-1")
            session = self.table.terminate(token.strip() or None)
            self._retire_if_free(session.replica)
            return {"terminated": session.session_id}
        raise SessionError(404, "unknown sessions call")

    def route(self, bearer: str | None) -> Session:
        """The live session of a request's token (counted in flight by `begin` once the
        request has its replica)."""
        session = self.table.lookup(bearer)
        if session.replica.state == EXITED:
            self.table.container_gone(session.replica)
            session = self.table.lookup(bearer)
        session.last_active = self.clock()
        return session

    def begin(self, session: Session) -> None:
        session.in_flight += 1

    def finish(self, session: Session) -> None:
        session.in_flight -= 1
        session.last_active = self.clock()

    def container_gone(self, replica: Replica) -> None:
        self.table.container_gone(replica)

    def expire(self) -> None:
        for session in self.table.expire(self.clock()):
            self._retire_if_free(session.replica)
        for replica in {s.replica for s in self.table.by_token.values()}:
            if replica.state == EXITED:
                self.table.container_gone(replica)

    def _retire_if_free(self, replica: Replica) -> None:
        if replica.state == RETIRING and not self.table.count(replica):
            self.replicas.stop(replica, cause="scale")
