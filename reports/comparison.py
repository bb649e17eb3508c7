"""Two runs side by side (a StickyUser run against a NonStickyUser run, say): one row per
figure with A, B and B - A, for the comparison CSV and HTML (and `reports.compare`).

CSV columns: `metric`, `a`, `b`, `difference` (B - A; empty when either side is missing), in
plain numbers: fractions in [0, 1], latencies in milliseconds.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass

from reports import costs
from reports.formatting import ms, num, pct
from reports.summary import ERROR_CLASSES, TTFT_STATES, Summary

Getter = Callable[[Summary], float | int | None]


@dataclass(frozen=True)
class Row:
    metric: str
    kind: str  # "count", "fraction" or "ms"
    a: float | int | None
    b: float | int | None

    @property
    def difference(self) -> float | int | None:
        if self.a is None or self.b is None:
            return None
        return self.b - self.a


def judges(s: Summary) -> bool:
    """A run that judges some class. A run of control classes only (NonStickyUser) asks for
    no affinity: a switch there is no flap, and its flaps read n/a (its summary's 0 counts
    the judged classes, none)."""
    return bool(s.judged_classes) or s.affinity_source != "recorded"


def ci_end(attr: str, end: int) -> Getter:
    def get(s: Summary) -> float | None:
        interval = getattr(s, attr)
        return interval[end] if interval else None
    return get


def latency(state: str, field: str) -> Getter:
    return lambda s: getattr(s.latency[state], field)


def error_class(name: str) -> Getter:
    return lambda s: s.error_classes[name]


def ttft(group: str, field: str) -> Getter:
    def get(s: Summary) -> float | int | None:
        return getattr(s.ttft[group], field) if s.ttft else None
    return get


def ttft_state(state: str, field: str) -> Getter:
    def get(s: Summary) -> float | int | None:
        return getattr(s.ttft_by_state[state], field) if s.ttft_by_state else None
    return get


def gap(field: str) -> Getter:
    def get(s: Summary) -> float | int | None:
        return getattr(s.inter_token_gap, field) if s.inter_token_gap else None
    return get


FIGURES: list[tuple[str, str, Getter]] = [
    ("requests", "count", lambda s: s.requests),
    ("sessions", "count", lambda s: s.sessions),
    ("sessions_multi_request", "count", lambda s: s.sessions_multi_request),
    ("sessions_multi_container", "count", lambda s: s.sessions_multi_container),
    ("session_stickiness", "fraction", lambda s: s.session_stickiness),
    ("session_stickiness_ci_low", "fraction", ci_end("session_stickiness_ci", 0)),
    ("session_stickiness_ci_high", "fraction", ci_end("session_stickiness_ci", 1)),
    ("same_container_rate", "fraction", lambda s: s.same_container_rate),
    ("settled_stickiness", "fraction", lambda s: s.settled_stickiness),
    ("request_stickiness", "fraction", lambda s: s.request_stickiness),
    ("switches", "count", lambda s: s.switches),
    ("flaps", "count", lambda s: s.flaps if judges(s) else None),
    ("warm_hit_upper_bound", "fraction", lambda s: s.warm_hit_upper_bound),
    ("containers", "count", lambda s: s.containers),
    ("membership_changes", "count", lambda s: len(s.membership_changes)),
    ("collateral", "count", lambda s: sum(c.collateral for c in s.membership_changes)),
    ("errors", "count", lambda s: s.errors),
    ("error_rate", "fraction", lambda s: s.error_rate),
    ("error_rate_ci_low", "fraction", ci_end("error_rate_ci", 0)),
    ("error_rate_ci_high", "fraction", ci_end("error_rate_ci", 1)),
    ("errors_no_live_replica", "count", lambda s: s.errors_no_live_replica),
    *((f"class_{name}", "count", error_class(name)) for name in ERROR_CLASSES),
    *((f"latency_{state}_{f}", "ms", latency(state, f"{f}_ms"))
      for state in ("all", "first", "repeat", "after_switch")
      for f in ("mean", "p50", "p95", "p99")),
    ("cache_hit_rate", "fraction", lambda s: s.cache.hit_rate if s.cache else None),
    *((f"ttft_{group}_{f}", "ms", ttft(group, f"{f}_ms"))
      for group in ("all", "hit", "miss") for f in ("p50", "p95", "p99")),
    *((f"ttft_{state}_{f}", "ms", ttft_state(state, f"{f}_ms"))
      for state in TTFT_STATES for f in ("p50", "p95", "p99")),
    *((f"inter_token_gap_{f}", "ms", gap(f"{f}_ms")) for f in ("p50", "p95", "p99")),
    *costs.FIGURES,
]


STREAMING = ("ttft_", "inter_token_gap_")


def rows(a: Summary, b: Summary) -> list[Row]:
    """Every figure of the two runs; the streaming figures only when either run streamed."""
    table = [Row(name, kind, get(a), get(b)) for name, kind, get in FIGURES]
    return [r for r in table if not (r.metric.startswith(STREAMING) and r.a is None
                                     and r.b is None)]


def to_csv(table: list[Row]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["metric", "a", "b", "difference"])
    for row in table:
        writer.writerow([row.metric, plain(row.a), plain(row.b), plain(row.difference)])
    return out.getvalue().encode()


def plain(value: float | int | None) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def formatted(table: list[Row]) -> list[tuple[str, str, str, str]]:
    """The rows as text for the HTML table; differences of fractions in percentage points."""
    out = []
    for row in table:
        if row.kind == "fraction":
            diff = row.difference
            out.append((row.metric, pct(row.a, 2), pct(row.b, 2),
                        "n/a" if diff is None else f"{diff * 100:+.2f} pp"))
        elif row.kind == "ratio":  # max/mean and the like (reports/costs.py)
            diff = row.difference
            out.append((row.metric, num(row.a), num(row.b),
                        "n/a" if diff is None else f"{diff:+.3g}"))
        elif row.kind == "ms":
            diff = row.difference
            out.append((row.metric, ms(row.a), ms(row.b),
                        "n/a" if diff is None else f"{diff:+,.1f} ms"))
        else:
            diff = row.difference
            out.append((row.metric, num(row.a), num(row.b),
                        "n/a" if diff is None else f"{diff:+,}"))
    return out
