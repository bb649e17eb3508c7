"""Real Locust processes: their command line, starting them, waiting on them, reading results.

Every Locust process runs in its own process group (its `--processes` children with it), writes
its output to a file the test can poll, and is stopped group-wide when its `with` block ends,
even when the test fails. (The tests that import locust itself do it unpatched: see
tests/locustfiles/conftest.py.)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from reports.columns import SUFFIX
from tests.support import ROOT
from tests.support.http import free_port

STICKY = "locustfiles/sticky.py"
SESSIONED = "locustfiles/sessioned.py"


def command(*args: str) -> list[str]:
    """`python -m locust ARGS`, with this interpreter."""
    return [sys.executable, "-m", "locust", *args]


def headless(host: str, *classes: str, users: int = 10, seconds: float = 3,
             extra: tuple[str, ...] = (), locustfile: str = STICKY) -> list[str]:
    """The arguments of a headless run of USERS users (all spawned at once) for SECONDS."""
    return ["-f", locustfile, *classes, "--headless", "-u", str(users), "-r", str(users),
            "-t", f"{seconds:g}s", "--host", host, *extra]


def processes(n: int) -> tuple[str, ...]:
    """`--processes N` on a port of its own: by default every run's master binds 5557, and
    the workers of two runs on one machine at once would join either."""
    port = str(free_port())
    return ("--processes", str(n), "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
            "--master-port", port)


@dataclass
class LocustProcess:
    process: subprocess.Popen[bytes]
    log: Path
    prefix: Path  # --csv (and --json-file) prefix

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """Poll the output for a pattern, with a deadline."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.output())
            if match:
                return match
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"no {pattern!r} in the output:\n{self.output()[-3000:]}")
            time.sleep(0.1)

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"locust did not end:\n{self.output()[-3000:]}") from None


@contextlib.contextmanager
def locust_process(*args: str, tmp: Path, name: str = "run", prefix: Path | None = None,
                   json_file: bool = True, env: Mapping[str, str] | None = None
                   ) -> Iterator[LocustProcess]:
    """`python -m locust ARGS --csv PREFIX [--json-file PREFIX]` in the repository root, its
    output in TMP/NAME.log; PREFIX is TMP/NAME unless given."""
    prefix = prefix or tmp / name
    log = tmp / f"{name}.log"
    files = ["--csv", str(prefix), *(["--json-file", str(prefix)] if json_file else [])]
    with log.open("wb") as out:
        process = subprocess.Popen(command(*args, *files), cwd=ROOT, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True,
                                   env=None if env is None else {**os.environ, **env})
    run = LocustProcess(process, log, prefix)
    try:
        yield run
    finally:
        if process.poll() is None:
            run.signal_group(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                run.signal_group(signal.SIGKILL)
                process.wait()
        run.signal_group(signal.SIGKILL)  # any --processes child left behind


@dataclass
class Result:
    code: int
    output: str
    rows: pa.Table
    locust_requests: int  # Locust's own total, failures included
    prefix: str = ""  # the run's --csv prefix


def finish(run: LocustProcess, timeout: float = 60.0) -> Result:
    """Wait for the run to end; its exit code, output, request file and Locust's total."""
    code = run.wait(timeout)
    output = run.output()
    stats_file = Path(f"{run.prefix}.json")
    assert stats_file.exists(), f"no {stats_file}; exit {code}:\n{output[-3000:]}"
    entries: list[dict[str, Any]] = json.loads(stats_file.read_text())
    rows = pq.read_table(Path(f"{run.prefix}{SUFFIX}"))
    return Result(code, output, rows, sum(e["num_requests"] for e in entries), str(run.prefix))


def containers_per_session(rows: pa.Table, user_class: str | None = None) -> dict[str, int]:
    """session id -> distinct containers it saw."""
    seen: dict[str, set[str]] = {}
    for row in rows.select(["session_id", "user_class", "container_id"]).to_pylist():
        if user_class is None or row["user_class"] == user_class:
            bucket = seen.setdefault(row["session_id"], set())
            if row["container_id"] is not None:
                bucket.add(row["container_id"])
    return {session: len(found) for session, found in seen.items()}
