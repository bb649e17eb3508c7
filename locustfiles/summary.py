"""Stickiness per session, kept incrementally: what the console summary and the web tab show.

`Stickiness.add_batch()` takes the recorded requests a batch at a time (locustfiles/batch.py:
once a second and before anything reads the counters in local mode, as batches arrive on the
master in distributed mode), so it only updates counters: per session the
containers seen with their counts, the last container, switches, requests and errors; per user
class the errors by kind. Everything else (`summarise()`, `table()`, `csv_text()`, `render()`)
is computed from those counters when asked, never from the rows.

Definitions (the seed example's, generalised; the names are those of the report, everywhere):

- a session is one Locust user: its session id (NonStickyUser: its own id, never sent);
- its *affinity* is what it asks for, as its user's `context()` records it: "session" (sends
  Modal-Session-Id), "strict" (holds a @modal.sessioned session), "none" (a control);
- a session is *multi-container* when its answered requests came from more than one container;
- a *switch* is an answered request from another container than the session's previous answer;
- *session stickiness* of a user class = the share of its sessions with 2+ answered requests
  that one container served all of;
- *same-container rate* = 1 - switches / transitions, transitions being the answered requests
  after each session's first: the share of repeat requests answered where the previous was;
- a class is *judged* (the verdict and the exit code cover it) when its sessions ask for
  affinity ("session" or "strict"); controls are shown beside, never pooled in. A class whose
  users record no affinity is judged by its `sends_session_id`/`expects_one_container`
  attribute, as before the affinity was recorded, and the summary says so;
- an error's *kind*: `503` (no live replica) apart, then the HTTP status (`502`, `504`, ...),
  `connection` (status 0: refused, reset, timeout), `bad_body` (a 2xx without a usable
  CONTAINER_ID), `stream_cut` / `stream_short` (a streamed answer that ended early or with too
  few tokens), `other` (any other failure Locust reported on a 2xx/3xx answer): the names the
  report uses (reports/columns.py).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from locustfiles.batch import AFFINITY, Batch, one_row
from reports.columns import (
    BAD_BODY,
    BODY_PREFIX,
    CONNECTION,
    JUDGED_AFFINITIES,
    OTHER_FAILURE,
    STREAM_CUT,
    STREAM_CUT_PREFIX,
    STREAM_SHORT,
    STREAM_SHORT_PREFIX,
)

NO_REPLICA = "503"
__all__ = ["ClassSummary", "SessionStats", "Stickiness", "Summary", "render"]


def error_kind(status: int, error: str) -> str:
    """The kind an error is counted under (see the module docstring)."""
    if status == 503:
        return NO_REPLICA
    if status == 0:
        return CONNECTION
    if status >= 400:
        return str(status)
    if error.startswith(BODY_PREFIX):
        return BAD_BODY
    if error.startswith(STREAM_CUT_PREFIX):
        return STREAM_CUT
    return STREAM_SHORT if error.startswith(STREAM_SHORT_PREFIX) else OTHER_FAILURE


@dataclass(slots=True)
class SessionStats:
    """One session's counters, updated per request."""

    session_id: str
    user_class: str
    affinity: str | None = None
    containers: dict[str, None] = field(default_factory=dict)  # in the order first seen
    last_container: str | None = None
    answered: int = 0  # requests with a container id
    switches: int = 0
    requests: int = 0
    errors: int = 0
    errors_503: int = 0


@dataclass(frozen=True, slots=True)
class ClassSummary:
    """One user class over all its sessions."""

    user_class: str
    affinity: str | None  # "session", "strict", "none", "mixed"; None: not recorded
    judged: bool  # the verdict covers it
    sessions: int
    multi_container: int
    requests: int
    answered: int
    switches: int
    transitions: int
    repeat_sessions: int  # sessions with 2+ answered requests
    one_container: int  # of those, served by one container
    errors: dict[str, int]  # kind -> count, 503 first
    containers: tuple[str, ...]

    @property
    def session_stickiness(self) -> float | None:
        return self.one_container / self.repeat_sessions if self.repeat_sessions else None

    @property
    def same_container_rate(self) -> float | None:
        return 1.0 - self.switches / self.transitions if self.transitions else None

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass(frozen=True, slots=True)
class Summary:
    classes: tuple[ClassSummary, ...]
    multi_sessions: tuple[SessionStats, ...]  # multi-container sessions, most containers first
    notes: tuple[str, ...] = ()

    @property
    def judged(self) -> tuple[ClassSummary, ...]:
        return tuple(c for c in self.classes if c.judged)

    @property
    def judged_multi_container(self) -> int:
        """Multi-container sessions among the judged classes."""
        return sum(c.multi_container for c in self.judged)

    @property
    def judged_repeat_sessions(self) -> int:
        return sum(c.repeat_sessions for c in self.judged)


class Stickiness:
    """Per-session and per-class counters, updated a batch of rows at a time (`add_batch`).

    `sticky_classes`: the classes judged when their users record no affinity (their
    `sends_session_id` or `expects_one_container` attribute, as before affinity was recorded).
    """

    def __init__(self, sticky_classes: Iterable[str] = ()) -> None:
        self.sticky_classes = frozenset(sticky_classes)
        self.sessions: dict[str, SessionStats] = {}
        self.errors: Counter[tuple[str, str]] = Counter()  # (user class, kind) -> count
        self.no_session = 0  # requests of users with no session id: recorded, not counted here

    def add(self, session_id: str | None, user_class: str | None, affinity: str | None,
            status: int, container_id: str | None, error: str | None) -> None:
        """Count one request (a batch of one: tests, and callers with a row at a time)."""
        self.add_batch(one_row(session_id, user_class, affinity, status, container_id, error))

    def add_batch(self, batch: Batch) -> None:
        """Count a batch of requests, in their order (rows without a session apart)."""
        sessions = batch.sessions
        codes = sessions.codes
        known = self.sessions
        if sessions.present < batch.n:
            self.no_session += int(np.count_nonzero(codes < 0))
        if not sessions.present:
            return
        classes, affinities = batch.classes, batch.column(AFFINITY)
        stats: list[SessionStats] = []
        for name, row in zip(sessions.names, sessions.first_rows, strict=True):
            s = known.get(name)
            if s is None:
                s = known[name] = SessionStats(name, classes.name_at(row) or "?", affinities[row])
            stats.append(s)
        for s, n in zip(stats, np.bincount(codes[codes >= 0]).tolist(), strict=False):
            s.requests += n
        status = batch.status
        for row, error in batch.errors():
            code = int(codes[row])
            if code < 0:
                continue
            s = stats[code]
            s.errors += 1
            if status[row] == 503:
                s.errors_503 += 1
            self.errors[(s.user_class, error_kind(int(status[row]), error))] += 1
        steps = batch.steps([s.last_container for s in stats])
        if not len(steps.rows):
            return
        names = batch.containers.names
        for code, answered, switches, last in zip(
                steps.groups.tolist(), steps.sizes.tolist(),
                steps.per_group(steps.switch).tolist(), steps.last_containers(), strict=True):
            s = stats[code]
            s.answered += answered
            s.switches += switches
            s.last_container = names[last]
        for code, container in steps.first_seen():
            stats[code].containers.setdefault(names[container])

    def reset(self) -> None:
        self.sessions.clear()
        self.errors.clear()
        self.no_session = 0

    def summarise(self) -> Summary:
        by_class: dict[str, list[SessionStats]] = {}
        for s in self.sessions.values():
            by_class.setdefault(s.user_class, []).append(s)
        for user_class, _kind in self.errors:
            by_class.setdefault(user_class, [])
        classes = tuple(self._class_summary(name, by_class[name]) for name in sorted(by_class))
        multi = sorted((s for s in self.sessions.values() if len(s.containers) > 1),
                       key=lambda s: (-len(s.containers), -s.switches, s.session_id))
        notes = [f"{c.user_class}: no affinity recorded (its users' context() has none): "
                 f"{'judged' if c.judged else 'not judged'} by its class attribute"
                 for c in classes if c.affinity is None and c.sessions]
        if self.no_session:
            notes.append(f"{self.no_session} requests of users with no session id: recorded, "
                         "not in any session")
        return Summary(classes, tuple(multi), tuple(notes))

    def _class_summary(self, user_class: str, sessions: list[SessionStats]) -> ClassSummary:
        errors = {kind: n for (cls, kind), n in self.errors.items() if cls == user_class}
        ordered = dict(sorted(errors.items(), key=lambda kv: (kv[0] != NO_REPLICA, -kv[1])))
        recorded = {s.affinity for s in sessions if s.affinity is not None}
        affinity = None if not recorded else recorded.pop() if len(recorded) == 1 else "mixed"
        if affinity is None:
            judged = user_class in self.sticky_classes
        else:
            judged = any(s.affinity in JUDGED_AFFINITIES for s in sessions)
        repeat = [s for s in sessions if s.answered >= 2]
        return ClassSummary(
            user_class=user_class, affinity=affinity, judged=judged, sessions=len(sessions),
            multi_container=sum(len(s.containers) > 1 for s in sessions),
            requests=sum(s.requests for s in sessions),
            answered=sum(s.answered for s in sessions),
            switches=sum(s.switches for s in sessions),
            transitions=sum(max(s.answered - 1, 0) for s in sessions),
            repeat_sessions=len(repeat), one_container=sum(len(s.containers) == 1 for s in repeat),
            errors=ordered,
            containers=tuple(sorted({c for s in sessions for c in s.containers})))

    def table(self, limit: int = 500, summary: Summary | None = None
              ) -> list[dict[str, object]]:
        """Rows for the web tab: one per class (summary, computed unless given), then
        sessions, worst first."""
        summary = self.summarise() if summary is None else summary
        rows: list[dict[str, object]] = [_class_row(c) for c in summary.classes]
        worst = sorted(self.sessions.values(),
                       key=lambda s: (-len(s.containers), -s.switches, -s.errors, s.session_id))
        rows.extend(_session_row(s) for s in worst[:limit])
        return rows

    def csv_text(self) -> str:
        """Every session, one line each."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["session_id", "user_class", "affinity", "containers", "switches",
                         "requests", "errors", "errors_503", "container_ids"])
        for s in sorted(self.sessions.values(), key=lambda s: (s.user_class, s.session_id)):
            writer.writerow([s.session_id, s.user_class, s.affinity or "", len(s.containers),
                             s.switches, s.requests, s.errors, s.errors_503,
                             " ".join(s.containers)])
        return out.getvalue()


# Addenda: presentation


TABLE_STRUCTURE = [
    {"key": "session", "title": "Session"},
    {"key": "user_class", "title": "User class"},
    {"key": "containers", "title": "Containers seen"},
    {"key": "switches", "title": "Switches"},
    {"key": "requests", "title": "Requests"},
    {"key": "errors", "title": "Errors"},
    {"key": "errors_503", "title": "of which 503"},
    {"key": "container_ids", "title": "Container ids"},
]


def _class_row(c: ClassSummary) -> dict[str, object]:
    return {"session": f"ALL {c.sessions} sessions ({role(c)}): {headline(c)}",
            "user_class": c.user_class, "containers": len(c.containers),
            "switches": c.switches, "requests": c.requests, "errors": c.error_count,
            "errors_503": c.errors.get(NO_REPLICA, 0), "container_ids": " ".join(c.containers)}


def _session_row(s: SessionStats) -> dict[str, object]:
    return {"session": s.session_id, "user_class": s.user_class, "containers": len(s.containers),
            "switches": s.switches, "requests": s.requests, "errors": s.errors,
            "errors_503": s.errors_503, "container_ids": " ".join(s.containers)}


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


AFFINITY_WORDS = {"session": "sends Modal-Session-Id", "strict": "holds a strict session",
                  "none": "sends no session", "mixed": "mixed affinity"}


def role(c: ClassSummary) -> str:
    """What the class asks for, and whether the verdict covers it."""
    asks = AFFINITY_WORDS.get(c.affinity or "", "no affinity recorded")
    return f"{asks}; {'judged' if c.judged else 'control, not judged'}"


def headline(c: ClassSummary) -> str:
    return (f"on more than one container {c.multi_container}/{c.sessions}, "
            f"session stickiness {percent(c.session_stickiness)} "
            f"({c.one_container}/{c.repeat_sessions} sessions with 2+ answers on one "
            f"container), same-container rate {percent(c.same_container_rate)}")


def errors_text(c: ClassSummary) -> str:
    if not c.errors:
        return "no errors"
    return ", ".join(f"{kind} x{n}" for kind, n in c.errors.items())


def render(summary: Summary, *, max_listed: int = 10) -> list[str]:
    """The console summary, in the seed's spirit, one string per line: the judged classes
    first, the controls beside them."""
    lines = ["Stickiness summary"]
    if not summary.classes:
        return [*lines, "  no requests recorded"]
    for c in sorted(summary.classes, key=lambda c: not c.judged):
        lines.append(f"  {c.user_class} ({role(c)}): {c.sessions} sessions, {c.requests} "
                     f"requests, {len(c.containers)} containers")
        lines.append(f"    sessions {headline(c)}")
        lines.append(f"    errors: {errors_text(c)}")
    judged = {c.user_class for c in summary.judged}
    broken = [s for s in summary.multi_sessions if s.user_class in judged]
    for s in broken[:max_listed]:
        seen = list(s.containers)
        listed = ", ".join(seen[:8]) + (f", ... ({len(seen) - 8} more)" if len(seen) > 8 else "")
        lines.append(f"  sticky session {s.session_id} ({s.user_class}) saw "
                     f"{len(seen)} containers [{listed}], switches={s.switches}")
    if len(broken) > max_listed:
        lines.append(f"  ... and {len(broken) - max_listed} more (see the Stickiness tab)")
    lines.extend(f"  note: {note}" for note in summary.notes)
    return lines
