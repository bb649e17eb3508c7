"""Crash safety: a SIGKILL mid-run leaves every flushed row readable, by the report's CLI too."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from reports.__main__ import main as reports_main
from reports.columns import STREAM_SUFFIX, SUFFIX
from reports.errors import ReportInputError
from reports.requestfile import read_request_table
from tests.support.locust import LocustProcess, headless, locust_process, processes


def flushed_rows(prefix: Path) -> int:
    """Rows readable now (the file is being written: a batch may be half there)."""
    try:
        return read_request_table(str(prefix)).table.num_rows
    except ReportInputError:
        return 0


def wait_for_rows(run: LocustProcess, at_least: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        n = flushed_rows(run.prefix)
        if n >= at_least:
            return n
        if time.monotonic() > deadline or run.process.poll() is not None:
            raise AssertionError(f"{n} rows flushed; output:\n{run.output()[-3000:]}")
        time.sleep(0.2)


@pytest.mark.parametrize("mode", ["local", "master of --processes 2"])
def test_sigkill_mid_run_keeps_the_flushed_rows(target: str, tmp_path: Path, mode: str) -> None:
    extra = processes(2) if mode != "local" else ()
    args = headless(target, "StickyUser", seconds=120, extra=extra)
    with locust_process(*args, tmp=tmp_path) as run:
        first = wait_for_rows(run, 1)
        seen = wait_for_rows(run, first + 1)  # two flushes at least: a batch after the first
        os.kill(run.process.pid, signal.SIGKILL)  # the local process, or the master only
        run.process.wait(30)
    prefix = run.prefix
    assert not Path(f"{prefix}{SUFFIX}").exists()  # no compaction: the crash form stays
    read = read_request_table(str(prefix))
    assert read.path == Path(f"{prefix}{STREAM_SUFFIX}")
    assert read.table.num_rows >= seen
    assert read.notes and read.notes[0].startswith("run did not end normally")
    assert read.table.column("session_id").null_count == 0
    assert reports_main([str(prefix)]) == 4  # an incomplete recording is not judged
    summary = json.loads(Path(f"{prefix}_summary.json").read_text())
    assert summary["verdict"] == "not judged" and summary["not_judged"]
    assert reports_main([str(prefix), "--accept-incomplete"]) == 0
    summary = json.loads(Path(f"{prefix}_summary.json").read_text())
    assert summary["requests"] == read.table.num_rows >= seen
