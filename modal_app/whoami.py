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

Run it as `uvicorn modal_app.whoami:app`; on Modal, `server.py` starts it in each container.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated

from fastapi import Body, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

MAX_WORK_MS = 60_000.0


class Work(BaseModel):
    """The optional request body. Unknown keys are refused, so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")

    work_ms: float = Field(default=0.0, ge=0.0, le=MAX_WORK_MS, allow_inf_nan=False)
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


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok", "CONTAINER_ID": container_id()}
