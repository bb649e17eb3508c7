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
from typing import Any, Protocol

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from reports import charts, costs
from reports.config import ReportConfig
from reports.formatting import ci, finite, ms, num, pct, seconds, when

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True,
                 "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
CONTROL = "control"


class RunLike(Protocol):
    """What the page needs of a run: the report API's DataFrames and summary (reports.load_run)."""

    @property
    def requests(self) -> pd.DataFrame: ...
    @property
    def containers(self) -> pd.DataFrame: ...
    @property
    def changes(self) -> pd.DataFrame: ...
    @property
    def timeline(self) -> pd.DataFrame: ...

    @property
    def config(self) -> ReportConfig: ...

    def summary(self) -> dict[str, Any]: ...


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


def page_figures(context: Mapping[str, object]) -> list[Figure]:
    """Every figure of a page, numbered in the order the page shows them."""
    found: list[Figure] = []
    for section in context.get("sections") or []:  # type: ignore[attr-defined]
        found.extend(section.figures)
    found.extend(context.get("figures") or [])  # type: ignore[arg-type]
    for i, fig in enumerate(found):
        fig.index = i
    return found


@cache
def environment() -> Environment:
    env = Environment(loader=PackageLoader("reports", "templates"),
                      autoescape=select_autoescape(["j2", "html"], default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.globals["plotly_config"] = Markup(json.dumps(PLOTLY_CONFIG))
    return env


def render(template: str, **context: object) -> str:
    figures = page_figures(context)
    blob = packed(("[" + ",".join(f.data for f in figures) + "]").encode())
    return environment().get_template(template).render(
        **context, plotly_js=plotly_js(), figure_blob=blob)


# -- verdicts --------------------------------------------------------------------------------


def verdict(gate: Mapping[str, Any]) -> str:
    """"passed", "failed" or "not judged" (summary schema 2; schema 1 had only `passed`)."""
    found = gate.get("verdict")
    if isinstance(found, str):
        return found
    return "passed" if gate.get("passed") else "failed"


def gate_key(name: str) -> str:
    return name.replace("-", "_").lstrip("_")


TONES = {"good": "passed", "bad": "failed"}


def tone(summary: Mapping[str, Any], figure: str, *gate_names: str) -> str:
    """The colour of a figure: the summary's verdict on it ("good", "bad" or "neutral": a
    gate, or the rules, judged it; docs/gates.md), else its gates: failed if one failed,
    passed if every one judged passed, neutral when none judged it."""
    found = (summary.get("verdicts") or {}).get(figure)
    if found is not None:
        return TONES.get(found, "")
    verdicts = [verdict(g) for g in summary.get("gates") or ()
                if gate_key(str(g.get("gate", ""))) in gate_names]
    judged = [v for v in verdicts if v != "not judged"]
    if "failed" in judged:
        return "failed"
    return "passed" if judged else ""


def gates_table(summary: Mapping[str, Any]) -> Table | None:
    gates = summary.get("gates") or []
    if not gates:
        return None
    rows: list[list[object]] = [[g.get("gate"), num(g.get("threshold"), 4),
                                 num(g.get("value"), 4), verdict(g), g.get("reason", "")]
                                for g in gates]
    return Table(["gate", "threshold", "value", "verdict", "reason"], rows, left=1, wrap=(4,))


def overall(summary: Mapping[str, Any]) -> Card | None:
    gates = summary.get("gates") or []
    reasons = summary.get("not_judged") or []
    if reasons:  # the run cannot back a verdict, whatever the gates say
        return Card("verdict", "NOT JUDGED", "; ".join(reasons))
    if not gates:
        return None
    verdicts = [verdict(g) for g in gates]
    failed, unjudged = verdicts.count("failed"), verdicts.count("not judged")
    passed = len(verdicts) - failed - unjudged
    detail = f"{passed} passed, {failed} failed, {unjudged} not judged"
    if failed:
        return Card("gates", "FAILED", detail, "failed")
    if unjudged:
        return Card("gates", "not judged", detail + " (nothing to measure: see below)")
    return Card("gates", "passed", detail, "passed")


# -- the headline ----------------------------------------------------------------------------


def judged_classes(summary: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(classes that ask for affinity, control classes). Schema 1 had no such split: every
    class is then shown as judged, as that report judged them."""
    classes = summary.get("user_classes") or {}
    judged = summary.get("judged_classes")
    if judged is None:
        return list(classes), []
    return [c for c in judged if c in classes], [c for c in classes if c not in judged]


AFFINITY = {"session": "sends Modal-Session-Id", "strict": "holds a strict session",
            "none": "sends no session id"}


def stickiness_cards(summary: Mapping[str, Any]) -> list[Card]:
    judged, controls = judged_classes(summary)
    who = ", ".join(judged) if judged else "no class asks for affinity"
    cards = [Card("session stickiness", pct(summary.get("session_stickiness"), 2),
                  f"{ci(summary.get('session_stickiness_ci'))} judged: {who}; "
                  f"{summary.get('sessions_multi_container', 0):,} of "
                  f"{summary.get('sessions_multi_request', 0):,} sessions saw 2+ containers",
                  tone(summary, "session_stickiness", "min_stickiness"))]
    classes = summary.get("user_classes") or {}
    for name in controls:
        c = classes[name]
        cards.append(Card(f"control: {name}", pct(c.get("session_stickiness"), 2),
                          f"{AFFINITY.get(c.get('affinity'), 'affinity not recorded')}: "
                          "shown, not judged; "
                          f"same-container rate {pct(c.get('same_container_rate'), 1)}",
                          kind=CONTROL))
    if "same_container_rate" in summary:
        cards.append(Card("same-container rate", pct(summary.get("same_container_rate"), 2),
                          "repeat requests on the previous request's container",
                          tone(summary, "same_container_rate", "min_same_container_rate")))
    classes_strict = summary.get("verdicts", {}).get("strict_violations")
    if classes_strict is not None:
        cards.append(Card("strict sessions", "one container each" if classes_strict == "good"
                          else "moved", "@modal.sessioned: one container per session, always",
                          TONES.get(classes_strict, "")))
    return cards


def churn_cards(summary: Mapping[str, Any]) -> list[Card]:
    changes = summary.get("membership_changes") or []
    excess = [c["excess"] for c in changes if finite(c.get("excess"))]
    total = summary.get("collateral")  # per answer, over the run (schema 2 files since #16)
    collateral = int(total) if total is not None else sum(
        int(c.get("collateral") or 0) for c in changes)
    cards = []
    if "settled_stickiness" in summary or changes:
        cards.append(Card("settled stickiness", pct(summary.get("settled_stickiness"), 2),
                          f"{ci(summary.get('settled_stickiness_ci'))} (session, settled "
                          f"epoch) pairs on one container; {len(changes)} membership changes",
                          tone(summary, "settled_stickiness", "min_settled_stickiness")))
    cards += [
        Card("flaps", f"{summary.get('flaps', 0):,}", "switches inside settled epochs",
             tone(summary, "flaps", "max_flaps")),
        Card("collateral remaps", f"{collateral:,}" if changes or collateral else "n/a",
             "answers moved off a live owner to a container already live"
             if changes or collateral else "no membership change to judge",
             tone(summary, "collateral", "max_collateral")),
        Card("remap excess", num(max(excess)) if excess else "n/a",
             "worst remapped / rendezvous minimum" if excess else "no change to judge",
             tone(summary, "remap_excess", "max_remap_excess")),
    ]
    return cards


def load_cards(summary: Mapping[str, Any]) -> list[Card]:
    latency = (summary.get("latency") or {}).get("all") or {}
    cards = [
        Card("error rate", pct(summary.get("error_rate"), 2),
             f"{summary.get('errors', 0):,} errors; "
             f"{summary.get('errors_no_live_replica', 0):,} 503s with no live replica apart",
             tone(summary, "error_rate", "max_error_rate")),
        Card("latency p95", f"{ms(latency.get('p95_ms'))} ms",
             f"p50 {ms(latency.get('p50_ms'))} ms, p99 {ms(latency.get('p99_ms'))} ms",
             tone(summary, "latency", "max_p95_ms", "max_p99_ms")),
    ]
    cache_figures = summary.get("cache")
    if cache_figures:
        cards.append(Card("cache hit rate", pct(cache_figures.get("hit_rate")),
                          f"{ci(cache_figures.get('hit_rate_ci'))} {cache_figures.get('hits', 0):,}"
                          f" hits, {cache_figures.get('misses', 0):,} misses"))
    ttft = (summary.get("ttft") or {}).get("all")
    if ttft:
        cards.append(Card("time to first token p50", f"{ms(ttft.get('p50_ms'))} ms",
                          f"p95 {ms(ttft.get('p95_ms'))} ms over {ttft.get('count', 0):,} "
                          "streams"))
    cards.append(Card("sessions / containers",
                      f"{summary.get('sessions', 0):,} / {summary.get('containers', 0):,}",
                      f"{summary.get('ok_requests', 0):,} successful requests"))
    return cards


# -- the sections of one run ------------------------------------------------------------------


def changes_table(summary: Mapping[str, Any]) -> Table | None:
    changes = summary.get("membership_changes") or []
    if not changes:
        return None
    rows: list[list[object]] = [[
        f"{c.get('at_offset_s', 0):.1f} s", ", ".join(c.get("causes") or []),
        " ".join(c.get("added") or []) or "-", " ".join(c.get("removed") or []) or "-",
        f"{c.get('live_before')} \u2192 {c.get('live_after')}", c.get("sessions"),
        pct(c.get("remapped_fraction")), ci(c.get("remapped_fraction_ci")),
        pct(c.get("expected_fraction")), num(c.get("excess")), num(c.get("z")),
        c.get("collateral"), seconds(c.get("restick_p50_s")), seconds(c.get("restick_max_s")),
    ] for c in changes]
    return Table(["at", "cause", "added", "removed", "live", "sessions", "remapped", "95% CI",
                  "rendezvous min", "excess", "z", "collateral", "restick p50 s", "max s"],
                 rows, left=4, wrap=(2, 3))


def latency_table(latency: Mapping[str, Mapping[str, Any]], prefix: str = "") -> Table:
    rows: list[list[object]] = [
        [prefix + charts.STATE_LABELS.get(k, k), v.get("count", 0), ms(v.get("mean_ms")),
         ms(v.get("p50_ms")), ms(v.get("p95_ms")), ms(v.get("p99_ms")), ms(v.get("max_ms"))]
        for k, v in latency.items() if v]
    head = ["requests", "count", "mean ms", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    keep = [i for i in range(len(head)) if i < 2 or any(r[i] != "n/a" for r in rows)]
    return Table([head[i] for i in keep], [[r[i] for i in keep] for r in rows])


def latency_section(run: RunLike, summary: Mapping[str, Any]) -> Section:
    requests = run.requests
    ok = charts.successful(requests)
    state = charts.request_states(requests)
    rt = requests["response_time_ms"]
    by_state = charts.groups(rt.where(ok), state, ("first", "repeat", "after_switch"))
    by_state = {"all": rt.dropna().to_numpy(dtype="float64"), **by_state}
    section = Section("Latency", [figure(
        charts.distribution_figure(by_state, "response time, ms"),
        "Cumulative distribution of response times (all requests), and of successful ones "
        "by state: a session's first request, repeats on the same container, the first "
        "request after a switch. Further right is slower.")])
    cache_state = requests.get("cache")
    if cache_state is not None and cache_state.notna().any():
        section.figures.append(figure(
            charts.distribution_figure(charts.groups(rt.where(ok), cache_state,
                                                     ("hit", "miss")), "response time, ms"),
            "Response times of successful requests by the replica's KV-cache state."))
    ttft = requests.get("ttft_ms")
    if ttft is not None and ttft.notna().any():
        if cache_state is not None:
            section.figures.append(figure(
                charts.distribution_figure(charts.groups(ttft, cache_state, ("hit", "miss")),
                                           "time to first token, ms"),
                "Time to first token by cache state: a hit pays the prefill of the new tokens "
                "only, a miss the whole prompt."))
        section.figures.append(figure(
            charts.distribution_figure(charts.groups(ttft, state,
                                                     ("first", "repeat", "after_switch")),
                                       "time to first token, ms"),
            "Time to first token by stickiness state: first request of a session, repeat on "
            "the same container, first after a switch."))
    section.tables.append(latency_table(summary.get("latency") or {}))
    cache_figures = summary.get("cache")
    if cache_figures and cache_figures.get("latency"):
        section.tables.append(latency_table(cache_figures["latency"]))
    for key, title in (("ttft", "time to first token: "), ("ttft_by_state", "TTFT: "),
                       ):
        if summary.get(key):
            section.tables.append(latency_table(summary[key], title))
    if summary.get("inter_token_gap"):
        section.tables.append(latency_table({"gap": summary["inter_token_gap"]},
                                            "inter-token "))
    return section


def errors_table(summary: Mapping[str, Any]) -> Table:
    phases = list((summary.get("errors_by_phase") or {}).keys())
    by_phase = summary.get("errors_by_phase") or {}
    classes = summary.get("error_classes") or {}
    rows: list[list[object]] = [[cls, *(by_phase[p].get(cls, 0) for p in phases), n]
                                for cls, n in classes.items() if cls != "2xx" and n]
    return Table(["class", *(p.replace("_", " ") for p in phases), "total"], rows)


def errors_section(summary: Mapping[str, Any]) -> Section:
    """Failures by class and phase, the commonest messages, the status codes; one line when
    no request failed."""
    statuses = "Status codes: " + ", ".join(
        f"{k}: {v:,}" for k, v in (summary.get("status_counts") or {}).items())
    table = errors_table(summary)
    if not table.rows:
        return Section("Errors", text=["No request failed. " + statuses])
    top = summary.get("top_errors") or []
    return Section("Errors", tables=[table] + (
        [Table(["error", "count"], [[e["error"], e["count"]] for e in top], wrap=(0,))]
        if top else []), text=[statuses])


def classes_table(summary: Mapping[str, Any]) -> Table:
    judged, _ = judged_classes(summary)
    rows: list[list[object]] = [[
        name, u.get("affinity") or "n/a", "judged" if name in judged else "control",
        u.get("sessions", 0), u.get("requests", 0), pct(u.get("session_stickiness"), 2),
        ci(u.get("session_stickiness_ci")), pct(u.get("same_container_rate"), 2),
        u.get("sessions_multi_container", 0), u.get("errors", 0), pct(u.get("error_rate"), 2),
    ] for name, u in (summary.get("user_classes") or {}).items()]
    return Table(["class", "affinity", "verdict", "sessions", "requests", "session stickiness",
                  "95% CI", "same-container rate", "on 2+ containers", "errors", "error rate"],
                 rows, left=3)


def epochs_table(summary: Mapping[str, Any]) -> Table:
    start = float(summary.get("start") or 0)
    rows: list[list[object]] = [[
        i, f"{e['start'] - start:.1f}", f"{e['end'] - start:.1f}",
        seconds(e["settled_start"] - start) if finite(e.get("settled_start")) else "",
        len(e.get("live") or []), e.get("sessions", 0), e.get("requests", 0),
        pct(e.get("settled_stickiness"), 2)]
        for i, e in enumerate(summary.get("epochs") or [])]
    return Table(["epoch", "from s", "to s", "settled from s", "live", "sessions", "requests",
                  "settled stickiness"], rows)


def balance_table(summary: Mapping[str, Any]) -> tuple[str, Table] | None:
    b = summary.get("balance")
    if not b:
        return None
    rows: list[list[object]] = [
        ["sessions", b["sessions"], num(b["max_over_mean"]), num(b["expected_max_over_mean"]),
         num(b["cv"]), num(b["expected_cv"]), num(b["chi2_p"])],
        ["requests", b["requests"], num(b["requests_max_over_mean"]), "",
         num(b["requests_cv"]), "", num(b["requests_chi2_p"])]]
    return (f"Balance over the {b['containers']} live containers of epoch {b['epoch']} (the one "
            "with the most sessions):",
            Table(["per container", "total", "max/mean", "expected (uniform hash)", "CV",
                   "expected CV", "chi-square p"], rows))


def meta(summary: Mapping[str, Any]) -> str:
    events = (f"event log {summary['events_file']}" if summary.get("events_file")
              else "no event log: membership inferred from the containers seen")
    return (f"{when(float(summary.get('start') or 0))}, {summary.get('duration_s', 0):,.1f} s; "
            f"{summary.get('requests', 0):,} requests from {summary.get('request_file')}; "
            f"{events}; {summary.get('workers', 1)} worker(s).")


def render_report(run: RunLike, timeline_points: int = 600) -> str:
    """The page of one run."""
    summary = run.summary()
    balance = balance_table(summary)
    changes = changes_table(summary)
    sections = [
        Section("Timeline", [figure(
            charts.timeline_figure(run.timeline, run.changes, timeline_points,
                                   origin=summary.get("start")),
            "Per second: requests, errors by class, live containers. Dotted lines: membership "
            "changes (+added -removed). Drag to zoom, double-click to reset.")]),
        Section("Membership changes", tables=[changes] if changes else [],
                text=["Owner before = the last request answered before the change; after = the "
                      "settled owner. Collateral = moves between two containers live on both "
                      "sides: rendezvous hashing makes none."] if changes
                else ["No membership change during the run."]),
        Section("Sessions over time", [figure(
            charts.swimlane_figure(run.requests, run.changes,
                                   limit=run.config.swimlane_sessions,
                                   sessions=getattr(run, "sessions", None)),
            "Each row is one sampled session (half of them, when there are any, sessions "
            "that saw 2+ containers), coloured by the container that answered it; sessions "
            "of control classes, if any, below the dashed line. A sticky session is one "
            "colour, changing only at a membership change.")]),
        Section("Containers", [figure(
            charts.containers_figure(run.containers),
            "Sessions each container answered (light) and is the main container of (dark), "
            "and the requests it answered. Dashed: the mean.")],
            tables=[balance[1]] if balance else [], text=[balance[0]] if balance else []),
        latency_section(run, summary),
        errors_section(summary),
        Section("User classes", tables=[classes_table(summary)],
                text=[summary["affinity_note"]] if summary.get("affinity_note") else []),
        Section(f"Epochs ({summary.get('epochs_source', 'n/a')})",
                tables=[epochs_table(summary)]),
        *(Section("What stickiness costs: load per replica", tables=[Table(head, rows)],
                  text=text) for head, rows, text in filter(None, [costs.page(summary)])),
    ]
    return render("report.html.j2", title=f"Stickiness report: {summary.get('prefix', '')}",
                  meta=meta(summary), notes=summary.get("notes") or [],
                  overall=overall(summary), gates=gates_table(summary),
                  headline=[stickiness_cards(summary), churn_cards(summary),
                            load_cards(summary)],
                  sections=sections, locust=summary.get("locust"))


# -- two runs ----------------------------------------------------------------------------------


def comparison_rates(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[charts.Rate]:
    def rate(name: str, key: str, ci_key: str | None = None) -> charts.Rate:
        return charts.Rate(name, a.get(key), b.get(key), a.get(ci_key or key + "_ci"),
                           b.get(ci_key or key + "_ci"))
    rates = [rate("session stickiness", "session_stickiness"),
             rate("settled stickiness", "settled_stickiness"),
             rate("same-container rate", "same_container_rate"),
             rate("request stickiness", "request_stickiness"),
             rate("error rate", "error_rate")]
    ca, cb = a.get("cache") or {}, b.get("cache") or {}
    rates.append(charts.Rate("cache hit rate", ca.get("hit_rate"), cb.get("hit_rate"),
                             ca.get("hit_rate_ci"), cb.get("hit_rate_ci")))
    return rates


def percentile_rows(a: Mapping[str, Any], b: Mapping[str, Any], key: str, state: str
                    ) -> list[tuple[str, float | None, float | None]]:
    fa, fb = (a.get(key) or {}).get(state) or {}, (b.get(key) or {}).get(state) or {}
    return [(p, fa.get(f"{p}_ms"), fb.get(f"{p}_ms")) for p in ("p50", "p95", "p99")]


def ab_curves(a: RunLike, b: RunLike, column: str, names: tuple[str, str]
              ) -> dict[str, pd.Series]:
    out = {}
    for name, run in zip(names, (a, b), strict=True):
        if column in run.requests:
            values = run.requests[column]
            if column == "response_time_ms":
                values = values.where(charts.successful(run.requests))
            out[name] = values.dropna()
    return out


def comparison_table(table: Iterable[Sequence[object]], names: tuple[str, str]) -> Table:
    return Table(["metric", f"A: {names[0]}", f"B: {names[1]}", "B - A"],
                 [list(row) for row in table])


def achieved_rate(summary: Mapping[str, Any]) -> str:
    duration = summary.get("duration_s")
    if not finite(duration) or not duration:
        return "rate n/a"
    return f"{(summary.get('requests') or 0) / duration:,.0f} requests/s"


def render_comparison(a: RunLike, b: RunLike, table: Iterable[Sequence[object]],
                      names: tuple[str, str] = ("A", "B")) -> str:
    """The page of two runs side by side; `table` is `comparison.formatted(rows)`."""
    sa, sb = a.summary(), b.summary()
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
        figure(charts.percentiles_figure(percentile_rows(sa, sb, "latency", "all"), names),
               "Latency percentiles of all requests, side by side."),
    ]
    if any("ttft_ms" in r.requests and r.requests["ttft_ms"].notna().any() for r in (a, b)):
        figures += [
            figure(charts.distribution_figure(ab_curves(a, b, "ttft_ms", names),
                                              "time to first token, ms", colours=colours,
                                              dashes=dashes, labels={}),
                   f"Time to first token: {names[0]} solid, {names[1]} dashed."),
            figure(charts.percentiles_figure(percentile_rows(sa, sb, "ttft", "all"), names),
                   "Time-to-first-token percentiles, side by side."),
        ]
    return render("comparison.html.j2", title=f"Comparison: {names[0]} vs {names[1]}",
                  names=names, a=sa, b=sb, when=when, rate=achieved_rate, figures=figures,
                  overall=overall(sb), gates=gates_table(sb),
                  table=comparison_table(table, names))
