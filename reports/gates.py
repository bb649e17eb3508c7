"""CI gates: thresholds on the summary, each ending as passed, failed or not judged.

    results = evaluate(summary, Gates(min_stickiness=0.99, max_error_rate=0.01))
    failed = [r for r in results if r.verdict == "failed"]

Every gate, its figure and when it cannot be judged: docs/gates.md. No gate is on by default
but one: a run whose file records strict sessions (affinity "strict", `@modal.sessioned()`) is
judged strictly, as if `--max-strict-violations 0` were given: Modal promises such a session
one container for its whole life, membership changes included.

A gate whose figure has nothing to measure (no membership change for `--max-collateral`, no
successful request in a settled epoch for `--max-flaps`, no class that asks for affinity for
the stickiness gates) is "not judged", with the reason: never "passed" on no evidence. The CLI
exits 0 on it unless `--require-judged` is given (then 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reports.config import Gates
from reports.stats import wilson
from reports.summary import GateResult, Summary

PASSED, FAILED, NOT_JUDGED = "passed", "failed", "not judged"


def control_as_sticky(one_container: int, repeat_sessions: int,
                      judged_stickiness: float | None) -> bool:
    """A control class (no session id) is as sticky as the judged classes: its session
    stickiness is clearly above a coin's (the Wilson 95% lower bound above 0.5) and within a
    point of the judged classes'. The target then pins by something other than the session
    (the connection, the client address), and header affinity is not what was measured.
    One definition, for the report and the Locust verdict."""
    if judged_stickiness is None or not repeat_sessions:
        return False
    low = wilson(one_container, repeat_sessions)
    return low is not None and low[0] > 0.5 \
        and one_container / repeat_sessions >= judged_stickiness - 0.01


@dataclass(frozen=True)
class Gate:
    flag: str
    what: str
    kind: str  # "min" or "max"
    value: Callable[[Summary], float | None]
    detail: Callable[[Summary], str] = lambda s: ""
    # why there is nothing to judge, when value() is None
    why_not: Callable[[Summary], str] = lambda s: "nothing to measure"


def strict_classes(s: Summary) -> list[str]:
    return [name for name, c in s.user_classes.items() if c.affinity == "strict"]


def strict_violations(s: Summary) -> float | None:
    """Strict sessions answered by 2+ containers; None when the run records none."""
    classes = [s.user_classes[c] for c in strict_classes(s)]
    if not classes or not sum(c.sessions_multi_request for c in classes):
        return None
    return float(sum(c.sessions_multi_container for c in classes))


def max_excess(s: Summary) -> float | None:
    values = [c.excess for c in s.membership_changes if c.excess is not None]
    return max(values) if values else None


def collateral(s: Summary) -> float | None:
    """Collateral answers over the run (the per-answer rule, docs/metrics.md#collateral).
    Any collateral fails; none is judged only when every membership change was judged."""
    if s.collateral is None:
        return None
    if s.collateral:
        return float(s.collateral)
    if not s.membership_changes or any(not c.judged for c in s.membership_changes):
        return None
    return 0.0


def flaps(s: Summary) -> float | None:
    return float(s.flaps) if s.settled_pairs_multi_request else None


def no_sessions(s: Summary) -> str:
    if not s.judged_classes:
        return "no class asks for affinity (controls are not judged)"
    return "no judged session with 2+ successful requests"


def no_change(s: Summary) -> str:
    if not s.membership_changes:
        return "no membership change to judge"
    unjudged = [c for c in s.membership_changes if not c.judged]
    if unjudged:
        c = unjudged[0]
        return (f"{len(unjudged)} of {len(s.membership_changes)} membership changes not judged "
                f"(change at {c.at_offset_s:.1f} s: {c.not_judged})")
    return "no judged session active on both sides of a membership change"


def request_stickiness(s: Summary) -> float | None:
    """Not judged on one request per session, like session stickiness."""
    return s.request_stickiness if s.sessions_multi_request else None


def no_settled(s: Summary) -> str:
    if not s.judged_classes:
        return "no class asks for affinity (controls are not judged)"
    return "no judged session with 2+ successful requests inside a settled epoch"


def no_strict(s: Summary) -> str:
    if s.affinity_source == "assumed":
        return "the request file does not record strict sessions"
    if not strict_classes(s):
        return "no strict sessions in this run"
    return "no strict session with 2+ successful requests"


GATES: dict[str, Gate] = {
    "min_stickiness": Gate(
        "--min-stickiness", "session stickiness", "min", lambda s: s.session_stickiness,
        lambda s: f"{s.sessions_multi_container} of {s.sessions_multi_request} judged sessions "
                  "saw 2+ containers", no_sessions),
    "min_settled_stickiness": Gate(
        "--min-settled-stickiness", "settled stickiness", "min",
        lambda s: s.settled_stickiness,
        lambda s: f"{s.settled_pairs_multi_container} of {s.settled_pairs_multi_request} "
                  "(session, settled epoch) pairs saw 2+ containers", no_settled),
    "min_same_container_rate": Gate(
        "--min-same-container-rate", "same-container rate", "min",
        lambda s: s.same_container_rate,
        lambda s: f"{s.switches} switches in {s.transitions} transitions", no_sessions),
    "min_request_stickiness": Gate(
        "--min-request-stickiness", "request stickiness", "min",
        request_stickiness, why_not=no_sessions),
    "max_error_rate": Gate(
        "--max-error-rate", "error rate", "max", lambda s: s.error_rate,
        lambda s: f"{s.errors} of {s.requests} requests"),
    "max_collateral": Gate(
        "--max-collateral", "collateral remaps", "max", collateral,
        lambda s: f"over {len(s.membership_changes)} membership changes", no_change),
    "max_flaps": Gate(
        "--max-flaps", "flaps (switches inside a settled epoch)", "max", flaps,
        lambda s: f"{s.sessions_with_flaps} sessions flapped", no_settled),
    "max_remap_excess": Gate(
        "--max-remap-excess", "remapped / rendezvous minimum", "max", max_excess,
        why_not=no_change),
    "max_p95_ms": Gate("--max-p95-ms", "p95 latency (ms)", "max",
                       lambda s: s.latency["all"].p95_ms),
    "max_p99_ms": Gate("--max-p99-ms", "p99 latency (ms)", "max",
                       lambda s: s.latency["all"].p99_ms),
    "max_strict_violations": Gate(
        "--max-strict-violations", "strict sessions on 2+ containers", "max",
        strict_violations, lambda s: "a strict session keeps one container, always",
        no_strict),
    "min_sessions": Gate(
        "--min-sessions", "judged sessions with 2+ successful requests", "min",
        lambda s: float(s.sessions_multi_request)),
}


# the gates on figures that cannot be judged when the run as a whole cannot back a verdict
# (one container, controls as sticky as the judged classes): all but errors and latency
LOAD_GATES = ("max_error_rate", "max_p95_ms", "max_p99_ms")


def evaluate(summary: Summary, gates: Gates) -> list[GateResult]:
    active = gates.active()
    if strict_classes(summary):
        active.setdefault("max_strict_violations", 0)
    results = []
    for name, threshold in active.items():
        reasons = run_reasons(summary, name)
        if reasons:
            gate = GATES[name]
            results.append(GateResult(gate.flag.lstrip("-"), threshold, None, NOT_JUDGED,
                                      f"{gate.what}: " + "; ".join(reasons)))
        else:
            results.append(check(GATES[name], summary, threshold))
    return results


def run_reasons(summary: Summary, gate: str) -> list[str]:
    """The run-level reasons (Summary.not_judged) that stop this gate from being judged: an
    incomplete recording stops every gate, the others the stickiness gates."""
    if gate in LOAD_GATES:
        return [r for r in summary.not_judged if r.startswith("incomplete recording")]
    return list(summary.not_judged)


def overall(summary: Summary) -> str:
    """The run's verdict: "not judged" when the run cannot back one (Summary.not_judged);
    else "failed" when a gate failed, "not judged" when one could not be judged, "passed"
    when all passed, "no gates" when none was asked for."""
    if summary.not_judged:
        return NOT_JUDGED
    found = {r.verdict for r in summary.gates}
    if FAILED in found:
        return FAILED
    if NOT_JUDGED in found:
        return NOT_JUDGED
    return PASSED if found else "no gates"


def check(gate: Gate, summary: Summary, threshold: float) -> GateResult:
    value = gate.value(summary)
    name = gate.flag.lstrip("-")
    if value is None:
        return GateResult(name, threshold, None, NOT_JUDGED, f"{gate.what}: "
                          f"{gate.why_not(summary)}")
    passed = value >= threshold if gate.kind == "min" else value <= threshold
    sign = (">=" if passed else "<") if gate.kind == "min" else ("<=" if passed else ">")
    reason = f"{gate.what} {value:.6g} {sign} {threshold:g}"
    detail = gate.detail(summary)
    if detail:
        reason += f" ({detail})"
    return GateResult(name, threshold, value, PASSED if passed else FAILED, reason)


def verdicts(summary: Summary) -> dict[str, str]:
    """How each headline figure reads: "good", "bad" or "neutral", for colours. A figure is bad
    only when a gate on it failed or the rules call it wrong (a flap, a collateral remap, a
    strict session on two containers); good when its gate passed or the rules say it is right;
    neutral otherwise (session stickiness under churn, an error rate with no gate). See
    docs/gates.md#verdicts."""
    by_gate = {r.gate: r.verdict for r in summary.gates}
    out: dict[str, str] = {}

    def judge(figure: str, gate: str, rule: str | None) -> None:
        verdict = by_gate.get(gate)
        if verdict == FAILED:
            out[figure] = "bad"
        elif rule is not None:
            out[figure] = rule
        elif verdict == PASSED:
            out[figure] = "good"
        else:
            out[figure] = "neutral"

    s = summary
    stable = not s.membership_changes
    judge("session_stickiness", "min-stickiness",
          "good" if stable and s.session_stickiness == 1 else None)
    judge("same_container_rate", "min-same-container-rate",
          "good" if stable and s.same_container_rate == 1 else None)
    judge("settled_stickiness", "min-settled-stickiness",
          None if s.settled_stickiness is None
          else ("good" if s.settled_stickiness == 1 else "bad"))
    judge("flaps", "max-flaps", None if flaps(s) is None else ("good" if s.flaps == 0 else "bad"))
    c = collateral(s)
    judge("collateral", "max-collateral", None if c is None else ("good" if c == 0 else "bad"))
    judge("remap_excess", "max-remap-excess", None)
    judge("error_rate", "max-error-rate", None)
    judge("request_stickiness", "min-request-stickiness", None)
    v = strict_violations(s)
    if v is not None:
        judge("strict_violations", "max-strict-violations", "good" if v == 0 else "bad")
    return out
