"""The report's charts, as inline SVG strings: timeline, swimlane, per container, latency.

Each chart draws at most a few thousand elements whatever the size of the run: the timeline
merges seconds beyond `timeline_points`, the swimlane samples sessions and bins time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from reports.metrics import CDF_POINTS, ERRORS_ONLY, Swimlane, Timeline
from reports.summary import ERROR_CLASSES, ChangeSummary, ContainerSummary
from reports.svg import ERROR_COLOUR, MUTED, Axes, Canvas, colour, legend, nice_ticks

WIDTH = 960.0
MAX_SEGMENT_TIPS = 4000
LEFT = 64.0
RIGHT = 16.0
CLASS_COLOURS = {
    "bad_body": "#8c564b", "401": "#9467bd", "429": "#e377c2", "503": "#ff7f0e",
    "4xx": "#bcbd22", "5xx": "#d62728", "connection": "#17becf", "other": "#7f7f7f",
    "stream_cut": "#393b79", "stream_short": "#637939",
}
STATE_COLOURS = {
    "all": "#555", "first": "#f28e2b", "repeat": "#4e79a7", "after_switch": "#d62728",
    "errors": "#999", "cache hit": "#59a14f", "cache miss": "#b07aa1",
}
STATE_LABELS = {
    "all": "all requests", "first": "first of a session", "repeat": "repeat, same container",
    "after_switch": "first after a switch", "errors": "failed requests",
    "cache hit": "cache hit", "cache miss": "cache miss",
}


# -- the timeline ------------------------------------------------------------------------------


def merge_bins(values: NDArray[np.generic], factor: int, how: str) -> NDArray[np.float64]:
    """Merge `factor` neighbouring bins by sum, mean or min (a last partial bin included)."""
    data = np.asarray(values, dtype=np.float64)
    if factor <= 1:
        return data
    pad = (-len(data)) % factor
    fill = {"sum": 0.0, "min": np.inf}.get(how, np.nan)
    grid = np.concatenate((data, np.full(pad, fill))).reshape(-1, factor)
    if how == "sum":
        return grid.sum(axis=1)
    if how == "min":
        return grid.min(axis=1)
    with np.errstate(all="ignore"):
        counts = np.sum(~np.isnan(grid), axis=1)
        return np.where(counts > 0, np.nansum(grid, axis=1) / np.maximum(counts, 1), np.nan)


def timeline_chart(tl: Timeline, changes: Sequence[ChangeSummary], points: int) -> str:
    bins = len(tl.requests)
    factor = max(1, math.ceil(bins / points))
    width_s = tl.bin_s * factor
    rps = merge_bins(tl.requests, factor, "sum") / width_s
    sessions = merge_bins(tl.sessions, factor, "mean")
    users = merge_bins(tl.users, factor, "mean") if tl.users is not None else None
    live = merge_bins(tl.live, factor, "min")
    error_classes = [i for i, name in enumerate(ERROR_CLASSES[:tl.classes.shape[1]])
                     if name != "2xx" and tl.classes[:, i].any()]
    errors = {ERROR_CLASSES[i]: merge_bins(tl.classes[:, i], factor, "sum") / width_s
              for i in error_classes}
    span = bins * tl.bin_s
    canvas = Canvas(WIDTH, 560, "Timeline: requests, sessions, errors and live containers")
    plot_w = WIDTH - LEFT - RIGHT
    xs = [(i + 0.5) * width_s for i in range(len(rps))]
    top = panel(canvas, 28, 120, span, float(rps.max()), "requests/s")
    top.canvas.polyline([(top.x(x), top.y(v)) for x, v in zip(xs, rps, strict=True)],
                        "#4e79a7", tip="requests per second")
    people = max(float(np.nanmax(sessions)) if len(sessions) else 0.0,
                 float(np.nanmax(users)) if users is not None and np.isfinite(users).any()
                 else 0.0)
    who = panel(canvas, 185, 70, span, people,
                "active sessions" + (" and Locust users" if users is not None else ""))
    series_line(who, xs, sessions, "#59a14f", "", "active sessions")
    if users is not None:
        series_line(who, xs, users, "#9c755f", "6 3", "Locust users")
        legend(canvas, LEFT + plot_w - 170, 177, [("sessions", "#59a14f"),
                                                  ("users", "#9c755f")], 170, ["", "6 3"])
    stacked = sum(errors.values(), np.zeros(len(xs)))
    mid = panel(canvas, 290, 110, span, float(np.max(stacked, initial=0.0)),
                "errors/s by class")
    stacked_bars(mid, xs, width_s, errors)
    if not errors:
        canvas.text(LEFT + plot_w / 2, 350, "no errors", 12, "middle", MUTED)
    legend(canvas, LEFT + 130, 282, [(k, CLASS_COLOURS[k]) for k in errors], plot_w - 130)
    low = panel(canvas, 435, 70, span, max(float(live.max()), 1.0), "live containers",
                integer=True)
    step_line(low, xs, width_s, live)
    low.time_axis(span)
    canvas.text(LEFT + plot_w / 2, 550, "time since the first request", 11, "middle", "#333")
    for change in changes:
        mark_change(canvas, [top, who, mid, low], change.at - tl.start, change)
    return canvas.render()


def panel(canvas: Canvas, top: float, height: float, span: float, y_max: float, label: str,
          integer: bool = False) -> Axes:
    y_max = float(y_max) if math.isfinite(y_max) and y_max > 0 else 1.0
    ticks = nice_ticks(0, y_max, 4 if not integer else min(4, int(y_max) or 1))
    if integer:
        ticks = sorted({round(t) for t in ticks})
    axes = Axes(canvas, LEFT, top, WIDTH - LEFT - RIGHT, height, 0, span or 1.0, 0,
                max(ticks[-1], y_max))
    axes.frame(ticks, label)
    axes.time_axis(span, labels=False)
    return axes


def series_line(axes: Axes, xs: Sequence[float], values: NDArray[np.float64], stroke: str,
                dash: str, tip: str) -> None:
    points = [(axes.x(x), axes.y(v)) for x, v in zip(xs, values, strict=True) if np.isfinite(v)]
    axes.canvas.polyline(points, stroke, 1.2, dash, tip)


def stacked_bars(axes: Axes, xs: Sequence[float], width_s: float,
                 series: dict[str, NDArray[np.float64]]) -> None:
    if not series:
        return
    base = np.zeros(len(xs))
    bar = max(axes.x(width_s) - axes.x(0), 0.6)
    for name, values in series.items():
        for i in np.flatnonzero(values > 0).tolist():
            x = axes.x(xs[i] - width_s / 2)
            y_top = axes.y(base[i] + values[i])
            axes.canvas.rect(x, y_top, bar, axes.y(base[i]) - y_top, CLASS_COLOURS[name],
                             f"{name}: {values[i]:.3g}/s")
        base += values


def step_line(axes: Axes, xs: Sequence[float], width_s: float, values: NDArray[np.float64]
              ) -> None:
    points: list[tuple[float, float]] = []
    for x, v in zip(xs, values, strict=True):
        points += [(axes.x(x - width_s / 2), axes.y(v)), (axes.x(x + width_s / 2), axes.y(v))]
    axes.canvas.polyline(points, "#333", 1.5, tip="live containers")


def mark_change(canvas: Canvas, panels: Sequence[Axes], offset: float,
                change: ChangeSummary) -> None:
    label = " ".join([f"+{len(change.added)}"] * bool(change.added)
                     + [f"-{len(change.removed)}"] * bool(change.removed))
    first = panels[0]
    x = first.x(offset)
    for axes in panels:
        canvas.line(x, axes.top, x, axes.top + axes.height, "#c44", 1, "4 3")
    canvas.text(x + 3, first.top + 10, label, 10, "start", "#c44", "600")


# -- the swimlane ------------------------------------------------------------------------------


def swimlane_chart(lane_data: Swimlane, containers: Sequence[str],
                   changes: Sequence[ChangeSummary]) -> str:
    lanes = lane_data.lanes
    row = 9.0 if len(lanes) <= 60 else 5.0
    used = sorted({c for lane in lanes for _, _, c in lane.segments if c >= 0})
    plot_w = WIDTH - LEFT - RIGHT
    legend_rows = 1 + len(used) // 6
    top = 30.0 + 16 * legend_rows
    height = top + row * max(len(lanes), 1) + 44
    canvas = Canvas(WIDTH, height, "Swimlane: sampled sessions over time, coloured by container")
    items = [(short(containers[c]), colour(c)) for c in used]
    if any(c == ERRORS_ONLY for lane in lanes for _, _, c in lane.segments):
        items.append(("only failed requests", ERROR_COLOUR))
    legend(canvas, LEFT, 16, items, plot_w)
    span = lane_data.bin_s * lane_data.bins
    axes = Axes(canvas, LEFT, top, plot_w, row * max(len(lanes), 1), 0, span, 0, 1)
    # hover text on every segment, unless there are so many (a non-sticky run) that the page
    # would grow by megabytes: then one per lane
    detailed = sum(len(lane.segments) for lane in lanes) <= MAX_SEGMENT_TIPS
    for i, lane in enumerate(lanes):
        y = top + i * row
        for first, end, code in lane.segments:
            fill = ERROR_COLOUR if code == ERRORS_ONLY else colour(code)
            who = "only failed requests" if code == ERRORS_ONLY else containers[code]
            tip = (f"session {lane.session_id}: {who}, {first * lane_data.bin_s:.1f}-"
                   f"{end * lane_data.bin_s:.1f} s") if detailed else ""
            canvas.rect(axes.x(first * lane_data.bin_s), y + 0.5,
                        axes.x(end * lane_data.bin_s) - axes.x(first * lane_data.bin_s),
                        row - 1, fill, tip)
        if not detailed:  # on top, to catch the hover
            canvas.rect(LEFT, y, plot_w, row, "transparent",
                        f"session {lane.session_id}: {len(lane.segments)} segments")
    canvas.text(LEFT - 6, top + 8, "sessions", 10, "end", "#666")
    canvas.line(LEFT, axes.top + axes.height, LEFT + plot_w, axes.top + axes.height, "#999")
    axes.time_axis(span)
    canvas.text(LEFT + plot_w / 2, height - 8,
                f"{len(lanes)} of {lane_data.total_sessions} sessions; time since the first "
                "request", 11, "middle", "#333")
    for change in changes:
        x = axes.x(change.at - lane_data.start)
        canvas.line(x, top, x, axes.top + axes.height, "#c44", 1, "4 3")
    return canvas.render()


def short(container: str, width: int = 18) -> str:
    return container if len(container) <= width else container[: width - 1] + "\u2026"


# -- per container -----------------------------------------------------------------------------


def containers_chart(per: Sequence[ContainerSummary], index: dict[str, int],
                     limit: int = 40) -> str:
    shown = sorted(per, key=lambda c: -c.requests)[:limit]
    row = 18.0
    label_w, gap, value_w = 170.0, 40.0, 56.0
    half = (WIDTH - label_w - gap - 2 * value_w - RIGHT) / 2
    height = 40 + row * max(len(shown), 1) + 20
    canvas = Canvas(WIDTH, height, "Sessions and requests per container")
    if not shown:
        canvas.text(WIDTH / 2, 40, "no container answered", 12, "middle", MUTED)
        return canvas.render()
    for i, c in enumerate(shown):
        canvas.text(label_w - 8, 40 + i * row, short(c.container_id, 24), 10, "end", "#333")
    for side, (label, key) in enumerate((("sessions (main / answered)", "sessions"),
                                         ("requests", "requests"))):
        left = label_w + side * (half + value_w + gap)
        values = [getattr(c, key) for c in shown]
        top_value = max(max(values), 1)
        canvas.text(left, 18, label, 11, "start", "#333", "600")
        mean = sum(values) / len(values)
        for i, c in enumerate(shown):
            y = 30 + i * row
            value = getattr(c, key)
            fill = colour(index[c.container_id])
            shown_value = value
            if key == "sessions":
                canvas.rect(left, y, half * value / top_value, row - 5, fill,
                            f"{c.container_id}: answered {value} sessions",
                            ' fill-opacity="0.35"')
                shown_value = c.main_sessions
            canvas.rect(left, y, half * shown_value / top_value, row - 5, fill,
                        f"{c.container_id}: {shown_value} {key}")
            text = f"{c.main_sessions} / {value}" if key == "sessions" else f"{value:,}"
            canvas.text(left + half * value / top_value + 4, y + 10, text, 10, "start",
                        "#333")
        x = left + half * mean / top_value
        canvas.line(x, 26, x, 30 + row * len(shown), "#333", 1, "3 3")
        canvas.text(x, height - 6, f"mean {mean:,.3g}", 10, "middle", "#333")
    return canvas.render()


# -- latency -----------------------------------------------------------------------------------


def latency_chart(cdfs: dict[str, NDArray[np.float64]], dashed: dict[str, NDArray[np.float64]]
                  | None = None, labels: tuple[str, str] = ("", "")) -> str:
    """Cumulative distributions of latency by state on a log axis; with `dashed`, a second
    run's curves drawn dashed over the first's (for comparisons)."""
    curves = [(state, values, "") for state, values in cdfs.items()]
    curves += [(state, values, "5 3") for state, values in (dashed or {}).items()]
    positive = [v[v > 0] for _, v, _ in curves if len(v[v > 0])]
    canvas = Canvas(WIDTH, 350, "Latency distributions by state")
    if not positive:
        canvas.text(WIDTH / 2, 150, "no latency to show", 12, "middle", MUTED)
        return canvas.render()
    lo = 10 ** math.floor(math.log10(min(float(v.min()) for v in positive)))
    hi = 10 ** math.ceil(math.log10(max(float(v.max()) for v in positive) * 1.0001))
    axes = Axes(canvas, LEFT, 66, WIDTH - LEFT - RIGHT, 230, lo, hi, 0, 1, log_x=True)
    axes.frame([0, 0.25, 0.5, 0.75, 0.9, 1.0], "share of requests at or below",
               y_format="percent")
    axes.log_axis("latency, ms (log scale)")
    for state, values, dash in curves:
        points = [(axes.x(v), axes.y(q)) for v, q in zip(values, CDF_POINTS, strict=True)
                  if v > 0]
        name = STATE_LABELS.get(state, state)
        run = labels[1] if dash else labels[0]
        axes.canvas.polyline(points, STATE_COLOURS.get(state, "#333"),
                             1.4 if state == "all" else 2, dash,
                             f"{run} {name}".strip())
    states = list(dict.fromkeys(s for s, _, _ in curves))
    items = [(STATE_LABELS.get(s, s), STATE_COLOURS.get(s, "#333")) for s in states]
    y = legend(canvas, LEFT, 16, items, WIDTH - LEFT - RIGHT)
    if dashed is not None:
        legend(canvas, LEFT, y, [(f"solid: {labels[0]}", "#333"),
                                 (f"dashed: {labels[1]}", "#333")],
               WIDTH - LEFT - RIGHT, ["", "5 3"])
    return canvas.render()


# -- comparison --------------------------------------------------------------------------------


def interval_chart(rows: Sequence[tuple[str, float | None, list[float] | None, str]],
                   title: str) -> str:
    """Horizontal bars with their Wilson intervals: (label, value, ci, colour) per row. The
    scale is 0-100%, or narrower when every interval is small (error rates)."""
    row = 28.0
    highs = [max(v or 0.0, *(ci or [0.0])) for _, v, ci, _ in rows]
    top = 1.0 if max(highs, default=0) > 0.4 else nice_ticks(0, max(max(highs, default=0),
                                                                     1e-4) * 1.15, 4)[-1]
    canvas = Canvas(WIDTH, 40 + row * len(rows) + 24, title)
    axes = Axes(canvas, 260, 30, WIDTH - 260 - 60, row * len(rows), 0, top, 0, 1)
    canvas.text(LEFT, 18, title, 12, "start", "#333", "600")
    for tick in nice_ticks(0, top, 4):
        x = axes.x(tick)
        canvas.line(x, 30, x, 30 + row * len(rows), "#eee")
        canvas.text(x, 30 + row * len(rows) + 14, f"{tick * 100:.3g}%", 10, "middle", "#666")
    for i, (label, value, ci, fill) in enumerate(rows):
        y = 30 + i * row
        canvas.text(250, y + 16, label, 11, "end", "#333")
        if value is None:
            canvas.text(axes.x(0) + 4, y + 16, "n/a", 11, "start", MUTED)
            continue
        canvas.rect(axes.x(0), y + 5, axes.x(value) - axes.x(0), row - 10, fill,
                    f"{label}: {value:.4f}")
        if ci:
            canvas.line(axes.x(ci[0]), y + row / 2, axes.x(ci[1]), y + row / 2, "#222", 1.5)
            for end in ci:
                canvas.line(axes.x(end), y + 8, axes.x(end), y + row - 8, "#222", 1.5)
        canvas.text(axes.x(top) + 6, y + 16, f"{value:.2%}", 10, "start", "#333")
    return canvas.render()
