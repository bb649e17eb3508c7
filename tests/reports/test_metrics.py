"""Synthetic runs with known answers, through the real reader and the real metrics."""

from __future__ import annotations

import csv
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from modal_app.local.rendezvous import pick
from reports import charts, metrics
from reports.api import load_run as api_load_run
from reports.config import ReportConfig
from reports.load import read_run as load_run
from reports.metrics import Analysis, analyze, latency_sorted, latency_without
from reports.stats import wilson
from tests.support.rows import (
    CHANGE_AT,
    COLLATERAL_SESSION,
    T0,
    A,
    B,
    C,
    D,
    Row,
    added,
    removed,
    session_ids,
    three_switched_rows,
    write_events,
    write_requests,
)


def report_of(prefix: str, **config: float) -> Analysis:
    return analyze(load_run(prefix), ReportConfig(**config))  # type: ignore[arg-type]


def test_exactly_three_of_fifty_sessions_switched(three_switched: str) -> None:
    s = report_of(three_switched).summary
    assert (s.sessions, s.sessions_multi_request, s.sessions_multi_container) == (50, 50, 3)
    assert s.session_stickiness == pytest.approx(47 / 50)
    assert s.session_stickiness_ci == pytest.approx(list(wilson(47, 50) or ()))
    assert s.request_stickiness == pytest.approx((47 * 10 + 3 * 5) / 500)
    assert (s.switches, s.forced_switches, s.flaps, s.sessions_with_flaps) == (3, 0, 3, 3)
    assert s.warm_hit_upper_bound == pytest.approx(1 - 53 / 500)
    assert s.warm_hit_ideal == pytest.approx(1 - 50 / 500)
    assert (s.requests, s.ok_requests, s.errors, s.error_rate) == (500, 500, 0, 0.0)
    assert s.containers == 3 and s.membership_changes == [] and s.epochs_source == "inferred"
    assert s.status_counts == {"200": 500}
    # one epoch, settled throughout: settled stickiness is session stickiness
    assert s.settled_stickiness == pytest.approx(47 / 50)
    assert (s.epochs[0].sessions, s.epochs[0].requests, s.epochs[0].pairs_multi_request,
            s.epochs[0].pairs_multi_container) == (50, 500, 50, 3)
    assert s.same_container_rate == pytest.approx(1 - 3 / 450) and s.transitions == 450


def test_sessions_table_has_one_row_per_session(three_switched: str) -> None:
    rows = report_of(three_switched).sessions.to_dict("records")
    assert len(rows) == 50 and len({r["session_id"] for r in rows}) == 50
    moved = sorted(r["session_id"] for r in rows if r["containers"] == 2)
    assert moved == ["s0000", "s0001", "s0002"]
    first = next(r for r in rows if r["session_id"] == "s0000")
    assert (first["requests"], first["switches"], first["flaps"], first["main_share"]) == (
        10, 1, 1, 0.5)


def test_scale_up_remaps_exactly_the_rendezvous_movers_and_one_collateral(
        scale_up: tuple[str, int]) -> None:
    prefix, moved = scale_up
    s = report_of(prefix).summary
    assert s.epochs_source == "events"
    (change,) = s.membership_changes
    assert (change.added, change.removed, change.live_before, change.live_after) == (
        [D], [], 3, 4)
    assert change.at == CHANGE_AT
    assert change.sessions == 200
    assert change.remapped == moved
    assert change.remapped_fraction == pytest.approx(moved / 200)
    assert change.expected_fraction == pytest.approx(0.25)
    assert change.collateral == 1
    assert change.excess == pytest.approx(moved / 200 / 0.25)
    assert change.restick_max_s is not None and 0 < change.restick_max_s < 1
    # the requests sent just before the change and routed after it are not flaps
    assert (s.switches, s.forced_switches, s.flaps) == (moved, moved, 0)


def test_the_owner_before_comes_from_requests_answered_before_the_change(
        tmp_path: Path) -> None:
    """Naively (owner before = requests *started* before), the late-routed requests would
    hide every move: 0 remapped instead of all of them."""
    rows = []
    for i, sid in enumerate(session_ids(40)):
        before, after = pick(sid, [A, B, C]), pick(sid, [A, B, C, D])
        rows += [Row(T0 + 1 + i * 0.01, sid, before), Row(CHANGE_AT - 0.01, sid, after, 200, 50),
                 Row(CHANGE_AT + 1 + i * 0.01, sid, after),
                 Row(CHANGE_AT + 3 + i * 0.01, sid, after)]
    write_requests(tmp_path / "late_requests.parquet", rows)
    write_events(tmp_path / "late_events.jsonl", [
        added(T0 - 5, A, [A]), added(T0 - 5, B, [A, B]), added(T0 - 5, C, [A, B, C]),
        added(CHANGE_AT, D, [A, B, C, D])])
    (change,) = report_of(str(tmp_path / "late")).summary.membership_changes
    movers = sum(pick(s, [A, B, C]) != pick(s, [A, B, C, D]) for s in session_ids(40))
    assert (change.sessions, change.remapped, change.collateral) == (40, movers, 0)


def test_inferred_epochs_match_the_event_log(scale_up: tuple[str, int]) -> None:
    prefix, moved = scale_up
    Path(prefix + "_events.jsonl").unlink()
    s = report_of(prefix).summary
    assert s.epochs_source == "inferred"
    (change,) = s.membership_changes
    assert (change.added, change.removed, change.sessions, change.remapped,
            change.collateral) == ([D], [], 200, moved, 1)
    assert abs(change.at - CHANGE_AT) < 0.1
    assert any("inferred" in note for note in s.notes)


def test_scale_down_moves_only_the_removed_replicas_sessions(tmp_path: Path) -> None:
    rows = []
    ids = session_ids(120)
    for i, sid in enumerate(ids):
        for j in range(20):
            ts = T0 + j + 0.2 + i * 0.005
            rows.append(Row(ts, sid, pick(sid, [A, B, C, D] if ts < CHANGE_AT else [A, B, C])))
    write_requests(tmp_path / "down_requests.parquet", rows)
    write_events(tmp_path / "down_events.jsonl", [
        {"ts": T0 - 1, "event": "snapshot", "live": [A, B, C, D]},
        removed(CHANGE_AT, D, [A, B, C], "stop"),
        {"ts": CHANGE_AT + 0.1, "event": "exited", "container_id": D, "cause": "stop"}])
    s = report_of(str(tmp_path / "down")).summary
    (change,) = s.membership_changes
    on_d = sum(pick(sid, [A, B, C, D]) == D for sid in ids)
    assert (change.removed, change.remapped, change.collateral) == ([D], on_d, 0)
    assert change.expected_fraction == pytest.approx(0.25)
    assert s.flaps == 0 and s.forced_switches == on_d
    assert s.balance is not None and s.balance.containers in (3, 4)


def error_rows() -> list[Row]:
    rows = [Row(T0 + j, "ok1", A) for j in range(5)]
    rows += [
        Row(T0 + 1.0, "e1", None, 0, error="ConnectionRefusedError"),
        Row(T0 + 1.1, "e1", None, 401, error="401 Unauthorized"),
        Row(T0 + 1.2, "e1", None, 429),
        Row(T0 + 1.3, "e1", None, 404),
        Row(T0 + 1.4, "e1", None, 500, error="500 boom"),
        Row(T0 + 1.5, "e1", None, 200, error="no CONTAINER_ID in body"),
        Row(T0 + 1.6, "e1", None, 302),
        Row(T0 + 3.2, "e1", None, 503, error="503 busy"),
        Row(T0 + 4.98, "e2", None, 502, 30.0, error="502 killed"),
        *(Row(T0 + t, "e3", None, 503, error="503 no live replica") for t in (6.0, 6.5, 7.0)),
        *(Row(T0 + 9 + j, "ok2", C) for j in range(5)),
        Row(T0 + 15.0, "e3", None, 503, error="503 busy"),
        *(Row(T0 + 16 + j, "ok3", C) for j in range(3)),
    ]
    return rows


def test_errors_by_class_and_phase_with_no_live_503s_apart(tmp_path: Path) -> None:
    write_requests(tmp_path / "err_requests.parquet", error_rows())
    write_events(tmp_path / "err_events.jsonl", [
        added(T0 - 3, A, [A]), added(T0 - 3, B, [A, B]),
        removed(T0 + 5.0, A, [B]), removed(T0 + 5.5, B, []), added(T0 + 8.0, C, [C])])
    analysis = report_of(str(tmp_path / "err"))
    s = analysis.summary
    assert s.error_classes == {"2xx": 13, "bad_body": 1, "401": 1, "429": 1, "503": 5,
                               "4xx": 1, "5xx": 2, "connection": 1, "other": 1,
                               "stream_cut": 0, "stream_short": 0}
    assert s.errors_no_live_replica == 3
    # every failed request is an error, whatever its cause; the no-live-replica 503s beside
    assert s.errors == 13 and s.error_rate == pytest.approx(13 / len(error_rows()))
    assert s.errors_by_phase["no_live_replica"]["503"] == 3
    assert s.errors_by_phase["change"]["5xx"] == 1  # the 502 in flight at the kill
    assert s.errors_by_phase["steady"]["503"] == 2
    assert s.errors_by_phase["steady"]["connection"] == 1
    assert s.status_counts == {"0": 1, "200": 14, "302": 1, "401": 1, "404": 1, "429": 1,
                               "500": 1, "502": 1, "503": 5}
    top = {e["error"]: e["count"] for e in s.top_errors}
    assert top["503 no live replica"] == 3 and top["no CONTAINER_ID in body"] == 1
    assert [len(c.removed) for c in s.membership_changes] == [2, 0]
    assert s.user_classes["StickyUser"].errors == 13
    per_session = {r["session_id"]: r["errors"] for r in analysis.sessions.to_dict("records")}
    assert per_session["e3"] == 4  # its three no-live-replica 503s are errors too


def test_latency_by_state(tmp_path: Path) -> None:
    rows = []
    for i, sid in enumerate(session_ids(30)):
        rows.append(Row(T0 + i * 0.01, sid, A, response_time_ms=100.0))
        rows += [Row(T0 + j + i * 0.01, sid, A, response_time_ms=10.0) for j in range(1, 5)]
        if i < 10:
            rows.append(Row(T0 + 5 + i * 0.01, sid, B, response_time_ms=50.0))
            rows.append(Row(T0 + 6 + i * 0.01, sid, B, response_time_ms=10.0))
    write_requests(tmp_path / "lat_requests.parquet", rows)
    s = report_of(str(tmp_path / "lat")).summary
    lat = s.latency
    assert (lat["first"].count, lat["first"].p50_ms, lat["first"].p99_ms) == (30, 100, 100)
    assert (lat["repeat"].count, lat["repeat"].p95_ms) == (130, 10)
    assert (lat["after_switch"].count, lat["after_switch"].p50_ms) == (10, 50)
    assert lat["all"].count == len(rows) and lat["errors"].count == 0
    assert lat["all"].max_ms == 100 and s.cache is None


@pytest.mark.parametrize("seed", range(5))
def test_latency_read_from_all_without_some_is_that_of_the_rest(seed: int) -> None:
    """"repeat" is read from the sorted times of all requests without the others: the same
    count, percentiles, maximum and curve, bit for bit, as sorting the rest; the mean to the
    last digits."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    values = rng.integers(0, 40, n).astype(np.float64) / 4 + rng.random(n) * (seed % 2)
    out = rng.random(n) < (0.0, 0.02, 0.4, 1.0, 0.97)[seed]
    expected, expected_curve, _ = latency_sorted(values[~out])
    ordered = np.sort(values)
    got, curve = latency_without(ordered, np.sort(values[out]), float(ordered.sum()))
    assert (got.count, got.p50_ms, got.p95_ms, got.p99_ms, got.max_ms) == (
        expected.count, expected.p50_ms, expected.p95_ms, expected.p99_ms, expected.max_ms)
    if expected_curve is None:
        assert curve is None and got.mean_ms is None
    else:
        assert curve is not None and np.array_equal(curve.x, expected_curve.x)
        assert got.mean_ms == pytest.approx(expected.mean_ms, rel=1e-12, abs=1e-12)


def test_cache_hit_rate_and_latency(tmp_path: Path) -> None:
    rows = [Row(T0 + j, "s", A, cache="hit" if j % 4 else "miss",
                response_time_ms=5.0 if j % 4 else 40.0) for j in range(40)]
    write_requests(tmp_path / "cache_requests.parquet", rows)
    cache = report_of(str(tmp_path / "cache")).summary.cache
    assert cache is not None
    assert (cache.hits, cache.misses, cache.hit_rate) == (30, 10, 0.75)
    assert cache.latency["hit"].p50_ms == 5 and cache.latency["miss"].p50_ms == 40


def test_user_classes_are_reported_apart(tmp_path: Path) -> None:
    rows = [Row(T0 + j, f"st{i}", A) for i in range(5) for j in range(4)]
    rows += [Row(T0 + j, f"ns{i}", (A, B, C)[j % 3], user_class="NonStickyUser")
             for i in range(5) for j in range(4)]
    write_requests(tmp_path / "mix_requests.parquet", rows)
    s = report_of(str(tmp_path / "mix")).summary
    assert s.user_classes["StickyUser"].session_stickiness == 1.0
    assert s.user_classes["NonStickyUser"].session_stickiness == 0.0
    assert s.session_stickiness == 0.5


def test_timeline_per_second(three_switched: str) -> None:
    timeline = report_of(three_switched).timeline
    assert timeline.bin_s == 1.0 and timeline.requests.tolist() == [50] * 10
    assert timeline.sessions.tolist() == [50] * 10 and timeline.live.tolist() == [3] * 10
    assert int(timeline.classes[:, 0].sum()) == 500


def test_a_csv_request_file_reads_like_parquet(three_switched: str, tmp_path: Path) -> None:
    with (tmp_path / "csvrun_requests.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(asdict(three_switched_rows()[0])))
        for row in three_switched_rows():
            writer.writerow(["" if v is None else v for v in asdict(row).values()])
    from_csv = report_of(str(tmp_path / "csvrun")).summary
    from_parquet = report_of(three_switched).summary
    assert from_csv.session_stickiness == from_parquet.session_stickiness == 0.94
    assert from_csv.latency["all"] == from_parquet.latency["all"]


def test_swimlane_shows_the_sessions_that_switched(three_switched: str) -> None:
    run = api_load_run(three_switched)
    lanes = charts.swimlanes(run.requests, limit=10, sessions=run.sessions)
    assert len(lanes.sessions) == 10
    switched = {session for session, codes in zip(lanes.sessions, lanes.codes, strict=True)
                if len(np.unique(codes[np.isfinite(codes)])) > 1}
    assert switched == {"s0000", "s0001", "s0002"}


DOCS = Path(__file__).resolve().parents[2] / "docs"


def documented_keys() -> set[str]:
    text = (DOCS / "summary-json.md").read_text()
    return set(re.findall(r"`(\w+)`", text)) | set(re.findall(r'"(\w+)"', text))


def test_every_summary_key_is_documented(scale_up: tuple[str, int]) -> None:
    prefix, _ = scale_up
    data = report_of(prefix).summary.to_dict()
    documented = documented_keys()
    nested = {*data, *data["membership_changes"][0], *data["latency"]["all"],
              *(data["balance"] or {}), *data["epochs"][0],
              *next(iter(data["user_classes"].values()))}
    assert nested <= documented, nested - documented
    required = {"sessions", "sessions_multi_container", "session_stickiness",
                "session_stickiness_ci", "requests", "errors", "error_rate", "status_counts",
                "containers", "membership_changes", "schema_version", "judged_classes",
                "affinity_source", "same_container_rate", "settled_stickiness", "ttft",
                "ttft_by_state", "inter_token_gap", "gates", "verdicts"}
    assert required <= set(data)
    assert data["schema_version"] == 2
    assert {"at", "added", "removed", "sessions", "remapped_fraction", "expected_fraction",
            "collateral", "settled_at"} <= set(data["membership_changes"][0])


def test_collateral_session_is_the_one_we_planted(scale_up: tuple[str, int]) -> None:
    prefix, _ = scale_up
    rows = report_of(prefix).sessions.to_dict("records")
    planted = next(r for r in rows if r["session_id"] == COLLATERAL_SESSION)
    assert (planted["containers"], planted["remaps"], planted["flaps"]) == (2, 1, 0)


@pytest.mark.parametrize("size", [1, 3, 5_000, 70_000, 2_000_000])
def test_the_order_by_session_is_the_stable_argsort(size: int,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """metrics.stable_order: radix and counting sort (keys of one and two 16-bit digits, in
    blocks of 1,000 rows), or packed keys (more keys than rows): numpy's stable argsort."""
    monkeypatch.setattr(metrics, "COUNTING_BLOCK_ROWS", 1000)
    keys = np.random.default_rng(size).integers(0, size, 100_003).astype(np.int32)
    order = metrics.stable_order(keys)
    assert order.dtype == np.int32
    assert np.array_equal(order, np.argsort(keys, kind="stable"))


@pytest.mark.parametrize("shuffled", [False, True])
def test_the_rows_are_sorted_by_session_then_start_ties_in_file_order(
        tmp_path: Path, shuffled: bool) -> None:
    """metrics.sort_by_session: rows written in session start order take one sort; rows out of
    start order within a session (shuffled) are sorted by time first. Either way: by session,
    then start, equal starts in file order (np.lexsort, stable)."""
    rng = np.random.default_rng(3)
    rows = [Row(T0 + float(rng.integers(0, 50)) + rng.choice([0.0, 0.25]), sid,
                (A, B, C)[int(rng.integers(3))], response_time_ms=float(i))
            for i, sid in enumerate(rng.choice(session_ids(30), 2000))]
    if not shuffled:
        rows.sort(key=lambda r: r.ts)  # stable: equal starts keep their order
    prefix = str(tmp_path / "rows")
    write_requests(Path(prefix + "_requests.parquet"), rows)
    run = load_run(prefix)
    ts, rt = run.requests.ts.copy(), run.requests.response_time_ms.copy()
    sess = run.requests.session.codes.copy()  # every name used: the codes stay
    metrics.sort_by_session(run.requests)
    order = np.lexsort((ts, sess))
    assert np.array_equal(run.requests.session.codes, sess[order])
    assert np.array_equal(run.requests.ts, ts[order])
    assert np.array_equal(run.requests.response_time_ms, rt[order])  # ties: file order
