"""The replica's FastAPI app: it says which container answered.

`POST /` answers `{"CONTAINER_ID": <MODAL_TASK_ID>}` as in Modal's sticky-routing example. An
optional JSON body `{"work_ms": <number>}` makes the answer take that long (awaited, so other
requests go on meanwhile), so that a load test can shape the work. `GET /health` answers 200.

KV-cache simulation, off by default: with `WHOAMI_CACHE_SESSIONS=N` (N > 0) in its environment,
each replica keeps an LRU of the last N conversations it served, as an LLM server keeps their
KV cache. A conversation is the body's `cache_key`, else the `Modal-Session-Id` header. A miss
costs `WHOAMI_CACHE_MISS_MS` (the prefill, default 50 ms), a hit `WHOAMI_CACHE_HIT_MS` (default
5 ms), on top of `work_ms`; the answer says which: `{"CONTAINER_ID": ..., "cache": "miss"}`.
A request with no conversation gets no cache (`"cache": null`) and no delay.

`POST /generate` streams an answer as an LLM server does, as OpenAI-style server-sent events
(`text/event-stream`); the body is `{"max_tokens": N}` (1..4096), with optional
`"prompt_tokens"` (default 256), `"new_tokens"` (default 32: what a cache hit still prefills)
and `"cache_key"`. The first event, sent at once, names the container and the cache state:
`data: {"CONTAINER_ID": ..., "cache": "hit" | "miss" | null}`. Then a prefill: a miss (or a
request without `cache_key`, or with the cache simulation off) waits `prompt_tokens *
WHOAMI_PREFILL_MS_PER_TOKEN` (default 0.2 ms), a hit `new_tokens *` that (never more than a
miss). Then each of the `max_tokens` tokens waits `WHOAMI_TOKEN_MS` (default 10 ms) and is
sent as `data: {"index": i, "token": ...}`; the stream ends with `data: [DONE]`. The KV cache
is the one of `POST /`, keyed by `cache_key` only. See docs/streaming.md.

Run it as `uvicorn modal_app.whoami:app`; on Modal, `server.py` starts it in each container.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Body, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

MAX_WORK_MS = 60_000.0
MAX_TOKENS = 4096
MAX_PROMPT_TOKENS = 1_000_000
MAX_MS_PER_TOKEN = 1_000.0
WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")


class Work(BaseModel):
    """The optional request body. Unknown keys are refused, so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")

    work_ms: float = Field(default=0.0, ge=0.0, le=MAX_WORK_MS, allow_inf_nan=False)
    cache_key: str | None = Field(default=None, min_length=1, max_length=256)


class Generate(BaseModel):
    """The body of `POST /generate`: strict types (no "5" for 5), unknown keys refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_tokens: int = Field(ge=1, le=MAX_TOKENS)
    prompt_tokens: int = Field(default=256, ge=0, le=MAX_PROMPT_TOKENS)
    new_tokens: int = Field(default=32, ge=0, le=MAX_PROMPT_TOKENS)
    cache_key: str | None = Field(default=None, min_length=1, max_length=256)


@dataclass(frozen=True)
class CacheConfig:
    sessions: int = 0
    miss_ms: float = 50.0
    hit_ms: float = 5.0

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ[str] = os.environ) -> CacheConfig:
        try:
            config = cls(int(env.get("WHOAMI_CACHE_SESSIONS", "0")),
                         float(env.get("WHOAMI_CACHE_MISS_MS", "50")),
                         float(env.get("WHOAMI_CACHE_HIT_MS", "5")))
        except ValueError as exc:
            raise SystemExit(f"whoami: bad WHOAMI_CACHE_* setting: {exc}") from None
        if config.sessions < 0 or not 0 <= config.hit_ms <= MAX_WORK_MS or not (
                0 <= config.miss_ms <= MAX_WORK_MS):
            raise SystemExit("whoami: WHOAMI_CACHE_* settings must not be negative")
        return config


@dataclass(frozen=True)
class StreamConfig:
    """The timing of `POST /generate`: prefill per prompt token, and decode per token (ms)."""

    prefill_ms_per_token: float = 0.2
    token_ms: float = 10.0

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ[str] = os.environ) -> StreamConfig:
        try:
            config = cls(float(env.get("WHOAMI_PREFILL_MS_PER_TOKEN", "0.2")),
                         float(env.get("WHOAMI_TOKEN_MS", "10")))
        except ValueError as exc:
            raise SystemExit(f"whoami: bad WHOAMI_PREFILL_MS_PER_TOKEN/WHOAMI_TOKEN_MS: {exc}"
                             ) from None
        if not (0 <= config.prefill_ms_per_token <= MAX_MS_PER_TOKEN
                and 0 <= config.token_ms <= MAX_MS_PER_TOKEN):
            raise SystemExit("whoami: WHOAMI_PREFILL_MS_PER_TOKEN and WHOAMI_TOKEN_MS must be "
                             f"between 0 and {MAX_MS_PER_TOKEN:g}")
        return config


class SessionCache:
    """An LRU of conversation keys: `touch(key)` says whether it was there, and keeps it."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[str, None] = OrderedDict()

    def touch(self, key: str) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        self._keys[key] = None
        if len(self._keys) > self.capacity:
            self._keys.popitem(last=False)
        return False


def container_id() -> str:
    """Modal gives each container its id (`ta-...`) in `MODAL_TASK_ID`."""
    return os.environ.get("MODAL_TASK_ID", "ta-unset")


CACHE = CacheConfig.from_env()
STREAM = StreamConfig.from_env()
SESSIONS = SessionCache(CACHE.sessions)

app = FastAPI(title="whoami", summary="Which replica answered?")


@app.exception_handler(RequestValidationError)
async def bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with where and why, but not the input: it may not even be JSON-serialisable (NaN)."""
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
              for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


@app.post("/")
async def whoami(
    work: Annotated[Work | None, Body()] = None,
    modal_session_id: Annotated[str | None, Header()] = None,
) -> dict[str, str | None]:
    delay_ms = work.work_ms if work is not None else 0.0
    answer: dict[str, str | None] = {"CONTAINER_ID": container_id()}
    if CACHE.sessions:
        key = (work.cache_key if work is not None else None) or modal_session_id
        if key is None:
            answer["cache"] = None
        elif SESSIONS.touch(key):
            answer["cache"] = "hit"
            delay_ms += CACHE.hit_ms
        else:
            answer["cache"] = "miss"
            delay_ms += CACHE.miss_ms
    if delay_ms > 0:
        await asyncio.sleep(delay_ms / 1000.0)
    return answer


def sse(data: object) -> bytes:
    """One server-sent event: `data: <compact JSON>` and a blank line."""
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


class OpenStreams:
    """How many /generate streams are being produced right now (shown by GET /health)."""

    def __init__(self) -> None:
        self.count = 0


STREAMS = OpenStreams()


async def tokens(first: bytes, prefill_ms: float, count: int) -> AsyncIterator[bytes]:
    """The event stream. A client that goes away cancels it (Starlette's StreamingResponse
    watches for the disconnect), so its sleeps end at once and nothing more is produced."""
    STREAMS.count += 1
    try:
        yield first
        await asyncio.sleep(prefill_ms / 1000.0)
        for index in range(count):
            await asyncio.sleep(STREAM.token_ms / 1000.0)
            yield sse({"index": index, "token": WORDS[index % len(WORDS)] + " "})
        yield b"data: [DONE]\n\n"
    finally:
        STREAMS.count -= 1


@app.post("/generate")
async def generate(body: Annotated[Generate, Body()]) -> StreamingResponse:
    cache: str | None = None
    prompt = body.prompt_tokens
    if CACHE.sessions and body.cache_key is not None:
        if SESSIONS.touch(body.cache_key):
            cache, prompt = "hit", min(body.new_tokens, body.prompt_tokens)
        else:
            cache = "miss"
    first = sse({"CONTAINER_ID": container_id(), "cache": cache})
    stream = tokens(first, prompt * STREAM.prefill_ms_per_token, body.max_tokens)
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@app.get("/health")
async def health() -> dict[str, str | int]:
    return {"status": "ok", "CONTAINER_ID": container_id(), "streams": STREAMS.count}
