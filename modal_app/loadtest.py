# # Locust on Modal: load beyond one machine
#
# One laptop's Locust tops out near one core's worth of requests per process. For more, run the
# harness where the server is: a Modal function runs headless Locust with `--processes` (one
# worker per core, Locust's own distributed mode), writes the run and its stickiness report to
# a Modal Volume, and returns the headline numbers. This is how Modal's own load-test examples
# run Locust.
#
#     modal deploy modal_app/server.py
#     modal run modal_app/loadtest.py --users 400 --run-time 2m        # host: the deployed URL
#     modal volume get sticky-locust-reports RUN_ID ./results/
#
# Proxy credentials for the GA form (`server_ga.py`) come from MODAL_PROXY_KEY and
# MODAL_PROXY_SECRET in your environment when you run this; they travel as a Modal Secret and
# are never written to the volume.

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import modal

# ## Configuration

APP_NAME = "sticky-locust-loadtest"
VOLUME_NAME = "sticky-locust-reports"
REPORTS = Path("/reports")
PROCESSES = 4
TIMEOUT_S = 2 * 60 * 60
CREDENTIALS = ("MODAL_PROXY_KEY", "MODAL_PROXY_SECRET")

app = modal.App(APP_NAME)

image = (
    modal.Image.debian_slim(python_version="3.11")
    .uv_pip_install("locust==2.47.0", "gevent>=24.2", "pandas>=2.2", "pyarrow>=16")
    .add_local_python_source("locustfiles", "reports")
)
volume = modal.Volume.from_name(VOLUME_NAME, create_if_missing=True)


def proxy_secrets() -> list[modal.Secret]:
    """The caller's proxy credentials, when set, as a Secret (never on the image or volume)."""
    if all(os.environ.get(name) for name in CREDENTIALS):
        return [modal.Secret.from_local_environ(list(CREDENTIALS))]
    return []


# ## Running Locust
#
# `headless()` is the whole job, and plain Python: the Modal function below calls it in a
# container, and the tests call it on this machine against the local emulator.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def locust_command(host: str, prefix: Path, *, user_class: str, users: int, spawn_rate: float,
                   run_time: str, processes: int, extra: list[str],
                   master_port: int = 5557) -> list[str]:
    """Headless, one worker process per core, the master on loopback on a port of its own."""
    return [
        sys.executable, "-m", "locust", "-f", "locustfiles/sticky.py", user_class,
        "--headless", "--host", host, "-u", str(users), "-r", str(spawn_rate),
        "-t", run_time, "--processes", str(processes), "--master-bind-host", "127.0.0.1",
        "--master-bind-port", str(master_port), "--master-port", str(master_port),
        "--csv", str(prefix), "--only-summary", *extra,
    ]


def headless(host: str, prefix: Path, *, user_class: str = "StickyUser", users: int = 100,
             spawn_rate: float = 50, run_time: str = "60s", processes: int = PROCESSES,
             extra: list[str] | None = None, cwd: Path | None = None) -> dict[str, object]:
    """Run Locust, then the report; returns their exit codes and where the files are."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    cmd = locust_command(host, prefix, user_class=user_class, users=users,
                         spawn_rate=spawn_rate, run_time=run_time, processes=processes,
                         extra=list(extra or []), master_port=free_port())
    locust = subprocess.run(cmd, cwd=cwd, check=False)
    report = subprocess.run([sys.executable, "-m", "reports", str(prefix)], cwd=cwd,
                            check=False)
    return {"locust_exit": locust.returncode, "report_exit": report.returncode,
            "prefix": str(prefix), "files": sorted(p.name for p in prefix.parent.iterdir())}


@app.function(image=image, volumes={str(REPORTS): volume}, cpu=PROCESSES + 1,
              timeout=TIMEOUT_S, secrets=proxy_secrets())
def run_locust(host: str, run_id: str, user_class: str, users: int, spawn_rate: float,
               run_time: str, processes: int, extra: list[str]) -> dict[str, object]:
    try:
        return headless(host, REPORTS / run_id / "run", user_class=user_class, users=users,
                        spawn_rate=spawn_rate, run_time=run_time, processes=processes,
                        extra=extra, cwd=Path("/root"))
    finally:
        volume.commit()


@app.local_entrypoint()
def main(host: str = "", user_class: str = "StickyUser", users: int = 100,
         spawn_rate: float = 50, run_time: str = "60s", processes: int = PROCESSES,
         extra: str = "") -> None:
    if not host:
        from modal_app.server import urls

        host = urls()[0]
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{user_class}"
    result = run_locust.remote(host, run_id, user_class, users, spawn_rate, run_time,
                               processes, extra.split())
    print(f"run {run_id}: locust exit {result['locust_exit']}, "
          f"report exit {result['report_exit']}")
    print(f"files: modal volume get {VOLUME_NAME} {run_id} ./results/")
    if result["locust_exit"] or result["report_exit"]:
        sys.exit(1)
