"""Moved to tests/support/http.py; kept as a re-export for the tests that still import it."""

from tests.support.http import Conn, call, emulator_control

__all__ = ["Conn", "call", "emulator_control"]
