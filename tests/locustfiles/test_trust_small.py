"""The smaller trust cases of issue 16, in-process: the probe keeps to --wait-timeout, a
failed event-log write leaves no file, a session on many containers prints one short line,
lost rows are NOT JUDGED, a failed write outranks failed requests in the exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from locustfiles.ending import verdict
from locustfiles.membership import Churn
from locustfiles.summary import Stickiness, render
from locustfiles.target import Probe, TargetNotReady, WaitConfig, wait_until_ready


def test_the_probe_never_waits_past_the_wait_timeout() -> None:
    now = [0.0]
    asked: list[float] = []

    def probe(url: str, timeout: float) -> Probe:
        asked.append(timeout)
        now[0] += timeout  # a target that hangs: every probe times out
        return Probe(None, error="timed out")

    with pytest.raises(TargetNotReady):
        wait_until_ready("http://127.0.0.1:9", WaitConfig(timeout_s=5), probe=probe,
                         sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    assert asked[0] <= 5 and now[0] <= 5 + 1.0


def test_a_failed_event_log_write_leaves_no_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    class Control:
        def events_since(self, since: float) -> dict[str, Any]:
            return {"since": since, "live": ["a"], "events": []}

    def full(self: Path, target: Path) -> Path:
        raise OSError(28, "No space left on device")

    membership = Churn()
    membership.started = 1.0
    monkeypatch.setattr(Path, "replace", full)
    with pytest.raises(OSError):
        membership.write_events(Control(), tmp_path / "run_events.jsonl")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_a_session_on_many_containers_is_one_short_console_line() -> None:
    s = Stickiness()
    for i in range(3000):
        s.add("s1", "StickyUser", "session", 200, f"ta-{i:05d}", None)
    lines = render(s.summarise())
    (line,) = [x for x in lines if "sticky session s1" in x]
    assert len(line) < 300 and "3000 containers" in line and "2992 more" in line


def test_lost_rows_are_not_judged_unless_accepted() -> None:
    s = Stickiness()
    for session, container in (("s1", "ta-1"), ("s2", "ta-2")):
        for _ in range(3):
            s.add(session, "StickyUser", "session", 200, container, None)
    lost = ["worker w1: at most 2000 requests not recorded"]
    judged = verdict(s.summarise(), 0, lost=lost)
    assert judged.line.startswith("NOT JUDGED: the recording is incomplete")
    assert judged.exit_code == 4
    assert verdict(s.summarise(), 0).line.startswith("PASS")
