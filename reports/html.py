"""The HTML report: one self-contained file, plotly charts and Jinja2 templates.

    page = render_report(run)                        # run: the report API's Run (DataFrames)
    page = render_comparison(a, b, table, names)     # two runs and compare(a, b)

The page carries plotly.js once, inline, and loads nothing: no CDN, no MathJax, no web font;
it opens offline. The templates (reports/templates/) autoescape every string that comes from
the run (session and container ids, error messages); the strings that go into a chart are
escaped for plotly's own label markup (charts.py). Colours follow verdicts only: a figure is
green or red when a gate judged it, and neutral otherwise. How to read the page: docs/report.md.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from reports import charts, costs
from reports.config import ReportConfig
from reports.formatting import ci, finite, ms, num, pct, seconds, when
from reports.lanes import Lanes
from reports.metrics import Curves
from reports.stats import Curve
from reports.summary import Latency, LocustCheck, Percentiles, Summary

STATES = ("first", "repeat", "after_switch")
CACHE_STATES = ("hit", "miss")
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True,
                 "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
CONTROL = "control"


class Analysed(Protocol):
    @property
    def summary(self) -> Summary: ...
    @property
    def curves(self) -> Curves: ...
    @property
    def lanes(self) -> Lanes: ...


class RunLike(Protocol):
    """What the page needs of a run: the report API's DataFrames, its typed summary (the
    object summary.json is written from) and its configuration (reports.load_run)."""

    @property
    def requests(self) -> pd.DataFrame: ...
    @property
    def sessions(self) -> pd.DataFrame: ...
    @property
    def containers(self) -> pd.DataFrame: ...
    @property
    def changes(self) -> pd.DataFrame: ...
    @property
    def timeline(self) -> pd.DataFrame: ...

    @property
    def config(self) -> ReportConfig: ...
    @property
    def analysis(self) -> Analysed: ...


# -- the page's pieces -----------------------------------------------------------------------


@dataclass
class Table:
    head: list[str]
    rows: list[list[object]]
    left: int = 1  # the first `left` columns are text, left-aligned
    wrap: tuple[int, ...] = ()  # long text (ids, messages): left-aligned, wrapped

    def cls(self, i: int) -> str:
        return "wrap" if i in self.wrap else "l" if i < self.left else ""


@dataclass
class Card:
    label: str
    value: str
    detail: str = ""
    tone: str = ""  # "passed", "failed" (a gate's verdict) or "" (no verdict: neutral)
    kind: str = ""  # "control" for a class that is shown, never judged


@dataclass
class Figure:
    data: str  # the figure as plotly JSON (data, layout)
    height: int
    caption: str
    index: int = -1  # its place in the page's figure blob, set when the page is rendered


@dataclass
class Section:
    title: str
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    text: list[str] = field(default_factory=list)


def figure(fig: go.Figure, caption: str) -> Figure:
    data = pio.to_json(fig, validate=False, remove_uids=True)
    return Figure(data, int(fig.layout.height or 450), caption)


# -- the page's payload: plotly.js and the figures, gzip-compressed --------------------------

BUNDLE = "plotly.js-cartesian-dist-min/plotly-cartesian.min.js"


def bundle_path() -> Path | None:
    """plotly.js's cartesian bundle (every trace these pages draw, a third of the full
    bundle's size), as scripts/setup installs it from npm (package.json); REPORTS_PLOTLY_JS
    names another file. None: the Python plotly package's full bundle is used."""
    named = os.environ.get("REPORTS_PLOTLY_JS")
    if named:
        return Path(named)
    found = Path(__file__).resolve().parents[1] / "node_modules" / BUNDLE
    return found if found.is_file() else None


@cache
def plotly_js() -> str:
    """plotly.js, gzip-compressed and base64-encoded, once per process."""
    path = bundle_path()
    code = path.read_bytes() if path is not None else get_plotlyjs().encode()
    return packed(code)


def packed(data: bytes) -> str:
    """gzip then base64: what the page's loader unpacks with the browser's own
    DecompressionStream (no request, no library)."""
    return base64.b64encode(gzip.compress(data, compresslevel=9, mtime=0)).decode("ascii")


def page_figures(sections: Sequence[Section], figures: Sequence[Figure]) -> list[Figure]:
    """Every figure of a page, numbered in the order the page shows them: the sections',
    then the page's own."""
    found = [f for section in sections for f in section.figures] + list(figures)
    for i, fig in enumerate(found):
        fig.index = i
    return found


@cache
def environment() -> Environment:
    env = Environment(loader=PackageLoader("reports", "templates"),
                      autoescape=select_autoescape(["j2", "html"], default=True),
                      trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined)
    env.globals["plotly_config"] = Markup(json.dumps(PLOTLY_CONFIG))
    return env


def render(template: str, *, sections: Sequence[Section] = (),
           figures: Sequence[Figure] = (), **context: object) -> str:
    shown = page_figures(sections, figures)
    blob = packed(("[" + ",".join(f.data for f in shown) + "]").encode())
    return environment().get_template(template).render(
        **context, sections=sections, figures=figures, plotly_js=plotly_js(),
        figure_blob=blob)


# -- verdicts --------------------------------------------------------------------------------


def gate_key(name: str) -> str:
    return name.replace("-", "_").lstrip("_")


TONES = {"good": "passed", "bad": "failed"}


def tone(s: Summary, figure: str, *gate_names: str) -> str:
    """The colour of a figure: the summary's verdict on it ("good", "bad" or "neutral": a
    gate, or the rules, judged it; docs/gates.md), else its gates: failed if one failed,
    passed if every one judged passed, neutral when none judged it."""
    found = s.verdicts.get(figure)
    if found is not None:
        return TONES.get(found, "")
    judged = [g.verdict for g in s.gates
              if gate_key(g.gate) in gate_names and g.verdict != "not judged"]
    if "failed" in judged:
        return "failed"
    return "passed" if judged else ""


def gates_table(s: Summary) -> Table | None:
    if not s.gates:
        return None
    rows: list[list[object]] = [[g.gate, num(g.threshold, 4), num(g.value, 4), g.verdict,
                                 g.reason] for g in s.gates]
    return Table(["gate", "threshold", "value", "verdict", "reason"], rows, left=1, wrap=(4,))


def overall(s: Summary) -> Card | None:
    if s.not_judged:  # the run cannot back a verdict, whatever the gates say
        return Card("verdict", "NOT JUDGED", "; ".join(s.not_judged))
    if not s.gates:
        return None
    verdicts = [g.verdict for g in s.gates]
    failed, unjudged = verdicts.count("failed"), verdicts.count("not judged")
    passed = len(verdicts) - failed - unjudged
    detail = f"{passed} passed, {failed} failed, {unjudged} not judged"
    if failed:
        return Card("gates", "FAILED", detail, "failed")
    if unjudged:
        return Card("gates", "not judged", detail + " (nothing to measure: see below)")
    return Card("gates", "passed", detail, "passed")


# -- the headline ----------------------------------------------------------------------------


def judged_classes(s: Summary) -> tuple[list[str], list[str]]:
    """(classes that ask for affinity, control classes)."""
    return ([c for c in s.judged_classes if c in s.user_classes],
            [c for c in s.user_classes if c not in s.judged_classes])


AFFINITY = {"session": "sends Modal-Session-Id", "strict": "holds a strict session",
            "none": "sends no session id"}


def stickiness_cards(s: Summary) -> list[Card]:
    judged, controls = judged_classes(s)
    who = ", ".join(judged) if judged else "no class asks for affinity"
    cards = [Card("session stickiness", pct(s.session_stickiness, 2),
                  f"{ci(s.session_stickiness_ci)} judged: {who}; "
                  f"{s.sessions_multi_container:,} of {s.sessions_multi_request:,} sessions "
                  "saw 2+ containers", tone(s, "session_stickiness", "min_stickiness"))]
    for name in controls:
        c = s.user_classes[name]
        cards.append(Card(f"control: {name}", pct(c.session_stickiness, 2),
                          f"{AFFINITY.get(c.affinity or '', 'affinity not recorded')}: "
                          "shown, not judged; "
                          f"same-container rate {pct(c.same_container_rate, 1)}",
                          kind=CONTROL))
    cards.append(Card("same-container rate", pct(s.same_container_rate, 2),
                      "repeat requests on the previous request's container",
                      tone(s, "same_container_rate", "min_same_container_rate")))
    strict = s.verdicts.get("strict_violations")
    if strict is not None:
        cards.append(Card("strict sessions", "one container each" if strict == "good"
                          else "moved", "@modal.sessioned: one container per session, always",
                          TONES.get(strict, "")))
    return cards


def collateral_card(s: Summary) -> Card:
    """Collateral answers over the run (the per-answer rule); n/a when there was no change
    and none was seen, or when no repeat answer could be judged (`collateral` null)."""
    rule = tone(s, "collateral", "max_collateral")
    if s.collateral is None:
        return Card("collateral remaps", "n/a", "no repeat answer across a change to judge"
                    if s.membership_changes else "no membership change to judge", rule)
    if not s.membership_changes and not s.collateral:
        return Card("collateral remaps", "n/a", "no membership change to judge", rule)
    return Card("collateral remaps", f"{s.collateral:,}",
                "answers moved off a live owner to a container already live", rule)


def churn_cards(s: Summary) -> list[Card]:
    changes = s.membership_changes
    excess = [c.excess for c in changes if c.excess is not None and finite(c.excess)]
    return [
        Card("settled stickiness", pct(s.settled_stickiness, 2),
             f"{ci(s.settled_stickiness_ci)} (session, settled epoch) pairs on one container; "
             f"{len(changes)} membership changes",
             tone(s, "settled_stickiness", "min_settled_stickiness")),
        Card("flaps", f"{s.flaps:,}", "switches inside settled epochs",
             tone(s, "flaps", "max_flaps")),
        collateral_card(s),
        Card("remap excess", num(max(excess)) if excess else "n/a",
             "worst remapped / rendezvous minimum" if excess else "no change to judge",
             tone(s, "remap_excess", "max_remap_excess")),
    ]


def load_cards(s: Summary) -> list[Card]:
    latency = s.latency["all"]
    cards = [
        Card("error rate", pct(s.error_rate, 2),
             f"{s.errors:,} errors; "
             f"{s.errors_no_live_replica:,} 503s with no live replica apart",
             tone(s, "error_rate", "max_error_rate")),
        Card("latency p95", f"{ms(latency.p95_ms)} ms",
             f"p50 {ms(latency.p50_ms)} ms, p99 {ms(latency.p99_ms)} ms",
             tone(s, "latency", "max_p95_ms", "max_p99_ms")),
    ]
    if s.cache is not None:
        cards.append(Card("cache hit rate", pct(s.cache.hit_rate),
                          f"{ci(s.cache.hit_rate_ci)} {s.cache.hits:,} hits, "
                          f"{s.cache.misses:,} misses"))
    ttft = (s.ttft or {}).get("all")
    if ttft is not None:
        cards.append(Card("time to first token p50", f"{ms(ttft.p50_ms)} ms",
                          f"p95 {ms(ttft.p95_ms)} ms over {ttft.count:,} streams"))
    cards.append(Card("sessions / containers", f"{s.sessions:,} / {s.containers:,}",
                      f"{s.ok_requests:,} successful requests"))
    return cards


# -- the sections of one run ------------------------------------------------------------------


def changes_table(s: Summary) -> Table | None:
    if not s.membership_changes:
        return None
    rows: list[list[object]] = [[
        f"{c.at_offset_s:.1f} s", ", ".join(c.causes), " ".join(c.added) or "-",
        " ".join(c.removed) or "-", f"{c.live_before} \u2192 {c.live_after}", c.sessions,
        pct(c.remapped_fraction), ci(c.remapped_fraction_ci), pct(c.expected_fraction),
        num(c.excess), num(c.z), c.collateral, seconds(c.restick_p50_s),
        seconds(c.restick_max_s),
    ] for c in s.membership_changes]
    return Table(["at", "cause", "added", "removed", "live", "sessions", "remapped", "95% CI",
                  "rendezvous min", "excess", "z", "collateral", "restick p50 s", "max s"],
                 rows, left=4, wrap=(2, 3))


def latency_table(latency: Mapping[str, Latency | Percentiles], prefix: str = "") -> Table:
    """Count, mean, percentiles and max per state; a column nothing fills (the mean and max
    of Percentiles) is left out."""
    def row(key: str, v: Latency | Percentiles) -> list[object]:
        mean, top = (v.mean_ms, v.max_ms) if isinstance(v, Latency) else (None, None)
        return [prefix + charts.STATE_LABELS.get(key, key), v.count, ms(mean), ms(v.p50_ms),
                ms(v.p95_ms), ms(v.p99_ms), ms(top)]
    rows = [row(k, v) for k, v in latency.items()]
    head = ["requests", "count", "mean ms", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    keep = [i for i in range(len(head)) if i < 2 or any(r[i] != "n/a" for r in rows)]
    return Table([head[i] for i in keep], [[r[i] for i in keep] for r in rows])


def picked(curves: dict[str, Curve], order: Sequence[str]) -> dict[str, Curve]:
    return {key: curves[key] for key in order if key in curves}


def latency_section(run: RunLike, s: Summary) -> Section:
    """The distributions from the curves the analysis computed where it sorted the values
    (reports.metrics.Curves): exact, with no pass over the requests here."""
    curves = run.analysis.curves
    section = Section("Latency", [figure(
        charts.distribution_figure(picked(curves.latency, ("all", *STATES)),
                                   "response time, ms"),
        "Cumulative distribution of response times (all requests), and of successful ones "
        "by state: a session's first request, repeats on the same container, the first "
        "request after a switch. Further right is slower.")])
    if curves.cache_recorded:
        section.figures.append(figure(
            charts.distribution_figure(picked(curves.latency_cache, CACHE_STATES),
                                       "response time, ms"),
            "Response times of successful requests by the replica's KV-cache state."))
    if s.ttft is not None:
        section.figures.append(figure(
            charts.distribution_figure(picked(curves.ttft_cache, CACHE_STATES),
                                       "time to first token, ms"),
            "Time to first token by cache state: a hit pays the prefill of the new tokens "
            "only, a miss the whole prompt."))
        section.figures.append(figure(
            charts.distribution_figure(picked(curves.ttft_state, STATES),
                                       "time to first token, ms"),
            "Time to first token by stickiness state: first request of a session, repeat on "
            "the same container, first after a switch."))
    section.tables.append(latency_table(s.latency))
    if s.cache is not None and s.cache.latency:
        section.tables.append(latency_table(s.cache.latency))
    if s.ttft:
        section.tables.append(latency_table(s.ttft, "time to first token: "))
    if s.ttft_by_state:
        section.tables.append(latency_table(s.ttft_by_state, "TTFT: "))
    if s.inter_token_gap is not None:
        section.tables.append(latency_table({"gap": s.inter_token_gap}, "inter-token "))
    return section


def errors_table(s: Summary) -> Table:
    phases = list(s.errors_by_phase)
    rows: list[list[object]] = [
        [cls, *(s.errors_by_phase[p].get(cls, 0) for p in phases), n]
        for cls, n in s.error_classes.items() if cls != "2xx" and n]
    return Table(["class", *(p.replace("_", " ") for p in phases), "total"], rows)


def errors_section(s: Summary) -> Section:
    """Failures by class and phase, the commonest messages, the status codes; one line when
    no request failed."""
    statuses = "Status codes: " + ", ".join(f"{k}: {v:,}" for k, v in s.status_counts.items())
    table = errors_table(s)
    if not table.rows:
        return Section("Errors", text=["No request failed. " + statuses])
    top = s.top_errors
    return Section("Errors", tables=[table] + (
        [Table(["error", "count"], [[e["error"], e["count"]] for e in top], wrap=(0,))]
        if top else []), text=[statuses])


def classes_table(s: Summary) -> Table:
    judged, _ = judged_classes(s)
    rows: list[list[object]] = [[
        name, u.affinity or "n/a", "judged" if name in judged else "control",
        u.sessions, u.requests, pct(u.session_stickiness, 2), ci(u.session_stickiness_ci),
        pct(u.same_container_rate, 2), u.sessions_multi_container, u.errors,
        pct(u.error_rate, 2),
    ] for name, u in s.user_classes.items()]
    return Table(["class", "affinity", "verdict", "sessions", "requests", "session stickiness",
                  "95% CI", "same-container rate", "on 2+ containers", "errors", "error rate"],
                 rows, left=3)


def epochs_table(s: Summary) -> Table:
    rows: list[list[object]] = [[
        i, f"{e.start - s.start:.1f}", f"{e.end - s.start:.1f}",
        seconds(e.settled_start - s.start) if finite(e.settled_start) else "",
        len(e.live), e.sessions, e.requests, pct(e.settled_stickiness, 2)]
        for i, e in enumerate(s.epochs)]
    return Table(["epoch", "from s", "to s", "settled from s", "live", "sessions", "requests",
                  "settled stickiness"], rows)


def balance_table(s: Summary) -> tuple[str, Table] | None:
    b = s.balance
    if b is None:
        return None
    rows: list[list[object]] = [
        ["sessions", b.sessions, num(b.max_over_mean), num(b.expected_max_over_mean),
         num(b.cv), num(b.expected_cv), num(b.chi2_p)],
        ["requests", b.requests, num(b.requests_max_over_mean), "", num(b.requests_cv), "",
         num(b.requests_chi2_p)]]
    return (f"Balance over the {b.containers} live containers of epoch {b.epoch} (the one "
            "with the most sessions):",
            Table(["per container", "total", "max/mean", "expected (uniform hash)", "CV",
                   "expected CV", "chi-square p"], rows))


def meta(s: Summary) -> str:
    events = (f"event log {s.events_file}" if s.events_file
              else "no event log: membership inferred from the containers seen")
    return (f"{when(s.start)}, {s.duration_s:,.1f} s; "
            f"{s.requests:,} requests from {s.request_file}; "
            f"{events}; {s.workers} worker(s).")


def locust_line(check: LocustCheck | None) -> str | None:
    if check is None:
        return None
    return (f"Locust's stats CSV: {check.requests} requests, {check.failures} failures; the "
            f"request file: {check.recorded} rows (Locust's CSV lags by up to a second).")


def costs_section(s: Summary) -> list[Section]:
    found = costs.page(s.costs)
    if found is None:
        return []
    head, rows, text = found
    return [Section("What stickiness costs: load per replica", tables=[Table(head, rows)],
                    text=text)]


def render_report(run: RunLike) -> str:
    """The page of one run, from its typed summary and its configuration's sampling."""
    s, config = run.analysis.summary, run.config
    balance = balance_table(s)
    changes = changes_table(s)
    sections = [
        Section("Timeline", [figure(
            charts.timeline_figure(run.timeline, run.changes, config.timeline_points,
                                   origin=s.start),
            "Per second: requests, errors by class, live containers. Dotted lines: membership "
            "changes (+added -removed). Drag to zoom, double-click to reset.")]),
        Section("Membership changes", tables=[changes] if changes else [],
                text=["Owner before = the last request answered before the change; after = the "
                      "settled owner. Collateral = moves between two containers live on both "
                      "sides: rendezvous hashing makes none."] if changes
                else ["No membership change during the run."]),
        Section("Sessions over time", [figure(
            charts.swimlane_figure(run.analysis.lanes, run.changes),
            "Each row is one sampled session (half of them, when there are any, sessions "
            "that saw 2+ containers), coloured by the container that answered it; sessions "
            "of control classes, if any, below the dashed line. A sticky session is one "
            "colour, changing only at a membership change.")]),
        Section("Containers", [figure(
            charts.containers_figure(run.containers),
            "Sessions each container answered (light) and is the main container of (dark), "
            "and the requests it answered. Dashed: the mean.")],
            tables=[balance[1]] if balance else [], text=[balance[0]] if balance else []),
        latency_section(run, s),
        errors_section(s),
        Section("User classes", tables=[classes_table(s)]),
        Section(f"Epochs ({s.epochs_source})", tables=[epochs_table(s)]),
        *costs_section(s),
    ]
    return render("report.html.j2", title=f"Stickiness report: {s.prefix}", meta=meta(s),
                  notes=s.notes, overall=overall(s), gates=gates_table(s),
                  headline=[stickiness_cards(s), churn_cards(s), load_cards(s)],
                  sections=sections, locust=locust_line(s.locust))


# -- two runs ----------------------------------------------------------------------------------


def comparison_rates(a: Summary, b: Summary) -> list[charts.Rate]:
    def figures(s: Summary) -> list[tuple[str, float | None, list[float] | None]]:
        cache_rate = s.cache.hit_rate if s.cache else None
        return [("session stickiness", s.session_stickiness, s.session_stickiness_ci),
                ("settled stickiness", s.settled_stickiness, s.settled_stickiness_ci),
                ("same-container rate", s.same_container_rate, s.same_container_rate_ci),
                ("request stickiness", s.request_stickiness, s.request_stickiness_ci),
                ("error rate", s.error_rate, s.error_rate_ci),
                ("cache hit rate", cache_rate, s.cache.hit_rate_ci if s.cache else None)]
    return [charts.Rate(name, va, vb, ca, cb)
            for (name, va, ca), (_, vb, cb) in zip(figures(a), figures(b), strict=True)]


def percentile_rows(a: Latency | Percentiles | None, b: Latency | Percentiles | None
                    ) -> list[tuple[str, float | None, float | None]]:
    def at(f: Latency | Percentiles | None, p: str) -> float | None:
        if f is None:
            return None
        return {"p50": f.p50_ms, "p95": f.p95_ms, "p99": f.p99_ms}[p]
    return [(p, at(a, p), at(b, p)) for p in ("p50", "p95", "p99")]


NO_CURVE = Curve(0, np.zeros(0))


def ab_curves(a: RunLike, b: RunLike, column: str, names: tuple[str, str]
              ) -> dict[str, Curve]:
    """Each run's curve of the successful requests' response times (column
    "response_time_ms") or of every recorded TTFT ("ttft_ms"), as its analysis computed it."""
    out = {}
    for name, run in zip(names, (a, b), strict=True):
        curves = run.analysis.curves
        curve = (curves.latency.get("ok") if column == "response_time_ms"
                 else curves.ttft_cache.get("all"))
        out[name] = curve or NO_CURVE
    return out


def comparison_table(table: Iterable[Sequence[object]], names: tuple[str, str]) -> Table:
    return Table(["metric", f"A: {names[0]}", f"B: {names[1]}", "B - A"],
                 [list(row) for row in table])


def achieved_rate(s: Summary) -> str:
    if not finite(s.duration_s) or not s.duration_s:
        return "rate n/a"
    return f"{s.requests / s.duration_s:,.0f} requests/s"


def run_line(s: Summary) -> str:
    """One side of a comparison: its prefix, start, request count and achieved rate."""
    return f"{s.prefix} ({when(s.start)}, {s.requests:,} requests, {achieved_rate(s)})"


def render_comparison(a: RunLike, b: RunLike, table: Iterable[Sequence[object]],
                      names: tuple[str, str] = ("A", "B")) -> str:
    """The page of two runs side by side; `table` is `comparison.formatted(rows)`."""
    sa, sb = a.analysis.summary, b.analysis.summary
    colours = dict(zip(names, charts.RUN_COLOURS, strict=True))
    dashes = {names[1]: "dash"}
    figures = [
        figure(charts.rates_figure(comparison_rates(sa, sb), names),
               "Rates of each run with their 95% intervals. Session stickiness covers the "
               "classes that ask for affinity."),
        figure(charts.distribution_figure(ab_curves(a, b, "response_time_ms", names),
                                          "response time, ms", colours=colours,
                                          dashes=dashes, labels={}),
               f"Response times of successful requests: {names[0]} solid, {names[1]} dashed."),
        figure(charts.percentiles_figure(percentile_rows(sa.latency["all"],
                                                         sb.latency["all"]), names),
               "Latency percentiles of all requests, side by side."),
    ]
    if any(r.analysis.summary.ttft is not None for r in (a, b)):
        figures += [
            figure(charts.distribution_figure(ab_curves(a, b, "ttft_ms", names),
                                              "time to first token, ms", colours=colours,
                                              dashes=dashes, labels={}),
                   f"Time to first token: {names[0]} solid, {names[1]} dashed."),
            figure(charts.percentiles_figure(percentile_rows((sa.ttft or {}).get("all"),
                                                             (sb.ttft or {}).get("all")), names),
                   "Time-to-first-token percentiles, side by side."),
        ]
    return render("comparison.html.j2", title=f"Comparison: {names[0]} vs {names[1]}",
                  sides=(run_line(sa), run_line(sb)), notes=(sa.notes, sb.notes),
                  figures=figures, overall=overall(sb), gates=gates_table(sb),
                  table=comparison_table(table, names))
