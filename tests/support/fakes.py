"""In-process stand-ins for the emulator's byte-level tests: a transport that records what the
router writes (in the way uvicorn's tests drive their protocol with a MockTransport), a hub
that records what a client connection asks of the router, and a replica that is only a name.

    hub = FakeHub(EmulatorConfig(max_body_bytes=1000))
    client, wire = hub.connect()
    client.data_received(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    request = hub.dispatched[-1]
"""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass, field
from typing import Any, cast

from modal_app.local.config import EmulatorConfig
from modal_app.local.transport import Client, Request, Upstream

RESET = struct.pack("ii", 1, 0)


class FakeSocket:
    """What `get_extra_info("socket")` gives: records the options set on it."""

    def __init__(self) -> None:
        self.options: dict[tuple[int, int], Any] = {}

    def setsockopt(self, level: int, name: int, value: Any) -> None:
        self.options[(level, name)] = value


class FakeTransport(asyncio.Transport):
    """Records writes, pauses, a clean close or an abort (and whether it was a reset)."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.writes: list[bytes] = []  # each buffer handed over, as it was handed over
        self.reading = True
        self.closed = False
        self.aborted = False
        self.sock = FakeSocket()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(cast(bytes, data))
        self.data += data

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.sock if name == "socket" else default

    @property
    def reset(self) -> bool:
        """The connection ended with an RST: aborted with SO_LINGER (on, 0 s)."""
        return self.aborted and self.sock.options.get(
            (socket.SOL_SOCKET, socket.SO_LINGER)) == RESET

    def take(self) -> bytes:
        """What was written since the last take."""
        out = bytes(self.data)
        self.data.clear()
        return out


class FakeLoop:
    """The one loop method the connections use: a clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now


@dataclass(eq=False)
class FakeReplica:
    container_id: str = "ta-fake"
    in_flight: int = 0


@dataclass(eq=False)
class FakeHub:
    """The router as a client connection sees it, recording every call."""

    config: EmulatorConfig = field(default_factory=EmulatorConfig)
    loop: Any = field(default_factory=FakeLoop)
    clients: set[Client] = field(default_factory=set)
    busy: set[Upstream] = field(default_factory=set)
    held_bytes: int = 0
    dispatched: list[Request] = field(default_factory=list)
    finished: list[Request] = field(default_factory=list)
    released: list[Upstream] = field(default_factory=list)
    stalls: list[Upstream] = field(default_factory=list)

    def dispatch(self, client: Client, request: Request) -> None:
        self.dispatched.append(request)

    def finish(self, request: Request) -> None:
        self.finished.append(request)

    def release(self, conn: Upstream) -> None:
        self.released.append(conn)

    def stalled(self, conn: Upstream) -> None:
        self.stalls.append(conn)
        conn.fail("stalled")

    def connect(self) -> tuple[Client, FakeTransport]:
        """A client connection on a fake transport."""
        client = Client(self)
        wire = FakeTransport()
        client.connection_made(wire)
        return client, wire

    def upstream(self, client: Client, request: Request) -> tuple[Upstream, FakeTransport]:
        """A connection to a fake replica that carries `request` for `client`."""
        conn = Upstream(self, FakeReplica())  # type: ignore[arg-type]
        wire = FakeTransport()
        conn.connection_made(wire)
        assert conn.send(client, request)
        return conn, wire
