"""The report's charts, as plotly figures built from the report API's DataFrames.

    fig = timeline_figure(run.timeline, run.changes)
    fig = swimlane_figure(run.requests, run.changes)
    fig = distribution_figure({"hit": ttft_hit, "miss": ttft_miss}, "time to first token, ms")

Each figure stays small whatever the size of the run: the timeline merges seconds beyond
`points`, the swimlane samples sessions and bins time, the distributions are drawn from
`QUANTILES` (a few hundred points), never from every request. The report of one run passes
what reports.metrics computed where it sorted the values (`Curve`s: exact quantiles) and its
lanes (reports.lanes), so that the page needs no per-request DataFrame. html.py turns the
figures into <div>s of one page that carries plotly.js once.

Whether a request succeeded, and its state (first, repeat, after a switch), are the API's
`ok` and `state` columns of `run.requests`: reports.metrics defines them once (a cut or short
stream is a failure), and no chart decides them again.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from reports.config import ReportConfig
from reports.lanes import Lanes, swimlanes
from reports.stats import QUANTILES, Curve
from reports.summary import ERROR_CLASSES, failed_column

# container colours: no red (red means "judged wrong", on this page only a verdict's colour) and
# no grey (a bin of failed requests)
NOT_FOR_CONTAINERS = {"#D62728", "#7F7F7F", "rgb(179,179,179)", "rgb(102,102,102)"}
PALETTE: tuple[str, ...] = tuple(
    c for c in (*qualitative.D3, *qualitative.Set2, *qualitative.Dark2)
    if c not in NOT_FOR_CONTAINERS)
FAILED_COLOUR = "#c7c7c7"  # a swimlane bin where the session had only failed requests
CHANGE_COLOUR = "#8e44ad"  # membership changes: a fact, not a verdict, so no red
RUN_COLOURS = ("#1f77b4", "#ff7f0e")  # run A, run B
CLASS_COLOURS = {
    "bad_body": "#8c564b", "401": "#9467bd", "429": "#e377c2", "503": "#ff7f0e",
    "4xx": "#bcbd22", "5xx": "#6b3e75", "connection": "#17becf", "other": "#7f7f7f",
    "stream_cut": "#2ca02c", "stream_short": "#98df8a",
}
STATE_LABELS = {
    "all": "all requests", "first": "first of a session", "repeat": "repeat, same container",
    "after_switch": "first after a switch", "errors": "failed requests",
    "hit": "cache hit", "miss": "cache miss",
}
STATE_COLOURS = {
    "all": "#555555", "first": "#ff7f0e", "repeat": "#1f77b4", "after_switch": "#9467bd",
    "errors": "#999999", "hit": "#2ca02c", "miss": "#8c564b",
}
DEFAULTS = ReportConfig()  # the swimlane's sampling: --swimlane-sessions and the like
FONT = dict(family="system-ui, -apple-system, 'Segoe UI', sans-serif", size=12)
LEGEND_TOP = dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0)


def plain(text: str) -> str:
    """A string of the run (an id) as plotly shows it: its labels read a few HTML tags and
    entities, so "<" and "&" are escaped to show as themselves."""
    return html.escape(text, quote=False)


def colour(i: int) -> str:
    """A distinct colour per index; beyond the palette, hues spread by the golden angle
    (away from red)."""
    if 0 <= i < len(PALETTE):
        return PALETTE[i]
    return f"hsl({30 + (i * 137.508) % 300:.0f},55%,50%)"


# a light template of our own: plotly's built-in ones are copied whole into every figure
AXIS = dict(gridcolor="#ebebeb", linecolor="#c8c8c8", zerolinecolor="#d0d0d0", ticks="",
            automargin=True, title=dict(standoff=8))
TEMPLATE = go.layout.Template(layout=dict(
    paper_bgcolor="white", plot_bgcolor="white", colorway=list(PALETTE[:10]),
    xaxis=AXIS, yaxis=AXIS, hoverlabel=dict(align="left"), bargap=0.2))


def base_layout(fig: go.Figure, height: int, **extra: object) -> go.Figure:
    layout: dict[str, object] = dict(template=TEMPLATE, height=height, font=FONT,
                                     autosize=True, margin=dict(l=60, r=20, t=40, b=50),
                                     hovermode="closest", legend=LEGEND_TOP)
    fig.update_layout(**(layout | extra))
    return fig


def legend_below(fig: go.Figure, height: int, entries: int, per_row: int = 4,
                 top: int = 40) -> go.Figure:
    """The figure with its legend under the x axis title, rows of whole names (plotly wraps
    a horizontal legend; the bottom margin grows to hold it)."""
    rows = max(1, math.ceil(entries / per_row))
    bottom = 70 + 22 * rows
    plot = max(height + 22 * rows - top - bottom, 40)
    return base_layout(fig, height + 22 * rows, margin=dict(l=60, r=20, t=top, b=bottom),
                       legend=dict(orientation="h", yanchor="top", xanchor="left", x=0,
                                   y=-58 / plot))


def empty_figure(message: str, height: int = 160) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper",
                       yref="paper", font=dict(size=14, color="#777"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return base_layout(fig, height)


# -- the timeline ------------------------------------------------------------------------------


def error_columns(timeline: pd.DataFrame) -> list[str]:
    """The error-class columns of the timeline that have any error."""
    known = [failed_column(c) for c in ERROR_CLASSES if c != "2xx"]
    return [c for c in known if c in timeline.columns and timeline[c].fillna(0).sum() > 0]


def merge_seconds(timeline: pd.DataFrame, points: int) -> tuple[pd.DataFrame, float]:
    """Neighbouring seconds merged so that at most `points` remain: counts as rates per
    second, live containers as the fewest of the merged seconds."""
    step = float(np.median(np.diff(timeline["second"]))) if len(timeline) > 1 else 1.0
    step = step if math.isfinite(step) and step > 0 else 1.0
    factor = max(1, math.ceil(len(timeline) / max(points, 1)))
    width = step * factor
    key = (np.arange(len(timeline)) // factor)
    counts = ["requests", *error_columns(timeline)]
    means = [c for c in PEOPLE if c in timeline]
    merged = timeline.groupby(key).agg(
        {"second": "first", **dict.fromkeys(counts, "sum"), **dict.fromkeys(means, "mean"),
         **({"live_containers": "min"} if "live_containers" in timeline else {})})
    merged[counts] = merged[counts] / width
    merged["second"] = merged["second"] + width / 2
    return merged.reset_index(drop=True), width


PEOPLE = {"sessions": ("active sessions", "#2ca02c", "solid"),
          "users": ("Locust users", "#8c564b", "dash")}


def timeline_figure(timeline: pd.DataFrame, changes: pd.DataFrame | None = None,
                    points: int = 600, origin: float | None = None) -> go.Figure:
    """Per second: requests, active sessions and Locust's users (when known), errors by class
    (stacked), live containers; a dotted line at each membership change. With `origin` (the
    run's first request, Unix s) and a `ts` column, x counts from `origin`, as the changes'
    `at_offset_s` do."""
    if timeline.empty:
        return empty_figure("no request to show")
    if origin is not None and "ts" in timeline:
        timeline = timeline.assign(second=timeline["ts"] - origin)
    merged, width = merge_seconds(timeline, points)
    unit = "/s" if width == 1 else f"/s (mean over {width:g} s)"
    people = [c for c in PEOPLE if c in merged and merged[c].notna().any()]
    who = " and ".join(PEOPLE[c][0] for c in people)
    titles = [f"requests{unit}", *([who] * bool(people)),
              f"errors{unit} by class", "live containers"]
    heights = [0.36, *([0.2] * bool(people)), 0.26, 0.18]
    fig = make_subplots(rows=len(titles), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        row_heights=heights, subplot_titles=titles)
    row = iter(range(1, len(titles) + 1))
    fig.add_trace(go.Scatter(x=merged["second"], y=merged["requests"], name="requests/s",
                             mode="lines", line=dict(color="#1f77b4", width=1.5),
                             hovertemplate="%{x:.0f} s: %{y:.3g} requests/s<extra></extra>"),
                  row=next(row), col=1)
    if people:
        at = next(row)
        for c in people:
            name, line_colour, dash = PEOPLE[c]
            fig.add_trace(go.Scatter(x=merged["second"], y=merged[c], name=name, mode="lines",
                                     line=dict(color=line_colour, width=1.5, dash=dash),
                                     hovertemplate=f"%{{x:.0f}} s: %{{y:.3g}} {name}"
                                                   "<extra></extra>"), row=at, col=1)
    at = next(row)
    errors = error_columns(timeline)
    for column in errors:
        name = column.removeprefix(failed_column(""))
        fig.add_trace(go.Bar(x=merged["second"], y=merged[column], name=f"error: {name}",
                             marker_color=CLASS_COLOURS.get(name, "#7f7f7f"), width=width,
                             hovertemplate=f"%{{x:.0f}} s: %{{y:.3g}} {name}/s<extra></extra>"),
                      row=at, col=1)
    if not errors:  # an empty trace keeps the panel's axes drawn
        fig.add_trace(go.Scatter(x=merged["second"], y=np.zeros(len(merged)), mode="lines",
                                 line=dict(width=0), showlegend=False, hoverinfo="skip"),
                      row=at, col=1)
        fig.add_annotation(text="no errors", showarrow=False, xref="x domain",
                           yref="y domain", x=0.5, y=0.5, font=dict(color="#777"), row=at,
                           col=1)
    at = next(row)
    if "live_containers" in merged:
        fig.add_trace(go.Scatter(x=merged["second"], y=merged["live_containers"],
                                 name="live containers", mode="lines", line_shape="hvh",
                                 line=dict(color="#333", width=1.5),
                                 hovertemplate="%{x:.0f} s: %{y} live<extra></extra>"),
                      row=at, col=1)
    fig.update_layout(barmode="stack", bargap=0, legend_traceorder="normal")
    fig.update_yaxes(rangemode="tozero")
    fig.update_yaxes(dtick=1, row=at, col=1)
    fig.update_xaxes(title_text="seconds since the first request", row=at, col=1)
    mark_changes(fig, changes)
    entries = 2 + len(people) + len(errors)
    return legend_below(fig, 520 + 110 * bool(people), entries, per_row=6)


def change_label(change: Mapping[str, Any]) -> str:
    def count(key: str) -> int:
        value = change.get(key)
        if isinstance(value, str):
            return len(value.split())
        return len(value) if isinstance(value, Sequence | np.ndarray) else 0
    added, removed = count("added"), count("removed")
    return " ".join([f"+{added}"] * bool(added) + [f"-{removed}"] * bool(removed)) or "change"


def mark_changes(fig: go.Figure, changes: pd.DataFrame | None) -> None:
    """A dotted vertical line over every subplot at each membership change, labelled +a -r."""
    if changes is None or changes.empty or "at_offset_s" not in changes:
        return
    for record in changes.to_dict("records"):
        change: dict[str, Any] = {str(k): v for k, v in record.items()}
        fig.add_vline(x=float(change["at_offset_s"]), line=dict(color=CHANGE_COLOUR,
                                                                 width=1, dash="dot"))
        fig.add_annotation(x=float(change["at_offset_s"]), y=1, xref="x", yref="paper",
                           text=change_label(change), showarrow=False, yanchor="bottom",
                           font=dict(color=CHANGE_COLOUR, size=11))


# -- the swimlane ------------------------------------------------------------------------------


def swimlane_figure(requests: pd.DataFrame | Lanes, changes: pd.DataFrame | None = None,
                    limit: int = DEFAULTS.swimlane_sessions, bins: int = DEFAULTS.swimlane_bins,
                    sessions: pd.DataFrame | None = None) -> go.Figure:
    """Sampled sessions over time, one row each, coloured by the container that answered:
    of the API's `run.requests`, or lanes made already (reports.lanes)."""
    if isinstance(requests, Lanes):
        lanes = requests
        bins = lanes.codes.shape[1]
    elif requests.empty:
        return empty_figure("no request to show")
    else:
        lanes = swimlanes(requests, limit, bins, sessions)
    k = len(lanes.containers)
    colours = [FAILED_COLOUR, *(colour(i) for i in range(k))]
    n = len(colours)
    scale = [[pos, c] for i, c in enumerate(colours) for pos in (i / n, (i + 1) / n)]
    names = np.array(["only failed requests", *map(plain, lanes.containers)], dtype=object)
    z = lanes.codes + 1  # 0 = failed only, 1.. = containers
    filled = ~np.isnan(z)
    text = np.where(filled, names[np.where(filled, z, 0).astype(int)], "")
    x = (np.arange(bins) + 0.5) * lanes.bin_s
    fig = go.Figure(go.Heatmap(
        z=z, x=x, y=list(range(len(lanes.sessions))), zmin=-0.5, zmax=n - 0.5,
        colorscale=scale, showscale=False, text=text,
        customdata=np.repeat(np.array([plain(x) for x in lanes.sessions], dtype=object)[:, None],
                             bins, axis=1),
        hovertemplate="session %{customdata}<br>%{x:.1f} s: %{text}<extra></extra>",
        hoverongaps=False, xgap=0, ygap=1))
    legend = [(name, colours[i]) for i, name in enumerate(names)
              if i > 0 or (z == 0).any()]
    for name, fill in legend:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=str(name),
                                 marker=dict(symbol="square", size=11, color=fill)))
    title = f"{len(lanes.sessions)} of {lanes.total_sessions} sessions"
    if lanes.controls:
        title += f" (last {lanes.controls}: controls)"
        fig.add_hline(y=len(lanes.sessions) - lanes.controls - 0.5,
                      line=dict(color="#333", width=1, dash="dash"))
    fig.update_yaxes(showticklabels=False, title_text=title, autorange="reversed",
                     showgrid=False)
    fig.update_xaxes(title_text="seconds since the first request", showgrid=False,
                     range=[0, bins * lanes.bin_s])
    mark_changes(fig, changes)
    return legend_below(fig, 120 + 9 * len(lanes.sessions), len(legend), top=30)


# -- per container -----------------------------------------------------------------------------


def containers_figure(containers: pd.DataFrame, limit: int = 40) -> go.Figure:
    """Sessions each container is the main container of and answered at all; requests it
    answered. The busiest `limit` containers."""
    if containers.empty:
        return empty_figure("no container answered")
    shown = containers.sort_values("requests", ascending=False).head(limit).iloc[::-1]
    ids = shown["container_id"].astype(str).map(plain)
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("sessions per container", "requests per container"))
    fig.add_trace(go.Bar(y=ids, x=shown["sessions"], orientation="h", name="sessions answered",
                         marker_color="#aec7e8",
                         hovertemplate="%{y}: answered %{x} sessions<extra></extra>"), 1, 1)
    if "main_sessions" in shown:
        fig.add_trace(go.Bar(y=ids, x=shown["main_sessions"], orientation="h",
                             name="main container of", marker_color="#1f77b4",
                             hovertemplate="%{y}: main container of %{x} sessions"
                                           "<extra></extra>"), 1, 1)
    fig.add_trace(go.Bar(y=ids, x=shown["requests"], orientation="h", name="requests",
                         marker_color="#ff7f0e",
                         hovertemplate="%{y}: %{x:,} requests<extra></extra>"), 1, 2)
    for col, key in ((1, "sessions"), (2, "requests")):
        fig.add_vline(x=float(shown[key].mean()), line=dict(color="#333", dash="dash", width=1),
                      row=1, col=col)
    fig.update_yaxes(automargin=True, type="category")
    fig.update_layout(barmode="overlay")
    return legend_below(fig, 100 + 22 * len(shown), 3)


# -- distributions -----------------------------------------------------------------------------


Values = np.ndarray | pd.Series


CURVE_SAMPLE = 500_000  # a curve of more values is drawn from this many, picked at random


def quantile_curve(values: Values) -> np.ndarray:
    """The values at QUANTILES; beyond CURVE_SAMPLE values, those of a uniform random sample
    (fixed seed: the page is the same each time). The curve's shape is then exact to about
    0.1 percentage point; the tables give the exact percentiles."""
    data = np.asarray(values, dtype="float64")
    if len(data) > CURVE_SAMPLE:
        data = data[np.random.default_rng(0).integers(0, len(data), CURVE_SAMPLE)]
    return np.quantile(data, QUANTILES)


def log_ticks(low: float, high: float) -> list[float]:
    """1, 2, 5 times the powers of ten that cover [low, high], as whole numbers a log axis
    labels in full (plotly's own labels read "9 10 2 3 ... 100 2")."""
    low, high = max(low, 1e-3), max(high, low)
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    steps = (1, 2, 5) if last - first <= 3 else (1,)
    ticks = [m * 10.0 ** e for e in range(first, last + 1) for m in steps]
    inside = [t for t in ticks if low / 2 <= t <= high * 2]
    return [float(f"{t:.3g}") for t in inside]


def distribution_figure(curves: Mapping[str, Values | Curve], x_title: str, *,
                        colours: Mapping[str, str] | None = None,
                        dashes: Mapping[str, str] | None = None,
                        labels: Mapping[str, str] | None = None, height: int = 340
                        ) -> go.Figure:
    """Cumulative distributions (share of requests at or below x) on a log x axis, one curve
    per group, drawn from QUANTILES of its values (or its Curve, computed where the values
    were sorted: reports.metrics)."""
    shown = {k: v if isinstance(v, Curve) else Curve(len(v), quantile_curve(v))
             for k, v in curves.items() if (v.count if isinstance(v, Curve) else len(v))}
    if not shown:
        return empty_figure(f"no {x_title.split(',')[0]} recorded")
    fig = go.Figure()
    ends: list[float] = []
    for key, curve in shown.items():
        x = curve.x
        ends += [float(np.maximum(x, 1e-3).min()), float(x.max())]
        name = (labels or STATE_LABELS).get(key, key)
        fig.add_trace(go.Scatter(
            x=np.maximum(x, 1e-3), y=QUANTILES, mode="lines", name=f"{name} ({curve.count:,})",
            line=dict(color=(colours or STATE_COLOURS).get(key), width=2,
                      dash=(dashes or {}).get(key, "solid")),
            hovertemplate=f"{name}<br>%{{y:.1%}} at or below %{{x:.3g}} ms<extra></extra>"))
    ticks = log_ticks(min(ends), max(ends))
    fig.update_xaxes(type="log", title_text=x_title + " (log scale)", tickvals=ticks,
                     ticktext=[f"{t:,g}" for t in ticks])
    fig.update_yaxes(title_text="share at or below", tickformat=".0%", range=[0, 1.02])
    return base_layout(fig, height)


# -- comparison --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """One figure of two runs: values in [0, 1], each with its 95% interval when known."""

    name: str
    a: float | None
    b: float | None
    a_ci: Sequence[float] | None = None
    b_ci: Sequence[float] | None = None


def rates_figure(rates: Sequence[Rate], names: tuple[str, str]) -> go.Figure:
    """Grouped horizontal bars, A beside B, with their Wilson intervals."""
    rates = [r for r in rates if r.a is not None or r.b is not None]
    if not rates:
        return empty_figure("no rate to compare")
    fig = go.Figure()
    for side, run in enumerate(names):
        values = [r.a if side == 0 else r.b for r in rates]
        cis = [r.a_ci if side == 0 else r.b_ci for r in rates]
        plus = [ci[1] - v if ci and v is not None else None for v, ci in zip(values, cis,
                                                                             strict=True)]
        minus = [v - ci[0] if ci and v is not None else None for v, ci in zip(values, cis,
                                                                              strict=True)]
        fig.add_trace(go.Bar(
            y=[r.name for r in rates], x=values, orientation="h", name=run,
            marker_color=RUN_COLOURS[side],
            error_x=dict(type="data", array=plus, arrayminus=minus, color="#333"),
            hovertemplate=f"{run}<br>%{{y}}: %{{x:.2%}}<extra></extra>"))
    fig.update_xaxes(tickformat=".0%", range=[0, 1.02])
    fig.update_yaxes(autorange="reversed", automargin=True)
    return base_layout(fig, 120 + 56 * len(rates), barmode="group")


def percentiles_figure(rows: Sequence[tuple[str, float | None, float | None]],
                       names: tuple[str, str], unit: str = "ms") -> go.Figure:
    """Grouped bars of a few percentiles, A beside B: rows of (label, a, b)."""
    rows = [r for r in rows if r[1] is not None or r[2] is not None]
    if not rows:
        return empty_figure("no percentile to compare")
    fig = go.Figure()
    for side, run in enumerate(names):
        values = [r[1 + side] for r in rows]
        fig.add_trace(go.Bar(
            x=[r[0] for r in rows], y=values, name=run, marker_color=RUN_COLOURS[side],
            text=[f"{v:,.1f}" if v is not None else "n/a" for v in values],
            textposition="outside", cliponaxis=False,
            hovertemplate=f"{run}<br>%{{x}}: %{{y:,.1f}} {unit}<extra></extra>"))
    top = max((v for r in rows for v in r[1:] if v is not None), default=1.0)
    fig.update_yaxes(title_text=unit, range=[0, top * 1.15 or 1.0])
    return base_layout(fig, 340, barmode="group")
