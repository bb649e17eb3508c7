"""The HTML report: self-contained, escaped, and drawn by a real headless chromium with no
console error and no network request."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from reports.metrics import Timeline
from tests.reports.conftest import (
    T0,
    A,
    Row,
    run_reports,
    scale_up_events,
    scale_up_rows,
    write_events,
    write_requests,
)

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def render_in_chromium(pages: list[tuple[Path, int]]) -> list[str]:
    """Open each file in headless chromium; return every console error or warning, page
    error and request that is not for a file: or data: URL. Each page must show at least
    its number of charts, each drawn."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM is not None
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for path, charts in pages:
                page = browser.new_page()
                page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                        if m.type in ("error", "warning") else None)
                page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
                page.on("request", lambda r: None if r.url.startswith(("file:", "data:"))
                        else problems.append(f"network: {r.url}"))
                page.goto(path.as_uri())
                page.wait_for_load_state("load")
                sizes = page.eval_on_selector_all(
                    "svg", "els => els.map(e => e.getBoundingClientRect().height)")
                assert len(sizes) >= charts and all(h > 50 for h in sizes), (path, sizes)
                page.close()
        finally:
            browser.close()
    return problems


def synthetic_run(directory: Path) -> str:
    """Every section drawn: a membership change, errors of every class, a cache, odd ids."""
    rows, _ = scale_up_rows(60)
    rows += [Row(T0 + 3 + i * 0.1, "<script>alert(1)</script>", None, status)
             for i, status in enumerate((0, 401, 429, 503, 404, 500, 302, 200))]
    rows += [Row(T0 + j, "cached", A, cache="hit" if j % 2 else "miss") for j in range(10)]
    write_requests(directory / "syn_requests.parquet", rows)
    write_events(directory / "syn_events.jsonl", scale_up_events())
    return str(directory / "syn")


def test_the_page_is_self_contained_and_escaped(tmp_path: Path) -> None:
    prefix = synthetic_run(tmp_path)
    assert run_reports(prefix).returncode == 0
    page = Path(prefix + "_report.html").read_text()
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    urls = set(re.findall(r"(?:src|href)=\"([^\"]*)\"", page))
    assert urls <= {"data:,"}, urls
    assert re.findall(r"https?://[^\"]*", page) == ["http://www.w3.org/2000/svg"] * page.count(
        "<svg")
    for section in ("Timeline", "Membership changes", "Sessions over time", "Containers",
                    "Latency", "Errors", "cache hit"):
        assert section in page


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed")
def test_synthetic_reports_render_offline(tmp_path: Path) -> None:
    prefix = synthetic_run(tmp_path)
    assert run_reports(prefix).returncode == 0
    assert run_reports(prefix, prefix, "--out", str(tmp_path / "self")).returncode == 0
    assert render_in_chromium([(Path(prefix + "_report.html"), 4),
                               (tmp_path / "self_comparison.html", 3)]) == []


def test_a_long_timeline_is_merged_to_a_few_hundred_points() -> None:
    import numpy as np

    from reports.charts import timeline_chart

    bins = 100_000
    timeline = Timeline(T0, 1.0, np.full(bins, 5, np.int64), np.zeros((bins, 9), np.int64),
                        np.full(bins, 2, np.int64), np.full(bins, 3, np.int64),
                        np.zeros(bins), None)
    svg = timeline_chart(timeline, [], points=500)
    assert len(svg) < 200_000
    assert max(len(p.split()) for p in re.findall(r'points="([^"]*)"', svg)) <= 1000


def test_a_swimlane_of_many_switches_keeps_one_hover_text_per_lane() -> None:
    from reports.charts import swimlane_chart
    from reports.metrics import Lane, Swimlane

    lanes = [Lane(f"s{i}", [(b, b + 1, b % 3) for b in range(300)]) for i in range(120)]
    svg = swimlane_chart(Swimlane(T0, 0.1, 300, lanes, 500), [A, "ta-B", "ta-C"], [])
    assert svg.count("<title>") == 120 and svg.count("<rect") > 36_000
    few = swimlane_chart(Swimlane(T0, 0.1, 300, lanes[:2], 2), [A, "ta-B", "ta-C"], [])
    assert few.count("<title>") == 600
