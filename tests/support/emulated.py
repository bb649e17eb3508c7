"""The emulator's state as the tests read it (over its control API and event log), and polling
with a deadline."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.http import call

# The test-only upstream app (tests/support/replica_app.py) for the emulator's replicas.
TEST_APP = "tests.support.replica_app:app"


def replicas(url: str) -> list[dict[str, Any]]:
    status, body = call(url, "GET", "/_emulator/replicas")
    assert status == 200
    return list(body)


def live_ids(url: str) -> list[str]:
    return [r["container_id"] for r in replicas(url) if r["state"] == "live"]


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_for(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
