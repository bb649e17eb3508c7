"""Typed summaries with chosen figures, for code that reads a run's Summary (scripts/demo's
judging and headlines): a real analysis of a small synthetic run, its figures replaced."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from reports.summary import Summary
from tests.support.rows import three_switched_rows, write_requests


@cache
def analysed() -> str:
    """The summary.json text of the three-switched run (50 StickyUser sessions, 3 moved)."""
    from reports import load_run

    with tempfile.TemporaryDirectory() as directory:
        prefix = Path(directory) / "three"
        write_requests(Path(f"{prefix}_requests.parquet"), three_switched_rows())
        return load_run(str(prefix)).analysis.summary.to_json()


def summary(**figures: Any) -> Summary:
    """A fresh copy of that run's typed summary (read back from its JSON, as a file would
    be) with `figures` replaced."""
    return dataclasses.replace(Summary.from_dict(json.loads(analysed())), **figures)
