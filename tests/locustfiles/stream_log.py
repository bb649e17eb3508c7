"""Test instrumentation: one JSON line per request event, with its `context` (the stream's
numbers among them) and its failure, to the file named by $STREAM_LOG. Load it beside the
locustfile under test: `-f locustfiles/sticky.py,tests/locustfiles/stream_log.py`."""

from __future__ import annotations

import json
import os
from typing import Any

from locust import events

PATH = os.environ.get("STREAM_LOG", "")


@events.request.add_listener
def log_request(*, name: str, response_time: float, context: dict[str, Any] | None = None,
                exception: Exception | None = None, **_kwargs: Any) -> None:
    if not PATH:
        return
    line = {"name": name, "response_time": response_time, "context": context or {},
            "error": None if exception is None else repr(exception)}
    with open(PATH, "a") as out:
        out.write(json.dumps(line) + "\n")
