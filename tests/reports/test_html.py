"""The HTML report: one self-contained file with plotly.js inlined once, the run's strings
escaped, charts of bounded size; drawn by a real headless chromium that may fetch nothing, with
no console error and nothing wider than a 1,300 px window."""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports import charts
from reports.columns import STREAM_CUT_PREFIX
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, WIDTH, render_in_chromium
from tests.support.cli import run_reports
from tests.support.pages import figures, unpacked
from tests.support.rows import (
    T0,
    A,
    B,
    C,
    D,
    Row,
    scale_up_events,
    scale_up_rows,
    write_events,
    write_requests,
)

# Modal-like container ids, long enough to break a legend or a table that does not wrap
LONG = {cid: f"{cid}-01JD8ZQ4Y6WJ3X9KQH2B7N5M1R{i}" for i, cid in enumerate((A, B, C, D))}
HOSTILE = "<script>alert(1)</script>"


def synthetic_run(directory: Path, name: str = "syn") -> str:
    """Every section drawn: a membership change, errors of every class, a cache, streams
    with a time to first token, a control class, long container ids, and a session id that
    is HTML."""
    rows, _ = scale_up_rows(60)
    rows = [replace(r, container_id=LONG.get(r.container_id or "", r.container_id),
                    affinity="session") for r in rows]
    rows += [Row(T0 + 3 + i * 0.1, HOSTILE, None, status, affinity="session")
             for i, status in enumerate((0, 401, 429, 503, 404, 500, 302, 200))]
    rows += [Row(T0 + j, "cached", LONG[A], cache="hit" if j % 2 else "miss",
                 response_time_ms=50.0 if j % 2 else 90.0, affinity="session",
                 ttft_ms=4.0 + j if j % 2 else 40.0 + j, tokens=8, max_gap_ms=2.0)
             for j in range(10)]
    rows += [Row(T0 + j + 0.5, f"control{i}", LONG[(A, B, C)[(i + j) % 3]],
                 user_class="NonStickyUser", affinity="none") for i in range(6)
             for j in range(8)]
    write_requests(directory / f"{name}_requests.parquet", rows)
    events = [{**e, **({"container_id": LONG[str(e["container_id"])],
                        "live": [LONG[c] for c in e["live"]]}  # type: ignore[attr-defined]
                       if "container_id" in e else {})} for e in scale_up_events()]
    write_events(directory / f"{name}_events.jsonl", events)
    return str(directory / name)


def test_the_page_carries_plotly_once_and_escapes_the_run(tmp_path: Path) -> None:
    prefix = synthetic_run(tmp_path)
    assert run_reports(prefix).returncode == 0
    page = Path(prefix + "_report.html").read_text()
    assert page.count('id="plotly-js"') == 1
    assert unpacked(page, "plotly-js").startswith("/**\n* plotly.js (cartesian - minified)")
    shown = figures(page)
    assert len(shown) == page.count('class="chart"') == 7
    assert all(f["data"] and f["layout"] for f in shown)
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in json.dumps(shown)
    assert HOSTILE not in json.dumps(shown)
    assert not re.search(r"<(?:script|img|iframe)[^>]*\ssrc=", page)
    assert set(re.findall(r"<link[^>]*href=\"([^\"]*)\"", page)) == {"data:,"}
    for section in ("Timeline", "Membership changes", "Sessions over time", "Containers",
                    "Latency", "Errors", "User classes", LONG[D], "control: NonStickyUser",
                    "settled stickiness", "Time to first token by cache state",
                    "Time to first token by stickiness state"):
        assert section in page


def test_a_long_timeline_is_merged_to_a_few_hundred_points() -> None:
    seconds = 100_000
    timeline = pd.DataFrame({"second": np.arange(seconds, dtype=float),
                             "requests": np.full(seconds, 5), "ok": np.full(seconds, 4),
                             "failed_503": np.ones(seconds, dtype=int),
                             "live_containers": np.full(seconds, 3)})
    fig = charts.timeline_figure(timeline, None, points=500)
    assert {len(t.x) for t in fig.data} == {500}
    requests = next(t for t in fig.data if t.name == "requests/s")
    assert set(np.round(requests.y, 9)) == {5.0}  # merged counts stay rates per second


def test_the_swimlane_samples_sessions_and_bins_time() -> None:
    n, per = 1_000, 50
    sid = np.repeat([f"s{i}" for i in range(n)], per)
    frame = pd.DataFrame({
        "ts": T0 + np.tile(np.arange(per, dtype=float), n) + np.repeat(np.arange(n) * 1e-3, per),
        "session_id": sid, "status": 200, "response_time_ms": 10.0, "ok": True,
        "container_id": np.where(np.arange(n * per) % 7 == 0, "c1", "c0")})
    lanes = charts.swimlanes(frame, limit=60, bins=100)
    assert lanes.codes.shape == (60, 100) and lanes.total_sessions == n
    assert lanes.containers == ["c0", "c1"]
    heatmap = charts.swimlane_figure(frame, None, limit=60, bins=100).data[0]
    assert np.asarray(heatmap.z).shape == (60, 100)


def test_a_cut_stream_is_a_failure_in_the_charts_as_in_the_figures(tmp_path: Path) -> None:
    """One definition of a successful request (reports.metrics, the API's `ok` column): a
    2xx stream that was cut names a container and still failed, in the swimlane too."""
    from reports import load_run

    prefix = tmp_path / "cut"
    write_requests(Path(f"{prefix}_requests.parquet"), [
        Row(T0, "a", "x"), Row(T0 + 1, "a", "x"), Row(T0 + 2, "a", None, 503),
        Row(T0 + 3, "a", "y", error=STREAM_CUT_PREFIX + "after 3 tokens"),
        Row(T0 + 4, "a", "y")])
    run = load_run(str(prefix))
    assert run.requests["ok"].tolist() == [True, True, False, False, True]
    assert run.requests["state"].tolist() == ["first", "repeat", np.nan, np.nan,
                                              "after_switch"]
    lanes = charts.swimlanes(run.requests, bins=5)
    assert lanes.containers == ["x", "y"]
    assert lanes.codes[0].tolist() == [0, 0, -1, -1, 1]  # the cut stream's bin: failed only


def test_a_swimlane_lane_keeps_its_colour_until_its_next_request() -> None:
    frame = pd.DataFrame({"ts": [0.0, 5.0, 9.99], "session_id": ["a", "a", "a"],
                          "container_id": ["x", "y", "y"], "status": [200, 200, 200],
                          "ok": True})
    lanes = charts.swimlanes(frame, bins=10)
    assert lanes.codes[0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: apt-get install -y chromium")
def test_synthetic_reports_render_offline_and_fit_the_page(tmp_path: Path) -> None:
    prefix = synthetic_run(tmp_path)
    other = synthetic_run(tmp_path, "other")
    assert run_reports(prefix).returncode == 0
    assert run_reports(prefix, other, "--out", str(tmp_path / "ab")).returncode == 0
    shots = Path(os.environ.get("REPORT_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    assert render_in_chromium([(Path(prefix + "_report.html"), 7),
                               (tmp_path / "ab_comparison.html", 5)], shots) == []
    assert (shots / "syn_report.png").stat().st_size > 10_000


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: apt-get install -y chromium")
def test_the_legends_show_whole_container_ids(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    prefix = synthetic_run(tmp_path)
    assert run_reports(prefix).returncode == 0
    assert CHROMIUM is not None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            page.goto(Path(prefix + "_report.html").as_uri())
            page.wait_for_function("document.querySelectorAll('.legendtext').length > 0")
            legends = page.eval_on_selector_all(
                ".legendtext", "els => els.map(e => [e.textContent, "
                "e.getBoundingClientRect().right, e.closest('.js-plotly-plot')"
                ".getBoundingClientRect().right])")
        finally:
            browser.close()
    texts = [t for t, _, _ in legends]
    assert all(cid in texts for cid in LONG.values()), texts
    assert all(right <= box + 0.5 for _, right, box in legends), legends


def test_the_swimlane_picks_the_same_sessions_from_the_api_sessions(tmp_path: Path) -> None:
    from reports import load_run

    run = load_run(synthetic_run(tmp_path))
    own = charts.swimlanes(run.requests, limit=30, bins=50)
    api = charts.swimlanes(run.requests, limit=30, bins=50, sessions=run.sessions)
    assert own.sessions == api.sessions and own.controls == api.controls == 6
    assert np.array_equal(own.codes, api.codes, equal_nan=True)
    assert HOSTILE in own.sessions and all(s.startswith("control") for s in own.sessions[-6:])
    heatmap = charts.swimlane_figure(run.requests, sessions=run.sessions).data[0]
    shown = {str(c) for c in np.asarray(heatmap.customdata)[:, 0]}
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown and HOSTILE not in shown


def plotly_array(value: object) -> np.ndarray:
    """An array of a figure's JSON: a list, or plotly's typed array (base64 `bdata`)."""
    if not isinstance(value, dict):
        return np.asarray(value)
    data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    shape = [int(n) for n in str(value.get("shape", len(data))).split(",")]
    return data.reshape(shape)


def test_the_page_samples_as_its_config_says(tmp_path: Path) -> None:
    """The swimlane's sessions and bins and the timeline's points come from the run's
    ReportConfig (no default of the charts' own), and the defaults are the config's."""
    from reports import html, load_run
    from reports.config import ReportConfig

    prefix = synthetic_run(tmp_path)
    default = ReportConfig()
    assert (default.swimlane_sessions, default.swimlane_bins) == (120, 240)
    run = load_run(prefix, config=ReportConfig(swimlane_sessions=7, swimlane_bins=30,
                                                timeline_points=5))
    shown = figures(html.render_report(run))
    (lane,) = [f for f in shown if f["data"][0]["type"] == "heatmap"]
    assert plotly_array(lane["data"][0]["z"]).shape == (7, 30)
    timeline = shown[0]["data"][0]
    assert timeline["name"] == "requests/s" and len(plotly_array(timeline["x"])) <= 5
    lanes = charts.swimlanes(run.requests)
    assert lanes.codes.shape[1] == default.swimlane_bins
    assert len(lanes.sessions) == min(default.swimlane_sessions, lanes.total_sessions)


def test_collateral_reads_n_a_when_no_repeat_answer_was_judged() -> None:
    from reports import html
    from reports.summary import ChangeSummary
    from tests.support.summaries import summary

    change = ChangeSummary(T0, 1.0, T0 + 1, T0 + 3, ["kill"], [], [A], 3, 2, 10, 0, None,
                           None, None, None, None, 0, None, None)
    judged = html.collateral_card(summary(collateral=2, membership_changes=[change]))
    assert (judged.value, judged.detail) == (
        "2", "answers moved off a live owner to a container already live")
    unjudged = html.collateral_card(summary(collateral=None, membership_changes=[change]))
    assert (unjudged.value, unjudged.detail) == (
        "n/a", "no repeat answer across a change to judge")
    quiet = html.collateral_card(summary(collateral=0, membership_changes=[]))
    assert (quiet.value, quiet.detail) == ("n/a", "no membership change to judge")
