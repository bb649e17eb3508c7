"""The demo's tail and cost lines, on summaries whose figures are known."""

from __future__ import annotations

import sys
from pathlib import Path

from reports.summary import CacheSummary, Latency, Percentiles, Summary
from tests.support.summaries import summary as a_summary

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import demo  # noqa: E402


def summary(p50: float, p95: float, p99: float, busy: float, steady_p95: float) -> Summary:
    return a_summary(
        latency={"all": Latency(100, p50, p50, p95, p99, p99)},
        ttft={"all": Percentiles(100, p50, p95, p99)},
        cache=CacheSummary(50, 50, 0.5, [0.4, 0.6], {}),
        costs={"busy_max_over_mean": busy, "expected_max_over_mean": 1.23,
               "hottest": {"busy_share": 0.3, "latency_p95_ms": 9.0},
               "latency_steady": {"p95_ms": steady_p95, "p99_ms": steady_p95 + 1},
               "ttft_steady": {"p95_ms": steady_p95, "p99_ms": steady_p95 + 1}})


def test_the_headline_names_the_tails_and_the_cost_line_the_price() -> None:
    sticky, control = summary(4, 20, 30, 1.4, 8), summary(20, 25, 27, 1.05, 24)
    line = demo.latency_headline(sticky, control, 156)
    assert line.endswith("; p95 20.0 ms instead of 25.0 ms (20% less), p99 30.0 ms instead of "
                         "27.0 ms (11% more)")
    streams = demo.ttft_headline(sticky, control, 78)
    assert streams is not None and "; TTFT p95 20.0 ms instead of 25.0 ms" in streams
    cost = demo.cost_line(sticky, control, streaming=True)
    assert cost == ("stickiness costs: busy time max/mean over the replicas 1.40 instead of "
                    "1.05 (uniform hashing 1.23), hottest replica 30.0% of busy time with "
                    "latency p95 9.0 ms; after the 1 s warm-up TTFT p95 8.0 ms instead of "
                    "24.0 ms, p99 9.0 ms instead of 25.0 ms")


def test_a_summary_without_costs_says_n_a() -> None:
    bare = a_summary(costs=None, latency={"all": Latency(1, 1.0, 1.0)}, ttft=None)
    assert "max/mean over the replicas n/a instead of n/a" in demo.cost_line(bare, bare, False)
    assert "p95 n/a instead of n/a" in demo.tails(bare.latency["all"], bare.latency["all"])
    assert demo.ttft_headline(bare, bare, 10) is None  # no stream: no TTFT to claim
