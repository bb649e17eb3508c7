"""The emulator fails the way Modal does and never hides a failure: crashes, scaling races,
crash loops. Real replica processes killed for real."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest

from modal_app.local.launch import emulator
from modal_app.local.rendezvous import pick
from tests.support.emulated import TEST_APP, live_ids, read_events, replicas, wait_for
from tests.support.http import Conn, call

SESSIONS = [f"user-{i}" for i in range(90)]
PER_REPLICA = 4


def marks(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.mark.parametrize("pooled", [True, False], ids=["pooled", "fresh"])
def test_every_request_of_a_crashed_replica_fails(tmp_path: Path, pooled: bool) -> None:
    events = tmp_path / "events.jsonl"
    mark = tmp_path / "arrived.txt"
    with emulator(3, "--no-replace", "--replica-app", TEST_APP, events=events) as emu:
        live = live_ids(emu.url)
        victim = live[0]
        chosen: dict[str, list[str]] = {c: [] for c in live}
        for s in SESSIONS:
            owner = pick(s, live)
            if len(chosen[owner]) < PER_REPLICA:
                chosen[owner].append(s)
        results: dict[str, tuple[int, Any]] = {}
        if pooled:  # warm the router's keep-alive pools: several connections per replica
            for _ in range(2):
                warm(emu.url, [s for group in chosen.values() for s in group])

        def send(session: str) -> None:
            results[session] = call(emu.url, "POST", f"/hold?ms=3000&mark={mark}",
                                    headers={"Modal-Session-Id": session})

        threads = [threading.Thread(target=send, args=(s,))
                   for group in chosen.values() for s in group]
        for thread in threads:
            thread.start()
        # every request reached its replica (each wrote its mark on arrival)
        wait_for(lambda: len(marks(mark)) == len(threads), what="all requests arrived")
        pid = next(r["pid"] for r in replicas(emu.url) if r["container_id"] == victim)
        os.kill(pid, signal.SIGKILL)
        for thread in threads:
            thread.join(30)
    for session in chosen[victim]:
        status, body = results[session]
        assert status == 502, f"a request of the crashed replica came back {status}: {body}"
        assert body["error"] == "replica failed" and body["container_id"] == victim
    for owner in live[1:]:
        for session in chosen[owner]:
            assert results[session] == (200, {"container": owner,
                                              "concurrent": results[session][1]["concurrent"]})
    assert marks(mark).count(victim) == PER_REPLICA  # nothing was sent twice
    # one cause, from what the process did, whoever noticed first; the removal, then the exit
    mine = [(e["event"], e["cause"]) for e in read_events(events)
            if e.get("container_id") == victim and e["event"] != "added"]
    assert mine == [("removed", "crash"), ("exited", "crash")]


def warm(url: str, sessions: list[str]) -> None:
    def one(session: str) -> int:
        with Conn(url) as conn:
            return conn.request("POST", "/hold?ms=300",
                                headers={"Modal-Session-Id": session})[0]

    with ThreadPoolExecutor(len(sessions)) as pool:
        assert set(pool.map(one, sessions)) == {200}


def settled_at(url: str, target: int) -> bool:
    rows = replicas(url)
    return len(rows) == target and all(r["state"] == "live" for r in rows)


@pytest.mark.parametrize("target", [4, 1])
def test_concurrent_scale_calls_and_kills_settle_exactly_at_the_target(
        tmp_path: Path, target: int) -> None:
    events = tmp_path / "events.jsonl"
    with emulator(2, "--replica-app", TEST_APP, "--health-interval", "0.25",
                  events=events) as emu:
        victims = live_ids(emu.url)
        calls: list[tuple[str, dict[str, int] | None]] = [
            ("/_emulator/scale", {"replicas": target}) for _ in range(4)]
        calls[1:1] = [(f"/_emulator/replicas/{v}/kill", None) for v in victims]
        with ThreadPoolExecutor(len(calls)) as pool:
            answers = list(pool.map(lambda c: call(emu.url, "POST", c[0], c[1]), calls))
        assert all(status in (200, 404, 409) for status, _ in answers)
        wait_for(lambda: settled_at(emu.url, target), timeout=60, what=f"{target} live")
        # still exactly the target through the health checks (4 a second) and reaps that follow
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert settled_at(emu.url, target)
            time.sleep(0.1)
        assert not set(victims) & set(live_ids(emu.url))


def test_a_crash_looping_replica_is_restarted_with_exponential_backoff(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    with emulator(1, "--replica-app", "tests.no_such_module:app", "--startup-timeout", "1",
                  events=events) as emu:
        def backoffs() -> list[dict[str, Any]]:
            answer = call(emu.url, "GET", "/_emulator/events?since=0")[1]
            return [e for e in answer["events"] if e["event"] == "backoff"]

        wait_for(lambda: len(backoffs()) >= 3, timeout=60, what="three restarts")
        seen = backoffs()[:3]
    assert [e["attempt"] for e in seen] == [1, 2, 3]
    assert [e["delay_s"] for e in seen] == [0.5, 1.0, 2.0]
    # each restart waited at least its delay (a lower bound: a busy machine only adds to it)
    for before, after in itertools.pairwise(seen):
        assert after["ts"] - before["ts"] >= before["delay_s"]
    crashes = [e for e in read_events(events) if e["event"] == "exited"]
    assert len(crashes) >= 3 and all(e["cause"] == "crash" for e in crashes)


def test_a_strict_session_is_never_rerouted_when_its_container_dies(tmp_path: Path) -> None:
    mark = tmp_path / "arrived.txt"
    with emulator(2, "--sessioned", "--replica-app", TEST_APP) as emu:
        start = {"Modal-Authorization": "Bearer fn-token"}
        status, session = call(emu.url, "POST", "/_modal/sessions/start", headers=start)
        assert status == 200
        token = {"Modal-Authorization": f"Bearer {session['token']}"}
        status, first = call(emu.url, "POST", "/hold?ms=0", headers=token)
        assert status == 200
        home = first["container"]
        result: list[tuple[int, Any]] = []
        holder = threading.Thread(target=lambda: result.append(call(
            emu.url, "POST", f"/hold?ms=4000&mark={mark}", headers=token)))
        holder.start()
        wait_for(lambda: marks(mark) == [home], what="the request on the session's container")
        pid = next(r["pid"] for r in replicas(emu.url) if r["container_id"] == home)
        os.kill(pid, signal.SIGKILL)
        holder.join(30)
        assert result[0][0] == 502 and result[0][1]["container_id"] == home
        wait_for(lambda: home not in live_ids(emu.url), what="the crash noticed")
        status, body = call(emu.url, "POST", "/hold?ms=0", headers=token)
        assert status == 410 and body["reason"] == "container gone"
    assert marks(mark) == [home]


def established(pid: int) -> int:
    """Connections the replica process holds open (its listening socket excluded)."""
    conns = psutil.Process(pid).net_connections(kind="tcp")
    return sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED)


def test_stopping_a_replica_closes_its_idle_pooled_connections(tmp_path: Path) -> None:
    with emulator(2, "--no-replace", "--replica-app", TEST_APP) as emu:
        live = live_ids(emu.url)
        victim = live[0]
        mine = [s for s in SESSIONS if pick(s, live) == victim][:4]
        warm(emu.url, mine)  # several idle pooled connections to the victim
        pid = next(r["pid"] for r in replicas(emu.url) if r["container_id"] == victim)
        assert established(pid) >= 2
        mark = tmp_path / "arrived.txt"
        holder = threading.Thread(target=call, args=(emu.url, "POST",
                                                     f"/hold?ms=3000&mark={mark}"),
                                  kwargs={"headers": {"Modal-Session-Id": mine[0]}})
        holder.start()
        wait_for(lambda: marks(mark) == [victim], what="a request in flight on the victim")
        assert call(emu.url, "POST", f"/_emulator/replicas/{victim}/stop")[0] == 200
        # it drains its one request; the router already closed the idle ones
        wait_for(lambda: established(pid) == 1, timeout=3, what="idle connections closed")
        holder.join(30)
