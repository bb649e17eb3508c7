"""`python -m reports`: outputs, headline, gates, comparison, and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reports import html
from reports.__main__ import main
from reports.columns import arrow_schema
from tests.support.cli import run_reports
from tests.support.pages import figures
from tests.support.rows import T0, Row, three_switched_rows, write_requests

OUTPUT_SUFFIXES = ("_summary.json", "_sessions.csv", "_report.html")


def outputs(prefix: str) -> list[Path]:
    return [Path(prefix + suffix) for suffix in OUTPUT_SUFFIXES]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()
                  if p.name.endswith((".tmp", *OUTPUT_SUFFIXES, "_comparison.csv",
                                      "_comparison.html")))


def test_cli_writes_the_report_and_prints_the_headline(three_switched: str) -> None:
    out = run_reports(three_switched)
    assert out.returncode == 0, out.stderr
    assert "session stickiness 94.00% [83.78%, 97.94%]" in out.stdout
    assert "(3 of 50 sessions saw 2+ containers)" in out.stdout
    for path in outputs(three_switched):
        assert path.is_file() and str(path) in out.stdout
    summary = json.loads(Path(three_switched + "_summary.json").read_text())
    assert summary["session_stickiness"] == 0.94 and summary["sessions"] == 50
    with Path(three_switched + "_sessions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 50 and sum(int(r["switches"]) for r in rows) == 3
    page = Path(three_switched + "_report.html").read_text()
    assert page.count('class="chart"') >= 4 and ' src="http' not in page
    assert out.stderr == ""


def test_no_gate_by_default(three_switched: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([three_switched]) == 0


@pytest.mark.parametrize(("flags", "code", "reason"), [
    (["--min-stickiness", "0.95"], 1,
     "gate --min-stickiness failed: session stickiness 0.94 < 0.95 (3 of 50 judged sessions "
     "saw 2+ containers)"),
    (["--min-stickiness", "0.9"], 0, ""),
    (["--max-flaps", "2"], 1,
     "gate --max-flaps failed: flaps (switches inside a settled epoch) 3 > 2"),
    (["--min-settled-stickiness", "0.95"], 1, "settled stickiness 0.94 < 0.95"),
    (["--min-same-container-rate", "0.995"], 1,
     "gate --min-same-container-rate failed: same-container rate 0.993333 < 0.995 (3 switches "
     "in 450 transitions)"),
    (["--max-error-rate", "0"], 0, ""),
    (["--min-sessions", "51"], 1, "gate --min-sessions failed"),
    (["--max-p95-ms", "5"], 1, "gate --max-p95-ms failed: p95 latency (ms)"),
    (["--max-error-rate", "0.1", "--min-same-container-rate", "0.9"], 0, ""),
    (["--min-request-stickiness", "0.99"], 1, "request stickiness 0.97 < 0.99"),
])
def test_gates_exit_non_zero_with_a_one_line_reason(
        three_switched: str, capsys: pytest.CaptureFixture[str], flags: list[str], code: int,
        reason: str) -> None:
    assert main([three_switched, *flags]) == code
    err = capsys.readouterr().err
    if code:
        assert len(err.strip().splitlines()) == 1 and reason in err
    else:
        assert err == ""
    summary = json.loads(Path(three_switched + "_summary.json").read_text())
    verdict = "passed" if code == 0 else "failed"
    assert [g["verdict"] for g in summary["gates"]] == [verdict] * len(summary["gates"])


def test_two_failed_gates_give_two_lines(three_switched: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main([three_switched, "--min-stickiness", "1", "--max-flaps", "0"]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 2


def test_a_gate_with_nothing_to_measure_is_not_judged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_requests(tmp_path / "one_requests.parquet", [Row(T0, "s", None, 503)])
    prefix = str(tmp_path / "one")
    assert main([prefix, "--min-stickiness", "0.5"]) == 0
    (gate,) = json.loads(Path(prefix + "_summary.json").read_text())["gates"]
    assert gate["verdict"] == "not judged" and gate["value"] is None
    assert "no judged session with 2+ successful requests" in gate["reason"]
    out = capsys.readouterr()
    assert "NOT JUDGED" in out.out and out.err == ""
    assert main([prefix, "--min-stickiness", "0.5", "--require-judged"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["reports: gate --min-stickiness not judged (--require-judged): session "
                   "stickiness: no judged session with 2+ successful requests"]


@pytest.mark.parametrize(("flag", "reason"), [
    # --max-collateral judges every answer: these switches between live containers fail it
    # (tests/reports/test_per_answer.py)
    ("--max-remap-excess", "no membership change to judge"),
])
def test_change_gates_on_a_stable_run_are_not_judged(
        three_switched: str, capsys: pytest.CaptureFixture[str], flag: str, reason: str
        ) -> None:
    assert main([three_switched, flag, "0"]) == 0
    (gate,) = json.loads(Path(three_switched + "_summary.json").read_text())["gates"]
    assert (gate["verdict"], gate["reason"].split(": ", 1)[1]) == ("not judged", reason)
    assert main([three_switched, flag, "0", "--require-judged"]) == 1


def test_flaps_gate_with_no_successful_request_is_not_judged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_requests(tmp_path / "fail_requests.parquet",
                   [Row(T0 + j, "s", None, 500, error="500 boom") for j in range(5)])
    prefix = str(tmp_path / "fail")
    assert main([prefix, "--max-flaps", "0"]) == 0
    (gate,) = json.loads(Path(prefix + "_summary.json").read_text())["gates"]
    assert gate["verdict"] == "not judged"
    assert "inside a settled epoch" in gate["reason"]
    assert main([prefix, "--max-flaps", "0", "--require-judged"]) == 1


def test_comparison_side_by_side(three_switched: str, tmp_path: Path) -> None:
    sticky = [Row(T0 + j, f"s{i}", "ta-A", response_time_ms=5.0)
              for i in range(20) for j in range(5)]
    write_requests(tmp_path / "sticky_requests.parquet", sticky)
    out = run_reports(str(tmp_path / "sticky"), three_switched)
    assert out.returncode == 0, out.stderr
    assert "session_stickiness: A 1, B 0.94, B - A -0.06" in out.stdout
    with (tmp_path / "sticky_vs_three_comparison.csv").open() as handle:
        rows = {r["metric"]: r for r in csv.DictReader(handle)}
    assert float(rows["session_stickiness"]["difference"]) == pytest.approx(-0.06)
    assert float(rows["latency_all_p50"]["a"]) == 5.0
    assert int(rows["sessions"]["b"]) - int(rows["sessions"]["a"]) == int(
        rows["sessions"]["difference"]) == 30
    page = (tmp_path / "sticky_vs_three_comparison.html").read_text()
    assert "sticky vs three" in page and page.count('class="chart"') >= 3


def test_comparison_gates_judge_b(three_switched: str, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    write_requests(tmp_path / "base_requests.parquet", three_switched_rows())
    out = str(tmp_path / "cmp")
    assert main([three_switched, str(tmp_path / "base"), "--out", out,
                 "--min-stickiness", "0.9"]) == 0
    assert main([three_switched, str(tmp_path / "base"), "--out", out,
                 "--min-stickiness", "0.99"]) == 1
    assert Path(out + "_comparison.csv").is_file()


# -- bad input ---------------------------------------------------------------------------------


def parquet_with(path: Path, table: pa.Table) -> None:
    pq.write_table(table, path)


def good_table() -> pa.Table:
    return pa.Table.from_pylist([{"ts": T0, "response_time_ms": 5.0, "session_id": "s",
                                  "user_class": "StickyUser", "name": "POST /",
                                  "status": 200, "container_id": "ta-A", "cache": None,
                                  "error": None, "worker": "local"}], schema=arrow_schema())


def make_bad(kind: str, tmp_path: Path) -> tuple[list[str], str]:
    """(extra args, expected message fragment) after writing a bad run `bad`."""
    path = tmp_path / "bad_requests.parquet"
    if kind == "missing":
        return [], "no request file"
    if kind == "empty":
        write_requests(path, [])
        return [], "no requests (an empty run)"
    if kind in ("truncated", "corrupt"):
        write_requests(path, three_switched_rows())
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if kind == "truncated" else
                         b"PAR1" + bytes(range(256)) * 8 + b"PAR1")
        return [], "bad_requests.parquet"
    if kind == "not parquet":
        path.write_text("ts,session_id\n1,2\n")
        return [], "not a readable Parquet file"
    if kind == "missing column":
        parquet_with(path, good_table().drop_columns(["session_id", "status"]))
        return [], "missing columns session_id, status"
    if kind == "wrong type":
        table = good_table()
        parquet_with(path, table.set_column(table.schema.get_field_index("status"), "status",
                                            pa.array(["200"])))
        return [], "column status is string, expected int32"
    if kind == "null ts":
        table = good_table()
        parquet_with(path, table.set_column(0, "ts", pa.array([None], pa.float64())))
        return [], "1 rows with no ts"
    write_requests(path, three_switched_rows())
    if kind == "corrupt events":
        (tmp_path / "bad_events.jsonl").write_text('{"ts": 1, "event": "added", "containe')
        return [], "bad_events.jsonl:1: not JSON"
    if kind == "bad event":
        (tmp_path / "bad_events.jsonl").write_text('{"ts": "x", "event": "added"}\n')
        return [], "'ts' is not a number"
    if kind == "missing events":
        return ["--events", str(tmp_path / "nowhere.jsonl")], "no event log"
    if kind == "bad stats":
        (tmp_path / "bad_stats.csv").write_text("Type,Name\nPOST,/\n")
        return [], "missing columns Request Count"
    if kind == "csv columns":
        path.unlink()
        (tmp_path / "bad_requests.csv").write_text("ts,status\n1,200\n")
        return [], "missing columns response_time_ms"
    raise AssertionError(kind)


BAD = ["missing", "empty", "truncated", "corrupt", "not parquet", "missing column",
       "wrong type", "null ts", "corrupt events", "bad event", "missing events", "bad stats",
       "csv columns"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_input_gives_one_line_and_exit_2(kind: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    args, message = make_bad(kind, tmp_path)
    assert main([str(tmp_path / "bad"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reports: ") and len(err.strip().splitlines()) == 1, err
    assert message in err
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["truncated", "missing column"])
def test_bad_input_through_the_real_command(kind: str, tmp_path: Path) -> None:
    make_bad(kind, tmp_path)
    out = run_reports(str(tmp_path / "bad"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and out.stdout == ""
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("argv", [
    ["a", "b", "c"], ["a", "b", "--events", "x.jsonl"], ["a", "--min-stickiness", "1.5"],
    ["a", "--max-error-rate", "-1"], ["a", "--change-window", "nan"],
])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_a_failure_while_rendering_leaves_no_half_written_report(
        three_switched: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert main([three_switched]) == 0
    before = {p: p.read_bytes() for p in outputs(three_switched)}

    def broken(*_args: object, **_kwargs: object) -> str:
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(html, "render_report", broken)
    with pytest.raises(RuntimeError):
        main([three_switched, "--min-stickiness", "0.5"])
    assert {p: p.read_bytes() for p in outputs(three_switched)} == before
    assert not list(Path(three_switched).parent.glob("*.tmp"))


def test_an_unwritable_output_is_one_line(three_switched: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main([three_switched, "--out", str(tmp_path / "no" / "such" / "dir")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reports: cannot write") and len(err.strip().splitlines()) == 1


def test_locust_stats_are_cross_checked(three_switched: str) -> None:
    Path(three_switched + "_stats.csv").write_text(
        "Type,Name,Request Count,Failure Count,Median Response Time\n"
        "POST,/,490,0,12\n,Aggregated,490,0,12\n")
    Path(three_switched + "_stats_history.csv").write_text(
        "Timestamp,User Count,Type,Name,Requests/s\n"
        f"{int(T0)},10,,Aggregated,0\n{int(T0) + 5},50,,Aggregated,50\n{int(T0) + 6},50,,Agg")
    assert main([three_switched]) == 0
    summary = json.loads(Path(three_switched + "_summary.json").read_text())
    assert summary["locust"] == {"requests": 490, "failures": 0, "recorded": 500}
    timeline = figures(Path(three_switched + "_report.html").read_text())[0]
    assert "Locust users" in {trace.get("name") for trace in timeline["data"]}


def test_strict_sessions_are_judged_strictly_by_default(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [Row(r.ts, r.session_id, r.container_id, user_class="SessionedUser",
                affinity="strict") for r in three_switched_rows()]
    prefix = str(tmp_path / "strict")
    write_requests(Path(prefix + "_requests.parquet"), rows)
    assert main([prefix]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "gate --max-strict-violations failed: strict sessions on 2+ containers 3 > 0" in err
    assert main([prefix, "--max-strict-violations", "3"]) == 0
    # a sticky (best-effort) run with the same moves passes: no gate by default
    assert main([three_switched_prefix(tmp_path)]) == 0


def three_switched_prefix(tmp_path: Path) -> str:
    prefix = str(tmp_path / "sticky")
    write_requests(Path(prefix + "_requests.parquet"), three_switched_rows())
    return prefix
