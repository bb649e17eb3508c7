"""The replica's FastAPI app: it says which container answered.

`POST /` answers `{"CONTAINER_ID": <MODAL_TASK_ID>}` as in Modal's sticky-routing example. An
optional JSON body `{"work_ms": <number>}` makes the answer take that long (awaited, so other
requests go on meanwhile), so that a load test can shape the work. `GET /health` answers 200.

Run it as `uvicorn modal_app.whoami:app`; on Modal, `server.py` starts it in each container.
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

MAX_WORK_MS = 60_000.0


class Work(BaseModel):
    """The optional request body. Unknown keys are refused, so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")

    work_ms: float = Field(default=0.0, ge=0.0, le=MAX_WORK_MS, allow_inf_nan=False)


def container_id() -> str:
    """Modal gives each container its id (`ta-...`) in `MODAL_TASK_ID`."""
    return os.environ.get("MODAL_TASK_ID", "ta-unset")


app = FastAPI(title="whoami", summary="Which replica answered?")


@app.exception_handler(RequestValidationError)
async def bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with where and why, but not the input: it may not even be JSON-serialisable (NaN)."""
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
              for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


@app.post("/")
async def whoami(work: Annotated[Work | None, Body()] = None) -> dict[str, str]:
    if work is not None and work.work_ms > 0:
        await asyncio.sleep(work.work_ms / 1000.0)
    return {"CONTAINER_ID": container_id()}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok", "CONTAINER_ID": container_id()}
