"""Scenarios through real Locust runs: replicas that come and go (churn) and what stickiness
buys with the KV-cache simulation on."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc

from modal_app.local.launch import emulator
from reports.__main__ import main as reports_main
from tests.support.locust import finish, headless, locust_process


def report(prefix: Path) -> dict[str, object]:
    assert reports_main([str(prefix)]) == 0
    return dict(json.loads(Path(f"{prefix}_summary.json").read_text()))


def test_churn_remaps_about_the_rendezvous_minimum_and_nothing_collateral(
        tmp_path: Path) -> None:
    with emulator(3, "--no-replace") as emu, locust_process(
            # the kill comes long after the scale-up: on a busy machine a new replica can
            # take seconds to become live, and two changes that close would read as one
            *headless(emu.url, "StickyUser", seconds=12, extra=(
                "-u", "60", "-r", "60", "--pace-rps", "5",  # 300 req/s: light, plenty
                "--churn", "1s:scale=4,9.5s:kill=1",
                "--max-multi-container-sessions", "60",
                "--exit-code-on-error", "0")),  # a kill cuts requests in flight: 502s
            tmp=tmp_path) as run:
        result = finish(run)
    assert result.code == 0, result.output[-2000:]
    events = [json.loads(line) for line in Path(f"{run.prefix}_events.jsonl").read_text()
              .splitlines()]
    assert events[0]["event"] == "snapshot" and len(events[0]["live"]) == 3
    assert [e["event"] for e in events if e["event"] in ("added", "removed")] == [
        "added", "removed"]
    summary = report(run.prefix)
    changes = summary["membership_changes"]
    assert isinstance(changes, list) and len(changes) == 2
    grow, shrink = changes
    assert len(grow["added"]) == 1 and not grow["removed"]
    assert len(shrink["removed"]) == 1 and not shrink["added"]
    for change, expected in ((grow, 1 / 4), (shrink, 1 / 4)):  # k/(N+k), then k/N
        assert change["expected_fraction"] == expected
        sessions = change["sessions"]
        bound = 4 * (expected * (1 - expected) / sessions) ** 0.5
        assert abs(change["remapped_fraction"] - expected) <= bound, change
        assert change["collateral"] == 0, change


def cache_hit_rate(rows: object) -> float:
    cache = rows.column("cache")  # type: ignore[attr-defined]
    hits = pc.sum(pc.equal(cache, "hit")).as_py() or 0
    known = len(cache) - cache.null_count
    return hits / known


def test_with_a_cache_sticky_sessions_hit_far_more_often(tmp_path: Path) -> None:
    # 30 sessions over 3 replicas: a replica keeps 15, enough for its share when sticky
    with emulator(3, "--cache-sessions", "15", "--cache-miss-ms", "20",
                  "--cache-hit-ms", "1") as emu:
        rates = {}
        for user in ("StickyUser", "NonStickyUser"):
            with locust_process(*headless(emu.url, user, seconds=4, extra=(
                    "-u", "30", "-r", "30", "--cache-key", "--pace-rps", "10")),
                    tmp=tmp_path, name=user) as run:
                result = finish(run)
            assert result.rows.column("cache").null_count == 0
            rates[user] = cache_hit_rate(result.rows)
    assert rates["StickyUser"] > 0.9
    assert rates["NonStickyUser"] < 0.75
    assert rates["StickyUser"] - rates["NonStickyUser"] > 0.25
