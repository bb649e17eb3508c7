"""Waiting for the target: the backoff with a scripted probe and a fake clock; the probe itself
against the real emulator, behind --auth and --sessioned, through real Locust runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from locustfiles.target import (
    Probe,
    TargetNotReady,
    TargetRefused,
    WaitConfig,
    wait_until_ready,
)
from modal_app.local.launch import emulator
from tests.support.http import emulator_control
from tests.support.locust import SESSIONED, STICKY, Result, finish, headless, locust_process

LIVE = Probe(200, "ta-1")


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def prober(answers: list[Probe]) -> tuple[list[str], Callable[[str, float], Probe]]:
    calls: list[str] = []

    def probe(url: str, timeout: float) -> Probe:
        calls.append(url)
        return answers.pop(0) if len(answers) > 1 else answers[0]

    return calls, probe


def test_returns_at_the_first_live_replica_with_doubling_delays() -> None:
    fake = FakeTime()
    calls, probe = prober([Probe(None, None, "ConnectionRefusedError"), Probe(503),
                           Probe(200, None, "the answer names no CONTAINER_ID"), LIVE])
    waited = wait_until_ready("http://x", WaitConfig(timeout_s=10), probe=probe,
                              sleep=fake.sleep, clock=fake.clock)
    assert len(calls) == 4
    assert fake.sleeps == [0.1, 0.2, 0.4]
    assert waited == pytest.approx(0.7)


def test_delays_stop_growing_at_the_maximum() -> None:
    fake = FakeTime()
    _, probe = prober([Probe(503)] * 8 + [LIVE])
    wait_until_ready("http://x", WaitConfig(timeout_s=100, max_delay_s=0.5), probe=probe,
                     sleep=fake.sleep, clock=fake.clock)
    assert fake.sleeps == [0.1, 0.2, 0.4, 0.5, 0.5, 0.5, 0.5, 0.5]


def test_503_until_the_deadline_says_no_live_replica() -> None:
    fake = FakeTime()
    _, probe = prober([Probe(503)])
    with pytest.raises(TargetNotReady, match=r"^target http://x answered 503 for 3s: no live "
                                             r"replica$"):
        wait_until_ready("http://x", WaitConfig(timeout_s=3), probe=probe,
                         sleep=fake.sleep, clock=fake.clock)
    assert fake.now == pytest.approx(3.0)  # the last sleep is cut to the deadline


def test_no_answer_until_the_deadline_says_why() -> None:
    fake = FakeTime()
    _, probe = prober([Probe(None, None, "ConnectionRefusedError: [Errno 111]")])
    with pytest.raises(TargetNotReady, match=r"did not answer for 1s \(ConnectionRefused"):
        wait_until_ready("http://x", WaitConfig(timeout_s=1), probe=probe,
                         sleep=fake.sleep, clock=fake.clock)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        WaitConfig(timeout_s=-1)


def test_another_status_until_the_deadline_is_not_ready() -> None:
    fake = FakeTime()
    _, probe = prober([Probe(404, None, "Not Found")])
    with pytest.raises(TargetNotReady, match=r"answered 404 \(Not Found\) for 2s: no live"):
        wait_until_ready("http://x", WaitConfig(timeout_s=2), probe=probe,
                         sleep=fake.sleep, clock=fake.clock)


class Refusing:
    def __init__(self, status: int, credentials: bool) -> None:
        self.status, self.credentials, self.calls = status, credentials, 0

    def __call__(self, url: str, timeout: float) -> Probe:
        self.calls += 1
        return Probe(self.status, None, "invalid credentials for proxy authorization")


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_end_the_wait_at_once(status: int) -> None:
    fake = FakeTime()
    probe = Refusing(status, credentials=True)
    with pytest.raises(TargetRefused, match=rf"^target http://x refused the proxy credentials "
                                            rf"\({status}: invalid credentials for proxy "
                                            rf"authorization\): not ready; check MODAL_PROXY_KEY"):
        wait_until_ready("http://x", WaitConfig(timeout_s=30), probe=probe,
                         sleep=fake.sleep, clock=fake.clock)
    assert probe.calls == 1 and fake.now == 0


def test_missing_credentials_say_which_to_set() -> None:
    fake = FakeTime()
    with pytest.raises(TargetRefused, match=r"requires proxy credentials \(401: .*\): not "
                                            r"ready; set MODAL_PROXY_KEY and MODAL_PROXY_SECRET$"):
        wait_until_ready("http://x", WaitConfig(timeout_s=30),
                         probe=Refusing(401, credentials=False), sleep=fake.sleep,
                         clock=fake.clock)


# ## The probe against the real emulator, through real Locust runs

KEY, SECRET = "wk-probe-test-key", "ws-probe-test-secret-0123456789"


@pytest.fixture()
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODAL_PROXY_KEY", KEY)
    monkeypatch.setenv("MODAL_PROXY_SECRET", SECRET)


def scale(url: str, replicas: int) -> float:
    """Scale the emulator through its control API; returns when it was asked (Unix time)."""
    asked = time.time()
    emulator_control(url, "/scale", {"replicas": replicas})
    return asked


def run_that_waits_for_a_scale_up(tmp_path: Path, emulator_args: tuple[str, ...],
                                  args: list[str]) -> tuple[Result, float]:
    """The emulator starts with 0 replicas; Locust starts and probes; a few seconds later the
    emulator scales to 2. Returns the run and the time of the scale-up."""
    # The subject is readiness, not the verdict: the first live replica may take every session
    # before the second joins, and one container is no evidence (NOT JUDGED, exit 4).
    with emulator(0, *emulator_args) as emu, locust_process(
            *args, "--host", emu.url, "--wait-timeout", "60", "--no-judgement",
            tmp=tmp_path) as run:
        run.wait_for(r"waiting up to 60s for a live replica")
        time.sleep(2)  # the scenario: replicas arrive a while after the run started probing
        assert run.process.poll() is None, run.output()[-2000:]
        scaled = scale(emu.url, 2)
        result = finish(run, timeout=90)
    return result, scaled


def assert_started_after(result: Result, scaled: float) -> None:
    assert result.code == 0, result.output[-3000:]
    assert "ready after" in result.output
    assert result.rows.num_rows > 0
    assert set(result.rows.column("status").to_pylist()) == {200}
    assert result.rows["error"].null_count == result.rows.num_rows  # 0 failures
    assert min(result.rows.column("ts").to_pylist()) >= scaled


def test_behind_auth_the_run_starts_once_replicas_are_live(tmp_path: Path,
                                                           credentials: None) -> None:
    # the probe is ready at the first live replica; the second may join under load and take
    # over some sessions (a membership change, not a failure): allowed here
    args = ["-f", STICKY, "StickyUser", "--headless", "-u", "6", "-r", "6", "-t", "2s",
            "--max-multi-container-sessions", "6"]
    result, scaled = run_that_waits_for_a_scale_up(tmp_path, ("--auth",), args)
    assert_started_after(result, scaled)


def test_sessioned_the_probe_starts_a_real_session_and_waits(tmp_path: Path,
                                                             credentials: None) -> None:
    args = ["-f", SESSIONED, "SessionedUser", "--headless", "-u", "6", "-r", "6", "-t", "2s"]
    result, scaled = run_that_waits_for_a_scale_up(tmp_path, ("--auth", "--sessioned"), args)
    assert_started_after(result, scaled)
    assert all(s.startswith("se-") for s in result.rows.column("session_id").to_pylist())
    assert set(result.rows.column("affinity").to_pylist()) == {"strict"}


@pytest.mark.parametrize(("sent", "expected"), [
    ({"MODAL_PROXY_KEY": KEY, "MODAL_PROXY_SECRET": "ws-wrong"},
     "refused the proxy credentials (401: invalid credentials for proxy authorization): not "
     "ready; check MODAL_PROXY_KEY and MODAL_PROXY_SECRET"),
    ({}, "requires proxy credentials (401: missing credentials for proxy authorization): not "
         "ready; set MODAL_PROXY_KEY and MODAL_PROXY_SECRET"),
])
def test_refused_credentials_are_one_line_and_no_load(
        tmp_path: Path, credentials: None, monkeypatch: pytest.MonkeyPatch,
        sent: dict[str, str], expected: str) -> None:
    with emulator(2, "--auth") as emu:  # it has the right credentials
        monkeypatch.delenv("MODAL_PROXY_KEY")
        monkeypatch.delenv("MODAL_PROXY_SECRET")
        for name, value in sent.items():
            monkeypatch.setenv(name, value)
        with locust_process(*headless(emu.url, "StickyUser", seconds=2,
                                      extra=("--pace-rps", "20")), tmp=tmp_path) as run:
            code = run.wait()
    output = run.output()
    assert code == 1, output[-2000:]
    lines = [line for line in output.splitlines() if expected in line]
    assert len(lines) == 1, output[-2000:]
    assert f"target {emu.url} " in lines[0]
    assert "Traceback" not in output and "ws-wrong" not in output and SECRET not in output
    assert "All users spawned" not in output


def test_a_strict_session_server_probed_without_a_session_says_so(tmp_path: Path) -> None:
    with emulator(1, "--sessioned") as emu, locust_process(
            *headless(emu.url, "StickyUser", seconds=2, extra=("--pace-rps", "20")),
            tmp=tmp_path) as run:
        code = run.wait()
    assert code == 1
    assert (f"target {emu.url} requires a strict session (401: missing session token): not "
            f"ready; a @modal.sessioned() server takes SessionedUser") in run.output()
