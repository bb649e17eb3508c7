"""Replica processes: one class for one child, one for the group and its membership.

A replica is `starting` (process up, not answering its health check yet), `live` (in the
routing set), `retiring` (scaled down but holding strict sessions: serves them only, stops when
they end), `draining` (out of the routing set, finishing its in-flight requests) or `exited`.
Every change of the live set goes to the event log with the live set after it, and to the
router.

Health: every `health_interval_s`, each starting or live replica gets `GET /health` on a fresh
connection; it is live while it answers with a status below 500 within `health_timeout_s`.
One cause per removal, decided from what the process did, in this order: its process died or
is dying (`crash`, whoever noticed first: the reaper, the health check or a refused
connection), its port refused (`refused`), no answer in time (`hung`: a stopped or wedged
process), a 5xx or garbled answer (`unhealthy`).

Crash-loop backoff: deaths of replicas that lived less than `restart_backoff_reset_s` follow
each other "in a row", whenever they happen (at start-up or after many answers); the n-th in a
row delays the next start by `restart_backoff_s * 2^(n-1)` (at most `restart_backoff_max_s`),
except the first death of a replica that had answered, which is replaced at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modal_app.local.config import EmulatorConfig
from modal_app.local.events import EventLog
from modal_app.local.spawn import ReplicaProcess, Spawner

STARTING, LIVE, RETIRING, DRAINING, EXITED = (
    "starting", "live", "retiring", "draining", "exited")
# Health check results; all but OK are removal causes.
OK, REFUSED, HUNG, UNHEALTHY = "ok", "refused", "hung", "unhealthy"
HEALTH_REQUEST = b"GET /health HTTP/1.1\r\nHost: replica\r\nConnection: close\r\n\r\n"
PF_EXITING = 0x4  # Linux task flag: set when the process starts dying, before its sockets close


def has_died(pid: int) -> bool:
    """True when the process exited or is exiting, reaped or not (Linux /proc; elsewhere
    False, and the reaper alone tells)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True  # already reaped
    except OSError:
        return False
    fields = stat.rpartition(")")[2].split()
    return fields[0] in ("Z", "X", "x") or bool(int(fields[6]) & PF_EXITING)


def new_container_id() -> str:
    """An id in the style of Modal's task ids (`ta-` and 26 base-32 characters)."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return "ta-01" + "".join(secrets.choice(alphabet) for _ in range(24))


@dataclass(eq=False)
class Replica:
    """One uvicorn child on a port the OS chose."""

    container_id: str
    port: int = 0
    state: str = STARTING
    in_flight: int = 0
    process: ReplicaProcess | None = None
    started: float = 0.0
    answered: bool = False  # it passed a health check at least once
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def start(self, spawner: Spawner) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        try:
            self.process = await spawner.start(self.container_id, sock)
        finally:
            sock.close()
        self.started = asyncio.get_running_loop().time()

    def is_alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def has_died(self) -> bool:
        """Its process exited or is exiting, even if not reaped yet."""
        if self.process is None:
            return False
        return self.process.returncode is not None or has_died(self.process.pid)

    def signal(self, sig: int) -> None:
        if self.is_alive():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    async def probe(self, timeout: float) -> str:
        """`GET /health` on a fresh connection: OK, REFUSED, HUNG or UNHEALTHY."""
        writer = None
        try:
            async with asyncio.timeout(timeout):
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    return REFUSED
                writer.write(HEALTH_REQUEST)
                line = await reader.readline()
        except TimeoutError:
            return HUNG
        except OSError:
            return UNHEALTHY
        finally:
            if writer is not None:
                writer.close()
        parts = line.split(None, 2)
        ok = len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit() and (
            int(parts[1]) < 500)
        return OK if ok else UNHEALTHY

    async def stop(self, grace: float) -> None:
        """Wait for in-flight requests (up to `grace` s), then SIGTERM, then SIGKILL."""
        if self.in_flight:
            self.drained.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.drained.wait(), grace)
        self.signal(signal.SIGTERM)
        if self.process is not None:
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.signal(signal.SIGKILL)
                await self.process.wait()


MembershipListener = Callable[[tuple[Replica, ...]], None]
SessionCount = Callable[[Replica], int]


def no_sessions(replica: Replica) -> int:
    return 0


class ReplicaSet:
    """The group: keeps `target` replicas running, tracks who is live, logs every change.

    A replica's state always changes before anyone hears of it: the event log and the
    listeners see the new state. `reconcile` runs one at a time and loops until the count of
    starting and live replicas equals the target, however scale calls and deaths interleave.
    `holds(replica)` counts its strict sessions (a replica holding some is not scaled down).
    """

    def __init__(self, config: EmulatorConfig, events: EventLog,
                 holds: SessionCount = no_sessions) -> None:
        self.config = config
        self.events = events
        self.holds = holds
        self.target = config.replicas
        self.spawner = Spawner(config.replica_app, config.replica_env(), fork=config.zygote)
        self.replicas: dict[str, Replica] = {}
        self.live: tuple[Replica, ...] = ()
        self._listeners: list[MembershipListener] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._reconciling = asyncio.Lock()
        self._deaths = 0  # deaths in a row (of replicas that lived < restart_backoff_reset_s)
        self._not_before = 0.0  # no start before this loop time (restart backoff)
        self._wakeup: asyncio.TimerHandle | None = None

    def on_change(self, listener: MembershipListener) -> None:
        self._listeners.append(listener)

    # -- membership ------------------------------------------------------------------------

    def _set_state(self, replica: Replica, state: str, cause: str) -> None:
        """Change the state first, then log and notify when the live set changed."""
        was_live = replica.state == LIVE
        replica.state = state
        if (state == LIVE) == was_live:
            return
        if state == LIVE:
            self.live = (*self.live, replica)
        else:
            self.live = tuple(r for r in self.live if r is not replica)
        self.events.write(
            "added" if state == LIVE else "removed", container_id=replica.container_id,
            cause=cause, live=[r.container_id for r in self.live])
        for listener in self._listeners:
            listener(self.live)

    def mark_refused(self, replica: Replica) -> None:
        """The router saw a refused connection: out of the live set until it is healthy again;
        a crash when its process is dying (the reaper may not have seen it yet)."""
        if replica.state == LIVE:
            self._set_state(replica, STARTING, "crash" if replica.has_died() else REFUSED)

    # -- lifecycle ---------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def running(self) -> list[Replica]:
        """Replicas that count towards the target: starting or live."""
        return [r for r in self.replicas.values() if r.state in (STARTING, LIVE)]

    async def start_one(self) -> Replica:
        replica = Replica(new_container_id())
        self.replicas[replica.container_id] = replica
        await replica.start(self.spawner)
        self._spawn(self._reap(replica))
        return replica

    async def _reap(self, replica: Replica) -> None:
        assert replica.process is not None
        await replica.process.wait()
        crashed = replica.state in (STARTING, LIVE, RETIRING)
        self._set_state(replica, EXITED, "crash" if crashed else "exit")
        self.replicas.pop(replica.container_id, None)
        if crashed:
            self.events.write("exited", container_id=replica.container_id, cause="crash",
                              returncode=replica.process.returncode)
            if not self.config.replace:
                self.target = max(0, self.target - 1)
            else:
                self._back_off(replica)
        await self.reconcile()

    def _back_off(self, replica: Replica) -> None:
        """A replica died on its own: count the deaths in a row and delay the next start."""
        config = self.config
        now = asyncio.get_running_loop().time()
        if now - replica.started >= config.restart_backoff_reset_s:
            self._deaths = 0  # it lived long enough: not a loop
        self._deaths += 1
        if self._deaths == 1 and replica.answered:
            return  # a one-off death: replaced at once
        delay = min(config.restart_backoff_max_s,
                    config.restart_backoff_s * 2 ** (self._deaths - 1))
        self._not_before = max(self._not_before, now + delay)
        self.events.write("backoff", container_id=replica.container_id, cause="crash",
                          attempt=self._deaths, delay_s=round(delay, 3))

    async def reconcile(self) -> None:
        """Start or stop replicas until `target` are starting or live."""
        async with self._reconciling:
            while not self._closing:
                running = self.running()
                if len(running) < self.target:
                    if not self._may_start():
                        return
                    await self.start_one()
                elif len(running) > self.target:
                    # the newest first, but those holding strict sessions last
                    order = sorted(running, key=lambda r: (self.holds(r) > 0, -r.started))
                    for replica in order[: len(running) - self.target]:
                        self.stop(replica, cause="scale")
                else:
                    return

    def _may_start(self) -> bool:
        """False while a restart backoff runs; a wake-up then reconciles again."""
        loop = asyncio.get_running_loop()
        wait = self._not_before - loop.time()
        if wait <= 0:
            return True
        if self._wakeup is None or self._wakeup.when() < self._not_before:
            if self._wakeup is not None:
                self._wakeup.cancel()
            self._wakeup = loop.call_later(wait, self._wake)
        return False

    def _wake(self) -> None:
        self._wakeup = None
        self._spawn(self.reconcile())

    async def scale(self, replicas: int) -> None:
        self.events.write("control", action="scale", replicas=replicas)
        self.target = replicas
        await self.reconcile()

    def stop(self, replica: Replica, cause: str = "stop") -> None:
        """Graceful: leave the live set, drain, exit (once its strict sessions ended)."""
        if replica.state in (DRAINING, EXITED):
            return
        if cause == "scale" and self.holds(replica):
            self._set_state(replica, RETIRING, cause)
            return
        self._set_state(replica, DRAINING, cause)
        self._spawn(replica.stop(self.config.exit_grace_period_s))

    def kill(self, replica: Replica) -> None:
        """SIGKILL: in-flight requests on it fail (502), as when a container dies."""
        self._set_state(replica, DRAINING, "kill")
        replica.signal(signal.SIGKILL)

    async def remove(self, replica: Replica, *, kill: bool, replace: bool | None) -> None:
        """Stop or kill one replica; a replacement starts at once unless `replace` is off."""
        if replace is None:
            replace = self.config.replace
        if not replace:
            self.target = max(0, self.target - 1)
        if kill:
            self.kill(replica)
        else:
            self.stop(replica)
        await self.reconcile()

    async def check_health(self) -> None:
        """One round: replicas that answer `GET /health` are live, the others are not."""
        candidates = [r for r in self.replicas.values() if r.state in (STARTING, LIVE)]
        timeout = self.config.health_timeout_s
        results = await asyncio.gather(*(r.probe(timeout) for r in candidates))
        for replica, result in zip(candidates, results, strict=True):
            if replica.state not in (STARTING, LIVE):
                continue
            if replica.has_died():  # the reaper decides: one cause, "crash"
                if replica.state == LIVE:
                    self._set_state(replica, STARTING, "crash")
                continue
            if result == OK:
                replica.answered = True
                self._set_state(replica, LIVE, "ready")
            else:
                self._set_state(replica, STARTING, result)

    async def health_loop(self) -> None:
        while not self._closing:
            await self.check_health()
            await asyncio.sleep(self.config.health_interval_s)

    async def wait_live(self, count: int, timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.live) < count:
            if asyncio.get_running_loop().time() > deadline:
                return False
            await self.check_health()
            await asyncio.sleep(0.05)
        return True

    async def close(self) -> None:
        """Stop every child and wait for each, so that none is left behind."""
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.cancel()
        for replica in list(self.replicas.values()):
            self._set_state(replica, DRAINING, "shutdown")
            replica.signal(signal.SIGTERM)
        for replica in list(self.replicas.values()):
            if replica.process is None:
                continue
            try:
                await asyncio.wait_for(replica.process.wait(), 10)
            except TimeoutError:
                replica.signal(signal.SIGKILL)
                await replica.process.wait()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.spawner.close()
