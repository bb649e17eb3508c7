"""Real Locust runs of locustfiles/sticky.py against the emulator (3 replicas)."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pyarrow.compute as pc
import pytest

from modal_app.local.launch import emulator
from reports.__main__ import main as reports_main
from tests.support.http import emulator_control, free_port
from tests.support.locust import (
    STICKY,
    Result,
    containers_per_session,
    finish,
    headless,
    locust_process,
    processes,
)

EXIT_NOT_STICKY = 3
REQUESTS_COUNTED = r"POST\s+/\s+[1-9]\d*\s"  # a line of Locust's periodic table
FAILURES_COUNTED = r"POST\s+/\s+\d+\s+[1-9]\d*\("


@pytest.fixture(scope="module")
def mixed(target: str, tmp_path_factory: pytest.TempPathFactory) -> Result:
    """No class named: StickyUser and NonStickyUser run together, 10 users each (Locust's
    default, and the web UI's), each request asking the replica to work 20 ms. Read only."""
    tmp = tmp_path_factory.mktemp("mixed")
    with locust_process(*headless(target, users=20, extra=("--work-ms", "20")), tmp=tmp) as run:
        result = finish(run)
    assert result.code == 0, result.output[-3000:]
    return result


def test_sticky_sessions_stay_on_one_container_and_the_run_passes(mixed: Result) -> None:
    per_session = containers_per_session(mixed.rows, "StickyUser")
    assert len(per_session) == 10
    assert set(per_session.values()) == {1}
    assert mixed.rows.num_rows == mixed.locust_requests > 0
    assert mixed.rows["error"].null_count == mixed.rows.num_rows
    # {"work_ms": 20} reached the replica, which sleeps that long before it answers (its
    # event loop's timers have millisecond granularity: hence the slack)
    assert pc.min(mixed.rows["response_time_ms"]).as_py() >= 15
    assert "on more than one container 0/10" in mixed.output
    assert "PASS: 0 sticky sessions" in mixed.output


def test_non_sticky_sessions_see_several_containers(mixed: Result) -> None:
    per_session = containers_per_session(mixed.rows, "NonStickyUser")
    assert len(per_session) == 10
    assert sum(n > 1 for n in per_session.values()) > len(per_session) / 2
    affinity = dict(zip(mixed.rows.column("user_class").to_pylist(),
                        mixed.rows.column("affinity").to_pylist(), strict=True))
    assert affinity == {"StickyUser": "session", "NonStickyUser": "none"}


def test_a_mixed_run_judges_the_sticky_class_and_shows_the_control_beside(
        mixed: Result, tmp_path: Path) -> None:
    """The console verdict and the report's --min-stickiness gate judge StickyUser only; the
    control's figures sit beside it under user_classes, never pooled in."""
    out = str(tmp_path / "mixed")
    assert reports_main([mixed.prefix, "--out", out, "--min-stickiness", "0.99",
                         "--require-judged"]) == 0
    summary = json.loads(Path(f"{out}_summary.json").read_text())
    assert summary["judged_classes"] == ["StickyUser"]
    assert summary["session_stickiness"] == 1.0
    control = summary["user_classes"]["NonStickyUser"]
    assert control["affinity"] == "none" and not control["judged"]
    assert control["session_stickiness"] < 0.5  # spread over the replicas, shown, not judged
    [gate] = summary["gates"]
    assert gate["verdict"] == "passed"


def test_ctrl_c_with_processes_2_records_every_request(target: str, tmp_path: Path) -> None:
    args = ["-f", STICKY, "StickyUser", "NonStickyUser", "--headless", "-u", "10", "-r", "10",
            "--host", target, *processes(2)]
    with locust_process(*args, tmp=tmp_path) as run:
        run.wait_for(REQUESTS_COUNTED)  # load is on, reports have reached the master
        run.signal_group(signal.SIGINT)  # as a terminal's Ctrl-C: master and workers
        result = finish(run)
    assert result.code == 0, result.output[-3000:]
    assert result.rows.num_rows == result.locust_requests > 0
    assert "not recorded" not in result.output
    assert len(pc.unique(result.rows["worker"])) == 2
    assert len(pc.unique(result.rows["session_id"])) == 10
    assert set(containers_per_session(result.rows, "StickyUser").values()) == {1}


def test_workers_slow_to_stop_still_deliver_their_last_rows(target: str, tmp_path: Path
                                                            ) -> None:
    """tests/locustfiles/slow_stop.py: users that take 1.5 s to stop. Locust's master waits
    0.5 s for its workers' last reports; the recorder's master waits for their last rows."""
    args = headless(target, "SlowStopUser", users=12, seconds=2, locustfile=(
        "tests/locustfiles/slow_stop.py"), extra=("--pace-rps", "10", *processes(2)))
    with locust_process(*args, tmp=tmp_path) as run:
        result = finish(run)
    assert result.code == 0, result.output[-3000:]
    assert "not recorded" not in result.output
    assert result.rows.num_rows == result.locust_requests > 0
    assert len(pc.unique(result.rows["worker"])) == 2


def test_ctrl_c_locally_with_failures_loses_nothing(tmp_path: Path) -> None:
    """The replicas go away mid-run: 503s (failures) are rows too; then a Ctrl-C."""
    args = ["-f", STICKY, "StickyUser", "--headless", "-u", "10", "-r", "10"]
    with emulator(2) as emu, locust_process(*args, "--host", emu.url, tmp=tmp_path) as run:
        run.wait_for(REQUESTS_COUNTED)
        emulator_control(emu.url, "/scale", {"replicas": 0})
        run.wait_for(FAILURES_COUNTED)
        run.signal_group(signal.SIGINT)
        result = finish(run)
    assert result.code == 1, result.output[-3000:]  # Locust's rule for failures, kept
    assert result.rows.num_rows == result.locust_requests > 0
    statuses = result.rows["status"].to_pylist()
    assert statuses.count(503) > 0 and statuses.count(200) > 0
    assert re.search(r"errors: 503 x\d+", result.output)


def test_too_many_multi_container_sessions_exit_3(target: str, tmp_path: Path) -> None:
    """tests/locustfiles/liar.py: a user that claims to send the header but does not."""
    args = ["-f", "tests/locustfiles/liar.py", "LiarUser", "--headless", "-u", "10",
            "-r", "10", "-t", "2s", "--host", target]
    with locust_process(*args, tmp=tmp_path) as strict:
        failed = finish(strict)
    assert failed.code == EXIT_NOT_STICKY, failed.output[-3000:]
    assert "FAIL:" in failed.output
    with locust_process(*args, "--max-multi-container-sessions", "10", tmp=tmp_path,
                name="lenient") as lenient:
        passed = finish(lenient)
    assert passed.code == 0, passed.output[-3000:]


def test_target_that_never_answers_exits_1_with_a_message(tmp_path: Path) -> None:
    with emulator(0) as empty, locust_process(*headless(empty.url, "StickyUser"), "--wait-timeout",
                                      "1", tmp=tmp_path) as run:
        code = run.wait()
    assert code == 1
    assert f"target {empty.url} answered 503 for 1s: no live replica" in run.output()


def test_a_worker_that_dies_is_reported(target: str, tmp_path: Path) -> None:
    port = str(free_port())
    master_args = headless(target, "StickyUser", seconds=5, extra=(
        "--pace-rps", "50", "--master", "--master-bind-host", "127.0.0.1",
        "--master-bind-port", port, "--expect-workers", "2"))
    worker_args = ["-f", STICKY, "--worker", "--master-host", "127.0.0.1", "--master-port", port]
    with locust_process(*master_args, tmp=tmp_path) as master, \
            locust_process(*worker_args, tmp=tmp_path, name="w1") as doomed, \
            locust_process(*worker_args, tmp=tmp_path, name="w2"):
        master.wait_for(REQUESTS_COUNTED)
        doomed.signal_group(signal.SIGKILL)
        result = finish(master)
    lost = [line for line in result.output.splitlines() if "requests not recorded" in line]
    assert len(lost) == 1, result.output[-3000:]
    assert "at most 2000 requests not recorded" in lost[0]
    assert result.rows.num_rows > 0
    # lost rows: not judged, on the console, in the exit code and in the file itself
    assert "NOT JUDGED: the recording is incomplete" in result.output
    assert result.code == 4, result.output[-3000:]
    assert reports_main([str(master.prefix)]) == 4

