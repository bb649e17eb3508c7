"""--pace-rps: constant throughput per user, through real Locust runs against the emulator.

The bounds are loose on purpose (a shared 2-core machine): a paced run must come near
users x rate, and far below what the same users send unpaced.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pyarrow as pa
import pytest

from tests.support import ROOT
from tests.support.http import free_port
from tests.support.locust import STICKY, command, finish, headless, locust_process

USERS, PACE = 10, 4.0


def achieved_rate(rows: pa.Table) -> float:
    """Requests per second between the first and the last request sent."""
    ts = sorted(rows.column("ts").to_pylist())
    assert len(ts) > 10
    return (len(ts) - 1) / (ts[-1] - ts[0])


def test_a_paced_run_sends_about_users_times_the_pace(target: str, tmp_path: Path) -> None:
    paced_args = headless(target, "StickyUser", seconds=4,
                          extra=("-u", str(USERS), "-r", str(USERS), "--pace-rps", str(PACE)))
    with locust_process(*paced_args, tmp=tmp_path, name="paced") as run:
        paced = finish(run)
    assert paced.code == 0, paced.output[-3000:]
    offered = USERS * PACE
    rate = achieved_rate(paced.rows)
    assert 0.6 * offered <= rate <= 1.3 * offered, (rate, offered)

    with locust_process(*headless(target, "StickyUser", seconds=3,
                                  extra=("-u", str(USERS), "-r", str(USERS))),
                        tmp=tmp_path, name="unpaced") as run:
        unpaced = finish(run)
    assert achieved_rate(unpaced.rows) > 3 * rate  # no pacing: as fast as the answers come


def test_the_pace_comes_from_the_environment_too(target: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCUST_PACE_RPS", "2")
    with locust_process(*headless(target, "NonStickyUser", seconds=3,
                                  extra=("-u", "5", "-r", "5", "--no-judgement")),
                        tmp=tmp_path) as run:
        result = finish(run)
    assert result.code == 0, result.output[-3000:]
    assert 0.5 * 10 <= achieved_rate(result.rows) <= 1.4 * 10


@pytest.mark.parametrize("value", ["-1", "fast", "nan"])
def test_a_bad_pace_is_a_one_line_usage_error(value: str) -> None:
    done = subprocess.run(command("-f", STICKY, "--headless", "--host", "http://127.0.0.1:9",
                                  "--pace-rps", value), cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "--pace-rps must be" in done.stderr.strip().splitlines()[-1]


def test_a_bad_pace_from_the_web_ui_stops_the_start_with_one_line(target: str,
                                                                  tmp_path: Path) -> None:
    """The start form's values skip the command line's checks: the start is refused."""
    port = free_port()
    args = ["-f", STICKY, "StickyUser", "--web-host", "127.0.0.1", "--web-port", str(port),
            "--host", target]
    with locust_process(*args, tmp=tmp_path) as run:
        run.wait_for(r"Starting web interface")
        form = urllib.parse.urlencode({"user_count": "3", "spawn_rate": "3", "host": target,
                                       "pace_rps": "-1"}).encode()
        deadline = time.monotonic() + 30
        while True:  # the web server may take a moment to accept
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/swarm", data=form,
                                       timeout=10).close()
                break
            except OSError:
                assert time.monotonic() < deadline, run.output()[-2000:]
                time.sleep(0.2)
        run.wait_for(r"--pace-rps must be >= 0, not -1\.0; stopping")
        while True:  # the runner ends up stopped, with no user
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats/requests",
                                        timeout=10) as answer:
                stats = json.load(answer)
            if stats["state"] == "stopped":
                break
            assert time.monotonic() < deadline, stats["state"]
            time.sleep(0.2)
        assert stats["user_count"] == 0 and "All users spawned" not in run.output()
