"""Small statistics with no dependency beyond numpy: Wilson intervals, chi-square tail,
the expected imbalance of a uniform hash, quantiles of sorted arrays."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Z95 = 1.959963984540054
MONTE_CARLO_TRIALS = 2000
MONTE_CARLO_SEED = 20240611


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval (95% by default) of successes/trials; None when trials = 0."""
    if trials <= 0:
        return None
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for a chi-square variable with df degrees of freedom."""
    if df <= 0:
        return math.nan
    if x <= 0:
        return 1.0
    return gamma_q(df / 2.0, x / 2.0)


def gamma_q(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x) (Numerical Recipes 6.2)."""
    if x < a + 1:
        return max(0.0, 1.0 - _gamma_p_series(a, x))
    return _gamma_q_fraction(a, x)


def _gamma_p_series(a: float, x: float) -> float:
    term = total = 1.0 / a
    ap = a
    for _ in range(10_000):
        ap += 1
        term *= x / ap
        total += term
        if abs(term) < abs(total) * 1e-15:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_q_fraction(a: float, x: float) -> float:
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def expected_max_ratio(bins: int, items: int, trials: int = MONTE_CARLO_TRIALS) -> float | None:
    """E[max_j L_j / (K/N)] for K items thrown uniformly into N bins (Monte Carlo, seeded)."""
    if bins <= 0 or items <= 0:
        return None
    if bins == 1:
        return 1.0
    rng = np.random.default_rng(MONTE_CARLO_SEED)
    trials = max(50, min(trials, 2_000_000 // bins))
    loads = rng.multinomial(items, [1.0 / bins] * bins, size=trials)
    return float(loads.max(axis=1).mean() / (items / bins))


def quantiles_sorted(values: NDArray[np.float64], qs: NDArray[np.float64] | list[float]
                     ) -> NDArray[np.float64]:
    """np.quantile(values, qs) ('linear') for values already sorted ascending."""
    return quantiles_at(values.__getitem__, len(values), qs)


def quantiles_at(value: Callable[[NDArray[np.int64]], NDArray[np.float64]], n: int,
                 qs: NDArray[np.float64] | list[float]) -> NDArray[np.float64]:
    """np.quantile ('linear') of n values sorted ascending, the i-th of them `value(i)`."""
    q = np.asarray(qs, dtype=np.float64)
    if n == 0:
        return np.full(q.shape, np.nan)
    pos = q * (n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = pos - lo
    return value(lo) * (1 - frac) + value(hi) * frac


# share of requests at or below each point of a distribution curve: dense at the tail
QUANTILES = np.concatenate((np.linspace(0, 0.99, 100), np.linspace(0.991, 1.0, 10)))


@dataclass(frozen=True)
class Curve:
    """A distribution as a chart draws it: the values at QUANTILES (exact: from every value,
    sorted), and how many values there were."""

    count: int
    x: NDArray[np.float64]


def curve_at(value: Callable[[NDArray[np.int64]], NDArray[np.float64]], n: int
             ) -> Curve | None:
    """The curve of n values sorted ascending, the i-th of them `value(i)` (None when n is
    0)."""
    return Curve(n, quantiles_at(value, n, QUANTILES)) if n > 0 else None


def curve_sorted(values: NDArray[np.float64]) -> Curve | None:
    """The curve of values already sorted ascending (None when there are none)."""
    return curve_at(values.__getitem__, len(values))


def sorted_without(values: NDArray[np.float64], removed: NDArray[np.float64]
                   ) -> tuple[int, Callable[[NDArray[np.int64]], NDArray[np.float64]]]:
    """`values` (sorted ascending, NaN last) with the values of `removed` (sorted likewise,
    one occurrence each, all among `values`) taken out, NaN left out, without making or
    sorting that rest: how many are kept, and the k-th kept value (ascending) as a function of
    k. Each removed value takes out one occurrence of it; the k-th kept value is then at index
    k + #{j: R_j - j <= k} of `values`, R the removed indices in increasing order."""
    values = values[:int(np.searchsorted(values, np.nan))]
    removed = removed[:int(np.searchsorted(removed, np.nan))]
    m = len(removed)
    ranks = np.arange(m)
    # the j-th of equal removed values takes the j-th of their occurrences in `values`
    at = np.searchsorted(values, removed, side="left") + ranks \
        - np.searchsorted(removed, removed, side="left")
    shift = at - ranks  # non-decreasing

    def kept(k: NDArray[np.int64]) -> NDArray[np.float64]:
        return values[k + np.searchsorted(shift, k, side="right")]

    return len(values) - m, kept


def curve_sorted_without(values: NDArray[np.float64], removed: NDArray[np.float64]
                         ) -> Curve | None:
    """Exactly `curve_sorted` of the rest of `values` once `removed` is taken out, NaN left
    out (`sorted_without`: that rest is neither made nor sorted)."""
    n, kept = sorted_without(values, removed)
    return curve_at(kept, n)


def balance_figures(loads: NDArray[np.int64]) -> tuple[float | None, float | None, float | None]:
    """(max/mean, coefficient of variation, chi-square p-value) of loads over N bins."""
    total = int(loads.sum())
    n = len(loads)
    if n == 0 or total == 0:
        return None, None, None
    mean = total / n
    ratio = float(loads.max() / mean)
    cv = float(loads.std() / mean)
    chi2 = float(((loads - mean) ** 2).sum() / mean)
    return ratio, cv, (chi2_sf(chi2, n - 1) if n > 1 else None)
