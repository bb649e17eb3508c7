"""The user classes that carry sessions, as a library: `SessionUser`, `StickyUser`,
`NonStickyUser`, their options (`add_arguments`) and helpers. Importing it changes nothing in
Locust: the Locust files (`locustfiles/sticky.py`, `locustfiles/sessioned.py`) import the
classes from here and wire the harness's plugin (`locustfiles/plugin.py`).

- `StickyUser` sends one `Modal-Session-Id` for its whole life: a uuid4, so unique across all
  users, processes and workers. Modal routes it by rendezvous hashing: it should see one
  container.
- `NonStickyUser` sends no header: the control. It still has a session id, for the record.

What a user asks for is recorded with each request (`context()`: session_id, user_class and
`affinity`), from the headers it actually sends: "session" with `Modal-Session-Id`, "strict"
with a strict session's `Modal-Authorization` bearer token, "none" otherwise (a control).

Every class sends `Modal-Key`/`Modal-Secret` when MODAL_PROXY_KEY/MODAL_PROXY_SECRET are set
(proxy auth of the GA form); they are never printed or recorded.

Each user POSTs `{}` to `/` (the replica answers `{"CONTAINER_ID": ...}`); `--work-ms N` sends
`{"work_ms": N}` instead. `--stream-tokens N` makes it POST `/generate` and read the streamed
answer instead (`locustfiles/streaming.py`). `--pace-rps X` paces each user at X requests/s
(constant throughput); 0, the default, sends as fast as the answers come.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import gevent
import gevent.ssl
from locust import FastHttpUser, task
from locust.contrib.fasthttp import insecure_ssl_context_factory
from locust.user.wait_time import constant_throughput

from locustfiles import affinity as affinity_options
from locustfiles import conversation, streaming, tls
from locustfiles.modal_sessions import STRICT_HEADER, proxy_headers

SESSION_HEADER = "Modal-Session-Id"


def new_session_id() -> str:
    """Unique across users, processes and machines, with no coordination."""
    return uuid.uuid4().hex


def affinity(headers: Mapping[str, str], session_header: str = SESSION_HEADER,
             cookie: bool = False) -> str:
    """What a request asks of the router, from the headers it carries: "strict" (a strict
    session's bearer token), "session" (the session header, Modal-Session-Id by default, or
    `cookie`: the user keeps the router's affinity cookie) or "none" (a control)."""
    names = {name.lower(): value for name, value in headers.items()}
    if names.get(STRICT_HEADER.lower(), "").startswith("Bearer "):
        return "strict"
    if cookie or names.get(session_header.lower()):
        return "session"
    return "none"


def request_body(options: Any, session_id: str) -> dict[str, float | str]:
    """`{}` by default; `work_ms` with --work-ms; the conversation with --cache-key."""
    body: dict[str, float | str] = {}
    work_ms = float(getattr(options, "work_ms", 0.0) or 0.0)
    if work_ms > 0:
        body["work_ms"] = work_ms
    if getattr(options, "cache_key", False):
        body["cache_key"] = session_id
    return body


def post_request(body: Mapping[str, Any], headers: Mapping[str, str]
                 ) -> tuple[str, dict[str, str]]:
    """POST `body` as JSON with `headers`, built once: the payload and headers that Locust's
    `client.post(url, json=body, headers=headers)` builds on every request (its json.dumps,
    and the Content-Type and Accept it adds when absent), for `data=..., headers=...`."""
    sent = dict(headers)
    names = {name.lower() for name in sent}
    if "content-type" not in names:
        sent["Content-Type"] = "application/json"
    if "accept" not in names:
        sent["Accept"] = "application/json"
    return json.dumps(body), sent


DEFAULT_RECONNECT_EVERY = 50
RENEW_MIN_S = 5.0  # a user renews its connection at most this often (after the first time)
NEVER = 1 << 62  # --reconnect-every 0: a count no user reaches


def reconnect_every(options: Any) -> int:
    """--reconnect-every as a number (the web UI may hand it over as text); 0: never."""
    try:
        return int(getattr(options, "reconnect_every", DEFAULT_RECONNECT_EVERY) or 0)
    except (TypeError, ValueError):
        return DEFAULT_RECONNECT_EVERY


def pace_of(options: Any) -> float:
    """--pace-rps as a number (the web UI may hand it over as text); 0 when unset."""
    try:
        pace = float(getattr(options, "pace_rps", 0.0) or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return pace if pace > 0 else 0.0


class SessionUser(FastHttpUser):
    """A user with a session id, recorded with each request (`context()`)."""

    abstract = True
    sends_session_id: ClassVar[bool] = False

    session_id: str
    headers: dict[str, str]
    body: dict[str, float | str]
    stream_body: dict[str, int | str] | None = None
    _context: dict[str, str] = {}  # noqa: RUF012 (read-only: replaced, never changed)
    _pacer: Callable[[Any], float] | None = None
    _settings: affinity_options.Affinity = affinity_options.Affinity()
    _conversation: conversation.Conversation | None = None
    _chat: bool = False  # turns or cookies: the task takes the conversation's path
    # the POST, built once: again only when `body` or `headers` differ from what it was built of
    _payload: str = "{}"
    _post_headers: dict[str, str] = {}  # noqa: RUF012 (read-only: replaced, never changed)
    _built_of: tuple[Any, Any] | None = None  # (headers, body) as they were, deep copies
    _every: int = DEFAULT_RECONNECT_EVERY  # --reconnect-every, read once per user start
    _sent: int = 0  # requests since the last new connection
    _renewed: float = -math.inf  # time.monotonic() of the last new connection
    renew_min_s: float = RENEW_MIN_S

    def __init__(self, environment: Any) -> None:
        # the client's TLS contexts are made once (locustfiles/tls.py), not at each renewal
        factory = self.ssl_context_factory
        if not getattr(factory, "kept", False):
            if factory is None:  # Locust's own choice, made once
                factory = insecure_ssl_context_factory if self.insecure \
                    else gevent.ssl.create_default_context
            self.ssl_context_factory = tls.kept_context(factory, self.insecure)
        super().__init__(environment)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self._settings = settings = affinity_options.of(options)
        self.session_id = new_session_id()
        turns = conversation.turns_of(options)
        if turns is not None and not getattr(self, "starts_sessions", False):
            self._conversation = conversation.Conversation(
                turns, self.session_id, int(getattr(options, "prompt_tokens", 0) or 0))
            self.session_id = self._conversation.session_id()
        self._chat = self._conversation is not None or bool(settings.session_cookie)
        self.headers = ({settings.session_header: self.session_id}
                        if self.sends_session_id and not settings.session_cookie else {})
        self.headers.update(proxy_headers())
        self.body = request_body(options, self.session_id)
        self.stream_body = streaming.request_body(options, self.session_id)
        self.update_context()
        pace = pace_of(options)
        self._pacer = constant_throughput(pace) if pace else None
        # the first renewal comes after a random count in [1, K], then one every K: users
        # are out of step, and a run too short for K requests still renews most connections
        every = reconnect_every(options)
        self._sent = random.randrange(every) if every else 0
        self._every = every or NEVER
        floor = getattr(options, "reconnect_min_seconds", None)
        if floor is not None:  # else the class's own (a subclass or a test may set one)
            self.renew_min_s = float(floor)

    def update_context(self) -> None:
        """The record of who sends, and what it asks for: call it whenever headers change."""
        settings = self._settings
        cookie = bool(settings.session_cookie) and self.sends_session_id
        self._context = {"session_id": self.session_id, "user_class": type(self).__name__,
                         "affinity": affinity(self.headers, settings.session_header, cookie)}

    def converse(self) -> None:
        """One turn of a conversation (--turns) or under cookie affinity (--session-cookie):
        the control drops the router's cookies first; the last turn starts a new session."""
        cookie = bool(self._settings.session_cookie)
        if cookie and not self.sends_session_id:
            self.client.cookiejar.clear()
        tokens = 0
        if self.stream_body is not None:
            tokens = streaming.generate(self.client, self.stream_body, self.headers,
                                        instance_header=self._settings.instance_header).tokens
        else:
            self.post_json()
        chat = self._conversation
        if chat is None:
            return
        if not chat.turn():
            if self.stream_body is not None:  # the next prompt carries this answer too
                self.stream_body["prompt_tokens"] = int(self.stream_body["prompt_tokens"]) + tokens
            return
        self.session_id = chat.session_id()
        if self._settings.session_header in self.headers:
            self.headers[self._settings.session_header] = self.session_id
        if cookie:
            self.client.cookiejar.clear()
        options = self.environment.parsed_options
        self.body = request_body(options, self.session_id)
        self.stream_body = streaming.request_body(options, self.session_id)
        self.update_context()

    def context(self) -> dict[str, str]:
        return self._context  # per request: no getattr default, no new dict

    def wait_time(self) -> float:
        """--pace-rps X: constant throughput, X requests/s per user; else no wait."""
        return self._pacer(self) if self._pacer is not None else 0.0

    def start_phase(self) -> None:
        """Paced users start at a random point of their first period, not in lockstep."""
        if self._pacer is not None:
            gevent.sleep(random.random() / pace_of(self.environment.parsed_options))
            self._cp_last_run = time.perf_counter()

    @task
    def whoami(self) -> None:
        if self._chat:
            self.converse()
        elif self.stream_body is not None:
            streaming.generate(self.client, self.stream_body, self.headers,
                               instance_header=self._settings.instance_header)
        else:
            self.post_json()
        self.reconnect_now()

    def post_json(self) -> None:
        """POST the session's `body` to / with its `headers`: what `client.post("/",
        json=self.body, headers=self.headers)` sends, built once (`post_request`) and built
        again whenever either has changed, in place or replaced (a subclass may change them)."""
        headers, body = self.headers, self.body
        built = self._built_of
        if built is None or built[0] != headers or built[1] != body:
            self._built_of = (copy.deepcopy(headers), copy.deepcopy(body))
            self._payload, self._post_headers = post_request(body, headers)
        # `request` itself: `post` only passes its arguments on, through one more call with
        # **kwargs, measured at a few microseconds per request in a loaded Locust process
        # (docs/harness.md, the bare user)
        self.client.request("POST", "/", data=self._payload, headers=self._post_headers)

    def reconnect_now(self) -> None:
        """--reconnect-every K: close the user's connection after every K requests (the first
        time after a random count up to K), and at most once every 5 s (`renew_min_s`,
        --reconnect-min-seconds), so that a target that pins by connection (and ignores the
        session) shows as moved sessions.
        A user that sends faster than K in 5 s renews every 5 s: each user still renews
        throughout the run, and the handshakes stay a small share of the requests (a renewal
        costs a few hundred microseconds of the client's CPU, more with https).
        The client closes the connection itself: no target can keep it open. The new
        connection's lookup of the host is kept for a while (locustfiles/dnscache.py), and
        with https its TLS context (locustfiles/tls.py): the connection is what is new, not
        the name's address nor the certificates the client trusts."""
        self._sent += 1
        if self._sent >= self._every:
            now = time.monotonic()
            if now - self._renewed >= self.renew_min_s:
                self._sent = 0
                self._renewed = now
                self.client.client.close()  # the next request opens a new connection


class StickyUser(SessionUser):
    """Sends the same Modal-Session-Id on every request."""

    sends_session_id = True

    def on_start(self) -> None:
        super().on_start()
        self.start_phase()


class NonStickyUser(SessionUser):
    """Sends no Modal-Session-Id: the control."""

    def on_start(self) -> None:
        super().on_start()
        self.start_phase()


# ## Options


def non_negative(kind: type[float] | type[int], what: str) -> Callable[[str], float | int]:
    """argparse `type=`: a bad value is a usage error at once, in one line."""

    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, not {text!r}") from None
        if not value >= 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{what} must be >= 0, not {text!r}")
        return value

    return parse


def add_arguments(parser: Any, **_kwargs: Any) -> None:
    parser.add_argument(
        "--work-ms", type=float, default=0.0, env_var="LOCUST_WORK_MS", include_in_web_ui=True,
        help='Send {"work_ms": N}: each answer takes N ms on the replica (default 0: send {})')
    parser.add_argument(
        "--wait-timeout", type=float, default=60.0, env_var="LOCUST_WAIT_TIMEOUT",
        include_in_web_ui=True,
        help="Before load starts, wait at most this many seconds for a live replica to answer "
             "the run's own kind of request (default 60)")
    parser.add_argument(
        "--cache-key", action="store_true", default=False, env_var="LOCUST_CACHE_KEY",
        include_in_web_ui=True,
        help='Send the session id as {"cache_key": ...}, the conversation a KV cache keeps, '
             "with or without the Modal-Session-Id header (see the emulator's --cache-sessions)")
    parser.add_argument(
        "--pace-rps", type=non_negative(float, "--pace-rps"), default=0.0,
        env_var="LOCUST_PACE_RPS", include_in_web_ui=True,
        help="Pace each user at this many requests/s (constant throughput); the offered load "
             "is users x this. 0 (default): no wait, each user sends as soon as it has an answer")
    parser.add_argument(
        "--reconnect-every", type=non_negative(int, "--reconnect-every"),
        default=DEFAULT_RECONNECT_EVERY, env_var="LOCUST_RECONNECT_EVERY",
        include_in_web_ui=True,
        help="Each user opens a new connection after every K requests (the first time after a "
             "random count up to K), so that a target that "
             "pins by connection rather than by session shows as moved sessions; at most "
             "once every 5 s per user (default "
             f"{DEFAULT_RECONNECT_EVERY}: at most 2%% of requests pay a new handshake, below "
             "the p95; 0: keep one connection as long as the client does)")
    parser.add_argument(
        "--reconnect-min-seconds", type=non_negative(float, "--reconnect-min-seconds"),
        default=RENEW_MIN_S, env_var="LOCUST_RECONNECT_MIN_SECONDS", include_in_web_ui=True,
        help="With --reconnect-every: each user opens a new connection at most once every "
             f"this many seconds (default {RENEW_MIN_S:g}; 0: every K requests however fast "
             "they come)")
    streaming.add_arguments(parser)
    affinity_options.add_arguments(parser)
    conversation.add_arguments(parser)


def bad_option(options: Any) -> str | None:
    """What is wrong with the options the web UI's start form set (the command line checks
    them when it parses them), or None."""
    checks = (("pace_rps", float, 0.0, float("inf")),
              ("reconnect_min_seconds", float, 0.0, float("inf")),
              ("stream_tokens", int, 0, streaming.MAX_TOKENS),
              ("prompt_tokens", int, 0, streaming.MAX_PROMPT_TOKENS),
              ("work_ms", float, 0.0, 60_000.0))
    if (problem := affinity_options.bad_setting(options) or conversation.bad_setting(options)):
        return problem
    for name, kind, low, high in checks:
        value = getattr(options, name, None)
        try:
            ok = value is None or (low <= kind(value) <= high and math.isfinite(kind(value)))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            bounds = f">= {low:g}" if high == float("inf") else f"in {low:g}..{high:g}"
            return f"--{name.replace('_', '-')} must be {bounds}, not {value!r}"
    return None
