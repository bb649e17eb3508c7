from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modal_app.local.launch import Emulator, emulator
from tests.support.http import address, call

__all__ = ["TEST_APP", "address", "live_ids", "read_events", "replicas", "wait_for"]


@pytest.fixture()
def emu(tmp_path: Path) -> Iterator[Emulator]:
    """A fresh emulator with 3 replicas and an event log, stopped after the test."""
    with emulator(3, "--no-replace", events=tmp_path / "events.jsonl") as e:
        yield e


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


# The test-only upstream app (tests/support/replica_app.py) for the emulator's replicas.
TEST_APP = "tests.support.replica_app:app"
