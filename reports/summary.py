"""`PREFIX_summary.json`: the typed summary of a run.

Every key, its meaning and what changed in schema_version 2: docs/summary-json.md (in this
repository); formulas: docs/metrics.md; gates: docs/gates.md. Times are Unix seconds;
`*_offset_s` count from the run's first request; fractions are in [0, 1]; every `*_ci` is a
Wilson 95% interval `[low, high]`; a figure with nothing to measure is `null`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reports.columns import BAD_BODY, CONNECTION, OTHER_FAILURE, STREAM_CUT, STREAM_SHORT
from reports.errors import CorruptInput, MissingInput, ReportInputError

if TYPE_CHECKING:
    from pydantic import TypeAdapter, ValidationError

SCHEMA_VERSION = 2
PHASES: tuple[str, ...] = ("steady", "change", "no_live_replica")
ERROR_CLASSES: tuple[str, ...] = (
    "2xx", BAD_BODY, "401", "429", "503", "4xx", "5xx", CONNECTION, OTHER_FAILURE, STREAM_CUT,
    STREAM_SHORT)


def failed_column(error_class: str) -> str:
    """The timeline's column of an error class: a name pandas users can write as an
    attribute (`timeline.failed_503`)."""
    return f"failed_{error_class}"
LATENCY_STATES: tuple[str, ...] = ("all", "first", "repeat", "after_switch", "errors")
TTFT_STATES: tuple[str, ...] = ("first", "repeat", "after_switch")
VERDICTS: tuple[str, ...] = ("passed", "failed", "not judged")

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
class Percentiles:
    count: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


@dataclass
class ChangeSummary:
    at: float
    at_offset_s: float
    end: float
    settled_at: float
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
    answers: int = 0  # judged repeat answers across or inside the change (per-answer rule)
    in_flight: int = 0  # requests of judged sessions that overlap the change
    judged: bool = True
    not_judged: str | None = None  # why the change could not be judged


@dataclass
class EpochSummary:
    start: float
    end: float
    settled_start: float
    live: list[str]
    sessions: int
    requests: int
    pairs_multi_request: int
    pairs_multi_container: int
    settled_stickiness: float | None


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
    affinity: str | None  # "session", "strict", "none"; None when the file does not say
    judged: bool
    sessions: int
    requests: int
    sessions_multi_request: int
    sessions_multi_container: int
    session_stickiness: float | None
    session_stickiness_ci: Interval
    same_container_rate: float | None
    switches: int
    flaps: int
    errors: int
    error_rate: float | None


@dataclass
class Outage:
    """A stretch of whole seconds in which requests were sent and none succeeded."""

    start: float
    end: float
    start_offset_s: float
    end_offset_s: float
    failed: int
    share: float  # of the run's duration


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
    verdict: str  # "passed", "failed" or "not judged"
    reason: str

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    @property
    def failed(self) -> bool:
        return self.verdict == "failed"


@dataclass
class Summary:
    prefix: str
    request_file: str
    events_file: str | None
    epochs_source: str
    affinity_source: str
    judged_classes: list[str]
    settle_s: float
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
    same_container_rate: float | None
    same_container_rate_ci: Interval
    transitions: int
    settled_stickiness: float | None
    settled_stickiness_ci: Interval
    settled_pairs_multi_request: int
    settled_pairs_multi_container: int
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
    ttft: dict[str, Percentiles] | None
    ttft_by_state: dict[str, Percentiles] | None
    inter_token_gap: Percentiles | None
    user_classes: dict[str, UserClassSummary]
    workers: int
    locust: LocustCheck | None
    collateral: int | None = None  # collateral answers (per-answer rule); None: none judged
    collateral_outside_changes: int = 0
    outages: list[Outage] = field(default_factory=list)
    # why the run as a whole cannot back a verdict (one container, controls as sticky, an
    # incomplete recording): every stickiness gate is then not judged
    not_judged: list[str] = field(default_factory=list)
    verdict: str = "no gates"  # "passed", "failed", "not judged" or "no gates"
    gates: list[GateResult] = field(default_factory=list)
    verdicts: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    costs: dict[str, Any] | None = None  # what stickiness costs: reports/costs.py
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"schema_version": data.pop("schema_version"), **data}

    def to_json(self) -> str:
        return json.dumps(clean(self.to_dict()), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: object, source: str = "summary") -> Summary:
        """The typed summary of a summary.json dict (the boundary: a file, a notebook's
        dict). Keys it does not know are ignored (docs/summary-json.md: readers of schema 2
        may); a missing or mistyped one, or another `schema_version`, raises SummaryMismatch
        with one line naming `source`."""
        if not isinstance(data, dict):
            raise SummaryMismatch(f"{source}: not a summary (a JSON object expected)")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise SummaryMismatch(
                f"{source}: summary schema_version {version!r}, this report reads only "
                f"{SCHEMA_VERSION}: run python -m reports on the run again")
        from pydantic import ValidationError

        try:
            text = json.dumps(data)
        except (TypeError, ValueError) as exc:
            raise SummaryMismatch(f"{source}: not JSON data ({exc})") from None
        try:  # from JSON, strictly: no string is taken for a number, no float for an int
            return summary_adapter().validate_json(text, strict=True)
        except ValidationError as exc:
            raise SummaryMismatch(f"{source}: not a schema {SCHEMA_VERSION} summary: "
                                  f"{first_error(exc)}") from None


class SummaryMismatch(ReportInputError):
    """A summary.json of another schema, or one whose keys are missing or mistyped."""


def load_summary(path: str | os.PathLike[str]) -> Summary:
    """A `PREFIX_summary.json` file as the typed Summary; bad input raises a
    ReportInputError (MissingInput, CorruptInput, SummaryMismatch) whose message is one line
    naming the file."""
    where = Path(path)
    try:
        text = where.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MissingInput(f"no summary file {where}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptInput(f"{where}: cannot be read ({type(exc).__name__})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CorruptInput(f"{where}: not JSON ({str(exc).splitlines()[0]})") from None
    return Summary.from_dict(data, str(where))


@cache
def summary_adapter() -> TypeAdapter[Summary]:
    """pydantic's validator of the Summary dataclass (built once: it takes a moment)."""
    from pydantic import TypeAdapter

    return TypeAdapter(Summary)


def first_error(exc: ValidationError) -> str:
    """The first problem of a pydantic ValidationError as "key.path: message"."""
    found = exc.errors()
    first = found[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return f"{where}: {first['msg'].lower()}{more}"


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
