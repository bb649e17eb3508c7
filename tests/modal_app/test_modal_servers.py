"""The GA Modal Servers features in the emulator: proxy auth, max_concurrency, strict sessions."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from modal_app.local.launch import ROOT, Emulator, emulator
from tests.support.emulated import live_ids, replicas, wait_for
from tests.support.http import Conn, call

KEY, SECRET = "wk-test-key", "ws-test-secret"
FUNCTION = {"Modal-Authorization": "Bearer fn-token"}


@pytest.fixture()
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODAL_PROXY_KEY", KEY)
    monkeypatch.setenv("MODAL_PROXY_SECRET", SECRET)


def test_auth_refuses_missing_and_wrong_credentials(creds: None) -> None:
    with emulator(1, "--auth") as emu:
        assert call(emu.url, "POST", "/") == (
            401, {"error": "missing credentials for proxy authorization"})
        wrong = {"Modal-Key": KEY, "Modal-Secret": "ws-wrong"}
        assert call(emu.url, "POST", "/", headers=wrong) == (
            401, {"error": "invalid credentials for proxy authorization"})
        only_key = {"Modal-Key": KEY}
        assert call(emu.url, "POST", "/", headers=only_key)[0] == 401
        good = {"Modal-Key": KEY, "Modal-Secret": SECRET}
        assert call(emu.url, "POST", "/", headers=good)[0] == 200
        # the control API needs the proxy credentials too
        assert call(emu.url, "GET", "/_emulator/replicas")[0] == 401
        assert call(emu.url, "GET", "/_emulator/replicas", headers=good)[0] == 200
        assert SECRET not in "".join(emu.output)


def test_auth_without_credentials_in_the_environment_is_a_one_line_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODAL_PROXY")}
    out = subprocess.run([sys.executable, "-m", "modal_app.local", "--auth", "--port", "0"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "MODAL_PROXY_KEY" in out.stderr and "Traceback" not in out.stderr


def test_max_concurrency_answers_429_above_the_limit() -> None:
    with emulator(1, "--max-concurrency", "1") as emu:
        held = threading.Thread(target=call, args=(emu.url, "POST", "/", {"work_ms": 1500}))
        held.start()
        wait_for(lambda: any(r["in_flight"] for r in replicas(emu.url)), what="in flight")
        status, body = call(emu.url, "POST", "/")
        assert status == 429 and body["error"] == "too many requests"
        held.join(10)
        assert call(emu.url, "POST", "/")[0] == 200


def start_session(url: str, idle: float | None = None) -> str:
    headers = {**FUNCTION, "x-idempotency-key": os.urandom(8).hex(),
               "x-modal-timestamp": str(time.time())}
    if idle is not None:
        headers["x-modal-server-session-idle-timeout"] = str(idle)
    status, body = call(url, "POST", "/_modal/sessions/start", headers=headers)
    assert status == 200 and body["session_id"].startswith("se-")
    return str(body["token"])


def use(url: str, token: str | None) -> tuple[int, Any]:
    headers = {"Modal-Authorization": f"Bearer {token}"} if token else {}
    return call(url, "POST", "/", headers=headers)


def terminate(url: str, token: str) -> int:
    headers = {**FUNCTION, "x-modal-server-session-token": token}
    return call(url, "POST", "/_modal/sessions/terminate", headers=headers)[0]


@pytest.fixture()
def sessioned() -> Any:
    """A fresh strict-session emulator, for the tests that change its replicas."""
    with emulator(3, "--sessioned", "--no-replace") as emu:
        yield emu


@pytest.fixture(scope="module")
def sessions() -> Any:
    """One strict-session emulator for the tests that only start, use and end sessions."""
    with emulator(3, "--sessioned", "--no-replace") as emu:
        yield emu


def test_a_session_token_pins_a_container_and_ends_with_terminate(sessions: Emulator) -> None:
    url = sessions.url
    token = start_session(url)
    seen = {use(url, token)[1]["CONTAINER_ID"] for _ in range(20)}
    assert len(seen) == 1
    assert use(url, None)[0] == 401
    assert use(url, "st-forged")[0] == 401
    assert call(url, "POST", "/_modal/sessions/start")[0] == 401  # no function token
    assert terminate(url, token) == 200
    status, body = use(url, token)
    assert status == 410 and body == {"error": "session ended", "reason": "terminated"}
    assert terminate(url, token) == 404


def test_the_same_idempotency_key_gives_the_same_session(sessions: Emulator) -> None:
    headers = {**FUNCTION, "x-idempotency-key": "k-1"}
    first = call(sessions.url, "POST", "/_modal/sessions/start", headers=headers)
    again = call(sessions.url, "POST", "/_modal/sessions/start", headers=headers)
    assert first == again and first[0] == 200


def test_an_idle_session_ends_after_its_timeout(sessions: Emulator) -> None:
    def held() -> int:  # other tests' sessions live on (600 s)
        return sum(r["sessions"] for r in replicas(sessions.url))

    before = held()
    token = start_session(sessions.url, idle=0.5)
    assert use(sessions.url, token)[0] == 200
    assert held() == before + 1
    wait_for(lambda: held() == before, what="the session to idle out")
    assert use(sessions.url, token) == (410, {"error": "session ended", "reason": "idle"})


def test_a_session_keeps_its_container_across_a_scale_down(sessioned: Emulator) -> None:
    url = sessioned.url
    tokens = [start_session(url) for _ in range(6)]  # two per container: fewest first
    owner = {t: use(url, t)[1]["CONTAINER_ID"] for t in tokens}
    assert len(set(owner.values())) == 3
    assert call(url, "POST", "/_emulator/scale", {"replicas": 1})[0] == 200
    assert len(live_ids(url)) == 1
    assert all(use(url, t)[1]["CONTAINER_ID"] == owner[t] for t in tokens for _ in range(3))
    retiring = {r["container_id"] for r in replicas(url) if r["state"] == "retiring"}
    assert len(retiring) == 2
    # it drains when its sessions end
    gone = sorted(retiring)[0]
    for token in [t for t in tokens if owner[t] == gone]:
        assert terminate(url, token) == 200
    wait_for(lambda: gone not in {r["container_id"] for r in replicas(url)},
             what="the retired container to exit")
    assert all(use(url, t)[0] == 200 for t in tokens if owner[t] != gone)


def test_a_session_whose_container_died_gets_410(sessioned: Emulator) -> None:
    token = start_session(sessioned.url)
    victim = use(sessioned.url, token)[1]["CONTAINER_ID"]
    assert call(sessioned.url, "POST", f"/_emulator/replicas/{victim}/kill")[0] == 200
    wait_for(lambda: use(sessioned.url, token)[0] == 410, what="410")
    assert use(sessioned.url, token)[1] == {"error": "session ended", "reason": "container gone"}
    with Conn(sessioned.url) as conn:  # others go on
        assert conn.post(headers={"Modal-Authorization": "Bearer " + start_session(
            sessioned.url)})[0] == 200


@contextlib.contextmanager
def open_stream(url: str, body: dict[str, Any], headers: dict[str, str]
                ) -> Iterator[http.client.HTTPResponse]:
    """POST /generate on a connection of its own, closed when the block ends."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request("POST", "/generate", body=json.dumps(body),
                     headers={"content-type": "application/json", **headers})
        yield conn.getresponse()
    finally:
        conn.close()


def test_a_stream_needs_credentials_and_holds_its_slot_until_done(creds: None) -> None:
    good = {"Modal-Key": KEY, "Modal-Secret": SECRET}
    with emulator(1, "--auth", "--max-concurrency", "1", "--token-ms", "50") as emu:
        assert call(emu.url, "POST", "/generate", {"max_tokens": 1})[0] == 401
        with open_stream(emu.url, {"max_tokens": 20}, good) as stream:
            assert stream.status == 200
            assert stream.readline().startswith(b'data: {"CONTAINER_ID":')
            # the stream is in flight until its last event: the one slot is taken
            assert call(emu.url, "POST", "/generate", {"max_tokens": 1}, headers=good)[0] == 429
            assert stream.read().endswith(b"data: [DONE]\n\n")
        wait_for(lambda: call(emu.url, "POST", "/", headers=good)[0] == 200, what="the slot")


def test_a_session_token_pins_its_streams(sessions: Emulator) -> None:
    token = start_session(sessions.url)
    auth = {"Modal-Authorization": f"Bearer {token}"}
    first = {use(sessions.url, token)[1]["CONTAINER_ID"]}
    for _ in range(5):
        with open_stream(sessions.url, {"max_tokens": 2}, auth) as stream:
            event = json.loads(stream.readline().removeprefix(b"data: "))
            assert stream.read().endswith(b"data: [DONE]\n\n")
        assert {event["CONTAINER_ID"]} == first
    with open_stream(sessions.url, {"max_tokens": 2}, {}) as stream:
        assert stream.status == 401
