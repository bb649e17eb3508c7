from __future__ import annotations

import math

import numpy as np
import pytest

from reports.stats import (
    balance_figures,
    chi2_sf,
    curve_sorted,
    curve_sorted_without,
    expected_max_ratio,
    quantiles_sorted,
    wilson,
)


def test_wilson_interval_known_values() -> None:
    low, high = wilson(47, 50) or (0, 0)
    assert low == pytest.approx(0.8378, abs=1e-4)
    assert high == pytest.approx(0.9794, abs=1e-4)
    assert wilson(0, 0) is None
    assert wilson(10, 10) == (pytest.approx(0.7225, abs=1e-4), pytest.approx(1.0))
    small, large = wilson(9, 10), wilson(9000, 10000)
    assert small and large and small[1] - small[0] > 10 * (large[1] - large[0])


@pytest.mark.parametrize(("x", "df", "p"), [
    (3.841458820694124, 1, 0.05), (10.0, 5, 0.0752352), (100.0, 80, 0.0645704),
    (0.5, 3, 0.9188914), (0.0, 4, 1.0), (500.0, 10, 0.0),
])
def test_chi2_survival_matches_known_values(x: float, df: int, p: float) -> None:
    assert chi2_sf(x, df) == pytest.approx(p, abs=1e-6)


@pytest.mark.parametrize(("bins", "items", "expected"), [
    (4, 100, 1.22), (8, 100, 1.41), (8, 1000, 1.13), (16, 1000, 1.23), (32, 10000, 1.12),
])
def test_expected_max_matches_the_notes(bins: int, items: int, expected: float) -> None:
    assert expected_max_ratio(bins, items) == pytest.approx(expected, abs=0.02)


def test_expected_max_is_seeded_and_degenerate_cases() -> None:
    assert expected_max_ratio(8, 100) == expected_max_ratio(8, 100)
    assert expected_max_ratio(1, 50) == 1.0
    assert expected_max_ratio(0, 50) is None


def test_quantiles_of_sorted_values_match_numpy() -> None:
    values = np.sort(np.random.default_rng(1).exponential(10, 1001))
    qs = [0, 0.5, 0.95, 0.99, 1]
    assert np.allclose(quantiles_sorted(values, qs), np.quantile(values, qs))
    assert np.isnan(quantiles_sorted(np.empty(0), [0.5])).all()


def test_balance_figures() -> None:
    ratio, cv, p = balance_figures(np.array([10, 10, 10, 10]))
    assert (ratio, cv, p) == (1.0, 0.0, 1.0)
    ratio, cv, p = balance_figures(np.array([40, 0, 0, 0]))
    assert ratio == 4.0 and cv is not None and cv > 1 and p is not None and p < 1e-6
    assert balance_figures(np.array([0, 0])) == (None, None, None)
    assert not math.isnan(balance_figures(np.array([3, 5]))[2] or 0)


@pytest.mark.parametrize("seed", range(6))
def test_a_curve_without_some_values_is_the_curve_of_the_rest(seed: int) -> None:
    """Ties, NaN among both, nothing or everything removed: the same figures, bit for bit,
    as sorting what is left."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    values = rng.integers(0, 40, n).astype(np.float64) / 4  # many ties
    values[rng.random(n) < 0.05] = np.nan
    share = (0.0, 0.01, 0.3, 0.9, 1.0, 0.5)[seed]
    out = rng.random(n) < share
    rest = np.sort(values[~out])
    expected = curve_sorted(rest[:int(np.searchsorted(rest, np.nan))])
    got = curve_sorted_without(np.sort(values), np.sort(values[out]))
    if expected is None:
        assert got is None
    else:
        assert got is not None and got.count == expected.count
        assert np.array_equal(got.x, expected.x)
