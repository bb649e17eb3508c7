"""The end of a run: the verdict line, the console summary and the exit code.

The verdict covers the judged classes only (their users ask for affinity: see summary.py);
controls are shown beside them. It is one of:

- `FAIL: the request file could not be written ...`: exit code 2 (Locust's own code for an
  error of the instrument), whatever the sessions did: the run's evidence is incomplete;
- `FAIL: k sticky sessions saw more than one container ...`: more than
  `--max-multi-container-sessions` (default 0): exit code 3;
- `NOT JUDGED: the recording is incomplete ...`: a process lost rows (a worker ended
  without its final batch), unless `--accept-incomplete`: exit code 4;
- `NOT JUDGED: ...`: nothing could be judged (no request recorded, no class asks for
  affinity, none of their sessions had two answers: the reason says which), or the run cannot
  back a verdict (one container answered everything; a control class is as sticky as the
  judged ones, so the target pins by something other than the session; most requests were
  not answered with a CONTAINER_ID): exit code 4, unless
  the run asked for no judgement (`--no-judgement`, a control-only baseline: exit 0);
- `PASS: k sticky sessions saw more than one container (allowed n)`; when k > 0 it adds that
  only `python -m reports` tells remaps forced by membership changes from collateral moves.

The exit code is made worse, never better: Locust's own non-zero code (failures: 1, or what
`--exit-code-on-error` says) stays. `locust_exit_code()` copies the rules of Locust's
`main.shutdown` (tests/locustfiles/test_recorder_pins.py pins the copy).
"""

from __future__ import annotations

from dataclasses import dataclass

from locust.env import Environment

from locustfiles.summary import Summary
from reports.gates import control_as_sticky

STICKINESS_EXIT_CODE = 3
WRITE_FAILED_EXIT_CODE = 2
NOT_JUDGED_EXIT_CODE = 4


@dataclass(frozen=True, slots=True)
class Verdict:
    line: str
    exit_code: int | None  # None: leave Locust's own


def verdict(summary: Summary, allowed: int, write_failure: str | None = None,
            no_judgement: bool = False, lost: list[str] | None = None) -> Verdict:
    """The one-line result of the run (see the module docstring)."""
    if write_failure is not None:
        return Verdict(f"FAIL: the request file could not be written ({write_failure}); "
                       f"exit code {WRITE_FAILED_EXIT_CODE}", WRITE_FAILED_EXIT_CODE)

    def not_judged(reason: str) -> Verdict:
        if no_judgement:
            return Verdict(f"NOT JUDGED (--no-judgement: none asked): {reason}", None)
        return Verdict(f"NOT JUDGED: {reason}; exit code {NOT_JUDGED_EXIT_CODE}",
                       NOT_JUDGED_EXIT_CODE)

    if lost:
        return not_judged(f"the recording is incomplete ({len(lost)} process(es) lost rows, "
                          "as listed); --accept-incomplete judges it all the same")
    judged = summary.judged
    if not sum(c.requests for c in summary.classes):
        return not_judged("no request was recorded (did the target answer after the probe?)")
    if not judged:
        return not_judged("no user class asks for affinity (Modal-Session-Id or a strict "
                          "session)")
    names = ", ".join(c.user_class for c in judged)
    if not summary.judged_repeat_sessions:
        answered = sum(c.answered for c in judged)
        requests = sum(c.requests for c in judged)
        why = (f"none of its {requests} requests was answered with a CONTAINER_ID"
               if not answered else f"{answered} of {requests} requests answered")
        return not_judged(f"no session of {names} had two answered requests ({why})")
    answered = sum(c.answered for c in judged)
    requests = sum(c.requests for c in judged)
    multi = summary.judged_multi_container
    if multi > allowed:
        return Verdict(f"FAIL: {multi} sticky sessions saw more than one container "
                       f"(--max-multi-container-sessions {allowed}; judged: {names}): "
                       f"exit code {STICKINESS_EXIT_CODE}", STICKINESS_EXIT_CODE)
    if 2 * answered < requests:
        return not_judged(f"only {answered} of {requests} requests of {names} were answered "
                          "with a CONTAINER_ID: the few answered are no evidence")
    containers = {x for c in summary.classes for x in c.containers}
    if len(containers) < 2:
        return not_judged(f"only {len(containers)} container answered: stickiness cannot be "
                          "falsified with one container")
    repeat = summary.judged_repeat_sessions
    rate = 1 - multi / repeat
    for c in summary.classes:
        if not c.judged and control_as_sticky(c.one_container, c.repeat_sessions, rate):
            return not_judged(
                f"the control class {c.user_class} (no session id) is as sticky as {names} "
                f"({c.one_container} of {c.repeat_sessions} sessions on one container): the "
                "target pins by something other than the session (the connection?)")
    # Under an allowance (a run with membership changes) this line only bounds the moves: which
    # of them a change forced, and which were collateral, only the report can tell.
    caveat = ("; whether those moves were forced by membership changes (remaps) or not "
              "(collateral, flaps): python -m reports judges them" if multi and allowed else "")
    return Verdict(f"PASS: {multi} sticky sessions saw more than one container "
                   f"(allowed {allowed}){caveat}", None)


def set_exit_code(environment: Environment, result: Verdict) -> None:
    """Make the exit code worse on a failed verdict, never better. A failed write (2) also
    outranks Locust's failed requests (1): the code then says what the verdict line says."""
    if result.exit_code is None:
        return
    current = locust_exit_code(environment)
    if current == 0 or (result.exit_code == WRITE_FAILED_EXIT_CODE and current == 1):
        environment.process_exit_code = result.exit_code


def locust_exit_code(environment: Environment) -> int:
    """The exit code Locust would use now (a copy of main.shutdown's rules)."""
    from locust import log

    if environment.process_exit_code is not None:
        return environment.process_exit_code
    runner = environment.runner
    if runner is not None and (len(runner.errors) or len(runner.exceptions)):
        return int(getattr(environment.parsed_options, "exit_code_on_error", 1))
    return 2 if log.unhandled_greenlet_exception else 0
