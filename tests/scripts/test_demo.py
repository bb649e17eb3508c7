"""`scripts/demo` end to end with short legs; its judging (equal offered load, the affinity
classes only) on summaries; bad arguments."""

from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reports.summary import Summary, load_summary
from tests.support.summaries import summary

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import demo  # noqa: E402


def run_demo(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # legs of 6 s: a start delayed by a busy machine weighs less on a leg's rate
    return subprocess.run([sys.executable, "scripts/demo.py", "--seconds", "6", "--users", "40",
                           "--out", str(tmp_path / "demo"), *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=400)


def test_the_demo_compares_at_equal_load_and_passes(tmp_path: Path) -> None:
    done = run_demo(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "demo"
    for leg in demo.LEGS:
        for suffix in ("_requests.parquet", "_summary.json", "_report.html", "_stats.csv"):
            assert (out / f"{leg.name}{suffix}").is_file(), leg.name + suffix
    # A the reference (the non-sticky control), B the candidate, as everywhere
    assert (out / "nonsticky_vs_sticky_comparison.html").is_file()
    assert (out / "stream_nonsticky_vs_stream_sticky_comparison.html").is_file()
    summaries = {leg.name: load_summary(out / f"{leg.name}_summary.json") for leg in demo.LEGS}
    for sticky, control in (("sticky", "nonsticky"), ("stream_sticky", "stream_nonsticky")):
        ours = summaries[sticky].user_classes["StickyUser"]
        theirs = summaries[control].user_classes["NonStickyUser"]
        assert summaries[sticky].judged_classes == ["StickyUser"]
        assert summaries[control].judged_classes == []  # the control is never judged
        assert ours.affinity == "session" and theirs.affinity == "none"
        assert ours.sessions == 40 and ours.sessions_multi_container == 0
        assert theirs.sessions_multi_container > 20  # the control moves
        hits = demo.hit_rate(summaries[sticky]), demo.hit_rate(summaries[control])
        assert hits[0] is not None and hits[1] is not None and hits[0] > hits[1]
    for name in ("stream_sticky", "stream_nonsticky"):
        streamed = demo.ttft_all(summaries[name])
        assert streamed is not None and streamed.count == summaries[name].requests
    latency = re.search(r"stickiness buys, at (\d+) req/s each: median latency [\d.]+ ms "
                        r"instead of [\d.]+ ms \(\d+% (less|more)\), cache hits [\d.]+% "
                        r"instead of [\d.]+%", done.stdout)
    assert latency, done.stdout
    assert 0.85 * 80 <= int(latency.group(1)) <= 1.1 * 80  # 40 users x 2 req/s, stated
    streaming = re.search(r"stickiness buys, at (\d+) streams/s each: TTFT p50 ([\d.]+) ms "
                          r"instead of ([\d.]+) ms", done.stdout)
    assert streaming, done.stdout
    assert float(streaming.group(2)) < float(streaming.group(3))  # hits skip the prefill
    assert re.search(r"instead of [\d.]+%; p95 [\d.]+ ms instead of [\d.]+ ms.*, p99 ",
                     done.stdout), done.stdout  # the tails, not only the median
    assert done.stdout.count("stickiness costs: busy time max/mean over the replicas") == 2
    assert "demo: PASS" in done.stdout and str(out / "sticky_report.html") in done.stdout


def test_bad_arguments_are_a_one_line_error(tmp_path: Path) -> None:
    done = run_demo(tmp_path, "--replicas", "0")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--replicas" in done.stderr.strip().splitlines()[-1]


# ## Judging, on summaries


def args(**overrides: Any) -> argparse.Namespace:
    return demo.parse_args(["--seconds", "10", "--users", "10", "--pace-rps", "10",
                            *[a for k, v in overrides.items() for a in (f"--{k}", str(v))]])


def summaries(sticky_requests: int, control_requests: int) -> dict[str, Summary]:
    return {"sticky": summary(requests=sticky_requests),
            "nonsticky": summary(requests=control_requests)}


def test_legs_at_the_offered_load_compare() -> None:
    r = demo.rates(demo.PAIRS[0], summaries(990, 1000), args())
    assert r.problem is None and r.offered == 100 and r.achieved["sticky"] == 99


def test_legs_whose_rates_differ_do_not_compare() -> None:
    r = demo.rates(demo.PAIRS[0], summaries(930, 1000), args())
    assert r.problem == "the legs' rates differ by 7.0% (more than 5%)"


def test_a_leg_below_the_offered_load_does_not_compare() -> None:
    r = demo.rates(demo.PAIRS[0], summaries(850, 860), args())
    assert r.problem is not None and r.problem.startswith("a leg fell short of the offered 100")


def test_the_verdict_covers_the_affinity_classes_only() -> None:
    leg = demo.LEGS[0]
    sticky = summary().user_classes["StickyUser"]

    def classes(**figures: Any) -> dict[str, Any]:
        return {name: dataclasses.replace(sticky, **changed)
                for name, changed in figures.items()}
    mixed = summary(judged_classes=["StickyUser"], user_classes=classes(
        StickyUser={"session_stickiness": 1.0, "sessions_multi_container": 0},
        NonStickyUser={"session_stickiness": 0.0, "sessions_multi_container": 9}))
    assert demo.sticky_problems(mixed, leg) == []
    broken = summary(judged_classes=["StickyUser"], user_classes=classes(
        StickyUser={"session_stickiness": 0.9, "sessions_multi_container": 2}))
    assert demo.sticky_problems(broken, leg) == [
        "sticky: 2 StickyUser sessions saw more than one container"]
    unmeasured = summary(user_classes=classes(StickyUser={"session_stickiness": None}))
    assert demo.sticky_problems(unmeasured, leg) == [
        "sticky: StickyUser has no session with 2+ successful requests"]
    assert demo.sticky_problems(summary(judged_classes=[], user_classes={}), leg) == [
        "sticky: no class asking for affinity to judge"]


@pytest.mark.parametrize(("ours", "theirs", "words"), [
    (4.1, 12.3, " (67% less)"), (9.0, 7.1, " (27% more)"), (5.0, 5.0, " (0% less)")])
def test_changes_are_said_in_plain_words(ours: float, theirs: float, words: str) -> None:
    assert demo.change(ours, theirs) == words
