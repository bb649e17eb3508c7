"""Replicas forked from the zygote (modal_app/local/zygote.py): separate processes, children of
the emulator, each with its own container id and environment, dying with the emulator, their
exit statuses the same as those of fresh interpreters; a failed zygote falls back to those."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest

from modal_app.local import spawn
from modal_app.local.launch import emulator
from modal_app.local.prctl import become_subreaper
from modal_app.local.spawn import ChildProcess, ReplicaProcess, Spawner
from modal_app.local.supervisor import has_died
from tests.support import ROOT
from tests.support.emulated import TEST_APP, live_ids, read_events, replicas, wait_for
from tests.support.http import Conn, call

FORKED = "modal_app.local.zygote"  # a forked replica's command line is its zygote's
EXECED = "modal_app.local.replica"


def command_line(pid: int) -> str:
    return " ".join(psutil.Process(pid).cmdline())


def children(pid: int) -> list[int]:
    return [child.pid for child in psutil.Process(pid).children()]


def test_forked_replicas_are_children_of_the_emulator_each_with_its_own_id_and_env() -> None:
    """The KV-cache simulation is configured at the app's import from the replica's own
    environment (the zygote's has none of it), the container id at each request."""
    with emulator(2, "--cache-sessions", "4") as emu:
        rows = replicas(emu.url)
        assert len({row["pid"] for row in rows}) == 2
        for row in rows:
            assert psutil.Process(row["pid"]).ppid() == emu.process.pid
            assert FORKED in command_line(row["pid"])
            with Conn(f"http://127.0.0.1:{row['port']}") as conn:
                headers = {"Modal-Session-Id": "s1"}
                own = row["container_id"]
                assert conn.post("/", headers=headers) == (
                    200, {"CONTAINER_ID": own, "cache": "miss"})
                assert conn.post("/", headers=headers) == (
                    200, {"CONTAINER_ID": own, "cache": "hit"})


def test_forked_replicas_and_the_zygote_die_with_a_sigkilled_emulator() -> None:
    with emulator(2) as emu:
        family = children(emu.process.pid)
        assert len(family) == 3 and all(FORKED in command_line(pid) for pid in family)
        emu.process.kill()
        emu.process.wait()
        wait_for(lambda: all(has_died(pid) for pid in family), what="its replicas and zygote dead")


def test_a_forked_replicas_exit_status_is_seen_and_a_crash_loop_backs_off(
        tmp_path: Path) -> None:
    """kill -9 by its pid: -9 (replaced at once, it had answered); then the next one's crash
    (it exits with status 3): 3, and the second death in a row is backed off."""
    log = tmp_path / "events.jsonl"
    with emulator(1, "--replica-app", TEST_APP, events=log) as emu:
        first = replicas(emu.url)[0]
        os.kill(first["pid"], signal.SIGKILL)
        wait_for(lambda: [r for r in live_ids(emu.url) if r != first["container_id"]] != [],
                 what="its replacement live")
        second = replicas(emu.url)[0]
        with socket.create_connection(("127.0.0.1", second["port"]), timeout=10) as sock:
            sock.sendall(b"GET /crash HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(100) == b""
        wait_for(lambda: any(e["event"] == "backoff" for e in read_events(log)),
                 what="a backoff")
    events = read_events(log)
    exits = [(e["container_id"], e["returncode"]) for e in events if e["event"] == "exited"]
    assert exits[:2] == [(first["container_id"], -9), (second["container_id"], 3)]
    backoff = next(e for e in events if e["event"] == "backoff")
    assert (backoff["container_id"], backoff["attempt"]) == (second["container_id"], 2)


def test_a_dead_zygote_is_said_and_replicas_start_as_fresh_interpreters() -> None:
    with emulator(1, "--replica-app", TEST_APP) as emu:
        kept = replicas(emu.url)[0]
        (zygote,) = [pid for pid in children(emu.process.pid) if pid != kept["pid"]]
        assert FORKED in command_line(zygote)
        os.kill(zygote, signal.SIGKILL)
        wait_for(lambda: has_died(zygote), what="the zygote dead")
        assert call(emu.url, "POST", "/_emulator/scale", {"replicas": 2})[0] == 200
        wait_for(lambda: len(live_ids(emu.url)) == 2, what="two live replicas")
        (new,) = [r for r in replicas(emu.url) if r["pid"] != kept["pid"]]
        assert EXECED in command_line(new["pid"])
        for row in (kept, new):
            with Conn(f"http://127.0.0.1:{row['port']}") as conn:
                assert conn.post("/hold?ms=0")[1]["container"] == row["container_id"]

        def said() -> list[str]:
            return [line for line in emu.output if "the replica zygote failed" in line]

        wait_for(lambda: said() != [], what="the emulator saying so")
        assert len(said()) == 1 and said()[0].endswith(
            "replicas start as fresh interpreters from now on\n")


# -- in process: the spawner on its own, statuses compared with fresh interpreters ------------


@pytest.fixture()
def subreaper() -> Iterator[None]:
    """The spawner makes this process a child subreaper; the tests after this one must not
    inherit that."""
    yield
    become_subreaper(False)


@contextlib.asynccontextmanager
async def replica_of(spawner: Spawner, container_id: str
                     ) -> AsyncIterator[tuple[ReplicaProcess, int]]:
    """A replica from `spawner` and its port; SIGKILLed and reaped if still running after."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    try:
        process = await spawner.start(container_id, sock)
    finally:
        sock.close()
    try:
        yield process, port
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)
            await process.wait()


async def serving(port: int, process: ReplicaProcess) -> bool:
    """True once the replica accepts connections, False if it exited first."""
    while process.returncode is None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return True
    return False


async def crash(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /crash HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.read()
    writer.close()


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "fresh"])
def test_a_replica_exits_with_the_same_status_forked_or_fresh(fork: bool,
                                                              subreaper: None) -> None:
    """SIGTERM (uvicorn drains, then dies of the signal): -15; the app's crash: 3; an app
    that cannot be imported: 3 (uvicorn's startup failure)."""
    async def scenario() -> list[int]:
        statuses = []
        spawner = Spawner(TEST_APP, {}, fork=fork)
        broken = Spawner("tests.no_such_module:app", {}, fork=fork)
        try:
            for ending in ("sigterm", "crash"):
                async with replica_of(spawner, f"ta-01{ending}") as (process, port):
                    assert isinstance(process, ChildProcess) == fork
                    assert await asyncio.wait_for(serving(port, process), 30)
                    if ending == "sigterm":
                        process.send_signal(signal.SIGTERM)
                    else:
                        await crash(port)
                    statuses.append(await asyncio.wait_for(process.wait(), 20))
            async with replica_of(broken, "ta-01broken") as (process, _):
                assert isinstance(process, ChildProcess) == fork
                statuses.append(await asyncio.wait_for(process.wait(), 30))
        finally:
            await spawner.close()
            await broken.close()
        return statuses

    assert asyncio.run(scenario()) == [-signal.SIGTERM, 3, 3]


def test_an_app_that_starts_threads_at_import_is_not_forked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        subreaper: None) -> None:
    (tmp_path / "threaded_app.py").write_text(
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n"
        "from tests.support.replica_app import app\n")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{ROOT}")

    async def scenario() -> None:
        spawner = Spawner("threaded_app:app", {}, fork=True)
        try:
            async with replica_of(spawner, "ta-01threads") as (process, port):
                assert not isinstance(process, ChildProcess)
                assert await asyncio.wait_for(serving(port, process), 30)
                assert EXECED in command_line(process.pid)
        finally:
            await spawner.close()

    asyncio.run(scenario())
    assert "importing threaded_app started 1 thread(s): forking is unsafe" in (
        capsys.readouterr().err)


def test_a_zygote_that_does_not_answer_in_time_is_killed_and_replicas_start_fresh(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        subreaper: None) -> None:
    async def scenario() -> None:
        spawner = Spawner(TEST_APP, {}, fork=True)
        try:
            async with replica_of(spawner, "ta-01first") as (first, _):
                assert isinstance(first, ChildProcess)
                zygote = spawner.zygote
                assert zygote is not None and zygote.process is not None
                os.kill(zygote.process.pid, signal.SIGSTOP)  # alive, and silent
                monkeypatch.setattr(spawn, "ZYGOTE_TIMEOUT_S", 0.5)
                async with replica_of(spawner, "ta-01second") as (second, port):
                    assert not isinstance(second, ChildProcess)
                    assert await asyncio.wait_for(serving(port, second), 30)
                assert zygote.process.returncode == -signal.SIGKILL
                assert first.returncode is None  # the replicas it forked live on
        finally:
            await spawner.close()

    asyncio.run(scenario())
    assert "the replica zygote failed (no answer in 0.5 s)" in capsys.readouterr().err
