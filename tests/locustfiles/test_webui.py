"""The Stickiness tab in a real headless chromium, against real Locust runs and the emulator."""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.http import free_port
from tests.support.locust import STICKY, LocustProcess, finish, locust_process, processes

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (.ci/run installs Debian's)"),
]

if False:  # typing only; playwright is imported where a browser runs
    from playwright.sync_api import Page


@contextlib.contextmanager
def browser_page() -> Iterator[Page]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


def web_args(target: str, port: int, *extra: str) -> list[str]:
    return [*extra, "--web-host", "127.0.0.1", "--web-port", str(port), "--autostart",
            "--host", target]


def summary_rows(page: Page) -> dict[str, list[str]]:
    """The tab's summary rows (one per user class), by user class: their cells."""
    rows = page.locator("tbody tr").filter(has_text=re.compile(r"^ALL ")).all()
    return {cells[1]: cells for cells in (row.locator("td").all_inner_texts() for row in rows)}


def tab_requests(page: Page) -> int:
    return sum(int(cells[4]) for cells in summary_rows(page).values())


def wait_for_more_requests(page: Page, than: int, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while (seen := tab_requests(page)) <= than:
        assert time.monotonic() < deadline, f"the Stickiness tab stayed at {seen} requests"
        page.wait_for_timeout(200)
    return seen


# the load has started: with workers on a busy machine Locust may say the second instead,
# when a worker's report of its spawned users comes late
SPAWNED = r"All users spawned|Spawning is complete"


def open_tab(page: Page, run: LocustProcess, url: str) -> None:
    run.wait_for(SPAWNED)
    page.goto(url)
    page.get_by_role("tab", name="Stickiness").click()


def test_tab_is_live_and_a_stop_from_the_ui_loses_nothing(target: str, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    args = web_args(target, port, "-f", STICKY, "-u", "6", "-r", "6", *processes(2))
    with locust_process(*args, tmp=tmp_path) as run, browser_page() as page:
        open_tab(page, run, url)
        options = page.evaluate("Object.keys(window.templateArgs.extra_options)")
        assert {"work_ms", "wait_timeout", "max_multi_container_sessions", "pace_rps",
                "stream_tokens", "prompt_tokens", "cache_key", "session_header",
                "session_cookie", "instance_header", "instance_field", "turns"} <= set(options)
        first = wait_for_more_requests(page, 0)
        wait_for_more_requests(page, first)  # live: the numbers grow
        verdict = page.locator("tbody tr").first.locator("td").first.inner_text()
        assert verdict == "PASS: 0 sticky sessions saw more than one container (allowed 0)"
        summary = summary_rows(page)
        # the names of the report (contracts section 6); the control beside, not judged
        assert summary["StickyUser"][0] == (
            "ALL 3 sessions (sends Modal-Session-Id; judged): on more than one container 0/3, "
            "session stickiness 100.00% (3/3 sessions with 2+ answers on one container), "
            "same-container rate 100.00%")
        control = summary["NonStickyUser"][0]
        assert control.startswith("ALL 3 sessions (sends no session; control, not judged): ")
        assert "session stickiness " in control and "same-container rate " in control
        assert "PASS" in verdict  # the control's moves do not fail the verdict
        page.get_by_role("tab", name="Download Data").click()
        link = page.get_by_role("link", name="Download stickiness CSV")
        csv = page.request.get(url + str(link.get_attribute("href")).removeprefix("./"))
        assert csv.ok and csv.headers["content-type"].startswith("text/csv")
        assert len(csv.text().strip().splitlines()) == 1 + 6
        page.get_by_role("button", name="Stop").click()
        page.get_by_text("STOPPED").wait_for()
        run.signal_group(signal.SIGINT)
        result = finish(run)
    assert result.code == 0, result.output[-3000:]
    assert result.rows.num_rows == result.locust_requests > 0


def test_tab_works_behind_web_login(target: str, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    args = web_args(target, port, "-f", "tests/locustfiles/web_login.py", "StickyUser",
                    "--web-login", "-u", "3", "-r", "3")
    with locust_process(*args, tmp=tmp_path) as run, browser_page() as page:
        run.wait_for(SPAWNED)
        for path in ("stickiness", "stickiness/csv"):
            anonymous = page.request.get(url + path, max_redirects=0)
            assert anonymous.status == 302 and "/login" in anonymous.headers["location"]
        page.goto(url)
        assert "/login" in page.url
        page.get_by_label("Username").fill("tester")
        page.get_by_label("Password").fill("test")
        page.get_by_role("button", name=re.compile("log ?in", re.IGNORECASE)).click()
        page.get_by_role("tab", name="Stickiness").click()
        first = wait_for_more_requests(page, 0)
        wait_for_more_requests(page, first)
        assert page.request.get(url + "stickiness/csv").ok
