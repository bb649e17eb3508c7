"""Collateral judged per answer: the rendezvous property, checked on every repeat answer.

Rendezvous hashing moves a session only when its owner leaves, or to a container that joined:
a session whose owner is live is answered only by that owner or by a container that joined
since the owner's last answer. So an answer is *collateral* when it comes from another
container than the session's previous answer (its owner), while

- the owner was live from the previous answer to this one (no membership event removed it in
  between, and it was live when this request started and when it was answered), and
- the new container was already live when the previous request started, and had been for
  more than the settle time (a proxy may learn of a newcomer late: a move onto a container
  that joined within the settle time before is the newcomer taking the session), and did not
  join (again) since.

This holds whatever the change window, the settle time or the overlap of changes: a move
A -> B -> A between two containers that stayed live is two collateral answers, though its end
points agree. Each collateral answer is counted once for the run and once for the latest
membership change that began before it was answered (none: outside any change). A change is
judged when some judged session had a repeat answer across or inside it (from its start to
its settled time); a change with requests in flight but no such answer is not judged, with
the reason. docs/metrics.md#collateral has a worked example.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from reports.epochs import Membership

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]


@dataclass
class PerAnswer:
    total: int  # collateral answers of judged sessions
    outside: int  # of which not during any change
    per_change: Ints  # collateral answers per change
    answers: Ints  # judged repeat answers across or inside each change
    in_flight: Ints  # requests of judged sessions that overlap each change
    transitions: int  # judged repeat answers in the run


@dataclass
class Moves:
    """Repeat answers of judged sessions from another container than the session's previous
    answer (only those can be collateral): the start of that previous request and its
    container (the owner), then the answer's own start, answer time and container."""

    prev_ts: Floats
    owner: NDArray[np.int32]
    ts: Floats
    end: Floats
    new: NDArray[np.int32]


def live_table(members: Membership, index: dict[str, int], n: int
               ) -> tuple[Bools, Ints, Ints, Floats]:
    """Per membership state (0: before the first event; e: after event e - 1), per container:
    live, how many times it was added / removed so far, and when it was last added."""
    states = len(members.live_sets) + 1
    live = np.zeros((states, max(n, 1)), dtype=np.bool_)
    added = np.zeros((states, max(n, 1)), dtype=np.int64)
    removed = np.zeros((states, max(n, 1)), dtype=np.int64)
    joined = np.full((states, max(n, 1)), -np.inf)
    live[0, [index[c] for c in members.initial_set if c in index]] = True
    for e, current in enumerate(members.live_sets, start=1):
        live[e, [index[c] for c in current if c in index]] = True
        added[e] = added[e - 1] + (live[e] & ~live[e - 1])
        removed[e] = removed[e - 1] + (~live[e] & live[e - 1])
        joined[e] = np.where(live[e] & ~live[e - 1], members.times[e - 1], joined[e - 1])
    return live, added, removed, joined


def judge_answers(moves: Moves, transitions: int, members: Membership,
                  index: dict[str, int], n_containers: int, settled: Floats, settle_s: float,
                  spans: tuple[Floats, Floats], flight: tuple[Floats, Floats]) -> PerAnswer:
    """The collateral figures of judged repeat answers: `moves`, those from another container
    than the answer before; `transitions`, how many there are in all; `spans`, (start of the
    previous request, answer time) of each of them, and `flight`, (start, answer time) of
    every request of a judged session: both read only when there are changes (empty
    otherwise)."""
    live, added, removed, joined = live_table(members, index, n_containers)
    times = members.times
    k = len(members.changes)
    starts = members.starts
    owner, new, prev_ts = moves.owner, moves.new, moves.prev_ts
    s_prev = np.searchsorted(times, prev_ts, side="right")
    s_start = np.searchsorted(times, moves.ts, side="right")
    s_end = np.searchsorted(times, moves.end, side="right")
    owner_live = (live[s_start, owner] & live[s_end, owner]
                  & (removed[s_end, owner] == removed[s_prev, owner]))
    already = (live[s_prev, new] & (added[s_end, new] == added[s_prev, new])
               & (joined[s_prev, new] < prev_ts - settle_s))
    bad = owner_live & already
    per_change = np.zeros(k, dtype=np.int64)
    answers = np.zeros(k, dtype=np.int64)
    in_flight = np.zeros(k, dtype=np.int64)
    outside = int(bad.sum())
    if k:
        latest = np.searchsorted(starts, moves.end, side="right") - 1
        during = (latest >= 0) & (prev_ts <= settled[np.maximum(latest, 0)])
        per_change = np.bincount(latest[bad & during], minlength=k).astype(np.int64)
        outside = int((bad & ~during).sum())
        lo, hi = spans
        flight_lo, flight_hi = flight
        for i in range(k):  # few changes: one pass over the rows each
            answers[i] = int(((lo <= settled[i]) & (hi >= starts[i])).sum())
            in_flight[i] = int(((flight_lo <= settled[i]) & (flight_hi >= starts[i])).sum())
    return PerAnswer(int(bad.sum()), outside, per_change, answers, in_flight, transitions)
