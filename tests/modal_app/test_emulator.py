"""The emulator end to end: real replica processes behind the real router."""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from modal_app.local.launch import Emulator, emulator
from modal_app.local.rendezvous import pick, rank
from tests.support.emulated import TEST_APP, live_ids, read_events, replicas, wait_for
from tests.support.http import Conn, call

SESSIONS = [f"user-{i}" for i in range(60)]


@pytest.fixture(scope="module")
def shared() -> Iterator[Emulator]:
    """3 replicas for the tests that change nothing (the others get their own, `emu`)."""
    with emulator(3, "--no-replace") as e:
        yield e


def owners(url: str, sessions: list[str]) -> dict[str, str]:
    with Conn(url) as conn:
        return {s: conn.post(headers={"Modal-Session-Id": s})[1]["CONTAINER_ID"]
                for s in sessions}


def test_a_session_sees_one_container_on_rendezvous_owner(shared: Emulator) -> None:
    live = live_ids(shared.url)
    assert len(live) == 3
    with Conn(shared.url) as conn:
        seen = {conn.post(headers={"Modal-Session-Id": "alice"})[1]["CONTAINER_ID"]
                for _ in range(30)}
        # header names are case-insensitive
        seen |= {conn.post(headers={"MODAL-SESSION-ID": "alice"})[1]["CONTAINER_ID"]
                 for _ in range(10)}
    assert seen == {pick("alice", live)}
    spread = owners(shared.url, SESSIONS)
    assert spread == {s: pick(s, live) for s in SESSIONS}
    assert len(set(spread.values())) == 3


def test_no_header_on_one_keepalive_connection_sees_several(shared: Emulator) -> None:
    with Conn(shared.url) as conn:
        seen = {conn.post()[1]["CONTAINER_ID"] for _ in range(60)}
    assert len(seen) >= 2


def test_no_live_replica_is_503_at_once(tmp_path: Path) -> None:
    with emulator(0) as emu, Conn(emu.url) as conn:
        status, body = conn.post(headers={"Modal-Session-Id": "alice"})
        assert status == 503 and body["error"] == "no live replica"
        assert conn.post()[0] == 503  # the connection stays usable


def test_scale_to_zero_then_back(emu: Emulator) -> None:
    assert call(emu.url, "POST", "/_emulator/scale", {"replicas": 0})[0] == 200
    assert call(emu.url, "POST", "/")[0] == 503
    assert call(emu.url, "POST", "/_emulator/scale", {"replicas": 2})[0] == 200
    wait_for(lambda: len(live_ids(emu.url)) == 2, what="2 live replicas")
    assert call(emu.url, "POST", "/")[0] == 200


def test_killing_a_replica_moves_only_its_sessions(emu: Emulator, tmp_path: Path) -> None:
    before = owners(emu.url, SESSIONS)
    victim = before["user-0"]
    status, _ = call(emu.url, "POST", f"/_emulator/replicas/{victim}/kill")
    assert status == 200
    after = owners(emu.url, SESSIONS)
    moved = {s for s in SESSIONS if before[s] != after[s]}
    assert moved == {s for s in SESSIONS if before[s] == victim}
    survivors = [c for c in set(before.values()) if c != victim]
    assert all(after[s] == pick(s, survivors) for s in moved)
    removed = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "removed"]
    assert removed[-1]["container_id"] == victim and removed[-1]["cause"] == "kill"
    assert sorted(removed[-1]["live"]) == sorted(survivors)


def test_a_killed_replica_is_replaced_with_a_new_id(tmp_path: Path) -> None:
    with emulator(2, "--replica-app", TEST_APP, events=tmp_path / "ev.jsonl") as emu:
        first = set(live_ids(emu.url))
        victim = sorted(first)[0]
        assert call(emu.url, "POST", f"/_emulator/replicas/{victim}/kill")[0] == 200
        wait_for(lambda: len(live_ids(emu.url)) == 2, what="a replacement")
        now = set(live_ids(emu.url))
        assert victim not in now and len(now - first) == 1
        events = read_events(tmp_path / "ev.jsonl")
        assert [e["event"] for e in events if e["event"] != "control"][-2:] == [
            "removed", "added"]


def test_stop_drains_in_flight_requests(emu: Emulator) -> None:
    before = owners(emu.url, SESSIONS)
    victim = before["user-0"]
    result: list[tuple[int, object]] = []
    slow = threading.Thread(target=lambda: result.append(call(
        emu.url, "POST", "/", {"work_ms": 1500}, headers={"Modal-Session-Id": "user-0"})))
    slow.start()
    wait_for(lambda: any(r["in_flight"] for r in replicas(emu.url)), what="in-flight request")
    assert call(emu.url, "POST", f"/_emulator/replicas/{victim}/stop")[0] == 200
    assert victim not in live_ids(emu.url)
    assert owners(emu.url, ["user-0"])["user-0"] != victim
    slow.join(15)
    assert result == [(200, {"CONTAINER_ID": victim})]
    wait_for(lambda: victim not in {r["container_id"] for r in replicas(emu.url)},
             what="the stopped replica to exit")


def test_a_replica_killed_mid_request_gives_502(emu: Emulator) -> None:
    victim = owners(emu.url, ["user-0"])["user-0"]
    result: list[tuple[int, object]] = []
    slow = threading.Thread(target=lambda: result.append(call(
        emu.url, "POST", "/", {"work_ms": 5000}, headers={"Modal-Session-Id": "user-0"})))
    slow.start()
    wait_for(lambda: any(r["in_flight"] for r in replicas(emu.url)), what="in-flight request")
    assert call(emu.url, "POST", f"/_emulator/replicas/{victim}/kill")[0] == 200
    slow.join(15)
    assert result and result[0][0] == 502


def test_a_refused_replica_leaves_and_the_request_goes_to_the_next_ranked(
        tmp_path: Path) -> None:
    events = tmp_path / "ev.jsonl"
    with emulator(3, "--no-replace", "--health-interval", "60", events=events) as emu:
        info = {r["container_id"]: r for r in replicas(emu.url)}
        live = list(info)
        session = next(s for s in SESSIONS if pick(s, live) == live[0])
        victim = info[live[0]]
        holder = threading.Thread(target=call, args=(emu.url, "POST", "/", {"work_ms": 2000}),
                                  kwargs={"headers": {"Modal-Session-Id": session}})
        holder.start()
        wait_for(lambda: any(r["in_flight"] for r in replicas(emu.url)), what="in flight")
        # uvicorn's graceful shutdown: it stops listening, but lives on while a request runs
        os.kill(victim["pid"], signal.SIGTERM)

        def refuses() -> bool:
            try:
                socket.create_connection(("127.0.0.1", victim["port"]), timeout=1).close()
            except ConnectionRefusedError:
                return True
            return False

        wait_for(refuses, what="the replica's port to refuse")
        status, body = call(emu.url, "POST", "/", headers={"Modal-Session-Id": session})
        assert status == 200 and body["CONTAINER_ID"] == rank(session, live)[1]
        holder.join(10)
        causes = [e["cause"] for e in read_events(events) if e["event"] == "removed"]
        assert causes[0] == "refused"


def test_control_api_errors(shared: Emulator) -> None:
    assert call(shared.url, "GET", "/_emulator/nope")[0] == 404
    assert call(shared.url, "GET", "/_emulator/scale")[0] == 405
    assert call(shared.url, "POST", "/_emulator/scale", {"replicas": -1})[0] == 422
    assert call(shared.url, "POST", "/_emulator/scale", {"replicas": "3"})[0] == 422
    with Conn(shared.url) as conn:
        assert conn.request("POST", "/_emulator/scale", raw=b"{nope")[0] == 400
    assert call(shared.url, "POST", "/_emulator/replicas/ta-nope/kill")[0] == 404
    assert len(live_ids(shared.url)) == 3


def test_event_log_records_every_change_with_the_live_set(tmp_path: Path) -> None:
    path = tmp_path / "ev.jsonl"
    with emulator(2, "--no-replace", "--replica-app", TEST_APP, events=path) as emu:
        call(emu.url, "POST", "/_emulator/scale", {"replicas": 3})
        wait_for(lambda: len(live_ids(emu.url)) == 3, what="3 live")
        victim = live_ids(emu.url)[0]
        call(emu.url, "POST", f"/_emulator/replicas/{victim}/stop")
    membership = [e for e in read_events(path) if e["event"] in ("added", "removed")]
    live: set[str] = set()
    for e in membership:
        live = live | {e["container_id"]} if e["event"] == "added" else live - {
            e["container_id"]}
        assert set(e["live"]) == live and e["ts"] > 0
    assert [e["event"] for e in membership][:4] == ["added", "added", "added", "removed"]
    assert membership[-1]["live"] == []  # shutdown empties it


def children_of(emu: Emulator) -> list[psutil.Process]:
    return [psutil.Process(r["pid"]) for r in replicas(emu.url)]


def gone(procs: list[psutil.Process]) -> bool:
    return all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in procs)


def test_no_process_is_left_behind_on_sigterm_even_after_a_crash() -> None:
    with emulator(2, "--no-replace", "--replica-app", TEST_APP) as emu:
        procs = children_of(emu)
        procs[0].kill()  # a replica crashes
        wait_for(lambda: len(live_ids(emu.url)) == 1, what="crash noticed")
        emu.process.send_signal(signal.SIGTERM)
        assert emu.process.wait(20) == 0
    wait_for(lambda: gone(procs), what="children to exit")


def test_no_process_is_left_behind_on_ctrl_c() -> None:
    with emulator(2, "--replica-app", TEST_APP) as emu:
        procs = children_of(emu)
        emu.process.send_signal(signal.SIGINT)
        assert emu.process.wait(20) == 0
    wait_for(lambda: gone(procs), what="children to exit")


def test_replicas_die_with_a_sigkilled_emulator() -> None:
    with emulator(2, "--replica-app", TEST_APP) as emu:
        procs = children_of(emu)
        emu.process.kill()
        emu.process.wait(10)
    wait_for(lambda: gone(procs), what="orphans to exit")


def test_events_since_give_the_live_set_then_and_the_changes_after(emu: Emulator) -> None:
    start = call(emu.url, "GET", "/_emulator/events?since=0")[1]
    assert start["live"] == [] and [e["event"] for e in start["events"]][:3] == ["added"] * 3
    mark = start["events"][-1]["ts"]
    victim = live_ids(emu.url)[0]
    call(emu.url, "POST", f"/_emulator/replicas/{victim}/kill")
    later = call(emu.url, "GET", f"/_emulator/events?since={mark}")[1]
    assert sorted(later["live"]) == sorted(start["events"][-1]["live"])
    assert [(e["event"], e["container_id"]) for e in later["events"]] == [("removed", victim)]
    assert call(emu.url, "GET", "/_emulator/events?since=soon")[0] == 422
