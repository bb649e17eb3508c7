"""One replica: real uvicorn serving `modal_app.whoami:app` on a socket the emulator bound.

The emulator binds 127.0.0.1:0 (the OS picks the port), passes the socket's file descriptor
and the container id (`MODAL_TASK_ID`) to this process. uvicorn calls listen() only after the
app's startup, so the port refuses connections until the replica is ready: that is what the
emulator's readiness check sees, as Modal's proxy does.

On Linux the emulator forks its replicas from a zygote (modal_app/local/zygote.py), which runs
`serve` in each child; this command line is the other way, a fresh interpreter per replica:

    python -m modal_app.local.replica --fd 5
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

import uvicorn

from modal_app.local.prctl import die_with_parent

APP = "modal_app.whoami:app"


def config(app: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        access_log=False,
        log_level="warning",
        timeout_keep_alive=120,
        timeout_graceful_shutdown=5,
    )


def serve(sock: socket.socket, app: str) -> None:
    """Import `app` and serve it on `sock` (bound, not listening) until SIGTERM or SIGINT."""
    uvicorn.Server(config(app)).run(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="inherited bound socket")
    parser.add_argument("--app", default=APP)
    args = parser.parse_args(argv)
    if not die_with_parent(os.getppid()):
        sys.exit(0)
    serve(socket.socket(fileno=args.fd), args.app)


if __name__ == "__main__":
    main()
