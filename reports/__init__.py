"""Turns a recorded run into stickiness, remaps, errors and latency.

As a library (docs/api.md):

    from reports import load_run, compare
    run = load_run("results/run")        # run.requests, run.sessions, ... (pandas DataFrames)
    run.summary()                        # the dict written as PREFIX_summary.json

As a command: `python -m reports PREFIX` (a thin layer over the library).

    api.py       load_run, compare, Run: the DataFrames (pandas)
    __main__.py  the command line: one line and exit 2 on bad input, exit 1 on a failed gate
    load.py      the request file, event log and Locust CSVs, as numpy codes (precise errors)
    epochs.py    membership changes, from the event log or inferred from the requests
    metrics.py   every figure, into the typed summary (summary.py) and chart data
    stats.py     Wilson intervals, chi-square, the expected imbalance of a uniform hash
    charts.py    the plotly charts; html.py the self-contained page (Jinja2, templates/)
    comparison.py two runs side by side; gates.py the CI thresholds; config.py the options
    report.py    run to files, in memory; output.py writes them atomically

Definitions: docs/metrics.md; gates: docs/gates.md; summary.json: docs/summary-json.md.
It needs neither Locust nor the emulator: pandas, numpy and pyarrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reports.api import Run, compare, load_run

__all__ = ["Run", "compare", "load_run"]


def __getattr__(name: str) -> Any:
    # pandas is imported on first use of the API, not by `python -m reports` at start-up
    if name in __all__:
        from reports import api

        return getattr(api, name)
    raise AttributeError(f"module 'reports' has no attribute {name!r}")
