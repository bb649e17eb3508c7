"""Fixtures shared by several test folders (their helpers: tests/support/)."""

from __future__ import annotations

import pytest

from tests.support.recorded import RecordedPair, record_pair


@pytest.fixture(scope="session")
def recorded_pair(tmp_path_factory: pytest.TempPathFactory) -> RecordedPair:
    """A sticky run with churn and its non-sticky reference, recorded once (read only)."""
    return record_pair(tmp_path_factory.mktemp("recorded"))
