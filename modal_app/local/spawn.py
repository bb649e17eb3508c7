"""How the emulator starts replica processes, and the process object it watches either way.

On Linux a replica is forked from the zygote (modal_app/local/zygote.py), which imported
uvicorn and the app once: the replica is a child of the emulator all the same (the emulator is a
child subreaper), which reaps it and reads its exit status from a pidfd. Elsewhere, with
`--no-zygote`, or once the zygote failed (it died, did not answer in time, or refused), each
replica is a fresh interpreter, `python -m modal_app.local.replica`; a failed zygote is said on
stderr in one line, and never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any, Protocol

from modal_app.local.prctl import LINUX, become_subreaper
from modal_app.local.zygote import GO, MAX_MESSAGE

ZYGOTE_TIMEOUT_S = 30.0  # for the zygote's imports, and for each fork (milliseconds when well)


class ReplicaProcess(Protocol):
    """What the supervisor needs of a replica's process (asyncio.subprocess.Process has it)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    async def wait(self) -> int: ...


class ChildProcess:
    """A child this process did not spawn itself (a replica forked by the zygote, reparented
    here): its exit is seen on a pidfd, its status reaped with waitpid."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = os.pidfd_open(pid)
        loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = loop.create_future()
        loop.add_reader(self._pidfd, self._on_exit)

    def _on_exit(self) -> None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else: its status is lost
            pid, status = self.pid, 255 << 8
        if pid == 0:
            return
        asyncio.get_running_loop().remove_reader(self._pidfd)
        os.close(self._pidfd)
        self.returncode = os.waitstatus_to_exitcode(status)
        self._exited.set_result(self.returncode)

    def send_signal(self, sig: int) -> None:
        """As asyncio's: ProcessLookupError once it exited (a pidfd never hits a reused pid)."""
        if self.returncode is not None:
            raise ProcessLookupError(self.pid)
        signal.pidfd_send_signal(self._pidfd, sig)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


class ZygoteError(Exception):
    """The zygote cannot start replicas: it died, did not answer in time, or refused."""


class Zygote:
    """The emulator's end of the zygote: start it, ask it for replicas, stop it. Any failure
    (a ZygoteError, or a request cancelled half way) leaves it broken: no more requests."""

    def __init__(self, app: str) -> None:
        self.app = app
        self.process: asyncio.subprocess.Process | None = None
        self.channel: socket.socket | None = None
        self.broken = False

    async def start(self) -> None:
        if not become_subreaper():
            raise ZygoteError("the emulator cannot become a child subreaper")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        self.channel = ours
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "modal_app.local.zygote", "--fd", str(theirs.fileno()),
                "--app", self.app, "--parent", str(os.getpid()), pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL)
        except OSError as exc:
            raise ZygoteError(f"cannot start it: {exc}") from None
        finally:
            theirs.close()
        if not (await self._ask()).get("ready"):
            raise ZygoteError("it did not say it was ready")

    async def fork(self, sock: socket.socket, env: dict[str, str]) -> ChildProcess:
        """A replica serving on `sock` with exactly `env` as its environment."""
        if self.broken or self.channel is None:
            raise ZygoteError("it failed before")
        read_end, write_end = os.pipe()
        try:
            try:
                socket.send_fds(self.channel, [json.dumps({"env": env}).encode()],
                                [sock.fileno(), read_end])
            except OSError as exc:
                raise ZygoteError(f"cannot send it a request: {exc}") from None
            finally:
                os.close(read_end)
            reply = await self._ask()
            if not isinstance(reply.get("pid"), int):
                raise ZygoteError(str(reply.get("error", "an answer without a pid")))
            pid = reply["pid"]
            if parent_of(pid) != os.getpid():
                raise ZygoteError(f"its replica (pid {pid}) is not the emulator's child")
            child = ChildProcess(pid)
            os.write(write_end, GO)  # the replica may go on; without it, it exits
            return child
        except BaseException:
            self.broken = True
            raise
        finally:
            os.close(write_end)

    async def _ask(self) -> dict[str, Any]:
        """The zygote's next answer."""
        assert self.channel is not None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(ZYGOTE_TIMEOUT_S):
                data = await loop.sock_recv(self.channel, MAX_MESSAGE)
        except TimeoutError:
            raise ZygoteError(f"no answer in {ZYGOTE_TIMEOUT_S:g} s") from None
        except OSError as exc:
            raise ZygoteError(f"its socket failed: {exc}") from None
        if not data:
            raise ZygoteError("it exited")
        try:
            reply = json.loads(data)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise ZygoteError("a garbled answer")
        if "error" in reply:
            raise ZygoteError(str(reply["error"]))
        return reply

    async def close(self) -> None:
        """End of file on its socket ends it; SIGKILL if it is broken or does not end."""
        if self.channel is not None:
            self.channel.close()
        if self.process is None:
            return
        if self.broken:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


async def exec_replica(sock: socket.socket, app: str, env: dict[str, str]) -> ReplicaProcess:
    """A fresh interpreter serving `app` on `sock`."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "modal_app.local.replica", "--fd", str(sock.fileno()),
        "--app", app, pass_fds=(sock.fileno(),), stdin=asyncio.subprocess.DEVNULL, env=env)


class Spawner:
    """Starts the replica processes of one emulator, one at a time."""

    def __init__(self, app: str, env: dict[str, str], *, fork: bool = True) -> None:
        self.app = app
        self.env = env
        self.fork = fork and LINUX and hasattr(os, "pidfd_open")
        self.zygote: Zygote | None = None
        self._lock = asyncio.Lock()

    async def start(self, container_id: str, sock: socket.socket) -> ReplicaProcess:
        """A replica serving on `sock` (bound, not listening) as container `container_id`."""
        env = {**os.environ, **self.env, "MODAL_TASK_ID": container_id}
        async with self._lock:
            if self.fork:
                try:
                    if self.zygote is None:
                        self.zygote = Zygote(self.app)
                        await self.zygote.start()
                    return await self.zygote.fork(sock, env)
                except ZygoteError as exc:
                    await self._give_up(str(exc))
            return await exec_replica(sock, self.app, env)

    async def _give_up(self, reason: str) -> None:
        self.fork = False
        print(f"modal_app.local: the replica zygote failed ({reason}); replicas start as "
              "fresh interpreters from now on", file=sys.stderr, flush=True)
        if self.zygote is not None:
            self.zygote.broken = True
            await self.zygote.close()

    async def close(self) -> None:
        if self.zygote is not None:
            await self.zygote.close()
