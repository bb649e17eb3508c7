"""The command line's lean path (reports.load_run(..., keep_rows=False), what
`python -m reports` does so that a day's run reports within a few GiB): the same figures, CSV
and page as a run loaded for a notebook, with the page's curves and swimlane taken from the
analysis's sorted arrays rather than from a per-request DataFrame."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reports import api, charts, costs, html, metrics
from reports.columns import SUFFIX, arrow_schema
from reports.report import sessions_csv
from reports.stats import QUANTILES
from tests.reports.test_html import synthetic_run
from tests.support.pages import figures
from tests.support.recorded import RecordedPair
from tests.support.rows import T0


def curve_of(values: np.ndarray) -> np.ndarray:
    return np.quantile(values[~np.isnan(values)], QUANTILES)


def test_the_lean_path_gives_the_same_figures_csv_and_page(tmp_path: Path) -> None:
    prefix = synthetic_run(tmp_path)
    full = api.load_run(prefix)
    lean = api.load_run(prefix, keep_rows=False)
    assert lean.analysis.rows is None and full.analysis.rows is not None
    assert lean.summary() == full.summary()
    assert sessions_csv(lean.sessions) == sessions_csv(full.sessions)
    page = html.render_report(lean)
    assert page == html.render_report(full)
    assert "no response time recorded" not in page
    with pytest.raises(ValueError, match="keep_rows=False"):
        _ = lean.requests
    full.requests  # noqa: B018 - a notebook's run still has its request DataFrame
    assert lean.raw is None  # what was read is let go: a comparison reads the run again
    assert api.compare(lean, full).equals(api.compare(full, full))


def test_the_page_curves_are_exact_quantiles_of_the_request_groups(tmp_path: Path) -> None:
    run = api.load_run(synthetic_run(tmp_path))
    df = run.requests
    rt, ttft = df["response_time_ms"].to_numpy(), df["ttft_ms"].to_numpy()
    ok, state, cache = df["ok"].to_numpy(), df["state"], df["cache"]
    curves = run.analysis.curves
    expected = {"all": rt, "ok": rt[ok]}
    for name in ("first", "repeat", "after_switch"):
        expected[name] = rt[ok & (state == name).to_numpy()]
    groups = [(curves.latency, expected),
              (curves.latency_cache, {c: rt[ok & (cache == c).to_numpy()]
                                      for c in ("hit", "miss")}),
              (curves.ttft_cache, {"all": ttft, **{c: ttft[(cache == c).to_numpy()]
                                                   for c in ("hit", "miss")}}),
              (curves.ttft_state, {s: ttft[ok & (state == s).to_numpy()]
                                   for s in ("first", "repeat", "after_switch")})]
    seen = 0
    for got, want in groups:
        want = {k: v for k, v in want.items() if (~np.isnan(v)).any()}
        assert set(got) == set(want)
        for key, values in want.items():
            assert got[key].count == int((~np.isnan(values)).sum())
            np.testing.assert_allclose(got[key].x, curve_of(values), rtol=1e-12, atol=0)
            seen += 1
    assert seen >= 11 and curves.cache_recorded  # every kind of curve had values here


@pytest.mark.parametrize("limit,bins", [(30, 50), (120, 240), (4, 7)])
def test_the_lanes_of_the_sorted_rows_equal_those_of_the_request_dataframe(
        tmp_path: Path, limit: int, bins: int) -> None:
    from reports.config import ReportConfig

    run = api.load_run(synthetic_run(tmp_path),
                       config=ReportConfig(swimlane_sessions=limit, swimlane_bins=bins))
    want = charts.swimlanes(run.requests, limit=limit, bins=bins, sessions=run.sessions)
    got = run.analysis.lanes
    assert (got.sessions, got.containers, got.bin_s, got.total_sessions, got.controls) == (
        want.sessions, want.containers, want.bin_s, want.total_sessions, want.controls)
    assert np.array_equal(got.codes, want.codes, equal_nan=True)
    assert len(got.sessions) == min(limit, got.total_sessions)


def test_the_lean_path_equals_the_full_one_on_a_real_run(recorded_pair: RecordedPair) -> None:
    for prefix, events in ((recorded_pair.sticky, recorded_pair.events),
                           (recorded_pair.control, None)):
        full = api.load_run(prefix, events)
        lean = api.load_run(prefix, events, keep_rows=False)
        assert lean.summary() == full.summary()
        assert sessions_csv(lean.sessions) == sessions_csv(full.sessions)
        want = charts.swimlanes(full.requests, sessions=full.sessions)
        assert want.sessions == lean.analysis.lanes.sessions
        assert np.array_equal(want.codes, lean.analysis.lanes.codes, equal_nan=True)
        assert html.render_report(lean) == html.render_report(full)


def test_a_comparison_of_lean_runs_draws_the_same_page(tmp_path: Path) -> None:
    from reports import comparison

    a, b = synthetic_run(tmp_path, "a"), synthetic_run(tmp_path, "b")
    full = [api.comparable(api.load_run(p)) for p in (a, b)]
    lean = [api.comparable(api.load_run(p, keep_rows=False)) for p in (a, b)]
    table = comparison.formatted(comparison.rows(full[0].analysis.summary,
                                                 full[1].analysis.summary))
    page = html.render_comparison(lean[0], lean[1], table)
    assert page == html.render_comparison(full[0], full[1], table)
    shown = figures(page)  # rates, response times, percentiles; TTFT curves, percentiles
    assert len(shown) == 5 and all(len(f["data"]) >= 2 for f in shown[1:])


def soak(path: Path, sessions: int, per: int, failed_every: int = 0) -> str:
    """A run of `sessions` sessions x `per` requests on 3 containers, some switches; every
    `failed_every`-th request (0: none) failed as the recorder writes it (a 503, no container,
    an error text)."""
    n = sessions * per
    row = np.arange(n)
    session = row // per
    cont = (session + (row % 97 == 0)) % 3  # a switch now and then
    fail = (row % failed_every == 7) if failed_every else np.zeros(n, dtype=np.bool_)
    names = np.array(["ta-A", "ta-B", "ta-C"], dtype=object)
    columns = {
        "ts": T0 + (row % per) * 0.5 + session * 1e-3,
        "response_time_ms": 5.0 + (row % 13),
        "session_id": pa.array(np.char.add("s", session.astype(str)).astype(object)),
        "user_class": "StickyUser", "name": "POST /",
        "status": np.where(fail, 503, 200).astype(np.int32),
        "container_id": pa.array(names[cont], mask=fail),
        "cache": None,
        "error": pa.array(np.full(n, "HTTPError('503 Server Error')", dtype=object),
                          mask=~fail),
        "worker": "local", "affinity": "session",
        "ttfb_ms": None, "ttft_ms": None, "tokens": None, "max_gap_ms": None,
    }
    schema = arrow_schema()
    table = pa.table({name: value if isinstance(value, pa.Array | np.ndarray)
                      else pa.nulls(n, schema.field(name).type) if value is None
                      else pa.array(np.full(n, value, dtype=object), schema.field(name).type)
                      for name, value in columns.items()}, schema=schema)
    prefix = str(path / f"soak{failed_every}")
    pq.write_table(table, prefix + SUFFIX, row_group_size=65_536)
    return prefix


def traced_peak(prefix: str) -> int:
    """The peak of the memory numpy and pandas allocate (tracemalloc: deterministic, unlike
    RSS; pyarrow's own pool is not traced) while the command line's path reads and analyses
    the run."""
    tracemalloc.start()
    try:
        run = api.load_run(prefix, keep_rows=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert run.summary()["requests"] > 0
    return peak


def test_failed_requests_cost_the_lean_path_a_few_bytes_a_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The successful requests are flags on the sorted rows, never copies of their arrays,
    and the error texts take a byte a row: a run with 1% failed requests peaks within a few
    bytes a request of the same run without (copies of the successful rows' sessions,
    containers, starts and ends took 28). The passes that work a block at a time do so here
    in small blocks, as they do on a day's run: their temporaries are then not per row."""
    for module, name in ((metrics, "ORDER_BLOCK_ROWS"), (metrics, "ANSWER_BLOCK_ROWS"),
                         (metrics, "SESSION_BLOCK_ROWS"), (costs, "BLOCK_ROWS")):
        monkeypatch.setattr(module, name, 4096)
    sessions, per = 200, 500
    n = sessions * per
    clean = traced_peak(soak(tmp_path, sessions, per))
    failing = traced_peak(soak(tmp_path, sessions, per, failed_every=100))
    assert (failing - clean) / n < 4, f"{(failing - clean) / n:.1f} bytes a request more"
    run = api.load_run(soak(tmp_path, sessions, per, failed_every=100))
    rows = run.analysis.rows
    assert rows is not None and not rows.ok.everyone
    assert rows.ok.mask is rows.frame.ok
    for name, value in vars(rows.ok).items():  # flags only: no per-row copy of a column
        assert not isinstance(value, np.ndarray) or value.dtype == np.bool_, name
    assert rows.requests.error.codes.itemsize == 1
