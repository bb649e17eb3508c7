"""Streaming requests: POST /generate and read its server-sent events as they arrive.

    locust -f locustfiles/sticky.py StickyUser --headless -u 20 -t 30s --host URL \\
        --stream-tokens 32 --prompt-tokens 512 --cache-key --csv results/stream

With `--stream-tokens N` the users of `sticky.py` (and `sessioned.py`) POST
`{"max_tokens": N, "prompt_tokens": P[, "cache_key": <session id>]}` to `/generate` and read
the answer, OpenAI-style SSE (`data: {...}` events, then `data: [DONE]`), line by line as it
comes off the socket. Per request they measure, from the moment the request is sent:

- `ttfb_ms`, when the first byte of the body arrived (the replica's first event, sent at once);
- `ttft_ms`, when the first token event arrived (after the prefill: what a user feels);
- `tokens`, the token events received; `max_gap_ms`, the largest gap between two of them;
- the container and the cache state named by the first event;
- the total time to the end of the stream: Locust's `response_time` for the request.

They go with Locust's request event, which fires once per request, at the end of the stream,
in its context: `context["stream"] = {"container_id", "cache", "ttfb_ms", "ttft_ms", "tokens",
"max_gap_ms"}` (the recorder writes them as columns). A stream that ends before `[DONE]` (the
connection dropped: a replica killed mid-stream) fails as "stream cut: ..."; one that ends
with fewer tokens than asked as "stream short: got X of N tokens"; a first event without a
CONTAINER_ID as "body: ...". A non-2xx answer fails as Locust reports it, with no stream.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from locustfiles.affinity import header_value
from reports.columns import BODY_PREFIX as BODY
from reports.columns import STREAM_CUT_PREFIX as CUT
from reports.columns import STREAM_SHORT_PREFIX as SHORT

GENERATE = "/generate"
DONE = "[DONE]"
MAX_TOKENS = 4096
MAX_PROMPT_TOKENS = 1_000_000
DEFAULT_PROMPT_TOKENS = 256
# no compression: a compressed stream cannot be read event by event
STREAM_HEADERS = {"Accept": "text/event-stream", "Accept-Encoding": "identity"}


class StreamError(Exception):
    """A failed stream. Its repr is its message, so that Locust's failure table and the
    recorder's `error` column (both use repr) start with the message's prefix."""

    def __repr__(self) -> str:
        return str(self)


@dataclass(slots=True)
class StreamStats:
    """What one stream measured; times in ms from the moment the request was sent."""

    container_id: str | None = None
    cache: str | None = None
    ttfb_ms: float | None = None
    ttft_ms: float | None = None
    tokens: int = 0
    max_gap_ms: float | None = None
    done: bool = False
    bytes: int = 0
    last_token_ms: float | None = None

    def context(self) -> dict[str, Any]:
        """The request event's `context["stream"]` (contracts section 3)."""
        return {"container_id": self.container_id, "cache": self.cache, "ttfb_ms": self.ttfb_ms,
                "ttft_ms": self.ttft_ms, "tokens": self.tokens, "max_gap_ms": self.max_gap_ms}

    def token(self, at_ms: float) -> None:
        if self.last_token_ms is None:
            self.ttft_ms = at_ms
        else:
            gap = at_ms - self.last_token_ms
            self.max_gap_ms = gap if self.max_gap_ms is None else max(self.max_gap_ms, gap)
        self.last_token_ms = at_ms
        self.tokens += 1


class EventParser:
    """Server-sent events, line by line: `line()` returns an event's data once it is complete
    (at its blank line). Comment lines and fields other than `data` are skipped."""

    def __init__(self) -> None:
        self.data: list[str] = []

    def line(self, raw: bytes) -> str | None:
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not text:
            if not self.data:
                return None
            data, self.data = "\n".join(self.data), []
            return data
        field, _, value = text.partition(":")
        if field == "data":
            self.data.append(value[1:] if value.startswith(" ") else value)
        return None


def take_event(data: str, stats: StreamStats, at_ms: float) -> str | None:
    """Account for one event; returns an error message when it makes the stream unusable."""
    if data == DONE:
        stats.done = True
        return None
    try:
        event: Any = json.loads(data)
    except ValueError:
        return BODY + "an event is not JSON"
    if not isinstance(event, dict):
        return BODY + "an event is not a JSON object"
    if "token" in event:
        stats.token(at_ms)
    elif "CONTAINER_ID" in event:
        container, cache = event.get("CONTAINER_ID"), event.get("cache")
        if not isinstance(container, str) or not container:
            return BODY + "no CONTAINER_ID"
        stats.container_id = container
        stats.cache = cache if cache in ("hit", "miss") else None
    return None


def read_stream(readline: Callable[[], bytes], stats: StreamStats, start: float,
                expected_tokens: int, clock: Callable[[], float] = time.perf_counter
                ) -> str | None:
    """Read the events to the end of the body; returns the failure message, or None."""
    parser = EventParser()
    while True:
        try:
            raw = readline()
        except Exception as exc:  # the connection dropped or timed out mid-stream
            if stats.done:
                return None
            return (f"{CUT}{type(exc).__name__} after {stats.tokens} of {expected_tokens} "
                    f"tokens")
        now_ms = (clock() - start) * 1000
        if not raw:
            break
        if stats.ttfb_ms is None:
            stats.ttfb_ms = now_ms
        stats.bytes += len(raw)
        data = parser.line(raw)
        if data is not None and (error := take_event(data, stats, now_ms)) is not None:
            return error
    if not stats.done:
        return f"{CUT}the stream ended before [DONE] after {stats.tokens} tokens"
    if stats.container_id is None:
        return BODY + "no CONTAINER_ID event"
    if stats.tokens < expected_tokens:
        return f"{SHORT}got {stats.tokens} of {expected_tokens} tokens"
    return None


def generate(client: Any, body: dict[str, Any], headers: dict[str, str], *,
             name: str = GENERATE, instance_header: str = "") -> StreamStats:
    """One streaming request with Locust's FastHttpSession (`FastHttpUser.client`).
    With `instance_header` (--instance-header) that response header names the instance, and
    the stream need not (locustfiles/affinity.py).

    The request event fires once, when the `with` block ends, with the total time, the bytes
    read and `context["stream"]`; the failure, if any, is the stream's own.
    """
    stats = StreamStats()
    start = time.perf_counter()
    with client.request("POST", GENERATE, name=name, json=body,
                        headers={**headers, **STREAM_HEADERS}, stream=True,
                        catch_response=True) as response:
        status = response.status_code or 0
        failure = None
        if 200 <= status < 300 and response._response is not None:
            raw_response = response._response
            if instance_header:
                stats.container_id = header_value(response.headers, instance_header)
            failure = read_stream(lambda: raw_response.readline(b"\n"), stats, start,
                                  int(body.get("max_tokens", 0)))
            meta = response.request_meta
            meta["context"] = {**meta["context"], "stream": stats.context()}
        elif status:
            drain(response)
        response.request_meta["response_time"] = (time.perf_counter() - start) * 1000
        response.request_meta["response_length"] = stats.bytes
        if failure is not None:
            response.failure(StreamError(failure))
        elif 200 <= status < 300:
            response.success()
    return stats


def drain(response: Any) -> None:
    """Read an error answer's (short) body, so that its connection can serve the next one."""
    with contextlib.suppress(Exception):  # else the connection is closed and replaced
        response.content  # noqa: B018


# ## Options


def request_body(options: Any, session_id: str) -> dict[str, int | str] | None:
    """The /generate body for --stream-tokens N (None when 0: no streaming)."""
    tokens = int(getattr(options, "stream_tokens", 0) or 0)
    if tokens <= 0:
        return None
    prompt = getattr(options, "prompt_tokens", None)
    body: dict[str, int | str] = {
        "max_tokens": min(tokens, MAX_TOKENS),
        "prompt_tokens": DEFAULT_PROMPT_TOKENS if prompt is None else int(prompt)}
    if getattr(options, "cache_key", False):
        body["cache_key"] = session_id
    return body


def int_in(what: str, low: int, high: int) -> Callable[[str], int]:
    """argparse `type=`: an integer in [low, high], else a one-line usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer, not {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be in {low}..{high}, not {value}")
        return value

    return parse


def add_arguments(parser: Any) -> None:
    """--stream-tokens and --prompt-tokens, for every locustfile whose users stream."""
    parser.add_argument(
        "--stream-tokens", type=int_in("--stream-tokens", 0, MAX_TOKENS), default=0,
        env_var="LOCUST_STREAM_TOKENS", include_in_web_ui=True,
        help="POST /generate asking for N tokens and read the streamed answer, recording time "
             "to first byte and to first token, tokens and the largest gap (default 0: POST /)")
    parser.add_argument(
        "--prompt-tokens", type=int_in("--prompt-tokens", 0, MAX_PROMPT_TOKENS),
        default=DEFAULT_PROMPT_TOKENS, env_var="LOCUST_PROMPT_TOKENS", include_in_web_ui=True,
        help="With --stream-tokens: the prompt length sent, which a KV-cache miss prefills "
             f"in full (default {DEFAULT_PROMPT_TOKENS})")
