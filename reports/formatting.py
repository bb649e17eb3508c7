"""Figures as text, for the pages and the comparison table: percentages, intervals, counts,
milliseconds, seconds, times. Plain Python: no pandas, no plotly, no templates, so that the
data layer (comparison.py) can use them without loading the presentation layer."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from datetime import UTC, datetime


def pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if not finite(value) else f"{value * 100:.{digits}f}%"  # type: ignore[operator]


def ci(interval: Sequence[float] | None, digits: int = 1) -> str:
    if not interval:
        return ""
    return f"[{pct(interval[0], digits)}, {pct(interval[1], digits)}]"


def num(value: float | int | None, digits: int = 3) -> str:
    """A count with thousands separators (numpy's integers too), a float to `digits`
    significant digits; n/a for None, NaN and infinities."""
    if value is None:
        return "n/a"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    return f"{value:.{digits}g}" if math.isfinite(value) else "n/a"


def ms(value: float | None) -> str:
    return "n/a" if not finite(value) else f"{value:,.1f}"


def finite(value: object) -> bool:
    """A real number (numpy's too), neither NaN nor infinite."""
    return isinstance(value, numbers.Real) and math.isfinite(value)


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def seconds(value: float | None) -> str:
    return "n/a" if not finite(value) else f"{value:.2f}"
