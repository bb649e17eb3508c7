"""The shoot-out's figures per router, read from each run with the report's library, judged
against what the router promises, and written as one text table, one CSV and one HTML page.

Every figure comes from the report (`reports.load_run`: `summary()`, `changes`, `requests`),
but two, computed here from the report's own columns until the report carries them: the
killed replica's share of the sessions on -1, and the errors around the kill (see `read`).
"""

from __future__ import annotations

import csv
import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from routers_targets import Router

from reports import load_run
from reports.errors import ReportInputError

FLOOR_MAX_STICKINESS = 0.5  # the random floor must fall well below this


@dataclass(frozen=True)
class Move:
    """One membership change as the report judged it."""

    sessions: int  # sessions with an owner before and a settled owner after
    moved: float  # remapped fraction
    ideal: float | None  # the least any router must move (None: not known from the report)
    collateral: int  # answers moved off a live owner to a replica already live (per answer)


@dataclass
class Figures:
    router: Router
    prefix: str
    problem: str | None = None  # why there are no figures (a start failure, a bad run)
    summary: dict[str, Any] = field(default_factory=dict)
    plus: Move | None = None
    minus: Move | None = None
    add_errors: int | None = None
    kill_errors: int | None = None
    reasons: list[str] = field(default_factory=list)  # why the promise was not kept

    @property
    def kept(self) -> bool:
        return self.problem is None and not self.reasons

    def get(self, *keys: str) -> Any:
        value: Any = self.summary
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    @property
    def rate(self) -> float | None:
        requests, span = self.get("requests"), self.get("duration_s")
        return requests / span if requests and span else None


def read(router: Router, prefix: Path, settle_s: float) -> Figures:
    """The report's figures of one run, judged against the router's promise."""
    figures = Figures(router, str(prefix))
    try:
        run = load_run(str(prefix), settle_s=settle_s)
    except ReportInputError as exc:
        figures.problem = f"the report could not read the run: {exc}"
        return figures
    figures.summary = run.summary()
    changes = run.changes
    added = changes[changes.added.map(len).gt(0) & changes.removed.map(len).eq(0)]
    removed = changes[changes.removed.map(len).gt(0) & changes.added.map(len).eq(0)]
    if len(added) != 1 or len(removed) != 1 or len(changes) != 2:
        figures.problem = (f"the report found {len(changes)} membership changes, not one +1 "
                           f"then one -1")
        return figures
    plus, minus = added.iloc[0], removed.iloc[0]
    figures.plus = move(plus, float(plus["expected_fraction"]))
    # Computed here; the report will carry it: on -1 every session of the killed replica had
    # to move and no other, so the killed replica's share of the change's sessions is the
    # remapped ones, when nothing was collateral. Collateral is counted per answer, not per
    # session, so where there was some (the floor) the share cannot be read off: n/a.
    if minus["sessions"]:
        share = (int(minus["remapped"]) / int(minus["sessions"])
                 if not int(minus["collateral"]) else None)
        figures.minus = move(minus, share)
    # Computed here; the report will carry it: the counted errors of the requests the report
    # puts in each change's phase (overlapping the change or its margin after; a request
    # belongs to the last change that began before its answer).
    requests = run.requests
    near = requests.counted_error & (requests.phase == "change")
    after_kill = requests.end >= float(minus["at"])
    figures.add_errors = int((near & ~after_kill).sum())
    figures.kill_errors = int((near & after_kill).sum())
    figures.reasons = judge(figures)
    return figures


def move(change: Any, ideal: float | None) -> Move | None:
    if not change["sessions"]:
        return None
    return Move(int(change["sessions"]), float(change["remapped_fraction"]), ideal,
                int(change["collateral"]))


def judge(f: Figures) -> list[str]:
    """Why the router did not keep its promise (none: it kept it)."""
    reasons = []
    settled, flaps = f.get("settled_stickiness"), f.get("flaps")
    if f.router.promise == "none":  # the floor: the instrument must see it is not sticky
        if settled is None or settled >= FLOOR_MAX_STICKINESS or not flaps:
            reasons.append(f"the floor looked sticky (settled stickiness {pct(settled)}, "
                           f"{flaps} flaps): the instrument failed")
        return reasons
    if settled is None:
        reasons.append("no settled stickiness to judge")
    elif flaps:
        reasons.append(f"{flaps} flaps (switches while membership was settled)")
    if f.router.promise in ("rendezvous", "consistent"):
        for name, m in (("+1", f.plus), ("-1", f.minus)):
            if m is None:
                reasons.append(f"no session to judge on {name}")
            elif m.collateral:
                reasons.append(f"{m.collateral} collateral moves on {name}")
    return reasons


# -- text --------------------------------------------------------------------------------------


def pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def num(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


COLUMNS = ("router", "promise", "stickiness", "settled", "flaps", "+1 moved (ideal)", "+1 coll.",
           "-1 moved (ideal)", "-1 coll.", "skew sessions (uniform)", "skew requests",
           "errors +1/-1", "req/s", "p50 ms", "p95 ms", "verdict")


def cells(f: Figures) -> list[str]:
    def moved(m: Move | None) -> list[str]:
        if m is None:
            return ["n/a", "n/a"]
        ideal = "n/a" if m.ideal is None else pct(m.ideal)
        return [f"{pct(m.moved)} ({ideal})", str(m.collateral)]

    verdict = ("kept its promise" if f.kept else "FAILED") if f.router.promise != "none" \
        else ("not sticky, as expected" if f.kept else "FAILED")
    if f.problem:
        return [f.router.name, f.router.promise, *["n/a"] * (len(COLUMNS) - 3), "FAILED"]
    return [f.router.name, f.router.promise, pct(f.get("session_stickiness")),
            pct(f.get("settled_stickiness")), str(f.get("flaps")), *moved(f.plus),
            *moved(f.minus),
            f"{num(f.get('balance', 'max_over_mean'))} "
            f"({num(f.get('balance', 'expected_max_over_mean'))})",
            num(f.get("balance", "requests_max_over_mean")), f"{f.add_errors}/{f.kill_errors}",
            num(f.rate, ".1f"), num(f.get("latency", "all", "p50_ms"), ".1f"),
            num(f.get("latency", "all", "p95_ms"), ".1f"), verdict]


def text_table(rows: list[Figures]) -> str:
    table = [list(COLUMNS), *(cells(f) for f in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i < 2 or i == len(widths) - 1 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
             for r in table]
    notes = [f"  {f.router.name}: {why(f)}" for f in rows if why(f)]
    return "\n".join(lines + notes)


CSV_COLUMNS = ("router", "promise", "session_stickiness", "settled_stickiness", "flaps",
               "plus_moved", "plus_ideal", "plus_collateral", "minus_moved", "minus_ideal",
               "minus_collateral", "sessions_max_over_mean", "sessions_max_over_mean_uniform",
               "requests_max_over_mean", "errors_at_add", "errors_at_kill", "error_rate", "rps",
               "p50_ms", "p95_ms", "kept", "why", "prefix")


def csv_row(f: Figures) -> list[Any]:
    def change(m: Move | None) -> list[Any]:
        return [None, None, None] if m is None else [m.moved, m.ideal, m.collateral]

    return [f.router.name, f.router.promise, f.get("session_stickiness"),
            f.get("settled_stickiness"), f.get("flaps"), *change(f.plus), *change(f.minus),
            f.get("balance", "max_over_mean"), f.get("balance", "expected_max_over_mean"),
            f.get("balance", "requests_max_over_mean"), f.add_errors, f.kill_errors,
            f.get("error_rate"),
            f.rate, f.get("latency", "all", "p50_ms"), f.get("latency", "all", "p95_ms"),
            int(f.kept), why(f), f.prefix]


def why(f: Figures) -> str:
    return "; ".join([f.problem] if f.problem else f.reasons)


def write_csv(rows: list[Figures], path: Path) -> None:
    """The table's figures as numbers (fractions in [0, 1]; empty: nothing to measure)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_row(f) for f in rows)
    tmp.replace(path)


# -- HTML --------------------------------------------------------------------------------------


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Router shoot-out</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
th {{ background: #f3f3f3; text-align: center; }}
td.name, td.left {{ text-align: left; }}
td.kept {{ background: #e3f5e1; }} td.failed {{ background: #fbe3e1; }}
</style></head><body>
<h1>Router shoot-out</h1>
<p>{scenario}</p>
<table><thead><tr>{head}</tr></thead><tbody>
{body}
</tbody></table>
<h2>What each router promises</h2>
<ul>
{promises}
</ul>
<p>Each run's own report: <code>python -m reports PREFIX</code> (prefixes above).
Figures from the report (docs/metrics.md); the killed replica's share is the -1 change's
sessions that had to move (all those of the killed replica) over its sessions.</p>
</body></html>
"""


def html_page(rows: list[Figures], scenario: str, path: Path) -> None:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in (*COLUMNS, "run prefix"))
    body = []
    for f in rows:
        row = cells(f)
        tds = [f'<td class="name">{html.escape(row[0])}</td>',
               f'<td class="left">{html.escape(row[1])}</td>',
               *(f"<td>{html.escape(c)}</td>" for c in row[2:-1])]
        reason = why(f)
        verdict = html.escape(row[-1] + (f": {reason}" if reason else ""))
        tds.append(f'<td class="left {"kept" if f.kept else "failed"}">{verdict}</td>')
        tds.append(f'<td class="left"><code>{html.escape(f.prefix)}</code></td>')
        body.append("<tr>" + "".join(tds) + "</tr>")
    promises = "\n".join(f"<li><b>{html.escape(f.router.name)}</b> ({html.escape(f.router.title)})"
                         f": {html.escape(f.router.promise_text)}</li>" for f in rows)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(PAGE.format(scenario=html.escape(scenario), head=head,
                               body="\n".join(body), promises=promises))
    tmp.replace(path)
