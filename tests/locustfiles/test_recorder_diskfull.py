"""Fail closed: a request file that cannot be written ends the run, non-zero, in one line.

The disk is a real tmpfs of a few hundred KiB, mounted for the test (root only)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from locustfiles.requestwriter import RequestFileWriter
from reports.columns import STREAM_SUFFIX, SUFFIX
from reports.requestfile import read_request_table
from tests.support.locust import headless, locust_process

ROW = (1.0, 2.0, "s" * 32, "StickyUser", "/", 200, "ta-01KQ9XZ5EXAMPLE00000000000", None,
       "session", None, None, None, None, None)  # in ROW_COLUMNS order


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_drops_rows_with_bounded_memory(tmp_path: Path) -> None:
    failures: list[str] = []
    with tmpfs(tmp_path / "disk", "64k") as disk:
        writer = RequestFileWriter(str(disk / "run"), batch_rows=1000,
                                   on_failure=failures.append)
        batches = 0
        while writer.failure is None:
            # distinct sessions: the batch does not compress to nothing
            for i in range(1000):
                writer.buffer.add((*ROW[:2], f"{batches}-{i}", *ROW[3:]))
            writer.flush()
            batches += 1
            assert batches < 1000, "the disk never filled"
        for _ in range(50):  # the run goes on a moment: rows come, none is kept
            for _ in range(1000):
                writer.buffer.add(ROW)
            writer.flush()
            assert len(writer.buffer) == 0 and writer.buffer.notes == []
        writer.close()
        assert failures == [writer.failure]
        assert writer.failure == (f"cannot write {disk}/run{STREAM_SUFFIX}: No space left on "
                                  "device (errno 28)")
        assert writer.dropped >= 51_000 - 1000
        assert not (disk / f"run{SUFFIX}").exists()
        read = read_request_table(str(disk / "run"))
        assert read.table.num_rows == writer.written > 0


def test_a_full_disk_ends_the_run_non_zero_with_one_line(target: str, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "200k") as disk:
        prefix = disk / "run"
        args = headless(target, "StickyUser", seconds=120)
        with locust_process(*args, tmp=tmp_path, prefix=prefix, json_file=False) as run:
            code = run.wait(90)  # a deadline, not a timing: the run stops at the failure
        output = run.output()
        lines = [line for line in output.splitlines() if "cannot write" in line
                 and "recorder:" in line]
        assert len(lines) == 1, output[-3000:]
        assert f"{prefix}{STREAM_SUFFIX}: No space left on device (errno 28)" in lines[0]
        assert code == 2, output[-3000:]
        assert "PASS" not in output
        assert "FAIL: the request file could not be written" in output
        assert "recorder: unexpected error" not in output
        read = read_request_table(str(prefix))
        assert read.table.num_rows > 0
        assert read.notes[0].startswith("run did not end normally")
