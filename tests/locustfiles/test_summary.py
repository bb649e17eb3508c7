"""The per-session counters, fed synthetic requests."""

from __future__ import annotations

import csv
import io

import pytest

from locustfiles.summary import Stickiness, error_kind, render


def feed(s: Stickiness, session: str, user_class: str, containers: list[str | None]) -> None:
    for c in containers:
        s.add(session, user_class, 200 if c else 503, c, None if c else "503 error")


def test_switches_and_stickiness_are_counted_per_answer() -> None:
    s = Stickiness(sticky_classes=["StickyUser"])
    feed(s, "a", "StickyUser", ["ta-1", "ta-1", "ta-2", None, "ta-1"])
    feed(s, "b", "StickyUser", ["ta-3", "ta-3"])
    a = s.sessions["a"]
    assert (a.requests, a.errors, a.errors_503, a.switches) == (5, 1, 1, 2)
    assert a.containers == {"ta-1": 3, "ta-2": 1}
    (sticky,) = s.summarise().classes
    assert (sticky.sessions, sticky.multi_container, sticky.switches) == (2, 1, 2)
    assert sticky.transitions == (4 - 1) + (2 - 1)
    assert sticky.stickiness == pytest.approx(1 - 2 / 4)
    assert sticky.errors == {"503": 1}


def test_only_classes_that_send_the_header_count_for_the_check() -> None:
    s = Stickiness(sticky_classes=["StickyUser"])
    feed(s, "n1", "NonStickyUser", ["ta-1", "ta-2"])
    feed(s, "s1", "StickyUser", ["ta-1", "ta-1"])
    summary = s.summarise()
    assert summary.sticky_multi_container == 0
    assert [c.multi_container for c in summary.classes] == [1, 0]
    feed(s, "s2", "StickyUser", ["ta-1", "ta-2"])
    assert s.summarise().sticky_multi_container == 1


@pytest.mark.parametrize(("status", "error", "kind"), [
    (503, "x", "503"), (502, "x", "502"), (0, "ConnectionRefusedError", "connection"),
    (200, "body: not JSON", "body"), (200, "CatchResponseError", "other")])
def test_error_kinds(status: int, error: str, kind: str) -> None:
    assert error_kind(status, error) == kind


def test_errors_by_class_put_503_first() -> None:
    s = Stickiness()
    for status in (502, 502, 503, 0):
        s.add("a", "StickyUser", status, None, "boom")
    (c,) = s.summarise().classes
    assert list(c.errors.items()) == [("503", 1), ("502", 2), ("connection", 1)]
    assert c.error_count == 4


def test_requests_without_a_session_are_not_counted() -> None:
    s = Stickiness()
    s.add(None, None, 200, "ta-1", None)
    assert s.sessions == {} and s.summarise().classes == ()


def test_table_has_class_rows_then_sessions_worst_first_and_a_limit() -> None:
    s = Stickiness(sticky_classes=["StickyUser"])
    feed(s, "calm", "StickyUser", ["ta-1", "ta-1"])
    feed(s, "moved", "StickyUser", ["ta-1", "ta-2", "ta-3"])
    rows = s.table(limit=1)
    assert len(rows) == 2
    assert str(rows[0]["session"]).startswith("ALL 2 sessions: on more than one container 1/2")
    assert rows[0]["requests"] == 5 and rows[0]["containers"] == 3
    assert rows[1] == {"session": "moved", "user_class": "StickyUser", "containers": 3,
                       "switches": 2, "requests": 3, "errors": 0, "errors_503": 0,
                       "container_ids": "ta-1 ta-2 ta-3"}


def test_csv_has_every_session() -> None:
    s = Stickiness()
    feed(s, "a", "StickyUser", ["ta-1"])
    feed(s, "b", "NonStickyUser", ["ta-1", "ta-2"])
    lines = list(csv.reader(io.StringIO(s.csv_text())))
    assert lines[0][:3] == ["session_id", "user_class", "containers"]
    assert sorted(line[0] for line in lines[1:]) == ["a", "b"]
    assert ["b", "NonStickyUser", "2", "1", "2", "0", "0", "ta-1 ta-2"] in lines


def test_render_lists_broken_sticky_sessions_only() -> None:
    s = Stickiness(sticky_classes=["StickyUser"])
    feed(s, "n1", "NonStickyUser", ["ta-1", "ta-2"])
    feed(s, "s1", "StickyUser", ["ta-1", "ta-2"])
    text = "\n".join(render(s.summarise()))
    assert "StickyUser (sends Modal-Session-Id): 1 sessions" in text
    assert "sessions on more than one container 1/1, stickiness 0.00%" in text
    assert "sticky session s1 (StickyUser) saw containers [ta-1, ta-2]" in text
    assert "n1" not in text


def test_reset_forgets_everything() -> None:
    s = Stickiness()
    feed(s, "a", "StickyUser", ["ta-1", None])
    s.reset()
    assert s.sessions == {} and not s.errors
