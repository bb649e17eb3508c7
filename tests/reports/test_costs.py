"""The cost side of the report on a request file whose figures are known: per-replica shares of
requests, sessions and busy time, max/mean against uniform hashing, the hottest replica, the
warm-up set apart from latency only, sessions per user, and the comparison's rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from reports import api, costs, html
from reports.columns import COLUMNS, CSV_SUFFIX
from reports.config import ReportConfig

T0 = 1_700_000_000.0


def write_run(path: Path, rows: list[tuple[float, float, str, str]], turns: str | None) -> str:
    """rows: (offset s, response ms, session, container); all StickyUser, all answered."""
    prefix = str(path / "run")
    with open(prefix + CSV_SUFFIX, "w", newline="") as f:
        out = csv.DictWriter(f, COLUMNS)
        out.writeheader()
        for at, ms, session, container in rows:
            out.writerow({"ts": T0 + at, "response_time_ms": ms, "session_id": session,
                          "user_class": "StickyUser", "name": "/", "status": 200,
                          "container_id": container, "worker": "local",
                          "affinity": "session"})
    if turns is not None:
        Path(prefix + costs.METADATA_SUFFIX).write_text(json.dumps(
            {"turns": turns, "session_cookie": "SERVERID", "instance_header": "X-Served-By"}))
    return prefix


def test_shares_max_over_mean_hottest_and_warmup(tmp_path: Path) -> None:
    # replica a: sessions u1.0 and u1.1 (one user, two conversations), 4 requests of 10 ms
    # after a first of 500 ms in the warm-up; replica b: session u2.0, 2 requests of 30 ms
    rows = [(0.1, 500.0, "u1.0", "a"), (2.0, 10.0, "u1.0", "a"), (2.1, 10.0, "u1.0", "a"),
            (3.0, 10.0, "u1.1", "a"), (3.1, 10.0, "u1.1", "a"),
            (2.0, 30.0, "u2.0", "b"), (2.5, 30.0, "u2.0", "b")]
    run = api.load_run(write_run(tmp_path, rows, "2"), config=ReportConfig(warmup_s=1.0))
    c = run.summary()["costs"]
    per = {x["container_id"]: x for x in c["per_replica"]}
    assert per["a"]["requests"] == 5 and per["a"]["request_share"] == pytest.approx(5 / 7)
    assert per["a"]["sessions"] == 2 and per["b"]["session_share"] == pytest.approx(1 / 3)
    assert per["a"]["busy_s"] == pytest.approx(0.54)
    assert per["a"]["busy_share"] == pytest.approx(540 / 600)
    assert c["requests_max_over_mean"] == pytest.approx(5 / 3.5)
    assert c["busy_max_over_mean"] == pytest.approx(540 / 300)
    assert 1.0 < c["expected_max_over_mean"] <= 2.0  # 3 sessions on 2 replicas, uniformly
    assert c["hottest"]["container_id"] == "a"
    # the warm-up's 500 ms request is out of the latency figures, in the warm-up's own
    assert per["a"]["latency_count"] == 4 and per["a"]["latency_p99_ms"] == pytest.approx(10.0)
    assert c["latency_warmup"]["count"] == 1 and c["latency_warmup"]["p50_ms"] == 500.0
    assert c["latency_steady"]["count"] == 6
    # ...and never out of the run's own figures
    assert run.analysis.summary.latency["all"].count == 7
    assert (c["users"], c["sessions_per_run"], c["sessions_per_user"]) == (2, 3, 1.5)
    lines = "\n".join(costs.headline(run.analysis.summary.costs))
    assert "hottest replica a: 90.0% of busy time (even 50.0%)" in lines
    assert "session by cookie SERVERID; instance id from the header X-Served-By" in lines
    compared = api.compare(run, run)
    assert compared.loc["busy_max_over_mean", "a"] == pytest.approx(1.8)
    assert compared.loc["sessions_per_user", "delta"] == 0
    page = html.render_report(run)
    assert "What stickiness costs: load per replica" in page and "540.0 ms" not in page
    assert "0.5 s (90.0%)" in page


def test_without_conversations_each_session_is_a_user(tmp_path: Path) -> None:
    rows = [(0.0, 5.0, "u1.0", "a"), (1.0, 5.0, "u2.0", "a")]
    c = api.load_run(write_run(tmp_path, rows, None)).summary()["costs"]
    assert (c["users"], c["sessions_per_user"], c["turns"], c["harness"]) == (2, 1.0, None, None)
    assert c["warmup_s"] == 0 and c["latency_warmup"]["count"] == 0


def test_a_negative_warmup_is_refused() -> None:
    with pytest.raises(ValueError, match="warmup_s"):
        ReportConfig(warmup_s=-1)


def session_counts(sess: np.ndarray, cont: np.ndarray, blocks: int, max_flags: int
                   ) -> tuple[np.ndarray, int]:
    pairs = costs.SessionPairs(5, 3, max_flags=max_flags)
    for s, c in zip(np.array_split(sess, blocks), np.array_split(cont, blocks), strict=True):
        pairs.add(s, c)
    return pairs.counts()


def test_session_counts_agree_with_flags_or_a_sort_in_any_blocks() -> None:
    sess = np.array([0, 0, 1, 2, 2, 2, 4])
    cont = np.array([0, 1, 1, 0, 0, 2, 2])
    for blocks in (1, 3, 7):
        flags = session_counts(sess, cont, blocks, 50_000_000)
        sorted_ = session_counts(sess, cont, blocks, 0)
        assert flags[0].tolist() == sorted_[0].tolist() == [2, 2, 2]
        assert flags[1] == sorted_[1] == 4
