"""The zygote: one process per emulator that imports uvicorn and the replicas' app once, then
forks a replica on each request, so that a replica costs milliseconds of CPU, not the half
second a fresh interpreter takes to import them.

    python -m modal_app.local.zygote --fd 3 --app modal_app.whoami:app --parent PID

It talks to the emulator (`--parent`, whose child it is) over the unix SOCK_SEQPACKET socket
`--fd`, one message each way per replica, and sends `{"ready": true}` first. A request is
`{"env": {...}}` (the replica's whole environment, `MODAL_TASK_ID` included) with two file
descriptors: the listening socket the emulator bound, and the read end of a pipe. The zygote
forks twice: the middle child forks the replica and exits, so the replica becomes a child of
the emulator (a child subreaper, see prctl.py), which reaps it and reads its exit status as for
any child. The answer is `{"pid": N}` or `{"error": "..."}`.

The replica waits for one byte on the pipe, which the emulator writes once it has taken the
replica as its own (end of file instead: the emulator gave up, the replica exits); then it asks
to die with the emulator, takes its environment, and serves: replica.serve, the same code as
`python -m modal_app.local.replica`. The app's module is imported afresh in each replica (only
its dependencies stay imported in the zygote), so what it reads from the environment at import
is the replica's own.

The zygote stays single-threaded (an app that starts threads at import is refused: the
emulator then starts fresh interpreters), ignores SIGINT (it ends when the emulator closes the
socket) and dies with the emulator.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import importlib
import json
import logging
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any

from modal_app.local.prctl import die_with_parent

MAX_MESSAGE = 1 << 20  # bytes: a whole environment fits
GO = b"g"
Handler = Any  # what signal.signal returns


def answer(channel: socket.socket, **message: Any) -> None:
    """One message to the emulator; none if it closed the socket (it gave up on this request:
    the replica, without its go-ahead, exits), the next receive then ends the zygote."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        channel.send(json.dumps(message).encode())


def warm_up(app: str) -> str | None:
    """Import what every replica needs (uvicorn's protocol, loop and lifespan classes, the app
    and its dependencies), then forget the app's own module. None, or why forking is unsafe."""
    from modal_app.local import replica

    async def noop(scope: Any, receive: Any, send: Any) -> None:
        return None

    warm = replica.config(app)
    warm.app = noop  # the protocol classes without the app: its import may fail (below)
    warm.load()
    warm.get_loop_factory()
    with contextlib.suppress(ImportError):
        importlib.import_module("anyio._backends._asyncio")
    module = app.partition(":")[0]
    try:  # a failing app fails in each replica, as it would in a fresh interpreter
        with contextlib.redirect_stdout(sys.stderr):
            importlib.import_module(module)
    except BaseException:  # SystemExit too: each replica reports it
        pass
    sys.modules.pop(module, None)
    threads = len(os.listdir("/proc/self/task"))
    if threads > 1:
        return f"importing {module} started {threads - 1} thread(s): forking is unsafe"
    return None


def exit_code(exc: SystemExit) -> int:
    """The status an interpreter exits with on `exc` (printing its message, as Python does)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def run_replica(sock: socket.socket, go: int, env: dict[str, str], app: str, parent: int,
                sigint: Handler) -> None:
    """In the forked replica: wait to be the emulator's child, then serve; never returns."""
    code = 1
    try:
        if os.read(go, 1) != GO or not die_with_parent(parent):
            code = 0
            return
        os.close(go)
        signal.signal(signal.SIGINT, sigint)
        os.environ.clear()
        os.environ.update(env)
        from modal_app.local import replica

        replica.serve(sock, app)
        code = 0
    except SystemExit as exc:
        code = exit_code(exc)
    except KeyboardInterrupt:  # as an interpreter does: die of SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:  # printed, as by a fresh interpreter
        traceback.print_exc()
    finally:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def fork_replica(channel: socket.socket, replica: Callable[[], None]) -> int:
    """Fork twice; the grandchild runs `replica`. Returns its pid once the middle child
    exited, so that the grandchild is no longer a descendant of this process."""
    for stream in (sys.stdout, sys.stderr):  # nothing buffered to be written twice
        stream.flush()
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:  # the middle child: fork the replica, say its pid, exit
        try:
            os.close(read_end)
            pid = os.fork()
            if pid == 0:
                os.close(write_end)
                channel.close()
                replica()
            os.write(write_end, pid.to_bytes(8, "little"))
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        data = b""
        while chunk := os.read(read_end, 8 - len(data)):
            data += chunk
    finally:
        os.close(read_end)
        os.waitpid(middle, 0)
    if len(data) != 8:
        raise OSError("the middle child died before it forked the replica")
    return int.from_bytes(data, "little")


def serve_requests(channel: socket.socket, app: str, parent: int, sigint: Handler) -> None:
    """Fork a replica for each request until the emulator closes the socket."""
    while True:
        message, fds, flags, _ = socket.recv_fds(channel, MAX_MESSAGE, 2)
        if not message and not fds:
            return
        if len(fds) != 2 or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            for fd in fds:
                os.close(fd)
            answer(channel, error="a request needs a message, a socket and a pipe")
            continue
        sock, go = socket.socket(fileno=fds[0]), fds[1]
        try:
            env = json.loads(message)["env"]
            if not isinstance(env, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
                raise ValueError("env must map strings to strings")
            pid = fork_replica(channel, functools.partial(
                run_replica, sock, go, env, app, parent, sigint))
            answer(channel, pid=pid)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            answer(channel, error=f"{type(exc).__name__}: {exc}")
        finally:
            sock.close()
            os.close(go)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="the unix socket to the emulator")
    parser.add_argument("--app", required=True, help="the replicas' ASGI app, module:attribute")
    parser.add_argument("--parent", type=int, required=True, help="the emulator's pid")
    args = parser.parse_args(argv)
    if not die_with_parent(args.parent, signal.SIGKILL):
        sys.exit(0)
    sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = socket.socket(fileno=args.fd)
    unsafe = warm_up(args.app)
    if unsafe:
        answer(channel, error=unsafe)
        sys.exit(1)
    gc.freeze()  # what the zygote imported stays shared with its children, untouched by gc
    answer(channel, ready=True)
    serve_requests(channel, args.app, args.parent, sigint)


if __name__ == "__main__":
    main()
