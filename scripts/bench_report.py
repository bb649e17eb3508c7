"""Benchmark: the full report beside a user's one-liner, on a real run tiled to 10 M rows.

    .venv/bin/python scripts/bench_report.py [--rows 10000000] [--repeat 3] [--keep DIR]

1. A short real run: the emulator with 3 replicas and a headless Locust run of
   locustfiles/sticky.py (StickyUser) with `--csv`, which records PREFIX_requests.parquet
   (a small direct HTTP client stands in when locustfiles/sticky.py is missing).
2. That request file tiled to --rows rows in the same format (reports.columns, zstd, row groups
   as large as the real file's): each tile shifted in time by the run's span, with its own
   session ids (`<id>-<tile>`), so that sessions grow with the run as they would over hours.
3. Side by side, alternated, --repeat times each, every one in a fresh process:
   - the full report, `python -m reports PREFIX` (every figure, CSV, HTML, summary.json);
   - the one-number answer a user would write by hand:
     `pd.read_parquet(f).groupby("session_id").container_id.nunique()`.
   Printed: both median wall times, their ratio (report / one-liner; goal <= 1.0, moonshot
   0.5), CPU time, and peak memory (ru_maxrss from wait4, in a small helper process; goal
   <= 1.5 GiB), with the machine's load average: the figures are only as quiet as the machine.
4. The same on a compacted copy (row groups of a million rows, dictionaries for the string
   columns only): what the recorder's one-row-group-per-second format costs each side.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modal_app.local.launch import emulator, stop_process  # noqa: E402
from reports.columns import COLUMNS, SUFFIX, arrow_schema  # noqa: E402

TARGET_RATIO = 1.0
MOONSHOT_RATIO = 0.5
TARGET_BYTES = int(1.5 * 1024**3)
USERS = 50
RUN_S = 8
COMPACT_GROUP = 1_000_000


def real_run(prefix: Path) -> str:
    """A short real run through the emulator; returns how it was made."""
    with emulator(3) as emu:
        if (ROOT / "locustfiles" / "sticky.py").is_file():
            locust_run(emu.url, prefix)
            return f"locust StickyUser, {USERS} users, {RUN_S} s"
        direct_run(emu.url, prefix)
        return f"direct HTTP client, {USERS} sessions, {RUN_S} s"


def locust_run(url: str, prefix: Path) -> None:
    cmd = [sys.executable, "-m", "locust", "-f", "locustfiles/sticky.py", "StickyUser",
           "--headless", "-u", str(USERS), "-r", str(USERS), "-t", f"{RUN_S}s", "--host", url,
           "--csv", str(prefix), "--loglevel", "WARNING", "--exit-code-on-error", "0",
           "--only-summary"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        output, _ = proc.communicate(timeout=RUN_S + 120)
    finally:
        stop_process(proc)
    if not Path(str(prefix) + SUFFIX).is_file():
        raise SystemExit(f"the Locust run wrote no request file:\n{output[-2000:]}")


def direct_run(url: str, prefix: Path) -> None:
    """USERS threads, each a session on one keep-alive connection, recording every request."""
    parts = urllib.parse.urlsplit(url)
    rows: list[dict[str, object]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + RUN_S

    def user() -> None:
        session = uuid.uuid4().hex
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        mine = []
        while time.monotonic() < deadline:
            start = time.time()
            conn.request("POST", "/", body=b"{}", headers={"Modal-Session-Id": session,
                                                            "content-type": "application/json"})
            answer = conn.getresponse()
            body = answer.read()
            elapsed = (time.time() - start) * 1000
            container = json.loads(body).get("CONTAINER_ID") if answer.status == 200 else None
            mine.append({"ts": start, "response_time_ms": elapsed, "session_id": session,
                         "user_class": "StickyUser", "name": "POST /", "status": answer.status,
                         "container_id": container, "cache": None, "error": None,
                         "worker": "local"})
        conn.close()
        with lock:
            rows.extend(mine)

    threads = [threading.Thread(target=user) for _ in range(USERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema()), str(prefix) + SUFFIX,
                   compression="zstd")


def tile(source: Path, target: Path, rows: int) -> tuple[int, int]:
    """The source file repeated to `rows` rows; returns (tiles, row group size)."""
    meta = pq.ParquetFile(source).metadata
    group = max(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
    base = pq.read_table(source).select(list(COLUMNS))
    ts = base.column("ts")
    span = pc.max(ts).as_py() - pc.min(ts).as_py() + 1.0
    tiles = math.ceil(rows / base.num_rows)
    sessions = base.column("session_id").combine_chunks()
    with pq.ParquetWriter(target, arrow_schema(), compression="zstd") as writer:
        written = 0
        for k in range(tiles):
            piece = base.slice(0, min(base.num_rows, rows - written))
            piece = piece.set_column(0, "ts", pc.add(piece.column("ts"), k * span))
            renamed = pc.binary_join_element_wise(sessions.slice(0, piece.num_rows),
                                                  pa.scalar(str(k)), "-")
            piece = piece.set_column(COLUMNS.index("session_id"), "session_id", renamed)
            writer.write_table(piece.cast(arrow_schema()), row_group_size=group)
            written += piece.num_rows
    return tiles, group


# Runs a command and prints its wall time, CPU time and peak RSS. It runs in a small process of
# its own: a child's peak RSS (ru_maxrss) counts the memory of the process it was forked from,
# and this one holds a 10-million-row table.
MEASURE = """
import json, os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
output = proc.stdout.read()
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"wall": time.perf_counter() - start, "code": os.waitstatus_to_exitcode(status),
                  "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss * 1024,
                  "output": output}))
"""

# What a user would write by hand for one number: the share of sessions on one container.
ONE_LINER = """
import sys
import pandas as pd
per_session = pd.read_parquet(sys.argv[1]).groupby("session_id").container_id.nunique()
print(f"sessions on one container: {(per_session == 1).mean():.4f}")
"""


@dataclass
class Timing:
    wall: float
    cpu: float
    peak: int
    output: str


def measure(command: list[str]) -> Timing:
    """The command in a fresh process: wall and CPU seconds, peak RSS bytes, output."""
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, check=True)
    result = json.loads(done.stdout)
    if result["code"] != 0:
        raise SystemExit(f"{' '.join(command[:3])} exited {result['code']}:\n"
                         f"{result['output'][-3000:]}")
    return Timing(result["wall"], result["cpu"], result["rss"], result["output"])


def side_by_side(prefix: Path, repeat: int, label: str, show_output: bool = False) -> None:
    """The report and the one-liner, alternated `repeat` times; medians, ratio and peaks."""
    report_cmd = [sys.executable, "-m", "reports", str(prefix)]
    liner_cmd = [sys.executable, "-c", ONE_LINER, str(prefix) + SUFFIX]
    reports: list[Timing] = []
    liners: list[Timing] = []
    for i in range(repeat):
        for name, command, into in (("report", report_cmd, reports),
                                    ("one-liner", liner_cmd, liners)):
            t = measure(command)
            into.append(t)
            if show_output and i == 0:
                print(t.output.rstrip())
            print(f"  {label} run {i + 1} {name}: {t.wall:.2f} s wall, {t.cpu:.2f} s CPU, "
                  f"peak RSS {t.peak / 1024**3:.2f} GiB; load {os.getloadavg()[0]:.1f}")
    report = statistics.median(t.wall for t in reports)
    liner = statistics.median(t.wall for t in liners)
    ratio = report / liner
    peak = max(t.peak for t in reports)
    liner_peak = max(t.peak for t in liners)
    report_cpu = statistics.median(t.cpu for t in reports)
    liner_cpu = statistics.median(t.cpu for t in liners)
    print(f"{label}: full report {report:.2f} s (CPU {report_cpu:.2f} s), "
          f"peak {peak / 1024**3:.2f} GiB | one-liner {liner:.2f} s "
          f"(CPU {liner_cpu:.2f} s), peak "
          f"{liner_peak / 1024**3:.2f} GiB | ratio {ratio:.2f} (goal <= {TARGET_RATIO:.1f}, "
          f"moonshot {MOONSHOT_RATIO:.1f}; CPU time ratio {report_cpu / liner_cpu:.2f}); "
          f"load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    ok = ratio <= TARGET_RATIO and peak <= TARGET_BYTES
    print(f"{label}: " + ("within goals" if ok else "OVER GOAL")
          + (" (moonshot reached)" if ratio <= MOONSHOT_RATIO else ""))


def compact(source: Path, target: Path) -> None:
    """The recorder's file rewritten as a writer that need not flush every second would."""
    strings = [c for c in COLUMNS if arrow_schema().field(c).type == pa.string()]
    pq.write_table(pq.read_table(source), target, compression="zstd",
                   row_group_size=COMPACT_GROUP, use_dictionary=strings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--keep", type=Path, help="work in this directory and keep the files")
    parser.add_argument("--repeat", type=int, default=3, help="report runs to time (median)")
    parser.add_argument("--no-compacted", action="store_false", dest="compacted",
                        help="skip the compacted copy of the file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_report_") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        how = real_run(work / "real")
        real = Path(str(work / "real") + SUFFIX)
        real_rows = pq.ParquetFile(real).metadata.num_rows
        print(f"real run ({how}): {real_rows:,} rows")
        tiles, group = tile(real, Path(str(work / "big") + SUFFIX), args.rows)
        size = Path(str(work / "big") + SUFFIX).stat().st_size
        print(f"tiled x{tiles} to {args.rows:,} rows, row groups of {group:,}: "
              f"{size / 1e6:,.0f} MB of Parquet")
        side_by_side(work / "big", args.repeat, "recorder's format", show_output=True)
        if args.compacted:
            compact(Path(str(work / "big") + SUFFIX), Path(str(work / "compact") + SUFFIX))
            side_by_side(work / "compact", args.repeat,
                         f"compacted (row groups of {COMPACT_GROUP:,})")

if __name__ == "__main__":
    main()
