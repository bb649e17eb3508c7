"""Waiting for the target, with a fake probe and a fake clock: no network, no waiting."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from locustfiles.target import Probe, TargetNotReady, WaitConfig, wait_until_ready


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


def test_returns_at_the_first_answer_other_than_503_with_doubling_delays() -> None:
    fake = FakeTime()
    calls, probe = prober([Probe(None, "ConnectionRefusedError"), Probe(503), Probe(503),
                           Probe(404)])
    waited = wait_until_ready("http://x", WaitConfig(timeout_s=10), probe=probe,
                              sleep=fake.sleep, clock=fake.clock)
    assert len(calls) == 4
    assert fake.sleeps == [0.1, 0.2, 0.4]
    assert waited == pytest.approx(0.7)


def test_delays_stop_growing_at_the_maximum() -> None:
    fake = FakeTime()
    _, probe = prober([Probe(503)] * 8 + [Probe(200)])
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
    _, probe = prober([Probe(None, "ConnectionRefusedError: [Errno 111]")])
    with pytest.raises(TargetNotReady, match=r"did not answer for 1s \(ConnectionRefused"):
        wait_until_ready("http://x", WaitConfig(timeout_s=1), probe=probe,
                         sleep=fake.sleep, clock=fake.clock)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        WaitConfig(timeout_s=-1)
