"""`scripts/demo` end to end, with short runs; and its failure when routing is not sticky."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def demo(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "scripts/demo.py", "--seconds", "3", "--users", "12",
                           "--out", str(tmp_path / "demo"), *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)


def test_the_demo_runs_both_and_reports(tmp_path: Path) -> None:
    done = demo(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "demo"
    for name in ("sticky", "nonsticky"):
        for suffix in ("_requests.parquet", "_summary.json", "_sessions.csv", "_report.html",
                       "_stats.csv"):
            assert (out / f"{name}{suffix}").is_file(), name + suffix
    assert (out / "sticky_vs_nonsticky_comparison.html").is_file()
    sticky = json.loads((out / "sticky_summary.json").read_text())
    control = json.loads((out / "nonsticky_summary.json").read_text())
    assert sticky["sessions"] == 12 and sticky["sessions_multi_container"] == 0
    assert control["sessions_multi_container"] > 6  # the control moves
    assert sticky["cache"]["hit_rate"] > control["cache"]["hit_rate"]
    assert "demo: PASS" in done.stdout and "stickiness buys" in done.stdout
    assert str(out / "sticky_report.html") in done.stdout


def test_bad_arguments_are_a_one_line_error(tmp_path: Path) -> None:
    done = demo(tmp_path, "--replicas", "0")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--replicas" in done.stderr.strip().splitlines()[-1]
