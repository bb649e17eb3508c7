"""The transport byte by byte, in process: a client connection and an upstream connection on
fake transports (tests/support/fakes.py), no sockets, no replica processes."""

from __future__ import annotations

from modal_app.local.config import EmulatorConfig
from tests.support.fakes import FakeHub

MIB = 1 << 20

GET = b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n"


def test_a_chunked_answer_cut_by_a_close_is_not_complete() -> None:
    """Connection: close on a chunked answer does not make it close-delimited."""
    hub = FakeHub()
    client, wire = hub.connect()
    client.data_received(GET)
    conn, _ = hub.upstream(client, hub.dispatched[0])
    conn.data_received(CHUNKED_HEAD + b"connection: close\r\n\r\n5\r\nhello\r\n")
    conn.connection_lost(None)  # the replica died: no terminal chunk
    assert b"hello" in wire.data
    assert not wire.data.endswith(b"0\r\n\r\n")  # never dressed up as complete
    assert wire.reset


def test_answers_complete_by_their_own_framing() -> None:
    hub = FakeHub()
    client, wire = hub.connect()
    client.data_received(GET + GET)
    conn, _ = hub.upstream(client, hub.dispatched[0])
    conn.data_received(CHUNKED_HEAD + b"connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    conn.connection_lost(None)
    assert wire.take().endswith(b"5\r\nhello\r\n0\r\n\r\n") and not wire.closed
    # neither Content-Length nor chunked: the replica's close ends the body
    conn, _ = hub.upstream(client, hub.dispatched[1])
    conn.data_received(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
    conn.connection_lost(None)
    assert wire.take().endswith(b"9\r\nall of it\r\n0\r\n\r\n") and not wire.aborted
    # fewer bytes than its Content-Length: cut
    client.data_received(GET)
    conn, _ = hub.upstream(client, hub.dispatched[2])
    conn.data_received(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")
    conn.connection_lost(None)
    assert wire.reset


def test_a_cut_resets_an_http10_clients_close_delimited_stream() -> None:
    hub = FakeHub()
    client, wire = hub.connect()
    client.data_received(b"GET /stream HTTP/1.0\r\n\r\n")
    conn, _ = hub.upstream(client, hub.dispatched[0])
    conn.data_received(CHUNKED_HEAD + b"\r\n5\r\nhello\r\n")
    assert b"transfer-encoding" not in wire.data and wire.data.endswith(b"hello")
    conn.connection_lost(ConnectionResetError())
    assert wire.reset  # a clean close would read as the end of the body


def test_100_continue_waits_for_its_request_to_head_the_pipeline() -> None:
    hub = FakeHub()
    client, wire = hub.connect()
    client.data_received(GET)
    conn, _ = hub.upstream(client, hub.dispatched[0])
    conn.data_received(CHUNKED_HEAD + b"\r\n5\r\nfirst\r\n")
    client.data_received(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                         b"Expect: 100-continue\r\n\r\n")
    conn.data_received(b"6\r\nsecond\r\n")
    assert b"100 Continue" not in wire.data  # never between the chunks of a running answer
    conn.data_received(b"0\r\n\r\n")
    assert wire.data.endswith(b"6\r\nsecond\r\n0\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n")
    client.data_received(b"{}")
    assert hub.dispatched[1].body == b"{}"


def test_100_continue_at_the_head_is_answered_at_once_and_only_once() -> None:
    hub = FakeHub()
    client, wire = hub.connect()
    client.data_received(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                         b"Expect: 100-continue\r\n\r\n")
    assert wire.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
    client.data_received(b"{}")
    assert len(hub.dispatched) == 1 and b"expect" not in hub.dispatched[0].head.lower()


def test_an_upgrade_gets_501_and_is_never_dispatched() -> None:
    for request in (
            b"POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Content-Length: 2\r\n\r\n{}",
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n"
            b"Upgrade: websocket\r\n\r\n",
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"):
        hub = FakeHub()
        client, wire = hub.connect()
        client.data_received(request)
        assert hub.dispatched == [], request
        assert wire.data.startswith(b"HTTP/1.1 501 ") and wire.closed


def test_pipelined_bodies_stop_the_reading_at_the_connections_bound() -> None:
    hub = FakeHub(EmulatorConfig(max_body_bytes=1000))
    client, wire = hub.connect()
    post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 800\r\n\r\n" + b"a" * 800
    client.data_received(GET + post)  # one slow answer, one body queued behind it
    assert wire.reading and hub.held_bytes == 800
    client.data_received(post)  # two bodies queued: over max_body_bytes
    assert not wire.reading and hub.held_bytes == 1600
    client.respond_local(200, {})  # the slow answer ends: the queue moves
    assert wire.reading  # one body in flight, one queued: under the bound again
    client.respond_local(200, {})
    client.respond_local(200, {})
    assert hub.held_bytes == 0


def test_all_connections_together_hold_at_most_the_total_bound() -> None:
    hub = FakeHub(EmulatorConfig(max_body_bytes=1000, max_buffered_bytes=2000))
    post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n" + b"a" * 900
    busy = []
    for _ in range(2):  # each: a slow answer and one body queued behind it
        client, wire = hub.connect()
        client.data_received(GET + post)
        busy.append((client, wire))
    assert hub.held_bytes == 1800 and all(w.reading for _, w in busy)
    client, wire = busy[0]
    client.data_received(post[:len(post) - 600])  # a third body takes the total over: wait
    assert not wire.reading and hub.held_bytes == 2100
    head, head_wire = hub.connect()  # nothing before it to wait for: 503 at once
    head.data_received(post)
    assert head_wire.data.startswith(b"HTTP/1.1 503 ") and head_wire.closed
    assert hub.held_bytes == 2100
    for c, _ in busy:
        c.close()
    assert hub.held_bytes == 0


def test_a_large_body_reaches_the_replica_without_a_copy() -> None:
    hub = FakeHub()
    client, _ = hub.connect()
    body = b"b" * MIB  # over transport.SMALL_BODY
    client.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                         % len(body))
    client.data_received(body)  # one piece: the request keeps that very object
    request = hub.dispatched[0]
    assert request.body == body
    _, upstream_wire = hub.upstream(client, request)
    assert upstream_wire.writes[-1] is request.body
    assert upstream_wire.data.endswith(b"content-length: %d\r\n\r\n" % len(body) + body)


def test_a_replica_silent_mid_answer_is_cut_after_the_idle_timeout() -> None:
    hub = FakeHub(EmulatorConfig(response_idle_timeout_s=5))
    client, wire = hub.connect()
    client.data_received(GET)
    conn, _ = hub.upstream(client, hub.dispatched[0])
    conn.data_received(CHUNKED_HEAD + b"\r\n5\r\nhello\r\n")
    for _ in range(4):  # bytes keep coming: never idle
        hub.loop.now += 4
        client.check_timeouts(hub.loop.now)
        conn.data_received(b"1\r\n.\r\n")
    assert not hub.stalls
    client.writing_paused = True  # a client that does not read: not the replica's silence
    for _ in range(3):
        hub.loop.now += 4
        client.check_timeouts(hub.loop.now)
    assert not hub.stalls
    client.writing_paused = False
    for _ in range(3):
        hub.loop.now += 2
        client.check_timeouts(hub.loop.now)
    assert hub.stalls == [conn] and wire.reset


def test_a_client_that_does_not_read_is_no_longer_read() -> None:
    hub = FakeHub(EmulatorConfig(max_pipeline=16))
    client, wire = hub.connect()
    client.data_received(GET)
    client.pause_writing()  # the client reads none of its answers
    client.respond_local(503, {"error": "no live replica"})
    client.data_received(GET * 20)  # what the kernel had already received
    assert len(hub.dispatched) == 1  # no answer starts while it does not read
    assert not wire.reading and len(client.queue) == 20
    client.resume_writing()
    for _ in range(5):
        client.respond_local(503, {"error": "no live replica"})
    assert wire.reading and len(client.queue) == 14 and len(hub.dispatched) == 7


def test_the_header_clock_stops_while_the_router_does_not_read() -> None:
    hub = FakeHub(EmulatorConfig(max_pipeline=2, header_timeout_s=1))
    client, wire = hub.connect()
    # one answer running, a full queue (reading pauses), then half of one more request
    client.data_received(GET * 3 + b"GET /half HTTP/1.1\r\nHost: x\r\n")
    assert not wire.reading
    hub.loop.now += 5  # longer than the header timeout, while the router does not read
    client.check_timeouts(hub.loop.now)
    assert not wire.closed
    client.respond_local(200, {})
    assert wire.reading  # the clock starts again from here
    hub.loop.now += 0.5
    client.check_timeouts(hub.loop.now)
    assert not wire.closed
    hub.loop.now += 1
    client.check_timeouts(hub.loop.now)
    assert wire.closed  # 408 (not written: an answer is still due before it)


def test_408_when_the_headers_do_not_arrive_in_time() -> None:
    hub = FakeHub(EmulatorConfig(header_timeout_s=10))
    client, wire = hub.connect()
    client.data_received(b"GET /slow HTTP/1.1\r\nHost: x\r\n")
    hub.loop.now += 9
    client.check_timeouts(hub.loop.now)
    assert not wire.closed
    hub.loop.now += 2
    client.check_timeouts(hub.loop.now)
    assert wire.data.startswith(b"HTTP/1.1 408 ") and b"not received in time" in wire.data
    assert wire.closed and not hub.dispatched


def test_an_idle_keepalive_connection_is_closed_after_the_timeout() -> None:
    hub = FakeHub(EmulatorConfig(keepalive_timeout_s=75))
    client, wire = hub.connect()
    client.data_received(GET)
    hub.loop.now += 100  # an answer that takes long is not idleness
    client.check_timeouts(hub.loop.now)
    client.respond_local(200, {})
    assert not wire.closed
    hub.loop.now += 74
    client.check_timeouts(hub.loop.now)
    assert not wire.closed
    hub.loop.now += 2
    client.check_timeouts(hub.loop.now)
    assert wire.closed and not wire.aborted  # a clean close: nothing was cut


def test_refused_and_abandoned_bodies_leave_no_count_behind() -> None:
    hub = FakeHub(EmulatorConfig(max_body_bytes=1000))
    client, wire = hub.connect()  # a chunked body over the limit: 413 in the middle of it
    client.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"258\r\n" + b"a" * 600 + b"\r\n258\r\n" + b"a" * 600 + b"\r\n")
    assert wire.data.startswith(b"HTTP/1.1 413 ") and wire.closed
    client, wire = hub.connect()  # a client gone with a body in flight, one queued, one half
    post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n" + b"a" * 300
    client.data_received(post + post + post[:-100])
    assert hub.held_bytes == 800
    client.connection_lost(None)
    assert hub.held_bytes == 0
