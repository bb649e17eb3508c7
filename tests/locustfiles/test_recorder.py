"""The recorder, fed synthetic request events with fixed timestamps: no network."""

from __future__ import annotations

import json
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pyarrow.parquet as pq
import pytest
from locust import FastHttpUser, task
from locust.env import Environment
from locust.event import Events
from locust.exception import CatchResponseError

from locustfiles.recorder import (
    STICKINESS_EXIT_CODE,
    Bodies,
    Recorder,
    install,
    parse_body,
)
from locustfiles.requestwriter import RequestFileWriter
from reports.columns import COLUMNS, SUFFIX, arrow_schema


class StickyUser(FastHttpUser):
    sends_session_id = True
    host = "http://127.0.0.1:9"

    @task
    def noop(self) -> None:
        pass


class Response:
    def __init__(self, status_code: int, content: bytes | bytearray | None) -> None:
        self.status_code = status_code
        self.content = content


class ExplodingResponse:
    status_code = 200

    @property
    def content(self) -> bytes:
        raise RuntimeError("a response that cannot be read")


SESSION = {"session_id": "s-1", "user_class": "StickyUser", "affinity": "session"}
OK = b'{"CONTAINER_ID": "ta-1"}'


def environment(tmp_path: Path, **options: Any) -> Environment:
    env = Environment(events=Events(), user_classes=[StickyUser], parsed_options=Namespace(
        csv_prefix=str(tmp_path / "run"), exit_code_on_error=1, **options))
    env.create_local_runner()
    return env


@pytest.fixture
def local(tmp_path: Path) -> Iterator[tuple[Environment, Recorder]]:
    env = environment(tmp_path)
    recorder = Recorder()
    recorder.register(env)
    yield env, recorder
    recorder.close()


def fire(env: Environment, response: Any, *, exception: Exception | None = None,
         context: dict[str, Any] | None = None, start_time: float = 1000.0) -> None:
    env.events.request.fire(
        request_type="POST", name="/", response_time=12.5, response_length=0, response=response,
        context=SESSION if context is None else context, exception=exception,
        start_time=start_time, url="http://x/")


def test_rows_land_in_the_request_file_in_the_shared_columns(
        local: tuple[Environment, Recorder], tmp_path: Path) -> None:
    env, recorder = local
    fire(env, Response(200, OK), start_time=1000.0)
    fire(env, Response(200, b'{"CONTAINER_ID": "ta-2", "cache": "hit"}'), start_time=1001.0)
    fire(env, Response(503, b'{"reason": "no live replica"}'), exception=RuntimeError("503"),
         start_time=1002.0)
    fire(env, Response(0, None), exception=ConnectionRefusedError("refused"), start_time=1003.0)
    fire(env, Response(200, b"<html>"), start_time=1004.0)
    fire(env, None, context={}, start_time=1005.0)
    recorder.close()
    table = pq.read_table(tmp_path / f"run{SUFFIX}")
    assert table.schema.equals(arrow_schema())
    assert tuple(table.column_names) == COLUMNS
    rows = table.to_pylist()
    assert rows[0] == {"ts": 1000.0, "response_time_ms": 12.5, "session_id": "s-1",
                       "user_class": "StickyUser", "name": "/", "status": 200,
                       "container_id": "ta-1", "cache": None, "error": None, "worker": "local",
                       "affinity": "session", "ttfb_ms": None, "ttft_ms": None, "tokens": None,
                       "max_gap_ms": None}
    assert (rows[1]["container_id"], rows[1]["cache"]) == ("ta-2", "hit")
    assert (rows[2]["status"], rows[2]["container_id"]) == (503, None)
    assert rows[2]["error"] == "RuntimeError('503')"
    assert (rows[3]["status"], rows[3]["error"]) == (0, "ConnectionRefusedError('refused')")
    assert rows[4]["error"] == "body: not JSON"
    assert (rows[5]["session_id"], rows[5]["status"]) == (None, 0)
    assert recorder.recorded == 6


def test_a_streaming_request_takes_its_figures_from_the_context_not_the_body(
        local: tuple[Environment, Recorder], tmp_path: Path) -> None:
    env, recorder = local
    stream = {"container_id": "ta-9", "cache": "miss", "ttfb_ms": 1.5, "ttft_ms": 52.0,
              "tokens": 3, "max_gap_ms": 11.0}
    context = {**SESSION, "stream": stream}
    fire(env, Response(200, b"data: not the replica's JSON"), context=context,
         exception=CatchResponseError("stream short: got 3 of 32 tokens"))
    fire(env, Response(200, None), context={**SESSION, "stream": {**stream, "tokens": 0}},
         exception=RuntimeError("stream cut: the connection dropped"))
    recorder.close()
    first, cut = pq.read_table(tmp_path / f"run{SUFFIX}").to_pylist()
    assert {k: first[k] for k in ("container_id", "cache", "ttfb_ms", "ttft_ms", "tokens",
                                  "max_gap_ms", "error", "affinity")} == {
        "container_id": "ta-9", "cache": "miss", "ttfb_ms": 1.5, "ttft_ms": 52.0, "tokens": 3,
        "max_gap_ms": 11.0, "error": "stream short: got 3 of 32 tokens", "affinity": "session"}
    assert (cut["tokens"], cut["error"]) == (0, "stream cut: the connection dropped")
    (c,) = recorder.stickiness.summarise().classes
    assert c.errors == {"stream_short": 1, "stream_cut": 1}


def test_no_affinity_in_the_context_is_written_as_null(
        local: tuple[Environment, Recorder], tmp_path: Path) -> None:
    env, recorder = local
    fire(env, Response(200, OK), context={"session_id": "s-2", "user_class": "StickyUser"})
    recorder.close()
    (row,) = pq.read_table(tmp_path / f"run{SUFFIX}").to_pylist()
    assert row["affinity"] is None and row["user_class"] == "StickyUser"


def test_summary_counts_follow_the_rows(local: tuple[Environment, Recorder]) -> None:
    env, recorder = local
    for body in (OK, OK, b'{"CONTAINER_ID": "ta-2"}'):
        fire(env, Response(200, body))
    fire(env, Response(200, b""))
    (c,) = recorder.stickiness.summarise().classes
    assert (c.user_class, c.judged, c.requests, c.multi_container, c.switches) == (
        "StickyUser", True, 4, 1, 1)
    assert c.errors == {"bad_body": 1}


def test_a_listener_never_raises(local: tuple[Environment, Recorder]) -> None:
    env, recorder = local
    recorder.on_request(response_time=1.0, name="/", response=ExplodingResponse(),
                        context=SESSION, exception=None)
    assert recorder.listener_errors == 1
    fire(env, Response(200, OK))
    assert recorder.recorded == 1


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"CONTAINER_ID": 7}', b"[1]", b"", None])
def test_bad_bodies_are_errors_not_exceptions(body: bytes | None) -> None:
    container, cache, error = parse_body(body)
    assert container is None and cache is None and error and error.startswith("body: ")
    assert Bodies().parse(body) == (container, cache, error)


@pytest.mark.parametrize("body", [
    b'{"CONTAINER_ID":"ta-1"}', b'{"CONTAINER_ID":"ta-1","cache":"hit"}',
    b'{"CONTAINER_ID": "ta-1", "cache": "miss"}', b'{"cache":"miss","CONTAINER_ID":"ta-2"}',
    b'{"CONTAINER_ID":"ta-\\u0031"}'])
def test_the_memo_agrees_with_json(body: bytes) -> None:
    data = json.loads(body)
    bodies = Bodies()
    for _ in range(2):  # parsed, then remembered
        assert bodies.parse(body) == (data["CONTAINER_ID"], data.get("cache"), None)
    assert body in bodies.known


def test_odd_responses_are_still_rows(local: tuple[Environment, Recorder],
                                      tmp_path: Path) -> None:
    """A user's own request events may carry any response object: still a row each."""
    env, recorder = local

    class NoStatus:
        pass

    fire(env, NoStatus())
    fire(env, Response(200, bytearray(OK)))
    recorder.close()
    rows = pq.read_table(tmp_path / f"run{SUFFIX}").to_pylist()
    assert [(r["status"], r["container_id"]) for r in rows] == [(0, None), (200, "ta-1")]
    assert recorder.listener_errors == 0


def test_the_memo_is_bounded() -> None:
    bodies = Bodies(limit=2, max_bytes=40)
    for i in range(5):
        bodies.parse(b'{"CONTAINER_ID":"ta-%d"}' % i)
    bodies.parse(b'{"CONTAINER_ID":"' + b"x" * 50 + b'"}')
    assert len(bodies.known) == 2


def test_no_rows_still_leave_a_readable_empty_file(tmp_path: Path) -> None:
    writer = RequestFileWriter(str(tmp_path / "empty"))
    writer.close()
    assert pq.read_table(tmp_path / f"empty{SUFFIX}").num_rows == 0


def worker_recorder(worker_id: str) -> Recorder:
    recorder = Recorder()
    recorder.become_worker(worker_id)
    return recorder


def ship(worker: Recorder, master: Recorder, worker_id: str) -> None:
    payload = msgpack.unpackb(msgpack.packb(worker.outbox.payload()))  # as Locust's rpc does
    master.ingest(worker_id, payload)


def test_worker_rows_reach_the_master_which_adds_the_worker_column(tmp_path: Path) -> None:
    master = Recorder()
    master.role = "master"
    writer = master.open_file(str(tmp_path / "m"))
    worker = worker_recorder("w1")
    worker.on_request(response_time=3.0, name="/", response=Response(200, OK), context=SESSION,
                      exception=None, start_time=7.0)
    ship(worker, master, "w1")
    worker.outbox.stopped = True
    ship(worker, master, "w1")  # the final, empty, `done` payload
    writer.close()
    (row,) = pq.read_table(tmp_path / f"m{SUFFIX}").to_pylist()
    assert (row["ts"], row["container_id"], row["worker"], row["affinity"]) == (
        7.0, "ta-1", "w1", "session")
    assert master.intake.workers["w1"].rows == 1 and master.intake.workers["w1"].done
    assert master.lost_tails() == []


def test_streaming_rows_and_errors_travel_from_worker_to_master(tmp_path: Path) -> None:
    master = Recorder()
    master.role = "master"
    writer = master.open_file(str(tmp_path / "m"))
    worker = worker_recorder("w1")
    stream = {"container_id": "ta-3", "cache": None, "ttfb_ms": 2.0, "ttft_ms": 40.0,
              "tokens": 32, "max_gap_ms": 10.5}
    worker.on_request(response_time=3.0, name="/", response=Response(200, OK), context=SESSION,
                      exception=None, start_time=1.0)
    worker.on_request(response_time=9.0, name="gen", response=Response(200, None),
                      context={**SESSION, "stream": stream}, exception=None, start_time=2.0)
    worker.on_request(response_time=1.0, name="/", response=Response(503, b"{}"),
                      context=SESSION, exception=RuntimeError("503"), start_time=3.0)
    ship(worker, master, "w1")
    writer.close()
    rows = pq.read_table(tmp_path / f"m{SUFFIX}").to_pylist()
    assert [(r["container_id"], r["tokens"], r["ttft_ms"], r["error"]) for r in rows] == [
        ("ta-1", None, None, None), ("ta-3", 32, 40.0, None), (None, None, None,
                                                               "RuntimeError('503')")]
    (c,) = master.stickiness.summarise().classes
    assert (c.requests, c.errors, c.switches) == (3, {"503": 1}, 1)


def test_a_worker_without_its_final_batch_is_reported() -> None:
    master = Recorder(ship_rows=500)
    master.role = "master"
    worker = worker_recorder("w2")
    worker.on_request(response_time=3.0, name="/", response=Response(200, OK), context=SESSION,
                      exception=None)
    ship(worker, master, "w2")
    (line,) = master.lost_tails()
    assert line.startswith("worker w2: at most 500 requests not recorded (no final batch")


def violating(tmp_path: Path, **options: Any) -> tuple[Environment, Recorder]:
    env = environment(tmp_path, **options)
    recorder = Recorder()
    recorder.register(env)
    fire(env, Response(200, OK))
    fire(env, Response(200, b'{"CONTAINER_ID": "ta-2"}'))
    recorder.close()
    return env, recorder


def test_a_stickiness_violation_sets_exit_code_3(tmp_path: Path) -> None:
    env, recorder = violating(tmp_path, max_multi_container_sessions=0)
    recorder.set_exit_code(env)
    assert env.process_exit_code == STICKINESS_EXIT_CODE
    assert recorder.verdict().startswith("FAIL: 1 sticky sessions")
    assert "judged: StickyUser" in recorder.verdict()


def test_the_web_tab_starts_with_the_verdict(tmp_path: Path) -> None:
    _, recorder = violating(tmp_path, max_multi_container_sessions=0)
    verdict, by_class, session = recorder.tab_rows(limit=10)
    assert str(verdict["session"]).startswith("FAIL: 1 sticky sessions")
    assert verdict["requests"] is None
    assert str(by_class["session"]).startswith("ALL 1 sessions")
    assert (session["session"], session["containers"]) == ("s-1", 2)


def test_the_threshold_allows_some_sessions(tmp_path: Path) -> None:
    env, recorder = violating(tmp_path, max_multi_container_sessions=1)
    recorder.set_exit_code(env)
    assert env.process_exit_code is None
    assert recorder.verdict().startswith("PASS")


def test_the_exit_code_is_never_made_better(tmp_path: Path) -> None:
    env, recorder = violating(tmp_path, max_multi_container_sessions=0)
    env.process_exit_code = 1
    recorder.set_exit_code(env)
    assert env.process_exit_code == 1
    env.process_exit_code = None
    assert env.runner is not None
    env.runner.stats.log_error("POST", "/", "boom")  # Locust itself will exit 1
    recorder.set_exit_code(env)
    assert env.process_exit_code is None


def test_install_registers_the_quitting_listener_at_import_time() -> None:
    events = Events()
    recorder = install(events)
    assert recorder.on_quitting in events.quitting._handlers
    assert recorder.on_init in events.init._handlers
