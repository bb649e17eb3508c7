"""Command line: `python -m modal_app.local --replicas 3 --port 8000`."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

from modal_app.local.auth import ProxyAuth
from modal_app.local.config import CONTROL_TOKEN_ENV, POLICIES, REPLICA_APP, EmulatorConfig
from modal_app.local.control import Control
from modal_app.local.events import EventLog
from modal_app.local.router import Router
from modal_app.local.sessions import SessionTable, StrictSessions
from modal_app.local.supervisor import ReplicaSet, no_sessions
from modal_app.local.transport import Client


class OneLineParser(argparse.ArgumentParser):
    """A bad command line is one line on stderr and exit status 2, not the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_args(argv: list[str] | None) -> EmulatorConfig:
    parser = OneLineParser(
        prog="python -m modal_app.local",
        description="Emulate Modal's HTTP Server proxy: N whoami replicas behind a router "
                    "that routes Modal-Session-Id by rendezvous hashing.")
    add = parser.add_argument
    add("--replicas", type=int, default=3, help="replicas to keep running (default 3)")
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add("--port", type=int, default=8000, help="port to bind, 0 for any free one (default 8000)")
    add("--events", type=Path, help="append membership changes to this JSON-lines file")
    add("--health-interval", type=float, default=1.0, dest="health_interval_s",
        help="seconds between health checks (GET /health) of each replica (default 1)")
    add("--health-timeout", type=float, default=2.0, dest="health_timeout_s",
        help="a replica whose GET /health does not answer within this leaves the live set "
             "(default 2)")
    add("--startup-timeout", type=float, default=30.0, dest="startup_timeout_s",
        help="seconds to wait for the first replicas (default 30)")
    add("--exit-grace-period", type=float, default=5.0, dest="exit_grace_period_s",
        help="seconds a stopped replica may take to drain (default 5)")
    add("--no-replace", action="store_false", dest="replace",
        help="do not replace replicas that die or are stopped")
    add("--header-timeout", type=float, default=10.0, dest="header_timeout_s",
        help="seconds a client may take to send its headers (default 10)")
    add("--keepalive-timeout", type=float, default=75.0, dest="keepalive_timeout_s",
        help="seconds an idle client connection stays open (default 75)")
    add("--upstream-timeout", type=float, default=300.0, dest="upstream_timeout_s",
        help="seconds a replica may take to start answering before a 504 (default 300)")
    add("--response-idle-timeout", type=float, default=60.0, dest="response_idle_timeout_s",
        help="seconds a replica may stay silent in the middle of an answer before the "
             "client's connection is cut (default 60)")
    add("--connect-timeout", type=float, default=5.0, dest="connect_timeout_s",
        help="seconds to open a connection to a replica before a 504 (default 5)")
    add("--backlog", type=int, default=2048,
        help="pending connections the listening socket holds (default 2048, as uvicorn)")
    add("--max-pipeline", type=int, default=16,
        help="pipelined requests queued per connection before reading pauses (default 16)")
    add("--max-body-bytes", type=int, default=16 * 1024 * 1024,
        help="largest request body, 413 above (default 16 MiB)")
    add("--max-buffered-bytes", type=int, default=256 * 1024 * 1024,
        help="request body bytes all connections together may hold (default 256 MiB)")
    add("--policy", choices=POLICIES, default="rendezvous",
        help="how sessions map onto replicas: rendezvous (Modal's) or modulo (a deliberately "
             "non-rendezvous policy, for tests only)")
    add("--membership-delay-ms", type=float, default=0.0,
        help="the router learns of each replica added or removed this late (default 0)")
    add("--control-token", default=os.environ.get(CONTROL_TOKEN_ENV) or None,
        help=f"bearer token the control API (/_emulator/) requires (default "
             f"${CONTROL_TOKEN_ENV}); needed when --host is not loopback")
    add("--replica-app", default=REPLICA_APP,
        help=f"ASGI app (module:attribute) the replicas serve (default {REPLICA_APP})")
    add("--no-zygote", action="store_false", dest="zygote",
        help="start each replica as a fresh interpreter, not forked from a zygote that "
             "imported uvicorn and the app once (slower; the zygote needs Linux)")
    add("--auth", action="store_true",
        help="require Modal-Key/Modal-Secret equal to $MODAL_PROXY_KEY/$MODAL_PROXY_SECRET")
    add("--max-concurrency", type=int, default=0,
        help="answer 429 above this many requests in flight on a replica (default 0, none)")
    add("--sessioned", action="store_true",
        help="strict sessions, as @modal.sessioned() servers: /_modal/sessions/start|terminate")
    add("--cache-sessions", type=int, default=0,
        help="simulate a KV cache: each replica keeps an LRU of this many conversations "
             "(default 0, off)")
    add("--cache-miss-ms", type=float, default=50.0,
        help="what a cache miss (the prefill) costs, ms (default 50)")
    add("--cache-hit-ms", type=float, default=5.0,
        help="what a cache hit costs, ms (default 5)")
    add("--prefill-ms-per-token", type=float, default=0.2,
        help="POST /generate: prefill time per prompt token a request pays, ms (default 0.2)")
    add("--token-ms", type=float, default=10.0,
        help="POST /generate: time to produce each streamed token, ms (default 10)")
    args = parser.parse_args(argv)
    try:
        config = EmulatorConfig(**vars(args))
        if config.auth:
            ProxyAuth.from_env()
    except ValueError as exc:
        parser.error(str(exc))
    return config


async def serve(config: EmulatorConfig) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    events = EventLog(config.events)
    table = SessionTable() if config.sessioned else None
    replicas = ReplicaSet(config, events, holds=table.count if table else no_sessions)
    strict = StrictSessions(table, replicas, loop.time) if table else None
    auth = ProxyAuth.from_env() if config.auth else None
    router = Router(config, replicas, Control(replicas), auth=auth, strict=strict)
    server = None
    try:
        try:
            server = await loop.create_server(
                lambda: Client(router), config.host, config.port, reuse_address=True,
                backlog=config.backlog)
        except OSError as exc:
            print(f"modal_app.local: cannot listen on {config.host}:{config.port}: "
                  f"{exc.strerror}", file=sys.stderr)
            return 2
        await replicas.reconcile()
        ready = await replicas.wait_live(config.replicas, config.startup_timeout_s)
        if config.membership_delay_ms:  # ready means routable: the router has learned of them
            await asyncio.sleep(config.membership_delay_ms / 1000)
        port = server.sockets[0].getsockname()[1]
        live = len(replicas.live)
        note = "" if ready else f" (only {live} of {config.replicas} replicas answered)"
        print(f"modal_app.local ready: http://{config.host}:{port} with {live} live "
              f"replicas{note}", flush=True)
        health = asyncio.ensure_future(replicas.health_loop())
        await stop.wait()
        health.cancel()
    finally:
        if server is not None:
            server.close()
        router.close()
        await replicas.close()
        events.close()
    return 0


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        sys.exit(asyncio.run(serve(config)))
    sys.exit(uvloop.run(serve(config)))


if __name__ == "__main__":
    main()
