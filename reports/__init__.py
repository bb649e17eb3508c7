"""Turns a recorded run into stickiness, remaps, errors and latency: `python -m reports PREFIX`.

    __main__.py  the command line: one line and exit 2 on bad input, exit 1 on a failed gate
    load.py      the request file, event log and Locust CSVs, as numpy codes (precise errors)
    epochs.py    membership changes, from the event log or inferred from the requests
    metrics.py   every figure, into the typed summary (summary.py) and chart data
    stats.py     Wilson intervals, chi-square, the expected imbalance of a uniform hash
    charts.py    the SVG charts (svg.py draws); html.py the self-contained page
    compare.py   two runs side by side; gates.py the CI thresholds; config.py the options
    report.py    run to files, in memory; output.py writes them atomically

It needs neither Locust nor the emulator: only numpy and pyarrow.
"""
