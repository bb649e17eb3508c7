"""Churn schedules and stages: parsing, with exact outcomes and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from locustfiles.membership import ChurnError, Step, parse_churn, parse_offset
from locustfiles.staged import Stage, parse_stages


def test_offsets() -> None:
    assert [parse_offset(t) for t in ("20s", "90", "1m30s", "1h", "2.5s")] == [
        20, 90, 90, 3600, 2.5]
    for bad in ("", "s", "-5s", "20x", "1m-3s"):
        with pytest.raises(ChurnError):
            parse_offset(bad)


def test_inline_schedule_is_sorted() -> None:
    assert parse_churn("40s:kill=1, 20s:scale=4,60s:stop=2") == [
        Step(20, "scale", 4), Step(40, "kill", 1), Step(60, "stop", 2)]


def test_schedule_file(tmp_path: Path) -> None:
    path = tmp_path / "churn.txt"
    path.write_text("# grow, then lose one\n20s:scale=4\n\n40s:kill=1  # pre-emption\n")
    assert parse_churn(f"@{path}") == [Step(20, "scale", 4), Step(40, "kill", 1)]


@pytest.mark.parametrize("spec,message", [
    ("20s:explode=1", "unknown churn action"),
    ("20s-scale=4", "bad churn step"),
    ("20s:kill=0", "at least 1"),
    ("20s:scale=500", "over 64"),
    ("@/nonexistent/churn.txt", "cannot read churn file"),
])
def test_bad_schedules_say_why_in_one_line(spec: str, message: str) -> None:
    with pytest.raises(ChurnError, match=message) as info:
        parse_churn(spec)
    assert "\n" not in str(info.value)


def test_stages() -> None:
    assert parse_stages("10s:20,30s:20,10s:100") == [
        Stage(10, 20), Stage(30, 20), Stage(10, 100)]
    for bad in ("", "10s", "10s:x", "0s:5", "10s:-1"):
        with pytest.raises(ValueError):
            parse_stages(bad)
