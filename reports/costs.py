"""What stickiness costs: how the load spreads over the replicas, beside what it buys.

    costs = cost_summary(raw_run, ReportConfig(warmup_s=2))   # summary.json's "costs"

A sticky router cannot spread load freely: a session stays where it hashed, so a replica that
drew more (or longer) conversations is hotter, and its latency shows it. Per replica, over the
answered requests of every class (the router's load, controls included):

- its share of the requests, of the sessions (distinct sessions it answered) and of the busy
  time (the sum of its requests' response times: time it held requests in flight);
- for each of the three, max/mean over the replicas: 1.0 is a perfectly even spread; beside it
  `expected_max_over_mean`, the mean max/mean of this many sessions thrown uniformly on this
  many replicas (what a uniform hash gives by chance alone);
- latency (p50/p95/p99) and, for streams, TTFT (p50/p95) per replica, after the warm-up: the
  hottest replica (largest busy share) is named with its p95 beside the run's.

The warm-up (`--warmup S` of the report): the first S seconds of the run (every conversation's
first request misses a cache) are set apart for these latency figures only: `latency_steady`
and `ttft_steady` cover the rest, `latency_warmup` the first S seconds. The correctness figures
and the gates never leave anything out.

Sessions per user: with conversations (`--turns`, recorded in `PREFIX_run.json`), a user's
sessions are `<user>.<k>`; without them, each session is a user.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reports.load import RawRun

METADATA_SUFFIX = "_run.json"  # written by locustfiles/affinity.py
TRIALS = 400
BLOCK_ROWS = 1 << 22


def read_metadata(prefix: str) -> dict[str, Any] | None:
    """The harness's `PREFIX_run.json` (its options), or None when absent or unreadable."""
    path = Path(prefix + METADATA_SUFFIX)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def cost_summary(raw: RawRun, warmup_s: float = 0.0) -> dict[str, Any]:
    """The cost figures of one run (see the module docstring)."""
    r = raw.requests
    names = r.container.names
    codes = r.container.codes
    answered = codes >= 0
    answered &= r.error.codes < 0
    start = float(r.ts.min()) if len(r.ts) else 0.0
    steady = r.ts >= start + warmup_s
    n = len(names)
    # the answered requests' counts, busy times and sessions, a block at a time: no copy of
    # the run's columns, whatever share of its requests was answered
    requests = np.zeros(n, dtype=np.int64)
    busy = np.zeros(n, dtype=np.float64)
    pairs = SessionPairs(len(r.session.names), n)
    for first in range(0, len(codes), BLOCK_ROWS):
        pick = answered[first:first + BLOCK_ROWS]
        cont = codes[first:first + BLOCK_ROWS][pick]
        requests += np.bincount(cont, minlength=n)[:n]
        # in row order, as one np.bincount(weights=) of the run would add them: the same sums
        np.add.at(busy, cont, r.response_time_ms[first:first + BLOCK_ROWS][pick])
        pairs.add(r.session.codes[first:first + BLOCK_ROWS][pick], cont)
    sessions, total_sessions = pairs.counts()
    live = np.flatnonzero(requests > 0)
    per: list[dict[str, Any]] = []
    rt, ttft = r.response_time_ms, r.ttft_ms
    streaming = bool(np.isfinite(ttft[:1]).any() or np.isfinite(ttft).any())
    kept = answered & steady
    for j in live:
        mine = codes == j
        mine &= kept
        row: dict[str, Any] = {
            "container_id": names[j], "requests": int(requests[j]),
            "request_share": share(requests[j], requests.sum()),
            "sessions": int(sessions[j]), "session_share": share(sessions[j], sessions.sum()),
            "busy_s": round(float(busy[j]) / 1000, 3), "busy_share": share(busy[j], busy.sum()),
            **percentiles(rt, "latency", mask=mine)}
        if streaming:
            row.update(percentiles(ttft, "ttft", (50, 95), mask=mine))
        per.append(row)
        del mine
    hottest = max(per, key=lambda x: x["busy_share"] or 0.0) if per else None
    steady_latency = percentiles(rt, "", mask=kept)
    warming = answered & ~steady
    del answered, steady
    out: dict[str, Any] = {
        "replicas": len(live),
        "uniform_share": 1 / len(live) if len(live) else None,
        "requests_max_over_mean": max_over_mean(requests[live]),
        "sessions_max_over_mean": max_over_mean(sessions[live]),
        "busy_max_over_mean": max_over_mean(busy[live]),
        "expected_max_over_mean": expected_max_over_mean(total_sessions, len(live)),
        "hottest": None if hottest is None else {
            "container_id": hottest["container_id"], "busy_share": hottest["busy_share"],
            "latency_p95_ms": hottest["latency_p95_ms"],
            "run_latency_p95_ms": steady_latency["p95_ms"]},
        "per_replica": per,
        "warmup_s": warmup_s,
        "warmup_requests": int(warming.sum()),
        "latency_steady": steady_latency,
        "latency_warmup": percentiles(rt, "", mask=warming),
        "ttft_steady": percentiles(ttft, "", mask=kept) if streaming else None,
        "ttft_warmup": percentiles(ttft, "", mask=warming) if streaming else None,
        **sessions_per_user(raw),
    }
    return out


class SessionPairs:
    """Distinct sessions per replica, and in all, added a block of rows at a time: a flag per
    (session, replica) pair, no sort (10 M rows stay cheap), or the distinct pairs of each
    block when the flags would take too much memory."""

    def __init__(self, n_sessions: int, n_containers: int, max_flags: int = 50_000_000
                 ) -> None:
        self.n_containers = n_containers
        self.width = max(n_containers, 1)
        self.seen = np.zeros((n_sessions, self.width), dtype=np.bool_) \
            if n_sessions * self.width <= max_flags else None
        self.pairs: list[NDArray[np.int64]] = []

    def add(self, sess: NDArray[Any], cont: NDArray[Any]) -> None:
        if self.seen is not None:
            self.seen[sess, cont] = True
        else:
            self.pairs.append(np.unique(sess.astype(np.int64) * self.width + cont))

    def counts(self) -> tuple[NDArray[Any], int]:
        if self.seen is not None:
            return self.seen.sum(axis=0)[:self.n_containers], int(self.seen.any(axis=1).sum())
        pairs = np.unique(np.concatenate(self.pairs)) if self.pairs \
            else np.empty(0, dtype=np.int64)
        return (np.bincount(pairs % self.width, minlength=self.n_containers),
                len(np.unique(pairs // self.width)))


def share(part: float, whole: float) -> float | None:
    return float(part) / float(whole) if whole else None


def max_over_mean(values: NDArray[Any]) -> float | None:
    if not len(values) or not values.sum():
        return None
    return float(values.max() / values.mean())


def expected_max_over_mean(items: int, bins: int, trials: int = TRIALS) -> float | None:
    """The mean max/mean of `items` thrown uniformly on `bins` (a fixed seed: reproducible)."""
    if items <= 0 or bins <= 0:
        return None
    if bins == 1:
        return 1.0
    rng = np.random.default_rng(0)
    counts = rng.multinomial(items, [1 / bins] * bins, size=trials)
    return float((counts.max(axis=1) / (items / bins)).mean())


def percentiles(values: NDArray[np.float64], prefix: str,
                ps: tuple[int, ...] = (50, 95, 99), mask: NDArray[np.bool_] | None = None
                ) -> dict[str, Any]:
    """{prefix_count, prefix_p50_ms, ...} of the finite values (those where `mask` is true;
    None when there are none). One copy of the values picked, partitioned in place."""
    lead = f"{prefix}_" if prefix else ""
    pick = np.isfinite(values)
    if mask is not None:
        pick &= mask
    values = values[pick]
    del pick
    out: dict[str, Any] = {f"{lead}count": len(values)}
    figures = (np.percentile(values, ps, overwrite_input=True) if len(values)
               else [math.nan] * len(ps))
    for p, x in zip(ps, figures, strict=True):
        out[f"{lead}p{p}_ms"] = float(x) if len(values) else None
    return out


def sessions_per_user(raw: RawRun) -> dict[str, Any]:
    """Sessions per run, users, and sessions per user (conversations: `<user>.<k>`)."""
    meta = read_metadata(raw.prefix)
    names = raw.requests.session.names
    codes = raw.requests.session.codes
    seen = np.zeros(len(names), dtype=np.bool_)
    for first in range(0, len(codes), BLOCK_ROWS):  # a block's temporaries, not the run's
        block = codes[first:first + BLOCK_ROWS]
        seen[block[block >= 0]] = True
    used = np.flatnonzero(seen)
    sessions = [names[i] for i in used]
    turns = (meta or {}).get("turns")
    users = ({s.rpartition(".")[0] or s for s in sessions} if turns else set(sessions))
    per_user = len(sessions) / len(users) if users else None
    return {"turns": turns, "sessions_per_run": len(sessions), "users": len(users),
            "sessions_per_user": per_user, "harness": meta}


# -- shown --------------------------------------------------------------------------------------


def ms(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def ratio(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def headline(costs: dict[str, Any] | None) -> list[str]:
    """The console lines of `python -m reports`."""
    if not costs:
        return []
    lines = [
        f"  cost: {costs['replicas']} replicas, max/mean requests "
        f"{ratio(costs['requests_max_over_mean'])}, sessions "
        f"{ratio(costs['sessions_max_over_mean'])}, busy time "
        f"{ratio(costs['busy_max_over_mean'])} (uniform hashing of these sessions: "
        f"{ratio(costs['expected_max_over_mean'])}; even: 1.00)"]
    hot = costs.get("hottest")
    if hot:
        lines.append(f"  hottest replica {hot['container_id']}: {pct(hot['busy_share'])} of "
                     f"busy time (even {pct(costs['uniform_share'])}), latency p95 "
                     f"{ms(hot['latency_p95_ms'])} (run {ms(hot['run_latency_p95_ms'])})")
    steady, warm = costs["latency_steady"], costs["latency_warmup"]
    if costs["warmup_s"]:
        lines.append(f"  after the {costs['warmup_s']:g} s warm-up: latency p50 "
                     f"{ms(steady['p50_ms'])} p95 {ms(steady['p95_ms'])} p99 "
                     f"{ms(steady['p99_ms'])}; during it ({warm['count']:,} requests) p95 "
                     f"{ms(warm['p95_ms'])}")
    if costs.get("ttft_steady") and costs["warmup_s"]:
        t, w = costs["ttft_steady"], costs["ttft_warmup"] or {}
        lines.append(f"  TTFT after the warm-up p50 {ms(t['p50_ms'])} p95 {ms(t['p95_ms'])}; "
                     f"during it p95 {ms(w.get('p95_ms'))}")
    lines.append(f"  sessions {costs['sessions_per_run']:,} for {costs['users']:,} users "
                 f"({ratio(costs['sessions_per_user'])} per user; turns "
                 f"{costs['turns'] or 'unlimited'})")
    harness = costs.get("harness")
    if harness:
        lines.append("  harness: " + settings_text(harness))
    return lines


def settings_text(harness: dict[str, Any]) -> str:
    session = (f"cookie {harness['session_cookie']}" if harness.get("session_cookie")
               else f"header {harness.get('session_header')}")
    instance = (f"header {harness['instance_header']}" if harness.get("instance_header")
                else f"field {harness.get('instance_field')}")
    return f"session by {session}; instance id from the {instance}"


def pct(value: Any) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def page(costs: dict[str, Any] | None) -> tuple[list[str], list[list[object]], list[str]] | None:
    """The HTML section's table (head, rows) and text, from the summary's `costs`."""
    if not costs:
        return None
    streaming = costs.get("ttft_steady") is not None
    head = ["replica", "requests", "sessions", "busy time", "latency p50", "p95", "p99"]
    if streaming:
        head += ["TTFT p50", "TTFT p95"]
    rows: list[list[object]] = []
    for x in costs["per_replica"]:
        row: list[object] = [
            x["container_id"], f"{x['requests']:,} ({pct(x['request_share'])})",
            f"{x['sessions']:,} ({pct(x['session_share'])})",
            f"{x['busy_s']:,.1f} s ({pct(x['busy_share'])})", ms(x["latency_p50_ms"]),
            ms(x["latency_p95_ms"]), ms(x["latency_p99_ms"])]
        if streaming:
            row += [ms(x.get("ttft_p50_ms")), ms(x.get("ttft_p95_ms"))]
        rows.append(row)
    text = [line.strip() for line in headline(costs)]
    text.append("Shares of the answered requests of every class. Latency and TTFT per replica "
                "leave out the warm-up (--warmup of the report); verdicts never do.")
    return head, rows, text


def figure(path: str) -> Any:
    """A comparison getter: the value at a path of the summary's costs (None when absent)."""
    def get(s: Any) -> Any:
        value: Any = getattr(s, "costs", None)
        for key in path.split("."):
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value
    return get


# the comparison's rows (metric, kind, getter): reports/comparison.py appends them
FIGURES: list[tuple[str, str, Any]] = [
    ("sessions_per_user", "ratio", figure("sessions_per_user")),
    ("requests_max_over_mean", "ratio", figure("requests_max_over_mean")),
    ("sessions_max_over_mean", "ratio", figure("sessions_max_over_mean")),
    ("busy_max_over_mean", "ratio", figure("busy_max_over_mean")),
    ("expected_max_over_mean", "ratio", figure("expected_max_over_mean")),
    ("hottest_busy_share", "fraction", figure("hottest.busy_share")),
    ("hottest_latency_p95", "ms", figure("hottest.latency_p95_ms")),
    *((f"latency_steady_{p}", "ms", figure(f"latency_steady.{p}_ms"))
      for p in ("p50", "p95", "p99")),
    *((f"ttft_steady_{p}", "ms", figure(f"ttft_steady.{p}_ms")) for p in ("p50", "p95", "p99")),
]
# the comparison's console lines (python -m reports A B) also show these
CONSOLE: tuple[str, ...] = ("busy_max_over_mean", "hottest_latency_p95", "latency_steady_p95")
