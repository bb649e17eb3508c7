"""Routing policy: which live replica gets a request. Pure functions plus one small table.

- With a `Modal-Session-Id`, the session's owner among the live replicas: by rendezvous
  hashing (`rendezvous.py`, what Modal's proxy does), or, for tests only, by `modulo`: the
  session's hash modulo the number of live replicas, over their sorted ids. Modulo hashing is
  deliberately *not* rendezvous: when the live set changes, most sessions move, including
  sessions between two replicas that stayed live. It exists so that tests of the reports can
  show what a badly behaved proxy looks like.
- Without one, the live replica with the fewest requests in flight, ties broken at random.

A request that found its replica refusing connections goes to the next one in the key's
order, skipping the replicas it already tried.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Sequence
from hashlib import blake2b
from typing import Generic, Protocol, TypeVar

from modal_app.local.rendezvous import pick

Owner = Callable[[str, Sequence[str]], str]


def key_hash(key: str) -> int:
    """64 bits of blake2b over the session id: stable across processes and restarts."""
    return int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "big")


def modulo_rank(key: str, replicas: Sequence[str]) -> list[str]:
    """The sorted ids rotated so that `sorted[hash % n]` comes first (test-only policy)."""
    ordered = sorted(replicas)
    if not ordered:
        return []
    start = key_hash(key) % len(ordered)
    return ordered[start:] + ordered[:start]


OWNERS: dict[str, Owner] = {"rendezvous": pick, "modulo": lambda key, ids: modulo_rank(key, ids)[0]}


class Routable(Protocol):
    container_id: str
    in_flight: int


R = TypeVar("R", bound=Routable)


class RoutingTable(Generic[R]):
    """The router's view of the live set, and the choice of a replica for a request.

    The view is replaced as a whole (`update`), so a membership change is seen atomically.
    Owners of sessions are cached per view: one hash ranking per session and view."""

    def __init__(self, policy: str = "rendezvous", cache_size: int = 200_000) -> None:
        self.owner = OWNERS[policy]
        self.live: tuple[R, ...] = ()
        self._by_id: dict[str, R] = {}
        self._owner: dict[str, R] = {}
        self._cache_size = cache_size

    def update(self, live: Sequence[R]) -> None:
        self.live = tuple(live)
        self._by_id = {r.container_id: r for r in self.live}
        self._owner = {}

    def choose(self, session: str | None, tried: Collection[R] = ()) -> R | None:
        """The replica for a request, or None when no live replica is left to try."""
        if session is not None:
            if not tried:
                return self._owner_of(session)
            ids = [i for i in self._by_id if self._by_id[i] not in tried]
            return self._by_id[self.owner(session, ids)] if ids else None
        candidates = [r for r in self.live if r not in tried] if tried else self.live
        if not candidates:
            return None
        least = min(r.in_flight for r in candidates)
        return random.choice([r for r in candidates if r.in_flight == least])

    def _owner_of(self, session: str) -> R | None:
        owner = self._owner.get(session)
        if owner is None:
            if not self._by_id:
                return None
            owner = self._by_id[self.owner(session, list(self._by_id))]
            if len(self._owner) >= self._cache_size:
                self._owner.clear()
            self._owner[session] = owner
        return owner
