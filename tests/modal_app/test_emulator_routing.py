"""Routing under load and under change: bursts, limits, late membership, the modulo policy,
the control token. Real emulator processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from modal_app.local.launch import ROOT, emulator
from modal_app.local.policy import modulo_rank
from modal_app.local.rendezvous import pick
from tests.support.emulated import TEST_APP, live_ids, wait_for
from tests.support.http import Conn, address, call

SESSIONS = [f"user-{i}" for i in range(60)]


def owner(url: str, session: str) -> str:
    status, body = call(url, "POST", "/", headers={"Modal-Session-Id": session})
    assert status == 200, body
    return str(body["CONTAINER_ID"])


def burst(url: str, path: str, n: int) -> list[tuple[int, Any]]:
    def one(_: int) -> tuple[int, Any]:
        with Conn(url, timeout=30) as conn:
            return conn.request("POST", path)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_a_burst_spreads_evenly_over_the_least_loaded() -> None:
    with emulator(3, "--replica-app", TEST_APP) as emu:
        answers = burst(emu.url, "/hold?ms=2000", 30)
    assert {status for status, _ in answers} == {200}
    counts = Counter(body["container"] for _, body in answers)
    assert len(counts) == 3 and max(counts.values()) - min(counts.values()) <= 2, counts


def test_max_concurrency_holds_under_a_burst() -> None:
    with emulator(1, "--replica-app", TEST_APP, "--max-concurrency", "3") as emu:
        answers = burst(emu.url, "/hold?ms=2000", 12)
    ok = [body for status, body in answers if status == 200]
    refused = [body for status, body in answers if status == 429]
    assert len(ok) + len(refused) == 12 and len(ok) >= 3 and refused
    assert max(body["concurrent"] for body in ok) <= 3  # what the replica itself saw


def test_the_router_learns_of_a_new_replica_only_after_the_membership_delay() -> None:
    delay = 2.0
    with emulator(3, "--no-replace", "--membership-delay-ms", str(int(delay * 1000))) as emu:
        wait_for(lambda: call(emu.url, "POST", "/")[0] == 200, what="the router to learn")
        before = live_ids(emu.url)
        mark = call(emu.url, "GET", "/_emulator/events?since=0")[1]["events"][-1]["ts"]
        assert call(emu.url, "POST", "/_emulator/scale", {"replicas": 4})[0] == 200

        def added() -> list[dict[str, Any]]:
            events = call(emu.url, "GET", f"/_emulator/events?since={mark}")[1]["events"]
            return [e for e in events if e["event"] == "added"]

        wait_for(lambda: bool(added()), what="the new replica live")
        new, learned_at = added()[0]["container_id"], added()[0]["ts"] + delay
        movers = [s for s in SESSIONS if pick(s, [*before, new]) == new]
        assert movers
        early = []
        for session in movers:
            served = owner(emu.url, session)
            if time.time() < learned_at:
                early.append(session)
                assert served == pick(session, before), "routed before the delay passed"
        assert early, "the machine was too slow to ask within the delay"
        wait_for(lambda: owner(emu.url, movers[0]) == new, what="the late move")
        assert time.time() >= learned_at
        assert all(owner(emu.url, s) == new for s in movers)


def test_the_modulo_policy_routes_by_modulo_and_moves_survivors() -> None:
    with emulator(3, "--no-replace", "--policy", "modulo") as emu:
        live = live_ids(emu.url)
        before = {s: owner(emu.url, s) for s in SESSIONS}
        assert before == {s: modulo_rank(s, live)[0] for s in SESSIONS}
        assert any(before[s] != pick(s, live) for s in SESSIONS)  # not rendezvous
        victim = live[0]
        assert call(emu.url, "POST", f"/_emulator/replicas/{victim}/kill")[0] == 200
        survivors = [c for c in live if c != victim]
        after = {s: owner(emu.url, s) for s in SESSIONS}
    assert after == {s: modulo_rank(s, survivors)[0] for s in SESSIONS}
    collateral = [s for s in SESSIONS if before[s] != victim and after[s] != before[s]]
    assert collateral  # sessions moved between two replicas that both stayed live


def test_the_control_api_needs_the_token_when_one_is_set() -> None:
    token = "t0ken-" + "x" * 20
    with emulator(2, "--control-token", token) as emu:
        assert call(emu.url, "GET", "/_emulator/replicas")[0] == 401
        bad = {"Authorization": "Bearer wrong-token-xxxxxxxxxxxx"}
        assert call(emu.url, "POST", "/_emulator/scale", {"replicas": 0}, headers=bad)[0] == 401
        good = {"Authorization": f"Bearer {token}"}
        status, rows = call(emu.url, "GET", "/_emulator/replicas", headers=good)
        assert status == 200 and len(rows) == 2
        assert call(emu.url, "POST", "/")[0] == 200  # traffic to replicas needs no token
        assert token not in "".join(emu.output)


def test_a_non_loopback_host_without_a_control_token_is_refused() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "modal_app.local", "--host", "0.0.0.0", "--port", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2
    assert "control token" in out.stderr and "Traceback" not in out.stderr


def listen_backlog(port: int) -> int:
    """The backlog of the socket listening on `port`, as `ss` reports it (Send-Q)."""
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True,
                         check=True, timeout=10).stdout.split()
    return int(out[2])


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_the_listen_backlog_is_uvicorns_by_default_and_an_option() -> None:
    with emulator(0) as emu:
        assert listen_backlog(address(emu.url)[1]) == min(2048, somaxconn())
    with emulator(0, "--backlog", "300") as emu:
        assert listen_backlog(address(emu.url)[1]) == 300


def somaxconn() -> int:
    return int(Path("/proc/sys/net/core/somaxconn").read_text())
