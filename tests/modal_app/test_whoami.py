"""The replica app, served by a real uvicorn process as the emulator starts it."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from modal_app.local.launch import replica
from tests.support.emulated import wait_for
from tests.support.http import Conn, call


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with replica("ta-01TESTWHOAMI") as url:
        yield url


def test_answers_its_container_id(url: str) -> None:
    assert call(url, "POST", "/", {}) == (200, {"CONTAINER_ID": "ta-01TESTWHOAMI"})
    assert call(url, "POST", "/") == (200, {"CONTAINER_ID": "ta-01TESTWHOAMI"})  # no body
    status, body = call(url, "GET", "/health")
    assert status == 200 and body["CONTAINER_ID"] == "ta-01TESTWHOAMI"


@pytest.mark.parametrize("raw", [
    b"not json", b"[]", b'{"work_ms": -1}', b'{"work_ms": "soon"}', b'{"work_ms": 1e9}',
    b'{"wrok_ms": 5}', b'{"work_ms": NaN}',
])
def test_bad_bodies_get_422_not_500(url: str, raw: bytes) -> None:
    with Conn(url) as conn:
        status, _ = conn.request("POST", "/", raw=raw)
    assert status == 422


def test_work_is_awaited_not_blocking(url: str) -> None:
    done = threading.Event()

    def slow() -> None:
        call(url, "POST", "/", {"work_ms": 1000})
        done.set()

    worker = threading.Thread(target=slow)
    worker.start()
    try:
        # while the slow request sleeps, the replica answers others
        for _ in range(5):
            assert call(url, "POST", "/", {"work_ms": 0})[0] == 200
        assert not done.is_set()
    finally:
        worker.join(10)
    assert done.is_set()


def test_no_cache_simulation_by_default(url: str) -> None:
    assert "cache" not in call(url, "POST", "/", {"cache_key": "a"})[1]


def test_cache_simulation_is_an_lru_of_conversations() -> None:
    env = {"WHOAMI_CACHE_SESSIONS": "2", "WHOAMI_CACHE_MISS_MS": "1", "WHOAMI_CACHE_HIT_MS": "0"}
    with replica("ta-01CACHE", env=env) as url, Conn(url) as conn:
        def cache(key: str | None = None, header: str | None = None) -> str | None:
            body = {"cache_key": key} if key else {}
            headers = {"Modal-Session-Id": header} if header else {}
            status, answer = conn.post(body=body, headers=headers)
            assert status == 200 and answer["CONTAINER_ID"] == "ta-01CACHE"
            return answer["cache"]

        assert [cache("a"), cache("a"), cache("b"), cache("a")] == ["miss", "hit", "miss", "hit"]
        assert [cache("c"), cache("a"), cache("b")] == ["miss", "hit", "miss"]  # c evicted b
        assert [cache(header="h"), cache(header="h"), cache("h")] == ["miss", "hit", "hit"]
        assert cache() is None  # no conversation, no cache


def test_bad_cache_settings_stop_the_replica() -> None:
    with pytest.raises(RuntimeError), replica("ta-01BAD", env={"WHOAMI_CACHE_SESSIONS": "x"}):
        pass


# POST /generate: the streaming answer (docs/streaming.md)

Event = tuple[float, Any]  # (arrival time, monotonic s; the event's JSON, or "[DONE]")


class Stream:
    """One POST /generate read event by event, each stamped with its arrival time."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        self.sent = time.monotonic()
        self.conn.request("POST", "/generate", body=json.dumps(body),
                          headers={"content-type": "application/json"})
        self.response = self.conn.getresponse()

    def events(self) -> Iterator[Event]:
        while line := self.response.readline():
            if line.startswith(b"data: "):
                data = line[len(b"data: "):].strip()
                yield time.monotonic(), "[DONE]" if data == b"[DONE]" else json.loads(data)

    def close(self) -> None:
        self.conn.close()


def generate(url: str, body: dict[str, Any]) -> tuple[float, list[Event]]:
    """(when the request was sent, every event until the stream ends)."""
    stream = Stream(url, body)
    try:
        assert stream.response.status == 200
        assert stream.response.getheader("content-type", "").startswith("text/event-stream")
        return stream.sent, list(stream.events())
    finally:
        stream.close()


PREFILL_MS_PER_TOKEN, TOKEN_MS = 1.0, 200.0


@pytest.fixture(scope="module")
def slow() -> Iterator[str]:
    """A replica whose prefill and tokens are slow enough to tell apart on a loaded machine."""
    env = {"WHOAMI_CACHE_SESSIONS": "8", "WHOAMI_PREFILL_MS_PER_TOKEN": str(PREFILL_MS_PER_TOKEN),
           "WHOAMI_TOKEN_MS": str(TOKEN_MS)}
    with replica("ta-01STREAM", env=env) as url:
        yield url


def test_generate_streams_openai_style_events(url: str) -> None:
    _, events = generate(url, {"max_tokens": 3})
    data = [event for _, event in events]
    assert data[0] == {"CONTAINER_ID": "ta-01TESTWHOAMI", "cache": None}
    assert [d["index"] for d in data[1:-1]] == [0, 1, 2]
    assert all(isinstance(d["token"], str) and d["token"] for d in data[1:-1])
    assert data[-1] == "[DONE]"


def test_first_event_comes_before_the_prefill_and_tokens_come_as_produced(slow: str) -> None:
    prompt = 1000  # a 1 s prefill
    _, events = generate(slow, {"max_tokens": 5, "prompt_tokens": prompt})
    assert events[0][1] == {"CONTAINER_ID": "ta-01STREAM", "cache": None}
    assert [e["index"] for _, e in events[1:-1]] == list(range(5))
    assert events[-1][1] == "[DONE]"
    first, tokens = events[0][0], [t for t, _ in events[1:-1]]
    # Arrival times against each other, with half the margin the replica's sleeps guarantee:
    # the first event arrived long before the prefill ended ...
    assert tokens[0] - first >= prompt * PREFILL_MS_PER_TOKEN / 1000 / 2
    # ... and the first token long before the last one was produced (4 token delays later).
    assert tokens[-1] - tokens[0] >= 4 * TOKEN_MS / 1000 / 2
    assert tokens == sorted(tokens)


def test_a_cache_hit_pays_the_new_tokens_only(slow: str) -> None:
    body = {"max_tokens": 1, "prompt_tokens": 800, "new_tokens": 10, "cache_key": "conv-1"}

    def ttft() -> tuple[str, float]:
        sent, events = generate(slow, body)
        return events[0][1]["cache"], events[1][0] - sent

    (miss, miss_ttft), (hit, hit_ttft) = ttft(), ttft()
    assert (miss, hit) == ("miss", "hit")
    assert hit_ttft < miss_ttft
    assert miss_ttft >= 800 * PREFILL_MS_PER_TOKEN / 1000  # a miss pays the whole prompt
    other = generate(slow, {**body, "cache_key": "conv-2", "prompt_tokens": 0})[1]
    assert other[0][1]["cache"] == "miss"


def test_a_client_that_goes_away_stops_the_stream(slow: str) -> None:
    stream = Stream(slow, {"max_tokens": 4096, "prompt_tokens": 0})  # 13 minutes of tokens
    try:
        events = stream.events()
        assert next(events)[1]["CONTAINER_ID"] == "ta-01STREAM"
        assert next(events)[1]["index"] == 0
        assert call(slow, "GET", "/health")[1]["streams"] == 1
    finally:
        stream.close()
    wait_for(lambda: call(slow, "GET", "/health")[1]["streams"] == 0,
             what="the replica to stop producing the abandoned stream")
    assert call(slow, "POST", "/", {})[0] == 200


@pytest.mark.parametrize("raw", [
    b"not json", b"", b"[]", b"{}", b'{"max_tokens": null}', b'{"max_tokens": 0}',
    b'{"max_tokens": -1}', b'{"max_tokens": 4097}', b'{"max_tokens": "5"}',
    b'{"max_tokens": 5.5}', b'{"max_tokens": true}', b'{"max_tokens": NaN}',
    b'{"max_tokens": 5, "prompt_tokens": -1}', b'{"max_tokens": 5, "prompt_tokens": "x"}',
    b'{"max_tokens": 5, "new_tokens": -3}', b'{"max_tokens": 5, "cache_key": 7}',
    b'{"max_tokens": 5, "cache_key": ""}', b'{"max_tokens": 5, "max_token": 5}',
])
def test_bad_generate_bodies_get_422(url: str, raw: bytes) -> None:
    with Conn(url) as conn:
        status, answer = conn.request("POST", "/generate", raw=raw)
    assert status == 422 and answer["detail"]


@pytest.mark.parametrize("env", [{"WHOAMI_TOKEN_MS": "-1"}, {"WHOAMI_TOKEN_MS": "soon"},
                                 {"WHOAMI_PREFILL_MS_PER_TOKEN": "1e9"}])
def test_bad_stream_settings_stop_the_replica(env: dict[str, str]) -> None:
    with pytest.raises(RuntimeError), replica("ta-01BAD", env=env):
        pass
