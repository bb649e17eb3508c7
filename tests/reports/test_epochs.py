from __future__ import annotations

import numpy as np
import pytest

from reports.epochs import Change, from_events, infer
from reports.load import Event

A, B, C, D = "ta-A", "ta-B", "ta-C", "ta-D"


def ev(ts: float, kind: str, cid: str, live: list[str]) -> Event:
    return Event(ts, kind, cid, "test", tuple(live))


@pytest.mark.parametrize(("before", "after", "expected"), [
    ({A, B, C}, {A, B, C, D}, 1 / 4),  # k/(N+k) on add
    ({A, B, C, D}, {A, B, C}, 1 / 4),  # k/N on remove
    ({A, B, C}, {A}, 2 / 3),
    ({A, B}, {A, B, C, D}, 2 / 4),
    ({A, B, C}, {A, B, D}, 2 / 4),  # replace one: (r + a) / (N + a)
    (set(), {A}, 1.0),
])
def test_expected_fraction_is_the_rendezvous_minimum(before: set[str], after: set[str],
                                                    expected: float) -> None:
    change = Change(0, 0, frozenset(before), frozenset(after), ())
    assert change.expected_fraction == pytest.approx(expected)


def test_events_in_a_window_form_one_change_and_startup_is_not_part_of_the_run() -> None:
    events = [ev(0, "added", A, [A]), ev(0.1, "added", B, [A, B]),
              ev(10.0, "added", C, [A, B, C]), ev(10.6, "added", D, [A, B, C, D]),
              ev(20.0, "removed", A, [B, C, D]), ev(99, "removed", B, [C, D])]
    m = from_events(events, run_start=5, run_end=30, window=1.0)
    assert [(c.start, c.end, sorted(c.added), sorted(c.removed)) for c in m.changes] == [
        (10.0, 10.6, [C, D], []), (20.0, 20.0, [], [A])]
    assert m.epochs == (frozenset({A, B}), frozenset({A, B, C, D}), frozenset({B, C, D}))
    assert m.live_count_at(np.array([-1.0, 0.05, 5.0, 10.3, 15.0, 25.0, 100])).tolist() == [
        0, 1, 2, 3, 4, 3, 2]


def test_a_refusal_undone_within_the_window_is_no_change() -> None:
    events = [ev(0, "added", A, [A]), ev(0, "added", B, [A, B]),
              ev(10.0, "removed", A, [B]), ev(10.5, "added", A, [A, B])]
    assert from_events(events, 1, 30, window=1.0).changes == ()
    assert len(from_events(events, 1, 30, window=0.1).changes) == 2


def test_a_snapshot_gives_the_live_set_and_is_no_change() -> None:
    events = [Event(100.0, "snapshot", "", "", (A, B, C)), ev(110, "added", D, [A, B, C, D])]
    m = from_events(events, 100.5, 130, window=1.0)
    assert [sorted(c.live_before) for c in m.changes] == [[A, B, C]]
    assert m.live_count_at(np.array([105.0])).tolist() == [3]
    alone = from_events(events[:1], 100.5, 130, window=1.0)
    assert alone.changes == () and alone.epochs == (frozenset({A, B, C}),)


def test_inference_from_containers_seen() -> None:
    first = np.array([100.1, 100.2, 110.0, np.inf])
    last = np.array([129.9, 120.0, 129.8, -np.inf])
    m = infer([A, B, C, D], first, last, run_start=100, run_end=130, window=1.0, margin=2.0)
    assert m.source == "inferred"
    assert [(sorted(c.added), sorted(c.removed)) for c in m.changes] == [([C], []), ([], [B])]
    assert m.epochs[0] == frozenset({A, B})
    assert m.live_count_at(np.array([105.0, 115.0, 125.0])).tolist() == [2, 3, 2]
