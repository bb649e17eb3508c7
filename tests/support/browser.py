"""A real headless chromium (Playwright) that draws a page, refuses every network request,
and reports what went wrong: console errors, page errors, requests, overflow."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else shutil.which(
    "chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WIDTH = 1300


def render_in_chromium(pages: list[tuple[Path, int]], screenshots: Path | None = None
                       ) -> list[str]:
    """Open each file in headless chromium at 1,300 px wide; return every console error or
    warning, page error, request that is not for a file: or data: URL (each one aborted),
    and element wider than the window. Each page must show at least its number of plotly
    charts, each drawn (an SVG of real size inside the chart's div)."""
    from playwright.sync_api import Route, sync_playwright

    assert CHROMIUM is not None
    problems: list[str] = []

    def refuse(route: Route) -> None:
        problems.append(f"network: {route.request.url}")
        route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for path, count in pages:
                page = browser.new_page(viewport={"width": WIDTH, "height": 900})
                page.route(re.compile(r"^(?!file:|data:)"), refuse)
                page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                        if m.type in ("error", "warning") else None)
                page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
                page.goto(path.as_uri())
                page.wait_for_load_state("load")
                page.wait_for_function(
                    "document.querySelectorAll('.js-plotly-plot .main-svg').length > 0")
                sizes = page.eval_on_selector_all(
                    ".js-plotly-plot", "els => els.map(e => { const s = "
                    "e.querySelector('.main-svg'); return s ? "
                    "s.getBoundingClientRect().height : 0 })")
                assert len(sizes) >= count and all(h > 100 for h in sizes), (path, sizes)
                problems.extend(overflow(page))
                if screenshots is not None:
                    page.screenshot(path=str(screenshots / f"{path.stem}.png"), full_page=True)
                page.close()
        finally:
            browser.close()
    return problems


def overflow(page: Any) -> list[str]:
    """The page scrolls sideways, or an element (but inside a scroll box) sticks out right."""
    found: list[str] = page.evaluate("""() => {
        const out = [];
        const width = document.documentElement.clientWidth;
        if (document.documentElement.scrollWidth > width)
            out.push(`page is ${document.documentElement.scrollWidth} px wide`);
        for (const el of document.querySelectorAll('main > *, .scroll, figure, .card')) {
            const r = el.getBoundingClientRect();
            if (r.right > width + 0.5) out.push(`${el.tagName}.${el.className} ends at ${r.right}`);
        }
        return out;
    }""")
    return [f"overflow: {f}" for f in found]
