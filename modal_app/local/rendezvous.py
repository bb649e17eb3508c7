"""Rendezvous (highest random weight) hashing, as Modal's proxy does for `Modal-Session-Id`.

Every replica gets a score for a key; the highest score wins. When a replica leaves, only the
keys it won move (each to its runner-up); when one joins, only the keys it now wins move to it.
Scores use blake2b, never Python's salted `hash()`, so the outcome is the same in every process
and across restarts. Ties (astronomically rare) go to the greater replica id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import blake2b


def score(key: str, replica: str) -> int:
    """The weight of `replica` for `key`: 64 bits of blake2b over both."""
    digest = blake2b(f"{replica}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rank(key: str, replicas: Iterable[str]) -> list[str]:
    """Replicas in the order the key prefers them: the winner first, then the runners-up."""
    return sorted(replicas, key=lambda r: (score(key, r), r), reverse=True)


def pick(key: str, replicas: Sequence[str]) -> str:
    """The replica that owns `key` among `replicas`. Raises ValueError when there is none."""
    if not replicas:
        raise ValueError("no replica to pick from")
    return max(replicas, key=lambda r: (score(key, r), r))
