"""Real runs (tests/support/recorded.py, shared with other tests: read only): a StickyUser
run with a scale-up and a kill during the load, a NonStickyUser run; `python -m reports` on
what they recorded, and the HTML in a real headless chromium."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from modal_app.local.rendezvous import pick
from reports.__main__ import main
from tests.support.browser import CHROMIUM, render_in_chromium
from tests.support.cli import run_reports
from tests.support.recorded import USERS, RecordedPair


def summary_of(prefix: str) -> dict[str, Any]:
    return dict(json.loads(Path(prefix + "_summary.json").read_text()))


def test_real_sticky_run_remaps_exactly_as_rendezvous_hashing(recorded_pair: RecordedPair) -> None:
    out = run_reports(recorded_pair.sticky, "--events", str(recorded_pair.events),
                      "--max-collateral", "0", "--max-flaps", "0")
    assert out.returncode == 0, out.stdout + out.stderr
    s = summary_of(recorded_pair.sticky)
    rows = pq.read_table(recorded_pair.sticky + "_requests.parquet")
    assert s["requests"] == rows.num_rows and s["sessions"] == USERS
    assert s["epochs_source"] == "events" and s["locust"]["requests"] <= s["requests"]
    session_ids = set(rows.column("session_id").to_pylist())
    changes = s["membership_changes"]
    assert [c["removed"] for c in changes if c["removed"]] == [[recorded_pair.killed]]
    assert len([c for c in changes if c["added"]]) >= 1
    for i, change in enumerate(changes):
        before, after = s["epochs"][i]["live"], s["epochs"][i + 1]["live"]
        assert change["collateral"] == 0
        assert change["expected_fraction"] == pytest.approx(
            (len(change["added"]) + len(change["removed"]))
            / (len(before) + len(change["added"])))
        if change["sessions"] == USERS:
            movers = sum(pick(sid, before) != pick(sid, after) for sid in session_ids)
            assert change["remapped"] == movers, change
    assert s["flaps"] == 0 and s["switches"] == s["forced_switches"]
    steady = s["errors_by_phase"]["steady"]
    assert sum(n for k, n in steady.items() if k != "2xx") == 0


def essentials(summary: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The changes during the run. (The emulator's own log also shows its start-up, still
    settling when the load began; the harness's log starts from a snapshot taken then.)"""
    return [(c["added"], c["removed"], c["sessions"], c["remapped"], c["collateral"])
            for c in summary["membership_changes"] if c["end"] >= summary["start"]]


def test_the_harness_event_log_agrees_with_the_emulators(recorded_pair: RecordedPair) -> None:
    """The Locust harness writes PREFIX_events.jsonl (a snapshot, then the emulator's events
    of its run): read by default, it gives the same changes as the emulator's own log."""
    if not Path(recorded_pair.sticky + "_events.jsonl").is_file():
        pytest.skip("this harness writes no PREFIX_events.jsonl")
    own = str(recorded_pair.directory / "own")
    assert run_reports(recorded_pair.sticky, "--events", str(recorded_pair.events),
                       "--out", own).returncode == 0
    out = run_reports(recorded_pair.sticky, "--out", str(recorded_pair.directory / "harness"))
    assert out.returncode == 0, out.stderr
    harness = summary_of(str(recorded_pair.directory / "harness"))
    assert harness["events_file"] == recorded_pair.sticky + "_events.jsonl"
    assert essentials(harness) == essentials(summary_of(own))


def test_real_run_inferred_without_an_event_log(recorded_pair: RecordedPair) -> None:
    bare = recorded_pair.directory / "bare"
    shutil.copy(recorded_pair.sticky + "_requests.parquet", str(bare) + "_requests.parquet")
    out = run_reports(str(bare))
    assert out.returncode == 0, out.stderr
    inferred = summary_of(str(bare))
    assert inferred["epochs_source"] == "inferred"
    removed = [c["removed"] for c in inferred["membership_changes"] if c["removed"]]
    assert removed == [[recorded_pair.killed]]
    assert all(c["collateral"] == 0 for c in inferred["membership_changes"])


def test_real_sticky_against_nonsticky(recorded_pair: RecordedPair) -> None:
    """A the reference (the non-sticky control), B the candidate (the sticky run)."""
    out = run_reports(recorded_pair.control, recorded_pair.sticky)
    assert out.returncode == 0, out.stderr
    csv_path = Path(recorded_pair.control + "_vs_sticky_comparison.csv")
    rows = {line.split(",")[0]: line.split(",") for line in csv_path.read_text().splitlines()}
    a, b = float(rows["session_stickiness"][1]), float(rows["session_stickiness"][2])
    # the sticky run's sessions move only at its membership changes; the non-sticky users'
    # requests spread over the replicas from the first second
    assert a < 0.1 and b > a
    assert float(rows["session_stickiness"][3]) == pytest.approx(b - a, abs=1e-5)
    assert float(rows["request_stickiness"][2]) > float(rows["request_stickiness"][1])
    assert rows["flaps"][1] == "" and int(rows["flaps"][2]) == 0  # A asks for no affinity
    assert int(rows["switches"][1]) > 0
    assert Path(recorded_pair.control + "_vs_sticky_comparison.html").is_file()


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed")
def test_reports_are_light_and_render_in_headless_chromium_offline(
        recorded_pair: RecordedPair) -> None:
    report = Path(recorded_pair.sticky + "_report.html")
    comparison = Path(recorded_pair.control + "_vs_sticky_comparison.html")
    if not report.is_file():
        assert main([recorded_pair.sticky, "--events", str(recorded_pair.events)]) == 0
    if not comparison.is_file():
        assert main([recorded_pair.control, recorded_pair.sticky]) == 0
    for page in (report, comparison):  # Locust's own report of such a run: about 1 MB
        assert page.stat().st_size <= 1_500_000, (page, page.stat().st_size)
    assert render_in_chromium([(report, 4), (comparison, 3)]) == []


def test_the_timeline_counts_every_request(recorded_pair: RecordedPair) -> None:
    from reports.config import ReportConfig
    from reports.load import read_run as load_run
    from reports.metrics import analyze

    analysis = analyze(load_run(recorded_pair.sticky, recorded_pair.events), ReportConfig())
    assert int(analysis.timeline.requests.sum()) == analysis.summary.requests
    assert analysis.timeline.live.max() == 4


def test_a_report_can_be_made_while_another_thread_reads_it(recorded_pair: RecordedPair) -> None:
    """The HTML is replaced atomically: a reader never sees a partial file."""
    args = [recorded_pair.sticky, "--events", str(recorded_pair.events)]
    assert main(args) == 0
    report = Path(recorded_pair.sticky + "_report.html")
    seen: list[bool] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(report.read_text().rstrip().endswith("</html>"))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(3):
            assert main(args) == 0
    finally:
        stop.set()
        reader.join(10)
    assert seen and all(seen)
