"""From a recorded run to the report files, in memory; the CLI writes them atomically.

    analysis, files = single_report("out/run1", ReportConfig())
    output.write_all(files)   # out/run1_summary.json, out/run1_sessions.csv, out/run1_report.html
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from reports import api, comparison, html
from reports.config import Gates, ReportConfig
from reports.load import normalize_prefix
from reports.metrics import Analysis


def outputs(out: str) -> tuple[Path, Path, Path]:
    """The summary, sessions CSV and HTML paths for an output prefix."""
    return Path(out + "_summary.json"), Path(out + "_sessions.csv"), Path(out + "_report.html")


def comparison_outputs(out: str) -> tuple[Path, Path]:
    return Path(out + "_comparison.csv"), Path(out + "_comparison.html")


def default_comparison_prefix(a: str, b: str) -> str:
    return f"{normalize_prefix(a)}_vs_{Path(normalize_prefix(b)).name}"


def single_report(prefix: str, config: ReportConfig, events: Path | None = None,
                  out: str | None = None) -> tuple[Analysis, dict[Path, bytes]]:
    run = api.load_run(prefix, events, config=config, keep_rows=False)
    analysis = run.analysis
    summary_path, sessions_path, html_path = outputs(out or normalize_prefix(prefix))
    files = {
        summary_path: analysis.summary.to_json().encode(),
        sessions_path: sessions_csv(analysis.sessions),
        html_path: html.render_report(run).encode(),
    }
    return analysis, files


def sessions_csv(table: pd.DataFrame) -> bytes:
    """The session table as CSV (docs/api.md#runsessions): a header, then one row per session."""
    return table.to_csv(index=False, lineterminator="\n").encode()


def comparison_report(a: str, b: str, config: ReportConfig, out: str | None = None
                      ) -> tuple[Analysis, Analysis, list[comparison.Row], dict[Path, bytes]]:
    """Both runs analysed, the gates judged on B (the candidate)."""
    first = api.comparable(api.load_run(a, config=dataclasses.replace(config, gates=Gates()),
                                        keep_rows=False))
    second = api.comparable(api.load_run(b, config=config, keep_rows=False))
    table = comparison.rows(first.analysis.summary, second.analysis.summary)
    names = (Path(normalize_prefix(a)).name, Path(normalize_prefix(b)).name)
    if names[0] == names[1]:
        names = ("A", "B")
    csv_path, html_path = comparison_outputs(out or default_comparison_prefix(a, b))
    files = {
        csv_path: comparison.to_csv(table),
        html_path: html.render_comparison(first, second, comparison.formatted(table),
                                          names).encode(),
    }
    return first.analysis, second.analysis, table, files
