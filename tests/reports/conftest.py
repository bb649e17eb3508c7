"""Fixtures of the report tests: the synthetic runs of tests/support/rows.py, written to a
temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.rows import (
    scale_up_events,
    scale_up_rows,
    three_switched_rows,
    write_events,
    write_requests,
)


@pytest.fixture
def three_switched(tmp_path: Path) -> str:
    prefix = str(tmp_path / "three")
    write_requests(Path(prefix + "_requests.parquet"), three_switched_rows())
    return prefix


@pytest.fixture
def scale_up(tmp_path: Path) -> tuple[str, int]:
    prefix = str(tmp_path / "scale")
    rows, moved = scale_up_rows()
    write_requests(Path(prefix + "_requests.parquet"), rows)
    write_events(Path(prefix + "_events.jsonl"), scale_up_events())
    return prefix, moved
