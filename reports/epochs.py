"""Membership epochs: when the set of live containers changed, from the event log or inferred.

A change is a group of membership events ("added", "removed"), each within `change_window_s`
of the previous one (the replicas of a scale-up turn live within a health check of each other);
it spans
[start, end], from its first event to its last, and takes the live set from before its first
event to after its last. A group that ends with the live set it started with (a replica
refused and re-admitted within the window) is no change. Only changes that overlap the run,
from its first request to its last answer, or still settle when it starts (`settle_s`), are
reported: the emulator's start-up and shutdown are not part of the run, but a run that starts
while the proxy may still be learning of its replicas is judged as such (its switches then are
no flaps; the change has no session before it to judge). A "snapshot" line (the harness
writes one, with the live set when its load started) sets the live set and is no change.

Without an event log (a run against Modal itself) the events are inferred from the requests:
a container is live from the start of the first request it answered to the start of the last
one; it was there from the start when first seen within `infer_margin_s` of the run's first
request, and stayed to the end when last seen within `infer_margin_s` of its end. A container
that no request reaches for a while looks absent: inference needs traffic on every container.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from reports.load import SNAPSHOT, Event


@dataclass(frozen=True)
class Change:
    start: float
    end: float
    live_before: frozenset[str]
    live_after: frozenset[str]
    causes: tuple[str, ...]

    @property
    def added(self) -> frozenset[str]:
        return self.live_after - self.live_before

    @property
    def removed(self) -> frozenset[str]:
        return self.live_before - self.live_after

    @property
    def expected_fraction(self) -> float | None:
        """The rendezvous minimum of sessions that must move: (r + a) / (N + a).

        A session keeps its owner only when the best of the old and added replicas is an old
        one that stays: (N - r) of (N + a) equally likely. Hence k/(N+k) when k are added to
        N, k/N when k of N are removed."""
        n, added, removed = len(self.live_before), len(self.added), len(self.removed)
        if n + added == 0:
            return None
        return (removed + added) / (n + added)


@dataclass(frozen=True)
class Membership:
    source: str  # "events" or "inferred"
    changes: tuple[Change, ...]
    epochs: tuple[frozenset[str], ...]  # live set of epoch k: before change k, after k - 1
    times: NDArray[np.float64]  # membership event times, ascending
    counts: NDArray[np.int64]  # live containers after each event
    initial: int  # live containers before the first event
    live_sets: tuple[frozenset[str], ...] = ()  # the live set after each event
    initial_set: frozenset[str] = frozenset()  # the live set before the first event

    def live_count_at(self, ts: NDArray[np.float64]) -> NDArray[np.int64]:
        idx = np.searchsorted(self.times, ts, side="right")
        table = np.concatenate(([self.initial], self.counts))
        return table[idx]

    @property
    def starts(self) -> NDArray[np.float64]:
        return np.array([c.start for c in self.changes], dtype=np.float64)

    @property
    def ends(self) -> NDArray[np.float64]:
        return np.array([c.end for c in self.changes], dtype=np.float64)


def from_events(events: Sequence[Event], run_start: float, run_end: float, window: float,
                source: str = "events", settle_s: float = 0.0) -> Membership:
    ordered = sorted(events, key=lambda e: e.ts)
    initial = initial_live(ordered[0]) if ordered else frozenset()
    changes = [c for c in group(ordered, initial, window)
               if c.live_before != c.live_after and c.end + settle_s >= run_start
               and c.start <= run_end]
    if changes:
        epochs = (changes[0].live_before, *(c.live_after for c in changes))
    else:
        epochs = (live_at(ordered, initial, run_start),)
    return Membership(
        source, tuple(changes), epochs,
        np.array([e.ts for e in ordered], dtype=np.float64),
        np.array([len(e.live) for e in ordered], dtype=np.int64), len(initial),
        tuple(frozenset(e.live) for e in ordered), initial)


def initial_live(first: Event) -> frozenset[str]:
    """The live set before the first event: a snapshot's, or by undoing a change."""
    if first.event == SNAPSHOT:
        return frozenset(first.live)
    live = set(first.live)
    if first.event == "added":
        live.discard(first.container_id)
    else:
        live.add(first.container_id)
    return frozenset(live)


def group(events: Sequence[Event], initial: frozenset[str], window: float) -> list[Change]:
    changes: list[Change] = []
    before = initial
    batch: list[Event] = []
    for event in events:
        if batch and (event.ts - batch[-1].ts > window or event.event == SNAPSHOT):
            changes.append(make_change(batch, before))
            before = frozenset(batch[-1].live)
            batch = []
        if event.event == SNAPSHOT:
            before = frozenset(event.live)
            continue
        batch.append(event)
    if batch:
        changes.append(make_change(batch, before))
    return changes


def make_change(batch: list[Event], before: frozenset[str]) -> Change:
    causes = tuple(dict.fromkeys(e.cause for e in batch))
    return Change(batch[0].ts, batch[-1].ts, before, frozenset(batch[-1].live), causes)


def live_at(events: Sequence[Event], initial: frozenset[str], ts: float) -> frozenset[str]:
    live = initial
    for event in events:
        if event.ts > ts:
            break
        live = frozenset(event.live)
    return live


def infer(names: Sequence[str], first_seen: NDArray[np.float64], last_seen: NDArray[np.float64],
          run_start: float, run_end: float, window: float, margin: float) -> Membership:
    """Membership from the containers seen answering (see the module docstring)."""
    moves: list[tuple[float, int, str]] = []
    initial = set()
    for name, first, last in zip(names, first_seen, last_seen, strict=True):
        if not np.isfinite(first):
            continue  # never answered a request
        if first <= run_start + margin:
            initial.add(name)
        else:
            moves.append((float(first), 0, name))
        if last < run_end - margin:
            moves.append((float(last), 1, name))
    moves.sort()
    live = set(initial)
    events = []
    for ts, kind, name in moves:
        if kind == 0:
            live.add(name)
        else:
            live.discard(name)
        events.append(Event(ts, "added" if kind == 0 else "removed", name, "inferred",
                            tuple(sorted(live))))
    if not events:
        return Membership("inferred", (), (frozenset(initial),), np.empty(0), np.empty(0, np.int64),
                          len(initial), (), frozenset(initial))
    membership = from_events(events, run_start, run_end, window, source="inferred")
    return Membership("inferred", membership.changes, membership.epochs, membership.times,
                      membership.counts, len(initial), membership.live_sets, frozenset(initial))
