"""Stickiness per session, kept incrementally: what the console summary and the web tab show.

`Stickiness.add()` runs once per recorded request (in the request listener in local mode, as
batches arrive on the master in distributed mode), so it only updates counters: per session the
containers seen with their counts, the last container, switches, requests and errors; per user
class the errors by kind. Everything else (`summarise()`, `table()`, `csv_text()`, `render()`)
is computed from those counters when asked, never from the rows.

Definitions (the seed example's, generalised):

- a session is one Locust user: its `Modal-Session-Id` (NonStickyUser: its own id, never sent);
- a session is *multi-container* when its answered requests came from more than one container;
- a *switch* is an answered request from another container than the session's previous answer;
- *stickiness* of a user class = 1 - switches / transitions, transitions being the answered
  requests after each session's first; 1.0 means every session stayed on one container;
- an error's *kind*: `503` (no live replica) apart, then the HTTP status (`502`, `504`, ...),
  `connection` (status 0: refused, reset, timeout), `body` (a 2xx without a usable
  CONTAINER_ID), `other` (any other failure Locust reported on a 2xx/3xx answer).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

NO_REPLICA = "503"
CONNECTION = "connection"
BODY = "body"
OTHER = "other"
BODY_PREFIX = "body: "  # how the recorder words a bad body in the `error` column


def error_kind(status: int, error: str) -> str:
    """The kind an error is counted under (see the module docstring)."""
    if status == 503:
        return NO_REPLICA
    if status == 0:
        return CONNECTION
    if status >= 400:
        return str(status)
    return BODY if error.startswith(BODY_PREFIX) else OTHER


@dataclass(slots=True)
class SessionStats:
    """One session's counters, updated per request."""

    session_id: str
    user_class: str
    containers: dict[str, int] = field(default_factory=dict)  # container -> answers, in order
    last_container: str | None = None
    switches: int = 0
    requests: int = 0
    errors: int = 0
    errors_503: int = 0

    @property
    def answered(self) -> int:
        return sum(self.containers.values())


@dataclass(frozen=True, slots=True)
class ClassSummary:
    """One user class over all its sessions."""

    user_class: str
    sticky: bool  # its users send Modal-Session-Id
    sessions: int
    multi_container: int
    requests: int
    answered: int
    switches: int
    transitions: int
    errors: dict[str, int]  # kind -> count, 503 first
    containers: tuple[str, ...]

    @property
    def stickiness(self) -> float | None:
        return 1.0 - self.switches / self.transitions if self.transitions else None

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass(frozen=True, slots=True)
class Summary:
    classes: tuple[ClassSummary, ...]
    multi_sessions: tuple[SessionStats, ...]  # multi-container sessions, most containers first

    @property
    def sticky_multi_container(self) -> int:
        """Multi-container sessions among the users that send Modal-Session-Id."""
        return sum(c.multi_container for c in self.classes if c.sticky)

    @property
    def requests(self) -> int:
        return sum(c.requests for c in self.classes)


class Stickiness:
    """Per-session and per-class counters; `add()` is the only thing on the hot path."""

    def __init__(self, sticky_classes: Iterable[str] = ()) -> None:
        self.sticky_classes = frozenset(sticky_classes)
        self.sessions: dict[str, SessionStats] = {}
        self.errors: Counter[tuple[str, str]] = Counter()  # (user class, kind) -> count

    def add(self, session_id: str | None, user_class: str | None, status: int,
            container_id: str | None, error: str | None) -> None:
        """Count one request; rows without a session (not made by our users) are skipped."""
        if session_id is None:
            return
        s = self.sessions.get(session_id)
        if s is None:
            s = self.sessions[session_id] = SessionStats(session_id, user_class or "?")
        s.requests += 1
        if error is not None:
            s.errors += 1
            if status == 503:
                s.errors_503 += 1
            self.errors[(s.user_class, error_kind(status, error))] += 1
        if container_id is not None:
            if s.last_container is not None and container_id != s.last_container:
                s.switches += 1
            s.last_container = container_id
            s.containers[container_id] = s.containers.get(container_id, 0) + 1

    def reset(self) -> None:
        self.sessions.clear()
        self.errors.clear()

    def summarise(self) -> Summary:
        by_class: dict[str, list[SessionStats]] = {}
        for s in self.sessions.values():
            by_class.setdefault(s.user_class, []).append(s)
        for user_class, _kind in self.errors:
            by_class.setdefault(user_class, [])
        classes = tuple(self._class_summary(name, by_class[name]) for name in sorted(by_class))
        multi = sorted((s for s in self.sessions.values() if len(s.containers) > 1),
                       key=lambda s: (-len(s.containers), -s.switches, s.session_id))
        return Summary(classes, tuple(multi))

    def _class_summary(self, user_class: str, sessions: list[SessionStats]) -> ClassSummary:
        answered = [s.answered for s in sessions]
        errors = {kind: n for (cls, kind), n in self.errors.items() if cls == user_class}
        ordered = dict(sorted(errors.items(), key=lambda kv: (kv[0] != NO_REPLICA, -kv[1])))
        return ClassSummary(
            user_class=user_class, sticky=user_class in self.sticky_classes,
            sessions=len(sessions), multi_container=sum(len(s.containers) > 1 for s in sessions),
            requests=sum(s.requests for s in sessions), answered=sum(answered),
            switches=sum(s.switches for s in sessions),
            transitions=sum(max(a - 1, 0) for a in answered), errors=ordered,
            containers=tuple(sorted({c for s in sessions for c in s.containers})))

    def table(self, limit: int = 500) -> list[dict[str, object]]:
        """Rows for the web tab: one per class (summary), then sessions, worst first."""
        summary = self.summarise()
        rows: list[dict[str, object]] = [_class_row(c) for c in summary.classes]
        worst = sorted(self.sessions.values(),
                       key=lambda s: (-len(s.containers), -s.switches, -s.errors, s.session_id))
        rows.extend(_session_row(s) for s in worst[:limit])
        return rows

    def csv_text(self) -> str:
        """Every session, one line each."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["session_id", "user_class", "containers", "switches", "requests",
                         "errors", "errors_503", "container_ids"])
        for s in sorted(self.sessions.values(), key=lambda s: (s.user_class, s.session_id)):
            writer.writerow([s.session_id, s.user_class, len(s.containers), s.switches,
                             s.requests, s.errors, s.errors_503, " ".join(s.containers)])
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
    return {"session": f"ALL {c.sessions} sessions: {headline(c)}", "user_class": c.user_class,
            "containers": len(c.containers), "switches": c.switches, "requests": c.requests,
            "errors": c.error_count, "errors_503": c.errors.get(NO_REPLICA, 0),
            "container_ids": " ".join(c.containers)}


def _session_row(s: SessionStats) -> dict[str, object]:
    return {"session": s.session_id, "user_class": s.user_class, "containers": len(s.containers),
            "switches": s.switches, "requests": s.requests, "errors": s.errors,
            "errors_503": s.errors_503, "container_ids": " ".join(s.containers)}


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def headline(c: ClassSummary) -> str:
    return (f"on more than one container {c.multi_container}/{c.sessions}, "
            f"stickiness {percent(c.stickiness)}")


def errors_text(c: ClassSummary) -> str:
    if not c.errors:
        return "no errors"
    return ", ".join(f"{kind} x{n}" for kind, n in c.errors.items())


def render(summary: Summary, *, max_listed: int = 10) -> list[str]:
    """The console summary, in the seed's spirit, one string per line."""
    lines = ["Stickiness summary"]
    if not summary.classes:
        return [*lines, "  no requests recorded"]
    for c in summary.classes:
        header = "sends Modal-Session-Id" if c.sticky else "no session header"
        lines.append(f"  {c.user_class} ({header}): {c.sessions} sessions, {c.requests} "
                     f"requests, {len(c.containers)} containers")
        lines.append(f"    sessions {headline(c)}")
        lines.append(f"    errors: {errors_text(c)}")
    sticky = {c.user_class for c in summary.classes if c.sticky}
    broken = [s for s in summary.multi_sessions if s.user_class in sticky]
    for s in broken[:max_listed]:
        lines.append(f"  sticky session {s.session_id} ({s.user_class}) saw containers "
                     f"[{', '.join(s.containers)}], switches={s.switches}")
    if len(broken) > max_listed:
        lines.append(f"  ... and {len(broken) - max_listed} more (see the Stickiness tab)")
    return lines
