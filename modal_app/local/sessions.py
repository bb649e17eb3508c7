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
"""

from __future__ import annotations

import random
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from modal_app.local.supervisor import Replica

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
