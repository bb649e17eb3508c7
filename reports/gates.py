"""CI gates: thresholds on the summary, each failing with a one-line reason.

    results = evaluate(summary, Gates(min_stickiness=0.99, max_error_rate=0.01))
    failed = [r for r in results if not r.passed]

No gate is on by default, but one: a run with strict sessions (`SessionedUser`, for
`@modal.sessioned()` servers) is judged strictly, as if `--max-strict-violations 0` were given:
Modal promises such a session one container for its whole life, membership changes included, so
a session that saw two is a failure, not a statistic. A gate whose figure cannot be measured
(no session with two successful requests, for a stickiness gate) fails: a CI check must not
pass on no evidence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reports.config import Gates
from reports.summary import GateResult, Summary


@dataclass(frozen=True)
class Gate:
    flag: str
    what: str
    kind: str  # "min" or "max"
    value: Callable[[Summary], float | None]
    detail: Callable[[Summary], str] = lambda s: ""
    vacuous_pass: bool = False  # nothing to measure passes (no membership change to judge)


STRICT_CLASSES = ("SessionedUser",)


def strict_violations(s: Summary) -> float | None:
    """Strict sessions answered by 2+ containers; None when the run has none."""
    classes = [s.user_classes[c] for c in STRICT_CLASSES if c in s.user_classes]
    return float(sum(c.sessions_multi_container for c in classes)) if classes else None


def max_excess(s: Summary) -> float | None:
    values = [c.excess for c in s.membership_changes if c.excess is not None]
    return max(values) if values else None


GATES: dict[str, Gate] = {
    "min_stickiness": Gate(
        "--min-stickiness", "session stickiness", "min", lambda s: s.session_stickiness,
        lambda s: f"{s.sessions_multi_container} of {s.sessions_multi_request} sessions saw "
                  "2+ containers"),
    "min_request_stickiness": Gate(
        "--min-request-stickiness", "request stickiness", "min",
        lambda s: s.request_stickiness),
    "max_error_rate": Gate(
        "--max-error-rate", "error rate", "max", lambda s: s.error_rate,
        lambda s: f"{s.errors} of {s.requests} requests"),
    "max_collateral": Gate(
        "--max-collateral", "collateral remaps", "max",
        lambda s: float(sum(c.collateral for c in s.membership_changes)),
        lambda s: f"over {len(s.membership_changes)} membership changes"),
    "max_flaps": Gate(
        "--max-flaps", "flaps (switches in a stable epoch)", "max", lambda s: float(s.flaps),
        lambda s: f"{s.sessions_with_flaps} sessions flapped"),
    "max_remap_excess": Gate(
        "--max-remap-excess", "remapped / rendezvous minimum", "max", max_excess,
        vacuous_pass=True),
    "max_p95_ms": Gate("--max-p95-ms", "p95 latency (ms)", "max",
                       lambda s: s.latency["all"].p95_ms),
    "max_p99_ms": Gate("--max-p99-ms", "p99 latency (ms)", "max",
                       lambda s: s.latency["all"].p99_ms),
    "max_strict_violations": Gate(
        "--max-strict-violations", "strict sessions on 2+ containers", "max",
        strict_violations, lambda s: "SessionedUser: one container per session, always",
        vacuous_pass=True),
    "min_sessions": Gate(
        "--min-sessions", "sessions with 2+ successful requests", "min",
        lambda s: float(s.sessions_multi_request)),
}


def evaluate(summary: Summary, gates: Gates) -> list[GateResult]:
    active = gates.active()
    if strict_violations(summary) is not None:
        active.setdefault("max_strict_violations", 0)
    return [check(GATES[name], summary, threshold) for name, threshold in active.items()]


def check(gate: Gate, summary: Summary, threshold: float) -> GateResult:
    value = gate.value(summary)
    if value is None:
        passed = gate.vacuous_pass
        reason = f"{gate.what}: nothing to measure"
    else:
        passed = value >= threshold if gate.kind == "min" else value <= threshold
        sign = (">=" if passed else "<") if gate.kind == "min" else ("<=" if passed else ">")
        reason = f"{gate.what} {value:.6g} {sign} {threshold:g}"
        detail = gate.detail(summary)
        if detail:
            reason += f" ({detail})"
    return GateResult(gate.flag.lstrip("-"), threshold, value, passed, reason)
