"""Shared pieces of the benchmark scripts: processes on OS-chosen ports, headless Locust runs,
whoami replicas with their own process ids, HAProxy in front of them.

Every process started here is stopped by its own id when the `with` block ends, even on error.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modal_app.local.launch import emulator, replica, stop_process  # noqa: E402
from modal_app.local.supervisor import new_container_id  # noqa: E402

__all__ = ["LocustResult", "Replica", "Replicas", "emulator", "haproxy", "haproxy_config",
           "http_json", "locust_command", "replica", "run_locust", "run_locusts_together",
           "stop_process", "wait_answers"]


@dataclass
class LocustResult:
    requests: int
    failures: int
    seconds: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def locust_command(locustfile: str, host: str, users: int, seconds: int, *extra: str,
                   user_class: str | None = None) -> list[str]:
    """The headless Locust command line of the benchmarks (stats as JSON on stdout)."""
    cmd = [sys.executable, "-m", "locust", "-f", locustfile, "--headless", "-u", str(users),
           "-r", str(users), "-t", f"{seconds}s", "--host", host, "--json", "--only-summary",
           "--exit-code-on-error", "0", "--loglevel", "WARNING", *extra]
    if user_class:
        cmd.append(user_class)
    return cmd


def locust_result(stdout: str) -> LocustResult:
    """Requests, failures and the span from first to last request, from Locust's --json."""
    stats = json.loads(stdout)
    requests = sum(s["num_requests"] for s in stats)
    failures = sum(s["num_failures"] for s in stats)
    start = min(s["start_time"] for s in stats)
    last = max(s["last_request_timestamp"] for s in stats)
    return LocustResult(requests, failures, last - start)


def run_locust(locustfile: str, host: str, users: int, seconds: int, *extra: str,
               user_class: str | None = None) -> LocustResult:
    """A headless Locust run; requests/s over the span from first to last request."""
    cmd = locust_command(locustfile, host, users, seconds, *extra, user_class=user_class)
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                         timeout=seconds + 120, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"locust failed ({out.returncode}): {out.stderr[-2000:]}")
    return locust_result(out.stdout)


def run_locusts_together(commands: list[list[str]], seconds: int
                         ) -> list[tuple[LocustResult, float]]:
    """Locust runs started at the same moment (commands from `locust_command`): each one's
    result and its own CPU seconds (user + system, from os.wait4), so that they are compared
    under the same load of a shared machine. Every process is stopped, by its own id, even
    on error; one that fails or outlives `seconds` + 120 s raises RuntimeError."""
    with tempfile.TemporaryDirectory(prefix="locusts_") as tmp, contextlib.ExitStack() as stack:
        started: list[tuple[subprocess.Popen[str], Any, Any]] = []

        def stop_all() -> None:
            for proc, _, _ in started:
                if proc.returncode is None:
                    stop_process(proc)

        stack.callback(stop_all)
        for i, cmd in enumerate(commands):
            out = stack.enter_context(open(Path(tmp) / f"{i}.out", "w+"))
            err = stack.enter_context(open(Path(tmp) / f"{i}.err", "w+"))
            started.append((subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, text=True),
                            out, err))
        deadline = time.monotonic() + seconds + 120
        results: list[tuple[LocustResult, float]] = []
        for proc, out, err in started:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"locust did not end within {seconds + 120}s")
                time.sleep(0.1)
            if proc.returncode != 0:
                err.seek(0)
                raise RuntimeError(f"locust failed ({proc.returncode}): {err.read()[-2000:]}")
            out.seek(0)
            results.append((locust_result(out.read()), usage.ru_utime + usage.ru_stime))
        return results


def http_json(url: str, body: Any = None, method: str | None = None,
              timeout: float = 10.0) -> Any:
    """One JSON call (POST when a body is given); the answer's JSON, or None when empty."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        text = answer.read()
    return json.loads(text) if text.strip() else None


def wait_answers(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0,
                 name: str = "haproxy") -> None:
    """Until POST / at `url` answers 200; a process that exits first, or the deadline, raises
    RuntimeError with the end of its stderr."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            http_json(url + "/", {}, timeout=2)
            return
        except (OSError, ValueError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                stop_process(proc)
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"{name} did not answer: {err.strip()[-500:]}")
        time.sleep(0.1)


# -- whoami replicas, each its own process -----------------------------------------------------


@dataclass(eq=False)
class Replica:
    """One whoami replica (uvicorn, as the emulator starts them) on a port the OS chose."""

    container_id: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> float:
        """SIGKILL, reaped; returns the time of the kill (Unix s)."""
        at = time.time()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        return at


@dataclass
class Replicas:
    """Starts replicas and stops every one it started (by its own process id) on `close`."""

    started: list[Replica] = field(default_factory=list)

    def start(self, count: int, timeout: float = 30.0) -> list[Replica]:
        """`count` replicas started side by side; returns once each answers POST /."""
        new: list[Replica] = []
        with contextlib.ExitStack() as stack:
            logs = []
            for _ in range(count):
                sock = socket.socket()
                sock.bind(("127.0.0.1", 0))
                cid = new_container_id()
                # its output to an unlinked file: a pipe nobody reads could fill up and stall it
                logs.append(stack.enter_context(tempfile.TemporaryFile()))
                proc = subprocess.Popen(
                    [sys.executable, "-m", "modal_app.local.replica", "--fd",
                     str(sock.fileno())], cwd=ROOT, pass_fds=(sock.fileno(),), stderr=logs[-1],
                    env={**os.environ, "MODAL_TASK_ID": cid})
                new.append(Replica(cid, sock.getsockname()[1], proc))
                self.started.append(new[-1])
                sock.close()
            for r, log in zip(new, logs, strict=True):
                try:
                    wait_answers(f"http://{r.address}", r.process, timeout, name="replica")
                except RuntimeError:
                    log.seek(0)
                    tail = log.read().decode(errors="replace").strip()[-500:]
                    raise RuntimeError(f"replica {r.container_id} did not start: {tail}"
                                       ) from None
        return new

    def close(self) -> None:
        for r in self.started:
            stop_process(r.process)

    def __enter__(self) -> Replicas:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# -- HAProxy -----------------------------------------------------------------------------------


def haproxy_config(fd: int, ports: list[int], threads: int, *,
                   balance: str = "hdr(Modal-Session-Id)", hash_type: str = "consistent",
                   disabled: Collection[int] = (), stats_socket: Path | None = None,
                   cookie: str = "", served_by: str = "") -> str:
    """Servers r0, r1, ... on `ports`; those whose index is in `disabled` start in maintenance
    (the runtime API enables them: `set server replicas/rK state ready`). `cookie`: cookie
    affinity (`cookie NAME insert indirect nocache`, each server's value its name);
    `served_by`: a response header naming the server that answered (`%s`)."""
    servers = "\n".join(f"    server r{i} 127.0.0.1:{port}{' disabled' * (i in disabled)}"
                        f"{f' cookie r{i}' * bool(cookie)}" for i, port in enumerate(ports))
    if cookie:
        servers = f"    cookie {cookie} insert indirect nocache\n{servers}"
    if served_by:
        servers = f"    http-response set-header {served_by} %s\n{servers}"
    stats = f"    stats socket {stats_socket} mode 600 level admin\n" if stats_socket else ""
    hashing = f"    hash-type {hash_type}\n" if hash_type else ""
    return f"""global
    maxconn 4096
    nbthread {threads}
{stats}defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend bench
    bind fd@{fd}
    default_backend replicas
backend replicas
    balance {balance}
{hashing}{servers}
"""


@contextlib.contextmanager
def haproxy(binary: str, ports: list[int], threads: int = 1,
            **options: Any) -> Iterator[tuple[str, int]]:
    """HAProxy in the foreground on a socket the OS bound; stopped by its own id. `options`
    go to `haproxy_config`."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "haproxy.cfg"
        config.write_text(haproxy_config(sock.fileno(), ports, threads, **options))
        proc = subprocess.Popen([binary, "-db", "-f", str(config)], pass_fds=(sock.fileno(),),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        sock.close()
        try:
            url = f"http://127.0.0.1:{port}"
            wait_answers(url, proc)
            yield url, proc.pid
        finally:
            stop_process(proc)
