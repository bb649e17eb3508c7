"""The live counters' definitions restated one request at a time: the model that the batch
counting (locustfiles/batch.py, summary.Stickiness.add_batch, livemetrics.Counts
.observe_batch) must equal, whatever the batches' boundaries."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from locustfiles.livemetrics import BOUNDS_MS, NO_ERROR
from locustfiles.summary import error_kind

Request = tuple[Any, ...]  # (session, class, affinity, status, container, cache, error, ms, ttft)


@dataclass
class ModelSession:
    user_class: str
    affinity: str | None
    containers: dict[str, None] = field(default_factory=dict)
    last: str | None = None
    answered: int = 0
    switches: int = 0
    requests: int = 0
    errors: int = 0
    errors_503: int = 0


@dataclass
class Model:
    """Per session (the summary's counters) and per label set (the live metrics'), in order."""

    sessions: dict[str, ModelSession] = field(default_factory=dict)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    no_session: int = 0
    cells: dict[tuple[Any, ...], list[float]] = field(default_factory=dict)
    ttft: dict[tuple[Any, ...], list[float]] = field(default_factory=dict)
    classes: dict[str, list[int]] = field(default_factory=dict)  # sessions, repeat, multi,
    #                                                              switches, transitions
    pending: Counter[tuple[int, str, str, str]] = field(default_factory=Counter)
    first_seen: dict[str, int] = field(default_factory=dict)  # container -> first tick

    def take(self, request: Request, tick: int) -> None:
        session, cls, affinity, status, container, cache, error, ms, ttft = request
        label = "?" if cls is None else cls
        kind = NO_ERROR if error is None else error_kind(status, error)
        cell = self.cells.setdefault(
            (label, status, kind, container, cache, bisect_left(BOUNDS_MS, ms)), [0, 0.0])
        cell[0] += 1
        cell[1] += ms
        if ttft is not None:
            tcell = self.ttft.setdefault((label, cache, bisect_left(BOUNDS_MS, ttft)), [0, 0.0])
            tcell[0] += 1
            tcell[1] += ttft
        if container is not None:
            self.first_seen.setdefault(container, tick)
        if session is None:
            self.no_session += 1
            return
        s = self.sessions.get(session)
        if s is None:
            s = self.sessions[session] = ModelSession(cls or "?", affinity)
            figures = self.classes.setdefault(label, [0, 0, 0, 0, 0])
            figures[0] += 1
        s.requests += 1
        if error is not None:
            s.errors += 1
            s.errors_503 += status == 503
            self.errors[(s.user_class, error_kind(status, error))] += 1
        if container is None:
            return
        s.answered += 1
        if s.last is not None:
            figures = self.classes[label]
            figures[4] += 1  # a transition
            if s.answered == 2:
                figures[1] += 1  # a repeat session
            if container != s.last:
                s.switches += 1
                figures[3] += 1
                if len(s.containers) == 1:
                    figures[2] += 1  # a session on its second container
                self.pending[(tick, label, s.last, container)] += 1
        s.last = container
        s.containers.setdefault(container)
