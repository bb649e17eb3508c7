"""The report's configuration: analysis options and gates, frozen, filled 1:1 by the CLI."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields


@dataclass(frozen=True, kw_only=True)
class Gates:
    """CI thresholds. None = no gate; no gate is on by default. See `reports.gates`."""

    min_stickiness: float | None = None
    min_settled_stickiness: float | None = None
    min_same_container_rate: float | None = None
    min_request_stickiness: float | None = None
    max_error_rate: float | None = None
    max_collateral: int | None = None
    max_flaps: int | None = None
    max_remap_excess: float | None = None
    max_p95_ms: float | None = None
    max_p99_ms: float | None = None
    max_strict_violations: int | None = None
    min_sessions: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"--{f.name.replace('_', '-')} must be a number >= 0")
            if f.name in ("min_stickiness", "min_settled_stickiness",
                          "min_same_container_rate", "min_request_stickiness",
                          "max_error_rate") and value > 1:
                raise ValueError(f"--{f.name.replace('_', '-')} is a fraction in [0, 1]")

    def active(self) -> dict[str, float]:
        """The gates that are set, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}


@dataclass(frozen=True, kw_only=True)
class ReportConfig:
    # Membership events closer than this to the previous one join the same change: the
    # replicas of one scale-up become live within a health-check round of each other.
    change_window_s: float = 1.0
    # Requests overlapping [change start, change end + margin] are in the "change" phase.
    change_margin_s: float = 5.0
    # A change has settled this long after its last membership event: moves before then are
    # remaps of the change (judged against the settled owner after it), switches after it, in
    # the settled epoch, are flaps. A proxy learns of a change late (a health-check interval,
    # a propagation delay); see docs/metrics.md#membership-changes-epochs-and-settling.
    settle_s: float = 2.0
    # Judge every class, controls included. Only for one side of a comparison whose run has no
    # class asking for affinity (a NonStickyUser run): its figures then describe its controls,
    # and the comparison says so (see `api.comparable`).
    judge_controls: bool = False
    # judge a run whose recording is incomplete (did not end normally, lost rows) all the same
    accept_incomplete: bool = False
    # With no event log, a container first seen within this of the run's first request was
    # there from the start (and one last seen within this of the end stayed to the end).
    infer_margin_s: float = 2.0
    # The swimlane shows at most this many sessions and time bins.
    swimlane_sessions: int = 120
    swimlane_bins: int = 240
    # The timeline has at most this many points (seconds are merged beyond).
    timeline_points: int = 600
    gates: Gates = field(default_factory=Gates)
    # The first S seconds of the run are set apart from the cost section's latency figures
    # (reports/costs.py), never from a verdict or a gate.
    warmup_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("change_window_s", "change_margin_s", "infer_margin_s", "settle_s",
                     "warmup_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a number >= 0")
        for name in ("swimlane_sessions", "swimlane_bins", "timeline_points"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
