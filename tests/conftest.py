"""Fixtures shared by several test folders (their helpers: tests/support/)."""

from __future__ import annotations

import pytest

from tests.support.recorded import RecordedPair, shared_pair

# The longest modules start first, so that on pytest-xdist's workers (scripts/test) none of them
# is left to run alone at the end; the rest keep their order. (From `--durations`; a module
# missing here only costs the suite some seconds.)
LONGEST_FIRST = (
    "tests/scripts/test_routers.py",
    "tests/scripts/test_demo.py",
    "tests/test_gallery.py",
    "tests/locustfiles/test_runs.py",
    "tests/locustfiles/test_scenarios.py",
    "tests/examples/test_capacity_review.py",
    "tests/reports/test_real_run.py",
    "tests/modal_app/test_emulator.py",
    "tests/locustfiles/test_target.py",
    "tests/modal_app/test_emulator_failures.py",
    "tests/locustfiles/test_streaming.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::")[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: within a module, and among the rest, the order is kept


@pytest.fixture(scope="session")
def recorded_pair(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> RecordedPair:
    """A sticky run with churn and its non-sticky reference, recorded once per test session,
    whichever workers read it (read only)."""
    base = tmp_path_factory.getbasetemp()
    return shared_pair(base if worker_id == "master" else base.parent)

