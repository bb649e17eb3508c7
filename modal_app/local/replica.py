"""One replica: real uvicorn serving `modal_app.whoami:app` on a socket the emulator bound.

The emulator binds 127.0.0.1:0 (the OS picks the port), passes the socket's file descriptor
and the container id (`MODAL_TASK_ID`) to this process. uvicorn calls listen() only after the
app's startup, so the port refuses connections until the replica is ready: that is what the
emulator's readiness check sees, as Modal's proxy does.

    python -m modal_app.local.replica --fd 5
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import sys

import uvicorn

APP = "modal_app.whoami:app"
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when the emulator dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="inherited bound socket")
    parser.add_argument("--app", default=APP)
    args = parser.parse_args(argv)
    die_with_parent()
    sock = socket.socket(fileno=args.fd)
    config = uvicorn.Config(
        args.app,
        access_log=False,
        log_level="warning",
        timeout_keep_alive=120,
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
