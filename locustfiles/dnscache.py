"""Name lookups kept for a short while: a new connection costs a connection, not a lookup.

Each user opens a new connection every `--reconnect-every` requests (locustfiles/users.py).
Without a cache each new connection also looks the host up again: gevent's default resolver
hands every `getaddrinfo` to a thread (a thread wake-up and two GIL hand-overs, about as much
CPU as the connection itself), although the answer has not changed. `install()` wraps the
resolver of the gevent hub the users run on (`gevent.get_hub().resolver`, a public setter)
in `CachingResolver`: each `getaddrinfo` answer is kept for `TTL_S` seconds, as a browser or
the JVM keeps one, so a host whose addresses change is looked up again within that time.
Failures are never kept (the next connection asks again), and everything but `getaddrinfo`
goes to the wrapped resolver unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent

TTL_S = 30.0
LIMIT = 256  # distinct lookups kept at most (a run talks to a handful of hosts)


class CachingResolver:
    """A gevent resolver whose `getaddrinfo` answers are kept for `ttl_s` seconds."""

    def __init__(self, inner: Any, ttl_s: float = TTL_S, limit: int = LIMIT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.ttl_s = ttl_s
        self.limit = limit
        self.clock = clock
        self.known: dict[tuple[Any, ...], tuple[float, list[Any]]] = {}
        self.lookups = 0  # answers asked of the wrapped resolver

    def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0,
                    proto: int = 0, flags: int = 0) -> list[Any]:
        key = (host, port, family, type, proto, flags)
        now = self.clock()
        kept = self.known.get(key)
        if kept is not None and kept[0] > now:
            return list(kept[1])  # a copy: a caller may change its list
        answer = self.inner.getaddrinfo(host, port, family, type, proto, flags)
        self.lookups += 1
        if len(self.known) >= self.limit:
            self.known.clear()
        self.known[key] = (now + self.ttl_s, list(answer))
        return answer

    def __getattr__(self, name: str) -> Any:  # gethostbyname, close, ...: the wrapped one's
        if name == "inner":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


def install(ttl_s: float = TTL_S) -> CachingResolver:
    """Wrap the current gevent hub's resolver (once: a second call returns the first wrap)."""
    hub = gevent.get_hub()
    resolver = hub.resolver
    if isinstance(resolver, CachingResolver):
        return resolver
    cached = CachingResolver(resolver, ttl_s)
    hub.resolver = cached
    return cached
