"""The report's trust rules on synthetic files (in-process): collateral judged per answer,
every failure in the error rate, outages named, blank ids, run-level NOT JUDGED, bad ts.
The same rules against real broken routers: tests/test_gallery.py."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from reports.__main__ import main
from reports.api import load_run
from reports.columns import COLUMNS
from tests.support.rows import (
    T0,
    A,
    B,
    C,
    D,
    Row,
    added,
    removed,
    session_ids,
    write_events,
    write_requests,
)


def summary_of(prefix: str) -> Any:
    return json.loads(Path(prefix + "_summary.json").read_text())


def test_the_worked_example_of_metrics_md(tmp_path: Path) -> None:
    """docs/metrics.md#collateral-answer-by-answer, row by row."""
    rows = [Row(T0 + 9.0, "s1", A), Row(T0 + 10.4, "s1", B), Row(T0 + 11.0, "s1", B),
            Row(T0 + 12.6, "s1", A),
            Row(T0 + 9.2, "s2", C), Row(T0 + 10.3, "s2", A), Row(T0 + 12.0, "s2", D),
            Row(T0 + 9.5, "s3", B), Row(T0 + 10.5, "s3", B), Row(T0 + 11.9, "s3", B)]
    prefix = str(tmp_path / "example")
    write_requests(Path(prefix + "_requests.parquet"), rows)
    write_events(Path(prefix + "_events.jsonl"), [
        {"ts": T0, "event": "snapshot", "live": [A, B, C]},
        removed(T0 + 10.0, C, [A, B]), added(T0 + 11.5, D, [A, B, D])])
    assert main([prefix, "--change-window", "2", "--max-collateral", "0"]) == 1
    s = summary_of(prefix)
    assert s["collateral"] == 2
    (change,) = s["membership_changes"]
    assert change["collateral"] == 2 and change["judged"] and change["answers"] == 7


def test_a_bounce_between_survivors_is_collateral_whatever_the_settle_time(
        tmp_path: Path) -> None:
    """A -> B -> A inside the settle time: end points agree, answers do not."""
    rows = []
    for i, sid in enumerate(session_ids(20)):
        for j, cid in enumerate((A, A, B, A, A)):
            rows.append(Row(T0 + j + i * 0.01, sid, cid if i < 5 else C))
    prefix = str(tmp_path / "bounce")
    write_requests(Path(prefix + "_requests.parquet"), rows)
    write_events(Path(prefix + "_events.jsonl"), [
        {"ts": T0 - 5, "event": "snapshot", "live": [A, B, C, D]},
        removed(T0 + 1.5, D, [A, B, C])])
    for settle in ("2", "10"):
        assert main([prefix, "--settle", settle, "--max-collateral", "0"]) == 1
        assert summary_of(prefix)["collateral"] == 10


def test_a_change_with_requests_in_flight_but_nothing_judged_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [Row(T0 + j * 0.5, f"one{j}", A) for j in range(20)]  # one request per session
    prefix = str(tmp_path / "flight")
    write_requests(Path(prefix + "_requests.parquet"), rows)
    write_events(Path(prefix + "_events.jsonl"), [
        {"ts": T0 - 5, "event": "snapshot", "live": [A, B]}, removed(T0 + 4, B, [A])])
    assert main([prefix, "--max-collateral", "0", "--require-judged"]) == 1
    out = capsys.readouterr().out
    assert "collateral NOT JUDGED" in out and "collateral 0" not in out
    (change,) = summary_of(prefix)["membership_changes"]
    assert not change["judged"] and "in flight" in change["not_judged"]


def test_switches_between_live_containers_fail_the_collateral_gate_with_no_change(
        three_switched: str) -> None:
    assert main([three_switched, "--max-collateral", "0"]) == 1
    assert summary_of(three_switched)["collateral"] == 3


def test_every_failure_counts_and_an_outage_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [Row(T0 + j * 0.1, f"s{j % 5}", A if j < 30 else None, 200 if j < 30 else 503,
                error=None if j < 30 else "503 no live replica") for j in range(100)]
    prefix = str(tmp_path / "outage")
    write_requests(Path(prefix + "_requests.parquet"), rows)
    assert main([prefix, "--max-error-rate", "0.01"]) == 1
    s = summary_of(prefix)
    assert s["errors"] == 70 and s["error_rate"] == pytest.approx(0.7)
    (gap,) = s["outages"]
    assert gap["failed"] == 70 and gap["share"] > 0.6
    assert "OUTAGE from 3 s to 10 s" in capsys.readouterr().out


@pytest.mark.parametrize("form", ["parquet", "csv"])
def test_an_empty_or_blank_container_id_is_a_body_error_in_every_form(
        tmp_path: Path, form: str) -> None:
    rows = [Row(T0 + j, f"s{j % 3}", "" if j % 2 else "  ") for j in range(12)]
    prefix = str(tmp_path / "blank")
    parquet = write_requests(Path(prefix + "_requests.parquet"), rows)
    if form == "csv":
        table = pq.read_table(parquet)
        parquet.unlink()
        with open(prefix + "_requests.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            for record in table.select(list(COLUMNS)).to_pylist():
                writer.writerow(["" if v is None else v for v in record.values()])
    s = load_run(prefix).summary()
    assert s["error_classes"]["bad_body"] == 12 and s["ok_requests"] == 0
    assert s["containers"] == 0 and s["session_stickiness"] is None


def test_request_stickiness_is_not_judged_on_one_request_per_session(tmp_path: Path) -> None:
    prefix = str(tmp_path / "single")
    write_requests(Path(prefix + "_requests.parquet"),
                   [Row(T0 + j, f"s{j}", (A, B)[j % 2]) for j in range(10)])
    assert main([prefix, "--min-request-stickiness", "0.99", "--require-judged"]) == 1
    (gate,) = summary_of(prefix)["gates"]
    assert gate["verdict"] == "not judged"


def test_one_container_is_not_judged(tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    prefix = str(tmp_path / "one")
    write_requests(Path(prefix + "_requests.parquet"),
                   [Row(T0 + j, f"s{j % 4}", A) for j in range(20)])
    assert main([prefix, "--min-stickiness", "0.99"]) == 4
    s = summary_of(prefix)
    assert s["verdict"] == "not judged" and "only 1 container" in s["not_judged"][0]
    assert "not judged: only 1 container" in capsys.readouterr().err
    html = Path(prefix + "_report.html").read_text()
    assert "NOT JUDGED" in html


def test_a_control_as_sticky_as_the_judged_class_is_named(tmp_path: Path) -> None:
    rows = []
    for i in range(20):
        home = (A, B, C)[i % 3]
        rows += [Row(T0 + j + i * 0.01, f"s{i}", home, affinity="session") for j in range(5)]
        rows += [Row(T0 + j + i * 0.01, f"n{i}", home, user_class="NonStickyUser",
                     affinity="none") for j in range(5)]
    prefix = str(tmp_path / "pinned")
    write_requests(Path(prefix + "_requests.parquet"), rows)
    assert main([prefix, "--min-stickiness", "0.99"]) == 4
    (reason,) = summary_of(prefix)["not_judged"]
    assert "pins by something other than the session" in reason


def test_ts_in_milliseconds_is_one_line_exit_2(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    prefix = str(tmp_path / "ms")
    write_requests(Path(prefix + "_requests.parquet"),
                   [Row((T0 + j) * 1000, f"s{j % 2}", A) for j in range(4)])
    assert main([prefix]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not Unix seconds (milliseconds?)" in err[0]
