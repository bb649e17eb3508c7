"""Fixtures of the Locust tests; the helpers that start Locust are in tests/support/locust.py."""

from __future__ import annotations

import importlib
import os

# Importing locust monkey-patches the whole interpreter for gevent (threads, sockets, ssl,
# subprocess): in the pytest process that would change every other test. Import it here, once,
# unpatched: the unit tests only fire events, and real runs are subprocesses, which patch.
os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"
try:
    importlib.import_module("locust")
finally:
    del os.environ["LOCUST_SKIP_MONKEY_PATCH"]

from collections.abc import Iterator

import pytest

from modal_app.local.launch import emulator


@pytest.fixture(scope="session")
def target() -> Iterator[str]:
    """An emulator with 3 replicas, shared by the Locust runs."""
    with emulator(3) as emu:
        yield emu.url
