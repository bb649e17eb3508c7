"""Real runs: the real emulator, real Locust runs of locustfiles/sticky.py (a StickyUser run
with a scale-up and a kill during the load, and a NonStickyUser run), then `python -m reports`
on what they recorded, and the HTML in a real headless chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from modal_app.local.launch import ROOT, emulator, stop_process
from modal_app.local.rendezvous import pick
from tests.support.browser import CHROMIUM, render_in_chromium
from tests.support.cli import run_reports
from tests.support.http import emulator_control as control

USERS = 20
LOAD_S = 11
SCALE_AT_S = 3.0
KILL_AT_S = 6.0


@dataclass
class RealRuns:
    directory: Path
    sticky: str
    nonsticky: str
    events: Path
    killed: str


def wait_for_load(url: str, deadline_s: float = 60.0) -> None:
    """Until a replica has a request in flight: Locust's users have started."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if any(r["in_flight"] for r in control(url, "/replicas")):
            return
        time.sleep(0.05)
    raise AssertionError("the Locust run never sent a request")


def locust(url: str, user_class: str, prefix: Path, seconds: int) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "locust", "-f", "locustfiles/sticky.py", user_class,
           "--headless", "-u", str(USERS), "-r", str(USERS), "-t", f"{seconds}s",
           "--host", url, "--csv", str(prefix), "--loglevel", "WARNING",
           "--exit-code-on-error", "0"]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def finish(proc: subprocess.Popen[str], timeout: float) -> str:
    try:
        output, _ = proc.communicate(timeout=timeout)
    finally:
        stop_process(proc)
    # 3: the harness's own verdict when a sticky session saw several containers
    assert proc.returncode in (0, 3), output[-3000:]
    return output


def churn(url: str) -> str:
    """A scale-up to 4, then a kill of one of the first replicas (replaced): returns its id."""
    start = time.monotonic()
    first = [r["container_id"] for r in control(url, "/replicas")]
    time.sleep(max(0.0, SCALE_AT_S - (time.monotonic() - start)))
    control(url, "/scale", {"replicas": 4})
    time.sleep(max(0.0, KILL_AT_S - (time.monotonic() - start)))
    control(url, f"/replicas/{first[0]}/kill", {})
    return str(first[0])


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealRuns]:
    if not (ROOT / "locustfiles" / "sticky.py").is_file():
        pytest.skip("locustfiles/sticky.py is not there yet")
    directory = tmp_path_factory.mktemp("real")
    events = directory / "emulator_events.jsonl"
    with emulator(3, events=events) as emu:
        proc = locust(emu.url, "StickyUser", directory / "sticky", LOAD_S)
        try:
            wait_for_load(emu.url)
            killed = churn(emu.url)
        finally:
            finish(proc, LOAD_S + 90)
        finish(locust(emu.url, "NonStickyUser", directory / "nonsticky", 4), 90)
    yield RealRuns(directory, str(directory / "sticky"), str(directory / "nonsticky"), events,
                   killed)


def summary_of(prefix: str) -> dict[str, Any]:
    return dict(json.loads(Path(prefix + "_summary.json").read_text()))


def test_real_sticky_run_remaps_exactly_as_rendezvous_hashing(real_runs: RealRuns) -> None:
    out = run_reports(real_runs.sticky, "--events", str(real_runs.events),
                      "--max-collateral", "0", "--max-flaps", "0")
    assert out.returncode == 0, out.stdout + out.stderr
    s = summary_of(real_runs.sticky)
    rows = pq.read_table(real_runs.sticky + "_requests.parquet")
    assert s["requests"] == rows.num_rows and s["sessions"] == USERS
    assert s["epochs_source"] == "events" and s["locust"]["requests"] <= s["requests"]
    session_ids = set(rows.column("session_id").to_pylist())
    changes = s["membership_changes"]
    assert [c["removed"] for c in changes if c["removed"]] == [[real_runs.killed]]
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


def test_the_harness_event_log_agrees_with_the_emulators(real_runs: RealRuns) -> None:
    """The Locust harness writes PREFIX_events.jsonl (a snapshot, then the emulator's events
    of its run): read by default, it gives the same changes as the emulator's own log."""
    if not Path(real_runs.sticky + "_events.jsonl").is_file():
        pytest.skip("this harness writes no PREFIX_events.jsonl")
    own = str(real_runs.directory / "own")
    assert run_reports(real_runs.sticky, "--events", str(real_runs.events),
                       "--out", own).returncode == 0
    out = run_reports(real_runs.sticky, "--out", str(real_runs.directory / "harness"))
    assert out.returncode == 0, out.stderr
    harness = summary_of(str(real_runs.directory / "harness"))
    assert harness["events_file"] == real_runs.sticky + "_events.jsonl"
    assert essentials(harness) == essentials(summary_of(own))


def test_real_run_inferred_without_an_event_log(real_runs: RealRuns) -> None:
    bare = real_runs.directory / "bare"
    shutil.copy(real_runs.sticky + "_requests.parquet", str(bare) + "_requests.parquet")
    out = run_reports(str(bare))
    assert out.returncode == 0, out.stderr
    inferred = summary_of(str(bare))
    assert inferred["epochs_source"] == "inferred"
    removed = [c["removed"] for c in inferred["membership_changes"] if c["removed"]]
    assert removed == [[real_runs.killed]]
    assert all(c["collateral"] == 0 for c in inferred["membership_changes"])


def test_real_sticky_against_nonsticky(real_runs: RealRuns) -> None:
    out = run_reports(real_runs.sticky, real_runs.nonsticky)
    assert out.returncode == 0, out.stderr
    csv_path = Path(real_runs.sticky + "_vs_nonsticky_comparison.csv")
    rows = {line.split(",")[0]: line.split(",") for line in csv_path.read_text().splitlines()}
    a, b = float(rows["session_stickiness"][1]), float(rows["session_stickiness"][2])
    # the sticky run's sessions move only at its three membership changes; the non-sticky
    # users' requests spread over the replicas from the first second
    assert b < 0.1 and a > b
    assert float(rows["session_stickiness"][3]) == pytest.approx(b - a, abs=1e-5)
    assert float(rows["request_stickiness"][1]) > float(rows["request_stickiness"][2])
    assert int(rows["flaps"][1]) == 0 < int(rows["flaps"][2])
    assert Path(real_runs.sticky + "_vs_nonsticky_comparison.html").is_file()


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed")
def test_reports_are_light_and_render_in_headless_chromium_offline(real_runs: RealRuns) -> None:
    report = Path(real_runs.sticky + "_report.html")
    comparison = Path(real_runs.sticky + "_vs_nonsticky_comparison.html")
    if not report.is_file():
        assert run_reports(real_runs.sticky, "--events", str(real_runs.events)).returncode == 0
    if not comparison.is_file():
        assert run_reports(real_runs.sticky, real_runs.nonsticky).returncode == 0
    for page in (report, comparison):  # Locust's own report of such a run: about 1 MB
        assert page.stat().st_size <= 1_500_000, (page, page.stat().st_size)
    assert render_in_chromium([(report, 4), (comparison, 3)]) == []


def test_the_timeline_counts_every_request(real_runs: RealRuns) -> None:
    from reports.config import ReportConfig
    from reports.load import load_run
    from reports.metrics import analyze

    analysis = analyze(load_run(real_runs.sticky, real_runs.events), ReportConfig())
    assert int(analysis.timeline.requests.sum()) == analysis.summary.requests
    assert analysis.timeline.live.max() == 4


def test_a_report_can_be_made_while_another_thread_reads_it(real_runs: RealRuns) -> None:
    """The HTML is replaced atomically: a reader never sees a partial file."""
    assert run_reports(real_runs.sticky, "--events", str(real_runs.events)).returncode == 0
    report = Path(real_runs.sticky + "_report.html")
    seen: list[bool] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(report.read_text().rstrip().endswith("</html>"))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(3):
            assert run_reports(real_runs.sticky, "--events",
                               str(real_runs.events)).returncode == 0
    finally:
        stop.set()
        reader.join(10)
    assert seen and all(seen)
