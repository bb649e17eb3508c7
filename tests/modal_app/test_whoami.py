"""The replica app, served by a real uvicorn process as the emulator starts it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from modal_app.local.launch import replica
from tests.httpclient import Conn, call


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
        call(url, "POST", "/", {"work_ms": 1500})
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
