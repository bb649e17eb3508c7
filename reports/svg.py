"""A few SVG drawing helpers for the charts: a canvas, linear and log axes, nice ticks.

Everything is inline SVG text with no script: the report opens offline, anywhere. Hover text
comes from <title> elements, which browsers show natively.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

FONT = "font-family:system-ui,-apple-system,'Segoe UI',sans-serif"
PALETTE: tuple[str, ...] = (
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7",
    "#86bcb6", "#d4a6c8", "#8cd17d", "#a0cbe8",
)
ERROR_COLOUR = "#d62728"
MUTED = "#888"


def colour(i: int) -> str:
    """A distinct colour per index; beyond the palette, hues spread by the golden angle."""
    if 0 <= i < len(PALETTE):
        return PALETTE[i]
    hue = (i * 137.508) % 360
    return f"hsl({hue:.0f},55%,55%)"


def fmt(value: float) -> str:
    """Short numbers for SVG coordinates."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else [0.0]
    raw = (hi - lo) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def time_ticks(span: float, count: int = 6) -> list[float]:
    """Ticks in seconds, on whole seconds, minutes or hours as the span asks."""
    if span <= 0:
        return [0.0]
    steps = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200,
             86400)
    step = next((s for s in steps if span / s <= count), steps[-1])
    return [i * step for i in range(int(span // step) + 1)]


def time_label(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}"


def number_label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


@dataclass
class Canvas:
    width: float
    height: float
    title: str = ""
    parts: list[str] = field(default_factory=list)

    def add(self, element: str) -> None:
        self.parts.append(element)

    def rect(self, x: float, y: float, w: float, h: float, fill: str, tip: str = "",
             extra: str = "") -> None:
        body = f"<title>{escape(tip)}</title>" if tip else ""
        tag = (f'<rect x="{fmt(x)}" y="{fmt(y)}" width="{fmt(max(w, 0.0))}" '
               f'height="{fmt(max(h, 0.0))}" fill="{fill}"{extra}')
        self.add(f"{tag}>{body}</rect>" if body else f"{tag}/>")

    def line(self, x1: float, y1: float, x2: float, y2: float, stroke: str = "#ccc",
             width: float = 1, dash: str = "") -> None:
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{fmt(x1)}" y1="{fmt(y1)}" x2="{fmt(x2)}" y2="{fmt(y2)}" '
                 f'stroke="{stroke}" stroke-width="{width}"{dashed}/>')

    def polyline(self, points: Sequence[tuple[float, float]], stroke: str, width: float = 1.5,
                 dash: str = "", tip: str = "") -> None:
        if not points:
            return
        coords = " ".join(f"{fmt(x)},{fmt(y)}" for x, y in points)
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        body = f"<title>{escape(tip)}</title>" if tip else ""
        self.add(f'<polyline points="{coords}" fill="none" stroke="{stroke}" '
                 f'stroke-width="{width}" stroke-linejoin="round"{dashed}>{body}</polyline>')

    def text(self, x: float, y: float, content: str, size: float = 11, anchor: str = "start",
             fill: str = "#333", weight: str = "normal") -> None:
        self.add(f'<text x="{fmt(x)}" y="{fmt(y)}" font-size="{size}" text-anchor="{anchor}" '
                 f'fill="{fill}" font-weight="{weight}">{escape(content)}</text>')

    def render(self) -> str:
        label = f' aria-label="{escape(self.title)}"' if self.title else ""
        return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {fmt(self.width)} '
                f'{fmt(self.height)}" width="100%" role="img"{label} style="{FONT}">'
                + "".join(self.parts) + "</svg>")


@dataclass
class Axes:
    """A plot area on a canvas, mapping data to pixels (linear, or log10 on x)."""

    canvas: Canvas
    left: float
    top: float
    width: float
    height: float
    x0: float
    x1: float
    y0: float
    y1: float
    log_x: bool = False

    def x(self, value: float) -> float:
        lo, hi, v = self.x0, self.x1, value
        if self.log_x:
            lo, hi, v = math.log10(lo), math.log10(hi), math.log10(max(value, self.x0))
        span = hi - lo or 1.0
        return self.left + (v - lo) / span * self.width

    def y(self, value: float) -> float:
        span = self.y1 - self.y0 or 1.0
        return self.top + self.height - (value - self.y0) / span * self.height

    def frame(self, y_ticks: Sequence[float], y_label: str = "",
              y_format: str = "number") -> None:
        c = self.canvas
        for tick in y_ticks:
            yy = self.y(tick)
            c.line(self.left, yy, self.left + self.width, yy, "#eee")
            text = f"{tick:.0%}" if y_format == "percent" else number_label(tick)
            c.text(self.left - 6, yy + 4, text, 10, "end", "#666")
        c.line(self.left, self.top + self.height, self.left + self.width,
               self.top + self.height, "#999")
        if y_label:
            c.text(self.left, self.top - 6, y_label, 11, "start", "#333", "600")

    def time_axis(self, span: float, labels: bool = True) -> None:
        for tick in time_ticks(span):
            xx = self.x(tick)
            self.canvas.line(xx, self.top + self.height, xx, self.top + self.height + 4, "#999")
            if labels:
                self.canvas.text(xx, self.top + self.height + 15, time_label(tick), 10,
                                 "middle", "#666")

    def log_axis(self, label: str) -> None:
        decade = math.floor(math.log10(self.x0))
        while 10 ** decade <= self.x1 * 1.0001:
            for m in (1, 2, 5):
                value = m * 10 ** decade
                if self.x0 <= value <= self.x1:
                    xx = self.x(value)
                    self.canvas.line(xx, self.top, xx, self.top + self.height, "#f0f0f0")
                    self.canvas.text(xx, self.top + self.height + 15, number_label(value), 10,
                                     "middle", "#666")
            decade += 1
        self.canvas.text(self.left + self.width / 2, self.top + self.height + 30, label, 11,
                         "middle", "#333")


def legend(canvas: Canvas, x: float, y: float, items: Sequence[tuple[str, str]],
           width: float, dash: Sequence[str] | None = None) -> float:
    """Swatches and labels in rows from (x, y); returns the y below the last row."""
    cx, cy = x, y
    for i, (label, fill) in enumerate(items):
        size = 7 * len(label) + 24
        if cx + size > x + width and cx > x:
            cx, cy = x, cy + 16
        if dash and dash[i]:
            canvas.line(cx, cy - 4, cx + 14, cy - 4, fill, 2, dash[i])
        else:
            canvas.rect(cx, cy - 9, 12, 10, fill)
        canvas.text(cx + 17, cy, label, 10, "start", "#333")
        cx += size
    return cy + 14
