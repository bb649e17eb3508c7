"""The affinity options against real HAProxy: cookie affinity (`--session-cookie`) with the
serving server read from a response header (`--instance-header`) gives PASS; the same router
without its cookie is caught as not sticky; a wrong instance setting is one line at the probe.
Then the parsing and reading underneath, in-process: turns, conversations, instance readers."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from geventhttpclient.header import Headers

from locustfiles import affinity as options
from locustfiles.conversation import Conversation, Turns, parse_turns, turns_type, user_of
from locustfiles.users import affinity
from reports.__main__ import main as report_main
from tests.support.haproxy_cookie import COOKIE, HAPROXY, SERVED_BY, haproxy_cookie
from tests.support.locust import (
    containers_per_session,
    finish,
    headless,
    locust_process,
)

needs_haproxy = pytest.mark.skipif(HAPROXY is None, reason="no haproxy: apt-get install haproxy")
ROUTED = ("--session-cookie", COOKIE, "--instance-header", SERVED_BY)


@pytest.fixture(scope="module")
def cookie_router() -> Iterator[str]:
    with haproxy_cookie(3) as url:
        yield url


@needs_haproxy
def test_cookie_affinity_read_from_a_response_header_passes(
        cookie_router: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = headless(cookie_router, "StickyUser", "NonStickyUser", seconds=3,
                    extra=(*ROUTED, "--turns", "3-5", "--stream-tokens", "2", "--pace-rps", "20"))
    with locust_process(*args, tmp=tmp_path) as run:
        result = finish(run)
    assert result.code == 0, result.output[-3000:]
    assert "PASS" in result.output
    rows = result.rows
    seen = {c for c in rows.column("container_id").to_pylist() if c is not None}
    assert seen == {"r0", "r1", "r2"}  # HAProxy's server names, from X-Served-By (streams)
    assert rows.column("error").null_count == rows.num_rows
    sticky = containers_per_session(rows, "StickyUser")
    control = containers_per_session(rows, "NonStickyUser")
    assert sticky and max(sticky.values()) == 1
    # the control drops the cookie: round robin moves it (each conversation has 3+ turns)
    assert sum(n > 1 for n in control.values()) > len(control) / 2
    users = {user_of(s) for s in sticky}
    assert len(sticky) > len(users)  # conversations: new sessions after 3 to 5 turns
    meta = json.loads(Path(f"{run.prefix}_run.json").read_text())
    assert meta["session_cookie"] == COOKIE and meta["instance_header"] == SERVED_BY
    assert meta["turns"] == "3-5"
    code = report_main([str(run.prefix), "--min-stickiness", "0.99", "--require-judged",
                        "--warmup", "1"])  # python -m reports, in this process
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "session by cookie SERVERID; instance id from the header X-Served-By" in out.out
    assert "per user; turns 3-5" in out.out
    summary = json.loads(Path(f"{run.prefix}_summary.json").read_text())
    assert {r["container_id"] for r in summary["costs"]["per_replica"]} == {"r0", "r1", "r2"}


@needs_haproxy
def test_the_router_without_its_cookie_is_caught_as_not_sticky(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with haproxy_cookie(3, cookie=False) as url, locust_process(
            *headless(url, "StickyUser", seconds=2, extra=(*ROUTED, "--pace-rps", "20")),
            tmp=tmp_path) as run:
        result = finish(run)
    assert result.code == 3, result.output[-3000:]
    assert "FAIL" in result.output
    sticky = containers_per_session(result.rows, "StickyUser")
    assert sum(n > 1 for n in sticky.values()) == len(sticky)
    assert report_main([str(run.prefix), "--min-stickiness", "0.99"]) == 1
    assert "gate --min-stickiness failed" in capsys.readouterr().err


@needs_haproxy
@pytest.mark.parametrize(("setting", "words"), [
    (("--instance-header", "X-Nope"), "has no header X-Nope (--instance-header)"),
    (("--instance-field", "nope"), "has no JSON field nope (--instance-field); its fields: "
                                   "CONTAINER_ID"),
])
def test_a_wrong_instance_setting_is_one_line_at_the_probe(cookie_router: str, tmp_path: Path,
                                                          setting: tuple[str, str],
                                                          words: str) -> None:
    with locust_process(*headless(cookie_router, "StickyUser", seconds=2, extra=setting),
                        tmp=tmp_path) as run:
        code = run.wait(60)
    output = run.output()
    assert code == 1, output[-3000:]
    line = next(x for x in output.splitlines() if "no instance id in the answers" in x)
    assert words in line
    assert "Traceback" not in output and "Shutting down" not in output  # no load was run


# -- in-process -------------------------------------------------------------------------------


def test_turns_parse_a_number_or_a_range() -> None:
    assert parse_turns("8") == Turns(8, 8)
    assert parse_turns("4-12") == Turns(4, 12)
    assert parse_turns("0") is None and parse_turns("") is None
    for bad in ("x", "5-2", "-3", "0-4", "4-"):
        with pytest.raises(argparse.ArgumentTypeError, match="--turns must be"):
            turns_type(bad)
    assert {Turns(4, 6).draw() for _ in range(200)} == {4, 5, 6}


def test_a_conversation_ends_after_its_turns_with_a_new_session_id() -> None:
    chat = Conversation(Turns(2, 2), "u1", 256)
    assert chat.session_id() == "u1.0"
    assert chat.turn() is False
    assert chat.turn() is True
    assert chat.session_id() == "u1.1"
    assert user_of("u1.1") == "u1" and user_of("plain") == "plain"


def test_affinity_follows_the_configured_header_or_the_cookie() -> None:
    assert affinity({"X-Session": "s"}, "X-Session") == "session"
    assert affinity({"Modal-Session-Id": "s"}, "X-Session") == "none"
    assert affinity({}, "Modal-Session-Id", cookie=True) == "session"
    assert affinity({}) == "none"


class Answer:
    def __init__(self, content: bytes, headers: dict[str, str] | None = None) -> None:
        self.content = content
        self.headers = Headers(headers or {})


def test_the_instance_is_read_from_a_header_or_a_field() -> None:
    by_header = options.Affinity(instance_header="X-Served-By").reader()
    assert by_header is not None
    assert by_header.read(Answer(b"plain text", {"x-served-by": "r1"})) == ("r1", None, None)
    assert by_header.read(Answer(b'{"cache": "hit"}', {"X-Served-By": "r2"})) == ("r2", "hit",
                                                                                  None)
    assert by_header.read(Answer(b"{}")) == (None, None, "body: no X-Served-By header")
    assert by_header.stream(Answer(b"", {"X-Served-By": "r0"}), "ta-1") == "r0"
    by_field = options.Affinity(instance_field="host").reader()
    assert by_field is not None
    assert by_field.read(Answer(b'{"host": "a", "cache": "miss"}')) == ("a", "miss", None)
    assert by_field.read(Answer(b'{"host": 7}')) == ("7", None, None)
    assert by_field.read(Answer(b'{"CONTAINER_ID": "x"}')) == (None, None, "body: no host")
    assert by_field.read(Answer(b"nope")) == (None, None, "body: not JSON")
    assert options.Affinity().reader() is None  # the default: the recorder's own reader


def test_the_probe_names_what_is_missing() -> None:
    header = options.Affinity(instance_header="X-Served-By")
    assert options.probe_answer(header, 200, b"", {"X-Served-By": "r0"}) == ("r0", "")
    instance, why = options.probe_answer(header, 200, b"{}", {"Server": "x"})
    assert instance is None
    assert why == ("no instance id in the answers: a 200 answer has no header X-Served-By "
                   "(--instance-header); its headers: Server")
    _, why = options.probe_answer(options.Affinity(), 200, b"<html>", {})
    assert why.startswith("no instance id in the answers: a 200 answer is not JSON")


def test_bad_names_are_refused() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="--session-header must be a header"):
        options.token("--session-header")("bad name")
    form: Any = argparse.Namespace(session_cookie="a;b", turns="2")
    assert options.bad_setting(form) == "--session-cookie must be a header or cookie name, " \
                                        "not 'a;b'"


def test_a_chat_grows_its_prompt_by_each_answer_and_starts_anew(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """StickyUser's turns in-process, with the stream replaced by one that answers 5 tokens:
    the prompt grows by 5 each turn; after 3 turns a new session id, cache key and prompt."""
    from locust.env import Environment

    from locustfiles import users as sticky
    from locustfiles.streaming import StreamStats

    sent: list[tuple[str, int, str]] = []

    def generate(client: Any, body: dict[str, Any], headers: dict[str, str],
                 **_kwargs: Any) -> StreamStats:
        sent.append((str(body["cache_key"]), int(body["prompt_tokens"]), headers["X-Session"]))
        return StreamStats(tokens=5)

    monkeypatch.setattr(sticky.streaming, "generate", generate)
    monkeypatch.setattr(sticky.StickyUser, "host", "http://127.0.0.1:9")  # never connected
    parsed = argparse.Namespace(stream_tokens=5, prompt_tokens=100, cache_key=True,
                                turns="3", session_header="X-Session", session_cookie="",
                                instance_header="", instance_field="CONTAINER_ID",
                                pace_rps=0, work_ms=0)
    environment = Environment(user_classes=[sticky.StickyUser], parsed_options=parsed)
    user = sticky.StickyUser(environment)
    user.on_start()
    for _ in range(4):
        user.whoami()
    first, second = sent[0][0], sent[3][0]
    assert [s[1] for s in sent] == [100, 105, 110, 100]
    assert first.endswith(".0") and second == first[:-1] + "1"
    assert [s[0] for s in sent[:3]] == [first] * 3 and sent[3][2] == second  # header follows
    assert user.context() == {"session_id": second, "user_class": "StickyUser",
                              "affinity": "session"}


def test_the_web_forms_bad_settings_are_one_line() -> None:
    from locustfiles.users import bad_option

    form = argparse.Namespace(turns="5-2", session_header="Modal-Session-Id")
    assert bad_option(form) == ("--turns must be N or A-B with 1 <= A <= B <= 1000000, "
                                "not '5-2'")
    assert bad_option(argparse.Namespace(instance_header="X Served")) == (
        "--instance-header must be a header or cookie name, not 'X Served'")
    assert bad_option(argparse.Namespace(turns="4-12", session_cookie="SERVERID")) is None
