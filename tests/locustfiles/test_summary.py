"""The per-session counters, fed synthetic requests."""

from __future__ import annotations

import csv
import io

import pytest

from locustfiles.summary import Stickiness, error_kind, render

AFFINITY = {"StickyUser": "session", "NonStickyUser": "none", "SessionedUser": "strict"}


def feed(s: Stickiness, session: str, user_class: str, containers: list[str | None],
         affinity: str | None = "") -> None:
    recorded = AFFINITY.get(user_class) if affinity == "" else affinity
    for c in containers:
        s.add(session, user_class, recorded, 200 if c else 503, c, None if c else "503 error")


def test_switches_and_stickiness_are_counted_per_answer() -> None:
    s = Stickiness(sticky_classes=["StickyUser"])
    feed(s, "a", "StickyUser", ["ta-1", "ta-1", "ta-2", None, "ta-1"])
    feed(s, "b", "StickyUser", ["ta-3", "ta-3"])
    a = s.sessions["a"]
    assert (a.requests, a.errors, a.errors_503, a.switches) == (5, 1, 1, 2)
    assert list(a.containers) == ["ta-1", "ta-2"] and a.answered == 4
    (sticky,) = s.summarise().classes
    assert (sticky.sessions, sticky.multi_container, sticky.switches) == (2, 1, 2)
    assert sticky.transitions == (4 - 1) + (2 - 1)
    assert sticky.same_container_rate == pytest.approx(1 - 2 / 4)
    assert (sticky.one_container, sticky.repeat_sessions) == (1, 2)
    assert sticky.session_stickiness == pytest.approx(1 / 2)
    assert sticky.errors == {"503": 1}


def test_only_classes_that_ask_for_affinity_are_judged() -> None:
    s = Stickiness()  # no class attribute says anything: the recorded affinity decides
    feed(s, "n1", "NonStickyUser", ["ta-1", "ta-2"])
    feed(s, "s1", "StickyUser", ["ta-1", "ta-1"])
    feed(s, "x1", "SessionedUser", ["ta-3", "ta-3"])
    summary = s.summarise()
    assert [(c.user_class, c.affinity, c.judged) for c in summary.classes] == [
        ("NonStickyUser", "none", False), ("SessionedUser", "strict", True),
        ("StickyUser", "session", True)]
    assert summary.judged_multi_container == 0
    assert [c.multi_container for c in summary.classes] == [1, 0, 0]
    assert summary.notes == ()
    feed(s, "s2", "StickyUser", ["ta-1", "ta-2"])
    assert s.summarise().judged_multi_container == 1


def test_the_class_name_decides_nothing() -> None:
    """A class named StickyUser whose users record "none" is a control."""
    s = Stickiness(sticky_classes=["StickyUser"])
    feed(s, "s1", "StickyUser", ["ta-1", "ta-2"], affinity="none")
    (c,) = s.summarise().classes
    assert not c.judged and s.summarise().judged_multi_container == 0


def test_without_recorded_affinity_the_class_attribute_judges_with_a_note() -> None:
    s = Stickiness(sticky_classes=["OldSticky"])
    feed(s, "a", "OldSticky", ["ta-1", "ta-2"], affinity=None)
    feed(s, "b", "OldControl", ["ta-1", "ta-2"], affinity=None)
    summary = s.summarise()
    assert [(c.user_class, c.affinity, c.judged) for c in summary.classes] == [
        ("OldControl", None, False), ("OldSticky", None, True)]
    assert summary.judged_multi_container == 1
    assert summary.notes == (
        "OldControl: no affinity recorded (its users' context() has none): not judged by "
        "its class attribute",
        "OldSticky: no affinity recorded (its users' context() has none): judged by its "
        "class attribute")


@pytest.mark.parametrize(("status", "error", "kind"), [
    (503, "x", "503"), (502, "x", "502"), (0, "ConnectionRefusedError", "connection"),
    (200, "body: not JSON", "bad_body"), (200, "CatchResponseError", "other"),
    (200, "stream cut: connection dropped", "stream_cut"),
    (200, "stream short: got 3 of 32 tokens", "stream_short")])
def test_error_kinds(status: int, error: str, kind: str) -> None:
    assert error_kind(status, error) == kind


def test_errors_by_class_put_503_first() -> None:
    s = Stickiness()
    for status in (502, 502, 503, 0):
        s.add("a", "StickyUser", "session", status, None, "boom")
    (c,) = s.summarise().classes
    assert list(c.errors.items()) == [("503", 1), ("502", 2), ("connection", 1)]
    assert c.error_count == 4


def test_requests_without_a_session_are_counted_apart() -> None:
    s = Stickiness()
    s.add(None, None, None, 200, "ta-1", None)
    summary = s.summarise()
    assert s.sessions == {} and summary.classes == ()
    assert summary.notes == ("1 requests of users with no session id: recorded, not in any "
                             "session",)


def test_table_has_class_rows_then_sessions_worst_first_and_a_limit() -> None:
    s = Stickiness(sticky_classes=["StickyUser"])
    feed(s, "calm", "StickyUser", ["ta-1", "ta-1"])
    feed(s, "moved", "StickyUser", ["ta-1", "ta-2", "ta-3"])
    rows = s.table(limit=1)
    assert len(rows) == 2
    assert str(rows[0]["session"]).startswith(
        "ALL 2 sessions (sends Modal-Session-Id; judged): on more than one container 1/2, "
        "session stickiness 50.00% (1/2 sessions with 2+ answers on one container), "
        "same-container rate 33.33%")
    assert rows[0]["requests"] == 5 and rows[0]["containers"] == 3
    assert rows[1] == {"session": "moved", "user_class": "StickyUser", "containers": 3,
                       "switches": 2, "requests": 3, "errors": 0, "errors_503": 0,
                       "container_ids": "ta-1 ta-2 ta-3"}


def test_csv_has_every_session() -> None:
    s = Stickiness()
    feed(s, "a", "StickyUser", ["ta-1"])
    feed(s, "b", "NonStickyUser", ["ta-1", "ta-2"])
    lines = list(csv.reader(io.StringIO(s.csv_text())))
    assert lines[0][:4] == ["session_id", "user_class", "affinity", "containers"]
    assert sorted(line[0] for line in lines[1:]) == ["a", "b"]
    assert ["b", "NonStickyUser", "none", "2", "1", "2", "0", "0", "ta-1 ta-2"] in lines


def test_render_shows_judged_classes_first_and_the_control_beside() -> None:
    s = Stickiness()
    feed(s, "n1", "NonStickyUser", ["ta-1", "ta-2"])
    feed(s, "s1", "StickyUser", ["ta-1", "ta-2"])
    lines = render(s.summarise())
    text = "\n".join(lines)
    assert lines[1] == ("  StickyUser (sends Modal-Session-Id; judged): 1 sessions, 2 requests, "
                        "2 containers")
    assert ("  NonStickyUser (sends no session; control, not judged): 1 sessions, 2 requests, "
            "2 containers") in lines
    assert ("sessions on more than one container 1/1, session stickiness 0.00% (0/1 sessions "
            "with 2+ answers on one container), same-container rate 0.00%") in text
    assert "sticky session s1 (StickyUser) saw 2 containers [ta-1, ta-2]" in text
    assert "session n1" not in text
    assert "stickiness" not in text.replace("session stickiness", "").replace(
        "Stickiness summary", "")  # one name per figure


def test_reset_forgets_everything() -> None:
    s = Stickiness()
    feed(s, "a", "StickyUser", ["ta-1", None])
    s.reset()
    assert s.sessions == {} and not s.errors
