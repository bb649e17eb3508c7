"""CI gates: thresholds on the summary, each failing with a one-line reason.

    results = evaluate(summary, Gates(min_stickiness=0.99, max_error_rate=0.01))
    failed = [r for r in results if not r.passed]

No gate is on by default. A gate whose figure cannot be measured (no session with two
successful requests, for a stickiness gate) fails: a CI check must not pass on no evidence.
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
    "min_sessions": Gate(
        "--min-sessions", "sessions with 2+ successful requests", "min",
        lambda s: float(s.sessions_multi_request)),
}


def evaluate(summary: Summary, gates: Gates) -> list[GateResult]:
    return [check(GATES[name], summary, threshold) for name, threshold in gates.active().items()]


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
