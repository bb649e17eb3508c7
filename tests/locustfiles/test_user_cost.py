"""What makes StickyUser cheap per request keeps it exact: the POST built once is the one Locust
builds from `json=` (byte for byte, header order apart), a new connection every K requests
looks the host up once per TTL, and live metrics count nothing unless they are served."""

from __future__ import annotations

import argparse
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gevent
import pytest
import trustme
from geventhttpclient.url import URL
from locust.contrib.fasthttp import FastHttpSession, insecure_ssl_context_factory
from locust.env import Environment
from locust.event import EventHook

from locustfiles import dnscache, users
from locustfiles.livemetrics import LiveMetrics
from locustfiles.plain import PlainUser
from locustfiles.recorder import Recorder
from locustfiles.users import RENEW_MIN_S, StickyUser, bad_option, post_request
from tests.support.http import free_port


class Capture:
    """A real HTTP/1.1 server on 127.0.0.1 (an OS thread, blocking sockets) that keeps every
    request's raw bytes and counts the connections it accepted; with `tls` (a server context)
    it speaks https."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.tls = tls
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests: list[bytes] = []
        self.connections = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed: the test is over
            self.connections += 1
            threading.Thread(target=self.talk, args=(conn,), daemon=True).start()

    def talk(self, conn: socket.socket) -> None:
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError):
                conn.close()
                return
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, rest = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                data = rest[length:]
                body = b'{"CONTAINER_ID":"ta-1"}'
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


@contextmanager
def capture(tls: ssl.SSLContext | None = None) -> Iterator[Capture]:
    server = Capture(tls)
    server.thread.start()
    try:
        yield server
    finally:
        server.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        server.listener.close()
        server.thread.join(timeout=5)


def parts(raw: bytes) -> tuple[bytes, frozenset[bytes], bytes]:
    """(request line, header lines as a set, body) of a raw request."""
    head, _, body = raw.partition(b"\r\n\r\n")
    line, *headers = head.split(b"\r\n")
    return line, frozenset(headers), body


@pytest.mark.parametrize("body", [{}, {"work_ms": 5.0, "cache_key": "c0ffee"}])
def test_the_post_built_once_is_the_one_locust_builds_from_json(body: dict[str, Any]) -> None:
    headers = {"Modal-Session-Id": "s-1", "Modal-Key": "wk-k"}
    with capture() as server:
        session = FastHttpSession(server.url, EventHook(), None)
        session.post("/", json=body, headers=headers)
        payload, sent = post_request(body, headers)
        session.post("/", data=payload, headers=sent)
        session.request("POST", "/", data=payload, headers=sent)  # as StickyUser sends it
        session.client.close()
    assert len(server.requests) == 3
    assert parts(server.requests[0]) == parts(server.requests[1]) == parts(server.requests[2])
    assert headers == {"Modal-Session-Id": "s-1", "Modal-Key": "wk-k"}  # not changed


def test_the_lean_bare_user_sends_what_the_usual_one_sends() -> None:
    """locustfiles/plain.py --lean (the benchmark's lean baseline): the same request bytes,
    only built once."""
    sent: list[tuple[bytes, frozenset[bytes], bytes]] = []
    with capture() as server:
        for lean in (False, True):
            bound = type("PlainUser", (PlainUser,), {"host": server.url})
            parsed = argparse.Namespace(stream_tokens=0, lean=lean)
            user = bound(Environment(user_classes=[bound], host=server.url,
                                     parsed_options=parsed))
            user.on_start()
            assert (user.lean is not None) == lean  # the lean user's POST is built once
            user.whoami()
            user.whoami()
            user.client.client.close()
            line, headers, body = parts(server.requests[-1])
            session = b"Modal-Session-Id: " + user.headers["Modal-Session-Id"].encode()
            assert session in headers
            sent.append((line, headers - {session}, body))
    assert len(server.requests) == 4
    assert sent[0] == sent[1]


def test_post_request_keeps_the_callers_content_type_and_accept() -> None:
    payload, sent = post_request({"a": 1}, {"content-type": "application/x", "ACCEPT": "*/*"})
    assert payload == '{"a": 1}'
    assert sent == {"content-type": "application/x", "ACCEPT": "*/*"}


def started(url: str, renew_min_s: float = 0.0, **options: Any) -> StickyUser:
    """A StickyUser started on `url` with `options`; renewals not floored in time unless
    asked (`renew_min_s`): these tests send faster than any floor."""
    bound = type("StickyUser", (StickyUser,), {"host": url, "renew_min_s": renew_min_s})
    parsed = argparse.Namespace(**{"work_ms": 0.0, "stream_tokens": 0, **options})
    user = bound(Environment(user_classes=[bound], host=url, parsed_options=parsed))
    user.on_start()
    return user


def test_a_user_opens_a_new_connection_every_k_requests_and_looks_up_once() -> None:
    hub = gevent.get_hub()
    original = hub.resolver
    try:
        cache = dnscache.install()
        assert dnscache.install() is cache and hub.resolver is cache  # once
        with capture() as server:
            host = server.url.replace("127.0.0.1", "localhost")  # a name, looked up
            user = started(host, reconnect_every=3)
            for _ in range(7):
                user.whoami()
            user.client.client.close()
        # the first renewal after r in [1, 3] requests, then every 3: whatever r, 7 requests
        # use 3 connections
        assert server.connections == 3 and len(server.requests) == 7
        assert cache.lookups == 1
        line, headers, body = parts(server.requests[-1])
        assert line == b"POST / HTTP/1.1" and body == b"{}"
        assert b"Modal-Session-Id: " + user.session_id.encode() in headers
    finally:
        hub.resolver = original


def test_users_renew_their_first_connection_out_of_step_within_k_requests() -> None:
    """K = 50: after half of K requests about half the users have renewed (a short run still
    shows a target that pins by connection), and after K + 1 every one has, exactly once."""
    opened_by_half: list[int] = []
    with capture() as server:
        for _ in range(20):
            user = started(server.url, reconnect_every=50)
            before = server.connections
            for _ in range(25):
                user.whoami()
            opened_by_half.append(server.connections - before)
            for _ in range(26):
                user.whoami()
            user.client.client.close()
            assert server.connections - before == 2  # the first renewal came by request 50
    assert set(opened_by_half) == {1, 2}  # some renewed in the first 25 requests, some not


def test_a_renewal_over_https_is_a_new_connection_not_a_new_tls_context(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each new client would make a new TLS context, loading the trusted certificates again
    (about 20 ms of CPU here, against about 30 us for the rest): users keep one."""
    made: list[ssl.SSLContext] = []

    def factory(**kwargs: Any) -> ssl.SSLContext:  # Locust's default, counted
        made.append(insecure_ssl_context_factory(**kwargs))
        return made[-1]

    monkeypatch.setattr(users, "insecure_ssl_context_factory", factory)
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    with capture(tls=server_context) as server:
        user = started(server.url, reconnect_every=1)
        for _ in range(4):
            user.whoami()
        other = started(server.url, reconnect_every=0)  # another user of the class
        other.whoami()
        other.client.client.close()
    assert server.connections == 5 and len(server.requests) == 5  # TLS each time
    assert len(made) == 1


def test_a_factory_method_of_a_user_class_makes_one_context_for_all_its_users() -> None:
    """A user class's own factory (a method: bound anew to each user) is kept too, once for
    the class: users that come and go leave no context each behind."""
    made: list[ssl.SSLContext] = []

    url = "https://sticky.invalid"

    class Own(StickyUser):
        host = url

        def ssl_context_factory(self, **kwargs: Any) -> ssl.SSLContext:
            made.append(insecure_ssl_context_factory(**kwargs))
            return made[-1]

    parsed = argparse.Namespace(work_ms=0.0, stream_tokens=0)
    for _ in range(3):
        user = Own(Environment(user_classes=[Own], host=url, parsed_options=parsed))
        for _ in range(2):  # a client, then the next one after a renewal
            user.client.client.clientpool.get_client(URL(url + "/"))
            user.client.client.close()
    assert len(made) == 1


def test_a_fast_user_renews_at_most_once_per_floor() -> None:
    """K = 3 at the shipped floor (RENEW_MIN_S): a user that sends K requests in far less
    than the floor renews once (its first renewal, within K), then not again until the floor
    has passed."""
    with capture() as server:
        user = started(server.url, renew_min_s=RENEW_MIN_S, reconnect_every=3)
        for _ in range(4):  # the first renewal by the 3rd, whatever the random start
            user.whoami()
        assert server.connections == 2
        user._renewed = time.monotonic()  # as if it had just renewed: the floor holds
        for _ in range(9):
            user.whoami()
        assert server.connections == 2
        user._renewed -= RENEW_MIN_S  # the floor later: the count was reached long ago
        user.whoami()  # renews after this one
        user.whoami()
        user.client.client.close()
    assert server.connections == 3 and len(server.requests) == 15


def test_the_floor_is_an_option() -> None:
    """--reconnect-min-seconds sets the floor (a renewal every 3 requests with 0; none again
    within a long floor); the web form's bad value is refused in one line."""
    with capture() as server:
        user = started(server.url, renew_min_s=RENEW_MIN_S, reconnect_every=3,
                       reconnect_min_seconds=0.0)
        for _ in range(12):
            user.whoami()
        user.client.client.close()
        fast = server.connections
        assert fast in (4, 5)  # a renewal every 3 (the first within 3) closes 3 or 4 of them
        slow = started(server.url, reconnect_every=1, reconnect_min_seconds=3600.0)
        for _ in range(5):
            slow.whoami()
        slow.client.client.close()
    assert server.connections - fast == 2  # the first renewal, then the floor holds
    assert slow.renew_min_s == 3600.0
    assert bad_option(argparse.Namespace(reconnect_min_seconds="soon")) == (
        "--reconnect-min-seconds must be >= 0, not 'soon'")


def test_headers_and_body_changed_after_the_start_are_what_is_sent() -> None:
    """A subclass may change them (tests/locustfiles/liar.py replaces its headers): the
    request built once is built again, whether they were replaced or changed in place."""
    with capture() as server:
        user = started(server.url, reconnect_every=0)
        user.whoami()
        user.headers = {}
        user.whoami()
        user.headers["X-Extra"] = "1"
        user.body["work_ms"] = 2.0
        user.whoami()
        user.client.client.close()
    sent = [parts(raw) for raw in server.requests]
    assert any(h.startswith(b"Modal-Session-Id: ") for h in sent[0][1])
    assert not any(h.startswith(b"Modal-Session-Id: ") for h in sent[1][1])
    assert b"X-Extra: 1" in sent[2][1] and sent[2][2] == b'{"work_ms": 2.0}'
    assert user.context()["affinity"] == "session"  # the context changes by update_context()


def test_reconnect_every_0_keeps_one_connection() -> None:
    with capture() as server:
        user = started(server.url, reconnect_every=0)
        for _ in range(5):
            user.whoami()
        user.client.client.close()
    assert server.connections == 1 and len(server.requests) == 5


class Lookups:
    """The wrapped resolver of the cache tests: counts, and fails when told to."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    def getaddrinfo(self, *args: Any) -> list[Any]:
        self.calls += 1
        if self.fail:
            raise OSError("no such host")
        return [(2, 1, 6, "", (f"10.0.0.{self.calls}", args[1]))]

    def close(self) -> str:
        return "closed"


def test_lookups_are_kept_for_the_ttl_and_failures_never() -> None:
    now = [0.0]
    inner = Lookups()
    cached = dnscache.CachingResolver(inner, ttl_s=30.0, clock=lambda: now[0])
    first = cached.getaddrinfo("example.test", 80, 0, 1, 6, 0)
    first.append("changed by a caller")
    assert cached.getaddrinfo("example.test", 80, 0, 1, 6, 0) == first[:1]
    assert inner.calls == 1
    assert cached.getaddrinfo("example.test", 443, 0, 1, 6, 0)[0][4] == ("10.0.0.2", 443)
    now[0] = 30.5  # past the TTL: asked again, the new answer kept
    assert cached.getaddrinfo("example.test", 80, 0, 1, 6, 0)[0][4][0] == "10.0.0.3"
    inner.fail = True
    now[0] = 61.0
    for _ in range(2):  # a failure is not kept: each connection asks again
        with pytest.raises(OSError):
            cached.getaddrinfo("example.test", 80, 0, 1, 6, 0)
    assert inner.calls == 5
    assert cached.close() == "closed"  # the rest is the wrapped resolver's


def test_the_cache_is_bounded() -> None:
    cached = dnscache.CachingResolver(Lookups(), limit=4)
    for port in range(10):
        cached.getaddrinfo("h", port)
    assert len(cached.known) <= 4


def test_live_metrics_count_only_while_served() -> None:
    recorder, metrics = Recorder(), LiveMetrics()
    metrics.recorder = recorder
    metrics.reset()  # a test start without --metrics-port
    assert recorder.metrics is None
    metrics.serve(free_port())
    try:
        assert recorder.metrics is metrics.counts
        metrics.reset()
        assert recorder.metrics is metrics.counts  # a new test's counts
    finally:
        metrics.stop()
