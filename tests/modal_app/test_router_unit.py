"""The router's decisions in process: a real `Router` on a real event loop, its clients on fake
transports, its replicas without processes (tests/support/fakes.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modal_app.local.__main__ import parse_args
from modal_app.local.auth import ProxyAuth
from modal_app.local.config import EmulatorConfig
from modal_app.local.events import EventLog
from modal_app.local.rendezvous import pick
from modal_app.local.router import Router
from modal_app.local.supervisor import LIVE, Replica, ReplicaSet
from modal_app.local.transport import Client, Request, Upstream
from tests.support.fakes import FakeTransport

TOKEN = "control-token-0123456789"


async def control_ok(request: Request) -> tuple[int, Any]:
    return 200, {"ran": request.url.decode()}


def router_with(config: EmulatorConfig, *ids: str, auth: ProxyAuth | None = None
                ) -> tuple[Router, ReplicaSet]:
    replicas = ReplicaSet(config, EventLog(None))
    for container_id in ids:
        replica = Replica(container_id, port=1)
        replicas.replicas[container_id] = replica
        replicas._set_state(replica, LIVE, "ready")
    return Router(config, replicas, control_ok, auth=auth), replicas


def client_of(router: Router) -> tuple[Client, FakeTransport]:
    client = Client(router)
    wire = FakeTransport()
    client.connection_made(wire)
    return client, wire


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def status(wire: FakeTransport) -> int:
    return int(bytes(wire.data).split(b" ", 2)[1])


def test_a_request_moved_after_a_refusal_honours_max_concurrency() -> None:
    async def scenario() -> None:
        router, _ = router_with(EmulatorConfig(max_concurrency=3), "ta-a", "ta-b")
        a, b = router.table.live
        session = next(f"s{i}" for i in range(100) if pick(f"s{i}", ["ta-a", "ta-b"]) == "ta-a")
        b.in_flight = 3  # the next in the session's order is full

        async def connect(replica: Replica) -> Upstream:
            if replica is a:
                raise ConnectionRefusedError  # the owner's listener is gone: nothing was sent
            conn = Upstream(router, replica)  # the next one would take it
            conn.connection_made(FakeTransport())
            return conn

        router.pool.connect = connect  # type: ignore[method-assign]
        client, wire = client_of(router)
        client.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nModal-Session-Id: %s\r\n"
                             b"Content-Length: 0\r\n\r\n" % session.encode())
        await settle()
        router.close()
        assert b.in_flight == 3 and a.in_flight == 0  # never leased over the limit
        assert status(wire) == 429, bytes(wire.data)
        assert a.state != LIVE  # the refusal took it out

    asyncio.run(scenario())


def test_504_when_the_replica_does_not_start_answering_in_time() -> None:
    async def scenario() -> tuple[bytes, FakeTransport, Router]:
        router, _ = router_with(EmulatorConfig(upstream_timeout_s=300), "ta-a")
        replica = router.table.live[0]
        upstream_wire = FakeTransport()

        async def connect(replica: Replica) -> Upstream:
            conn = Upstream(router, replica)
            conn.connection_made(upstream_wire)
            return conn

        router.pool.connect = connect  # type: ignore[method-assign]
        client, wire = client_of(router)
        client.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await settle()
        (conn,) = router.busy
        router.sweep()
        assert not wire.data  # 300 s have not passed
        conn.sent_at -= 301
        router.sweep()
        router.close()
        assert replica.in_flight == 0 and upstream_wire.closed  # the lease ends with it
        return bytes(wire.data), wire, router

    data, wire, _ = asyncio.run(scenario())
    assert data.startswith(b"HTTP/1.1 504 ") and b'"replica timeout"' in data
    assert not wire.aborted  # nothing of an answer had gone out: a whole 504, no cut


JSON = b"Content-Type: application/json\r\n"
SCALE = b"POST /_emulator/scale HTTP/1.1\r\n"


def control_statuses(config: EmulatorConfig, heads: dict[str, bytes],
                     auth: ProxyAuth | None = None) -> dict[str, int]:
    wires: dict[str, FakeTransport] = {}

    async def scenario() -> None:
        router, _ = router_with(config, auth=auth)
        for name, head in heads.items():
            client, wires[name] = client_of(router)
            client.data_received(head + b"Content-Length: 2\r\n\r\n{}")
        await settle()
        router.close()

    asyncio.run(scenario())
    return {name: status(wire) for name, wire in wires.items()}


def test_the_control_api_refuses_a_foreign_host_or_origin_and_non_json() -> None:
    local = SCALE + b"Host: 127.0.0.1:8000\r\n"
    assert control_statuses(EmulatorConfig(), {
        "loopback": local + JSON,
        "localhost, own origin": SCALE + b"Host: localhost:8000\r\n"
                                 b"Origin: http://localhost:8000\r\n" + JSON,
        "ipv6 loopback": SCALE + b"Host: [::1]:8000\r\n" + JSON,
        "rebound host": SCALE + b"Host: evil.example\r\n" + JSON,
        "no host": b"POST /_emulator/scale HTTP/1.0\r\n" + JSON,
        "foreign origin": local + b"Origin: http://evil.example\r\n" + JSON,
        "another local origin": local + b"Origin: http://127.0.0.1:8089\r\n" + JSON,
        "null origin": local + b"Origin: null\r\n" + JSON,
        "text/plain": local + b"Content-Type: text/plain\r\n",
        "form": local + b"Content-Type: application/x-www-form-urlencoded\r\n",
        "no content type": local,
        "GET needs none": b"GET /_emulator/replicas HTTP/1.1\r\nHost: 127.0.0.1\r\n",
    }) == {"loopback": 200, "localhost, own origin": 200, "ipv6 loopback": 200,
           "rebound host": 403, "no host": 403, "foreign origin": 403,
           "another local origin": 403, "null origin": 403, "text/plain": 415, "form": 415,
           "no content type": 415, "GET needs none": 200}


def test_the_control_api_needs_credentials_under_auth_and_its_token() -> None:
    host = SCALE + b"Host: 127.0.0.1:8000\r\n" + JSON
    creds = b"Modal-Key: wk-1\r\nModal-Secret: ws-1\r\n"
    assert control_statuses(EmulatorConfig(auth=True), {
        "none": host, "wrong": host + b"Modal-Key: wk-1\r\nModal-Secret: ws-2\r\n",
        "proxy credentials": host + creds,
    }, auth=ProxyAuth("wk-1", "ws-1")) == {"none": 401, "wrong": 401, "proxy credentials": 200}
    bearer = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
    assert control_statuses(EmulatorConfig(control_token=TOKEN), {
        "none": host, "token": host + bearer,
        "token, foreign origin": host + bearer + b"Origin: http://evil.example\r\n",
    }) == {"none": 401, "token": 200, "token, foreign origin": 403}


def test_a_non_loopback_bind_address_is_an_accepted_host() -> None:
    head = SCALE + b"Host: 192.0.2.7:8000\r\n" + JSON
    bearer = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
    config = EmulatorConfig(host="192.0.2.7", control_token=TOKEN)
    assert control_statuses(config, {"bound": head + bearer}) == {"bound": 200}


@pytest.mark.parametrize("argv", [["--replicas", "many"], ["--no-such-option"],
                                  ["--replicas", "99"], ["--policy", "nope"],
                                  ["--max-buffered-bytes", "10"]])
def test_a_bad_command_line_is_one_line_and_exit_2(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("python -m modal_app.local: error: ")
