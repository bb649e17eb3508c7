"""Fixtures of the emulator's tests; their helpers are in tests/support/emulated.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modal_app.local.launch import Emulator, emulator


@pytest.fixture()
def emu(tmp_path: Path) -> Iterator[Emulator]:
    """A fresh emulator with 3 replicas and an event log, stopped after the test."""
    with emulator(3, "--no-replace", events=tmp_path / "events.jsonl") as e:
        yield e
