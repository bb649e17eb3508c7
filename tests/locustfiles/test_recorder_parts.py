"""A real Locust run with the request file in parts (--request-file-part-mb through its env
var): several parts, each with the run's record, read by `python -m reports` as one run."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from reports.columns import PART_KEY, RECORDING_KEY, SUFFIX
from tests.support.cli import run_reports
from tests.support.locust import headless, locust_process


def test_a_run_in_parts_is_one_run_to_the_report(target: str, tmp_path: Path) -> None:
    args = headless(target, "StickyUser", users=5, seconds=3,
                    extra=("--loglevel", "WARNING", "--pace-rps", "50"))
    env = {"LOCUST_REQUEST_FILE_PART_MB": "0.002"}
    with locust_process(*args, tmp=tmp_path, env=env) as run:
        code = run.wait(60)
    output = run.output()
    assert code == 0, output[-3000:]
    parts = sorted(tmp_path.glob("run_requests-*.parquet"))
    assert len(parts) >= 2, output[-3000:]
    assert not Path(f"{run.prefix}{SUFFIX}").exists() and not list(tmp_path.glob("*.arrows"))
    assert f"({len(parts)} parts)" in output
    locust = sum(e["num_requests"] for e in json.loads(Path(f"{run.prefix}.json").read_text()))
    rows = [pq.read_metadata(p).num_rows for p in parts]
    for i, part in enumerate(parts, 1):
        metadata = pq.read_schema(part).metadata
        record = json.loads(metadata[RECORDING_KEY.encode()])
        assert record["ended"] == "normally" and record["parts"] == len(parts)
        assert record["recorded"] == sum(rows) == record["processes"]["local"]["recorded"]
        assert json.loads(metadata[PART_KEY.encode()]) == {"index": i, "of": len(parts),
                                                           "rows": rows[i - 1]}
    assert sum(rows) >= locust > 0
    out = run_reports(str(run.prefix), "--out", str(tmp_path / "report"))
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads((tmp_path / "report_summary.json").read_text())
    assert summary["requests"] == sum(rows) and not summary["not_judged"]
    assert summary["request_file"] == f"{run.prefix}_requests-*.parquet"
