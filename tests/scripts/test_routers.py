"""`scripts/routers` end to end with short legs: every router in front of real replicas, the
table's figures per router (stickiness, collateral, the floor's failure), the page offline;
the judging of a router's promise on figures; bad arguments."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import routers_table  # noqa: E402
import routers_targets  # noqa: E402

MISSING = [r.binary for r in routers_targets.ROUTERS
           if r.binary and routers_targets.find(r.binary) is None]
CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else shutil.which(
    "chromium")
STICKY = ("emulator", "haproxy", "nginx", "caddy")


@pytest.fixture(scope="module")
def shoot_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str],
                                                                 Path]:
    if MISSING:
        pytest.skip(f"no {', '.join(sorted(set(MISSING)))}: apt-get install haproxy nginx caddy")
    out = tmp_path_factory.mktemp("routers")
    done = subprocess.run([sys.executable, "scripts/routers.py", "--seconds", "7", "--settle",
                           "0.75", "--users", "40", "--pace-rps", "4", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=170)
    return done, out


def rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "routers.csv").open(newline="") as f:
        return {row["router"]: row for row in csv.DictReader(f)}


def test_every_sticky_router_keeps_its_promise_and_the_floor_fails(
        shoot_out: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    done, out = shoot_out
    assert done.returncode == 0, done.stdout + done.stderr
    table = rows(out)
    assert list(table) == [*STICKY, "random"]
    for name in STICKY:
        row = table[name]
        assert row["kept"] == "1" and row["why"] == "", row
        assert row["plus_collateral"] == "0" and row["minus_collateral"] == "0", row
        assert float(row["settled_stickiness"]) == 1.0 and row["flaps"] == "0", row
        # the changes moved some sessions, each to a replica it could not stay on
        assert 0 < float(row["plus_moved"]) < 0.6 and 0 < float(row["minus_moved"]) < 0.6, row
        assert float(row["minus_moved"]) == pytest.approx(float(row["minus_ideal"])), row
        assert float(row["session_stickiness"]) < 1.0, row
        assert float(row["rps"]) > 100 and float(row["p95_ms"]) > 0, row
        assert Path(row["prefix"] + "_events.jsonl").is_file()
    floor = table["random"]
    assert floor["kept"] == "1", floor  # not sticky, as the instrument must see it
    assert float(floor["settled_stickiness"]) < 0.5 and int(floor["flaps"]) > 100, floor
    assert int(floor["plus_collateral"]) > 0 and int(floor["minus_collateral"]) > 0, floor
    for name in (*STICKY, "random"):  # the printed table has the same rows
        assert any(line.startswith(name + " ") for line in done.stdout.splitlines()), name
    assert "not sticky, as expected" in done.stdout
    assert "routers: PASS" in done.stdout and "routers: done in" in done.stdout


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: apt-get install -y chromium")
def test_the_page_renders_offline_with_one_row_per_router(
        shoot_out: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    from playwright.sync_api import Route, sync_playwright

    _, out = shoot_out
    fetched: list[str] = []

    def refuse(route: Route) -> None:
        fetched.append(route.request.url)
        route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.route("http*://**", refuse)
            page.goto((out / "routers.html").as_uri())
            names = page.locator("tbody td.name").all_inner_texts()
            verdicts = page.locator("tbody td.kept").count()
        finally:
            browser.close()
    assert names == [*STICKY, "random"] and verdicts == 5 and fetched == []


# ## Judging, on figures


def figures(promise: str, plus: int, minus: int, flaps: int, settled: float
            ) -> routers_table.Figures:
    router = next(r for r in routers_targets.ROUTERS if r.promise == promise)
    summary: dict[str, Any] = {"settled_stickiness": settled, "flaps": flaps}
    return routers_table.Figures(router, "x", summary=summary,
                                 plus=routers_table.Move(50, 0.2, 0.2, plus),
                                 minus=routers_table.Move(50, 0.25, 0.25, minus))


def test_a_hash_router_with_collateral_or_flaps_breaks_its_promise() -> None:
    for promise in ("rendezvous", "consistent"):
        assert routers_table.judge(figures(promise, 0, 0, 0, 1.0)) == []
        assert routers_table.judge(figures(promise, 3, 0, 0, 1.0)) == ["3 collateral moves on +1"]
        assert routers_table.judge(figures(promise, 0, 1, 0, 1.0)) == ["1 collateral moves on -1"]
        assert routers_table.judge(figures(promise, 0, 0, 2, 0.98))
    no_change = figures("rendezvous", 0, 0, 0, 1.0)
    no_change.minus = None  # nothing to judge is no pass
    assert routers_table.judge(no_change) == ["no session to judge on -1"]


def test_a_floor_that_looks_sticky_fails_the_instrument() -> None:
    assert routers_table.judge(figures("none", 20, 20, 500, 0.0)) == []
    assert routers_table.judge(figures("none", 0, 0, 0, 1.0))
    assert routers_table.judge(figures("none", 20, 20, 3, 0.9))


def test_bad_arguments_are_a_one_line_error(tmp_path: Path) -> None:
    for bad in (["--routers", "envoy"], ["--seconds", "4"], ["--replicas", "0"]):
        done = subprocess.run([sys.executable, "scripts/routers.py", *bad, "--out",
                               str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 2 and "Traceback" not in done.stderr, bad
        assert "error: --" in done.stderr.strip().splitlines()[-1], bad
