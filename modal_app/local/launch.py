"""Start the emulator or a lone replica as child processes, for tests, benchmarks and scripts.

Both are context managers: ports come from the OS, readiness is awaited with a deadline, and the
process is stopped by its own id when the block ends, even on error.

    with emulator(replicas=3, events=path) as emu:
        urllib.request.urlopen(emu.url + "/_emulator/replicas")
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

READY = re.compile(r"ready: (http://\S+)")
ROOT = Path(__file__).resolve().parents[2]


def stop_process(proc: subprocess.Popen[str] | subprocess.Popen[bytes],
                 timeout: float = 15.0) -> None:
    """SIGTERM, wait, then SIGKILL: the process is reaped whatever happens."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Emulator:
    url: str
    process: subprocess.Popen[str]
    output: list[str]


@contextlib.contextmanager
def emulator(replicas: int = 3, *extra: str, events: Path | None = None,
             timeout: float = 60.0) -> Iterator[Emulator]:
    """`python -m modal_app.local` on port 0; yields once it printed its ready line."""
    cmd = [sys.executable, "-m", "modal_app.local", "--replicas", str(replicas), "--port", "0",
           *extra]
    if events is not None:
        cmd += ["--events", str(events)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    output: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if READY.search(line):
                ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        if not ready.wait(timeout):
            raise RuntimeError("emulator not ready in time: " + "".join(output)[-2000:])
        match = READY.search("".join(output))
        assert match is not None
        yield Emulator(match.group(1), proc, output)
    finally:
        stop_process(proc)
        reader.join(5)


@contextlib.contextmanager
def replica(container_id: str = "ta-direct", timeout: float = 30.0,
            env: dict[str, str] | None = None) -> Iterator[str]:
    """One whoami replica started as the emulator starts it, reachable straight at its port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "modal_app.local.replica", "--fd", str(sock.fileno())],
        cwd=ROOT, pass_fds=(sock.fileno(),),
        env={**os.environ, **(env or {}), "MODAL_TASK_ID": container_id})
    sock.close()
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("replica did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)
