"""The gallery of liars: broken routers and targets, each through the real harness (a real
Locust run, then `python -m reports`), each asserting the verdict and its reason.

A liar is a test-only policy of the emulator (`--policy modulo`) or a tiny proxy in front of a
real emulator (tests/support/liars.py). Every verdict change runs against these; none of them
may ever get PASS. Each liar runs once (module-scoped) and its tests only read the results.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modal_app.local.launch import emulator, stop_process
from reports.__main__ import main as reports_main
from tests.support import ROOT
from tests.support.locust import finish, locust_process

LISTENING = re.compile(r"liar listening on (http://127\.0\.0\.1:\d+)")


@contextlib.contextmanager
def liar(mode: str, upstream: str, after: float = 2.0) -> Iterator[str]:
    """`python -m tests.support.liars MODE` in front of `upstream`; stopped by its pid."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.liars", mode, "--upstream",
                             upstream, "--after", str(after)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        match = LISTENING.search(proc.stdout.readline())
        assert match, f"the {mode} liar did not start"
        yield match.group(1)
    finally:
        stop_process(proc)


@dataclass
class Outcome:
    locust_code: int
    locust_output: str
    report_code: int
    report_output: str
    summary: dict[str, Any]
    html: str

    @property
    def verdict_line(self) -> str:
        lines = [line for line in self.locust_output.splitlines()
                 if re.search(r"\b(PASS|FAIL|NOT JUDGED)\b", line)]
        assert lines, self.locust_output[-3000:]
        return lines[-1]


def run(tmp: Path, url: str, users: tuple[str, ...], seconds: int, extra: tuple[str, ...] = (),
        gates: tuple[str, ...] = ()) -> Outcome:
    args = ["-f", "locustfiles/sticky.py", *users, "--headless", "-u", "12", "-r", "12", "-t",
            f"{seconds}s", "--host", url, "--wait-timeout", "10", *extra]
    with locust_process(*args, tmp=tmp) as proc:
        result = finish(proc)
    # `python -m reports`'s own entry point, in this process (the CLI as a subprocess, exit
    # codes and all, is tests/reports/test_cli.py's; here the imports would cost more than the
    # report)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        report_code = reports_main([str(proc.prefix), *gates])
    summary = json.loads(Path(f"{proc.prefix}_summary.json").read_text())
    html = Path(f"{proc.prefix}_report.html").read_text()
    return Outcome(result.code, result.output, report_code, printed.getvalue(), summary, html)


def first_card(html: str) -> str:
    """The text of the report's first card (the verdict)."""
    match = re.search(r'<div class="cards">(.*?)</div>\s*</div>', html, re.S)
    assert match, "no cards"
    return re.sub(r"<[^>]+>", " ", match.group(1))


STRICT = ("--require-judged", "--max-collateral", "0", "--max-flaps", "0",
          "--min-stickiness", "0.99", "--max-error-rate", "0.01")


@pytest.fixture(scope="module")
def honest() -> Iterator[str]:
    with emulator(3) as emu:
        yield emu.url


def through(mode: str, honest: str, tmp: Path, users: tuple[str, ...], seconds: int = 3,
            after: float = 2.0, extra: tuple[str, ...] = (),
            gates: tuple[str, ...] = STRICT) -> Outcome:
    with liar(mode, honest, after) as url:
        return run(tmp, url, users, seconds, extra, gates)


# -- the liars, one run each --------------------------------------------------------------------


@pytest.fixture(scope="module")
def modulo(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """Modulo hashing, with a kill and a late-learning proxy: sessions bounce A -> B -> A
    between survivors while the change settles. Then a scale-up: a kill alone can leave
    every survivor where it was (the replacement may take the killed one's place in the
    sorted ids before the proxy learns of the kill), a new count of replicas never does."""
    with emulator(3, "--policy", "modulo", "--membership-delay-ms", "800") as emu:
        return run(tmp_path_factory.mktemp("modulo"), emu.url, ("StickyUser",), 5,
                   ("--pace-rps", "10", "--churn", "1s:kill=1,3s:scale=4",
                    "--max-multi-container-sessions", "30"),
                   ("--change-window", "2", "--require-judged", "--max-collateral", "0",
                    "--max-flaps", "0", "--max-remap-excess", "1.5",
                    "--min-settled-stickiness", "0.99"))


@pytest.fixture(scope="module")
def connection(honest: str, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """Kept-alive connections (--reconnect-every 0): the control is as sticky as the sticky
    class, which the verdict names."""
    return through("connection", honest, tmp_path_factory.mktemp("connection"),
                   ("StickyUser", "NonStickyUser"), extra=("--pace-rps", "20",
                                                           "--reconnect-every", "0"))


@pytest.fixture(scope="module")
def connection_reconnecting(honest: str, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """The default --reconnect-every 50: the pinning shows as moved sessions."""
    return through("connection", honest, tmp_path_factory.mktemp("reconnecting"),
                   ("StickyUser",), seconds=3, extra=("--pace-rps", "20"))


@pytest.fixture(scope="module")
def random_router(honest: str, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return through("random", honest, tmp_path_factory.mktemp("random"), ("StickyUser",),
                   extra=("--pace-rps", "20"))


@pytest.fixture(scope="module")
def one(honest: str, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return through("one", honest, tmp_path_factory.mktemp("one"),
                   ("StickyUser", "NonStickyUser"), extra=("--pace-rps", "20"))


@pytest.fixture(scope="module")
def empty(honest: str, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return through("empty", honest, tmp_path_factory.mktemp("empty"), ("StickyUser",),
                   after=0.0, extra=("--pace-rps", "20"))  # the probe is answered


@pytest.fixture(scope="module")
def outage(honest: str, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return through("outage", honest, tmp_path_factory.mktemp("outage"), ("StickyUser",),
                   seconds=4, after=2.0, extra=("--pace-rps", "20"))


@pytest.fixture(scope="module")
def shift(honest: str, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return through("shift", honest, tmp_path_factory.mktemp("shift"), ("StickyUser",),
                   seconds=4, after=1.5, extra=("--pace-rps", "20"))


@pytest.fixture(scope="module")
def hang(honest: str, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    with liar("hang", honest, 0.0) as url:
        args = ["-f", "locustfiles/sticky.py", "StickyUser", "--headless", "-u", "4", "-r",
                "4", "-t", "2s", "--host", url, "--wait-timeout", "10"]
        with locust_process(*args, tmp=tmp_path_factory.mktemp("hang")) as proc:
            code = proc.wait(60)
            return Outcome(code, proc.output(), -1, "", {}, "")


@pytest.fixture(scope="module")
def correct(honest: str, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """The honest emulator itself: the gallery's control, which must PASS."""
    return run(tmp_path_factory.mktemp("correct"), honest, ("StickyUser", "NonStickyUser"), 3,
               ("--pace-rps", "20"), ("--require-judged", "--min-stickiness", "0.99",
                                      "--max-flaps", "0", "--max-error-rate", "0.01"))


# -- what each must give ------------------------------------------------------------------------


def never_passes(o: Outcome) -> None:
    assert "verdict: PASSED" not in o.report_output, o.report_output
    assert o.summary["verdict"] != "passed", o.report_output
    assert o.report_code != 0, o.report_output


def test_modulo_bouncing_between_survivors_is_collateral(modulo: Outcome) -> None:
    never_passes(modulo)
    assert modulo.summary["collateral"] > 0, modulo.report_output
    gate = {g["gate"]: g for g in modulo.summary["gates"]}["max-collateral"]
    assert gate["verdict"] == "failed", (gate, modulo.report_output)
    assert modulo.report_code == 1, modulo.report_output
    assert "FAILED" in first_card(modulo.html), first_card(modulo.html)
    # Locust's own line, under the run's allowance, may pass only as a bound that points at
    # the report (it cannot tell a forced remap from a collateral move)
    if modulo.verdict_line.lstrip().startswith("PASS"):
        assert "python -m reports judges them" in modulo.verdict_line, modulo.verdict_line


def test_connection_pinning_is_not_judged_as_header_affinity(connection: Outcome) -> None:
    never_passes(connection)
    reason = "pins by something other than the session"
    assert reason in connection.verdict_line and connection.locust_code == 4
    assert any(reason in r for r in connection.summary["not_judged"])
    assert connection.summary["verdict"] == "not judged" and connection.report_code == 4
    assert reason in first_card(connection.html)


def test_connection_pinning_fails_when_the_users_reconnect(
        connection_reconnecting: Outcome) -> None:
    never_passes(connection_reconnecting)
    assert connection_reconnecting.verdict_line.lstrip().startswith("FAIL:")
    assert connection_reconnecting.locust_code == 3
    assert connection_reconnecting.summary["verdict"] == "failed"


def test_a_random_router_fails(random_router: Outcome) -> None:
    never_passes(random_router)
    assert random_router.verdict_line.lstrip().startswith("FAIL:")
    assert random_router.locust_code == 3
    assert random_router.summary["verdict"] == "failed" and random_router.report_code == 1
    assert random_router.summary["collateral"] > 0


def test_one_container_cannot_be_judged(one: Outcome) -> None:
    never_passes(one)
    assert "only 1 container answered" in one.verdict_line and one.locust_code == 4
    assert any("only 1 container" in r for r in one.summary["not_judged"])
    assert one.report_code == 4 and "NOT JUDGED" in first_card(one.html)


def test_an_empty_container_id_is_a_body_error(empty: Outcome) -> None:
    never_passes(empty)
    assert "NOT JUDGED" in empty.verdict_line and empty.locust_code == 4
    assert "answered with a CONTAINER_ID" in empty.verdict_line, empty.verdict_line
    s = empty.summary
    assert s["containers"] <= 3 and s["error_classes"]["bad_body"] > 0.9 * s["requests"]
    assert s["verdict"] in ("failed", "not judged")


def test_an_outage_at_the_end_counts_and_is_named(outage: Outcome) -> None:
    never_passes(outage)
    s = outage.summary
    assert s["errors"] == s["requests"] - s["ok_requests"] > 0
    assert s["error_rate"] > 0.2
    (gap,) = s["outages"]
    assert gap["share"] > 0.2 and gap["end_offset_s"] >= s["duration_s"] - 1
    assert "OUTAGE from" in outage.report_output and "Outage: no request succeeded" in outage.html
    assert outage.locust_code != 0


def test_a_router_that_moves_sessions_once_mid_run_is_caught(shift: Outcome) -> None:
    never_passes(shift)
    assert shift.summary["membership_changes"] == []
    assert shift.summary["collateral"] > 0
    assert shift.summary["collateral_outside_changes"] == shift.summary["collateral"]
    assert shift.locust_code == 3


def test_a_target_that_hangs_after_the_probe_is_not_judged_with_the_true_reason(
        hang: Outcome) -> None:
    assert "NOT JUDGED: no request was recorded" in hang.verdict_line, hang.verdict_line
    assert hang.locust_code == 4


def test_a_correct_router_still_passes(correct: Outcome) -> None:
    assert correct.verdict_line.lstrip().startswith("PASS:") and correct.locust_code == 0
    assert correct.summary["verdict"] == "passed", correct.report_output
    assert correct.summary["collateral"] == 0 and correct.summary["not_judged"] == []
    assert correct.report_code == 0
