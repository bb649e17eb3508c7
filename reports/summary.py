"""`PREFIX_summary.json`: the typed summary of a run, and what each key means.

The keys are stable: new keys may be added, existing ones keep their name and meaning
(`schema_version` changes if that ever has to break). Times are Unix seconds; `*_offset_s`
count from the run's first request. Fractions are in [0, 1]; every `*_ci` is a Wilson 95%
interval `[low, high]`. A figure with nothing to measure (no session with two requests, say)
is `null`. Formulas: ../shared/notes/metrics.md. "Successful" means a 2xx answer that names a
container; only successful requests count towards stickiness, switches and remaps.

Top level:

- `schema_version`, `prefix`, `request_file`, `events_file` (null when none)
- `epochs_source`: "events" (the emulator's log) or "inferred" (containers seen answering)
- `start`, `end`, `duration_s`: first request start, last answer, and the span between
- `requests`, `ok_requests`: all rows; successful ones
- `sessions`: distinct session ids; `sessions_multi_request`: those with 2+ successful requests
- `sessions_multi_container`: of those, the ones answered by 2+ containers
- `session_stickiness`, `session_stickiness_ci`: 1 - multi_container / multi_request
- `request_stickiness`, `request_stickiness_ci`: share of successful requests answered by their
  session's main container
- `switches`: consecutive successful requests of a session answered by different containers;
  `forced_switches`: those whose two requests straddle a membership change (between the first
  request's start and the second's answer, a change began or was under way); `flaps`: the
  others, in a stable epoch; `sessions_with_flaps`
- `warm_hit_upper_bound` (1 - sum |R_s| / sum n_s), `warm_hit_ideal` (1 - S / sum n_s)
- `errors`, `error_rate`, `error_rate_ci`: requests that are not successful, except 503s while
  no container was live, which are counted apart as `errors_no_live_replica`
- `status_counts`: {"200": n, ...} over all requests (0 = connection error or timeout)
- `error_classes`: counts by class: 2xx (successful), bad_body (2xx without a container id),
  401, 429, 503, 4xx (other), 5xx (other), connection (status 0), other (1xx/3xx)
- `errors_by_phase`: {phase: {class: n}} for phases steady, change (overlapping a membership
  change or the `change_margin_s` after it) and no_live_replica (no container live)
- `top_errors`: [{"error", "count"}], the ten most frequent error messages
- `containers`: containers that answered; `per_container`: [{"container_id", "requests",
  "sessions" (sessions it answered), "main_sessions" (sessions whose main container it is),
  "first_ts", "last_ts"}]
- `membership_changes`: one object per change (see `ChangeSummary`): `at`, `at_offset_s`,
  `end`, `causes`, `added`, `removed`, `live_before`, `live_after`, `sessions` (active in the
  epochs on both sides), `remapped`, `remapped_fraction`, `remapped_fraction_ci`,
  `expected_fraction` (the rendezvous minimum (r+a)/(N+a)), `excess` (observed / expected),
  `z`, `collateral` (moves between two containers live on both sides), `restick_p50_s`,
  `restick_max_s` (from the change to the first request on the new owner)
- `epochs`: [{"start", "end", "live", "sessions", "requests"}] between the changes
- `balance`: for the epoch with the most sessions (see `Balance`), or null
- `latency`: {state: {"count", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"}} for states
  all (every request), first (a session's first successful request), repeat (same container as
  the session's previous one), after_switch (first on a new container), errors
- `cache`: null when the run has no cache column values, else {"hits", "misses", "hit_rate",
  "hit_rate_ci", "latency": {"hit": ..., "miss": ...}}
- `user_classes`: {class: {"sessions", "requests", "sessions_multi_request",
  "sessions_multi_container", "session_stickiness", "session_stickiness_ci", "errors",
  "error_rate"}}
- `workers`: distinct Locust workers in the file
- `locust`: null without Locust's stats CSVs, else {"requests", "failures", "recorded"}
  (Locust's stats.csv lags up to a second: a small shortfall of `requests` is expected)
- `gates`: [{"gate", "threshold", "value", "passed", "reason"}] for the gates given
- `notes`: caveats found while reading the run, as sentences
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1
PHASES: tuple[str, ...] = ("steady", "change", "no_live_replica")
ERROR_CLASSES: tuple[str, ...] = (
    "2xx", "bad_body", "401", "429", "503", "4xx", "5xx", "connection", "other")
LATENCY_STATES: tuple[str, ...] = ("all", "first", "repeat", "after_switch", "errors")

Interval = list[float] | None


@dataclass
class Latency:
    count: int = 0
    mean_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None


@dataclass
class ChangeSummary:
    at: float
    at_offset_s: float
    end: float
    causes: list[str]
    added: list[str]
    removed: list[str]
    live_before: int
    live_after: int
    sessions: int
    remapped: int
    remapped_fraction: float | None
    remapped_fraction_ci: Interval
    expected_fraction: float | None
    excess: float | None
    z: float | None
    collateral: int
    restick_p50_s: float | None
    restick_max_s: float | None


@dataclass
class EpochSummary:
    start: float
    end: float
    live: list[str]
    sessions: int
    requests: int


@dataclass
class Balance:
    """Sessions (and requests) per live container in one epoch, against a uniform hash.

    Each session counts once, on the container that answered most of its requests in the
    epoch. `expected_max_over_mean` is the Monte Carlo mean of max/mean for that many items
    thrown uniformly on `containers`; `expected_cv` = sqrt((N - 1) / K). Requests of one
    session are not independent, so read the request figures beside the session ones."""

    epoch: int
    containers: int
    sessions: int
    max_over_mean: float | None
    expected_max_over_mean: float | None
    cv: float | None
    expected_cv: float | None
    chi2_p: float | None
    requests: int
    requests_max_over_mean: float | None
    requests_cv: float | None
    requests_chi2_p: float | None
    sessions_per_container: dict[str, int]
    requests_per_container: dict[str, int]


@dataclass
class ContainerSummary:
    container_id: str
    requests: int
    sessions: int
    main_sessions: int
    first_ts: float | None
    last_ts: float | None


@dataclass
class CacheSummary:
    hits: int
    misses: int
    hit_rate: float | None
    hit_rate_ci: Interval
    latency: dict[str, Latency]


@dataclass
class UserClassSummary:
    sessions: int
    requests: int
    sessions_multi_request: int
    sessions_multi_container: int
    session_stickiness: float | None
    session_stickiness_ci: Interval
    errors: int
    error_rate: float | None


@dataclass
class LocustCheck:
    requests: int | None
    failures: int | None
    recorded: int


@dataclass
class GateResult:
    gate: str
    threshold: float
    value: float | None
    passed: bool
    reason: str


@dataclass
class Summary:
    prefix: str
    request_file: str
    events_file: str | None
    epochs_source: str
    start: float
    end: float
    duration_s: float
    requests: int
    ok_requests: int
    sessions: int
    sessions_multi_request: int
    sessions_multi_container: int
    session_stickiness: float | None
    session_stickiness_ci: Interval
    request_stickiness: float | None
    request_stickiness_ci: Interval
    switches: int
    forced_switches: int
    flaps: int
    sessions_with_flaps: int
    warm_hit_upper_bound: float | None
    warm_hit_ideal: float | None
    errors: int
    error_rate: float
    error_rate_ci: Interval
    errors_no_live_replica: int
    status_counts: dict[str, int]
    error_classes: dict[str, int]
    errors_by_phase: dict[str, dict[str, int]]
    top_errors: list[dict[str, Any]]
    containers: int
    per_container: list[ContainerSummary]
    membership_changes: list[ChangeSummary]
    epochs: list[EpochSummary]
    balance: Balance | None
    latency: dict[str, Latency]
    cache: CacheSummary | None
    user_classes: dict[str, UserClassSummary]
    workers: int
    locust: LocustCheck | None
    gates: list[GateResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"schema_version": data.pop("schema_version"), **data}

    def to_json(self) -> str:
        return json.dumps(clean(self.to_dict()), indent=2, allow_nan=False) + "\n"


def clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
