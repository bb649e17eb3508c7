"""Benchmark: the full report beside a user's one-liner, on a real run tiled to 10 M rows, and
the same report on a day's soak (86 M rows: 24 hours at 1,000 requests/s).

    .venv/bin/python scripts/bench_report.py [--rows 10000000] [--big-rows 86000000]
        [--sessions 100000] [--failures 0] [--repeat 3] [--rss-cap-gib 11] [--keep DIR]
        [--no-compacted]

1. A short real run: the emulator with 3 replicas and a headless Locust run of
   locustfiles/sticky.py (StickyUser) with `--csv`, which records PREFIX_requests.parquet
   (a small direct HTTP client stands in when locustfiles/sticky.py is missing).
2. That request file tiled to --rows rows, and to --big-rows rows, in the recorder's format
   (reports.columns, zstd, row groups of the recorder's 131,072 rows): tile k is the run
   shifted in time by k spans, its sessions renamed `<id>-<k mod M>` so that the run's
   sessions grow with the tiles up to --sessions (100,000: a day's soak of many users), each
   session's rows still in start order. Written a million rows at a time with pyarrow
   (`take` of the base run's rows, codes into one session dictionary): no Python loop per row.
   --failures PCT (default 0): that share of the tiled rows (a seeded draw per row, so spread
   evenly through the run and every session) is a failed request as the recorder writes one:
   three in four a 503 (Locust's HTTPError text), one in four a connection error (status 0,
   ConnectionRefusedError), with no container_id and no cache; the other columns (session,
   time, response time) those of the row it replaces. The failure path of the report (its
   successful requests apart from all requests) is then what is measured. Printed with the
   tiling, and in the labels of the figures.
3. Side by side, alternated, --repeat times each, every one in a fresh process, at --rows:
   - the full report, `python -m reports PREFIX` (every figure, CSV, HTML, summary.json);
   - the one-number answer a user would write by hand:
     `pd.read_parquet(f).groupby("session_id").container_id.nunique()`.
   Printed: both median wall times, their ratio (report / one-liner; goal <= 1.0, moonshot
   0.5), CPU time, and peak memory (ru_maxrss from wait4, in a small helper process), with the
   machine's load average: the figures are only as quiet as the machine.
4. The full report once at --big-rows: wall time, peak RSS (goal <= 4 GiB) and its time over
   the median at --rows (goal <= 10; linear in rows would be --big-rows / --rows). The helper
   stops a report whose RSS passes --rss-cap-gib (the machine is shared: better a report cut
   short than another's process killed by the kernel), and says so.
5. The same as 3 on a compacted copy (row groups of a million rows, dictionaries for the string
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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from locustfiles.requestwriter import ROW_GROUP_ROWS  # noqa: E402
from modal_app.local.launch import emulator, stop_process  # noqa: E402
from reports.columns import COLUMNS, SUFFIX, arrow_schema  # noqa: E402

TARGET_RATIO = 1.0
MOONSHOT_RATIO = 0.5
TARGET_BYTES = int(1.5 * 1024**3)  # at --rows
BIG_TARGET_BYTES = 4 * 1024**3  # at --big-rows
TARGET_TIME_RATIO = 10.0  # big / small wall time
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


BLOCK_ROWS = 8 * ROW_GROUP_ROWS  # rows written at a time


# What the recorder writes for a failed request of locustfiles' FastHttpUser: (status, error)
FAILURES: tuple[tuple[int, str], ...] = (
    (503, "HTTPError('503 Server Error: Service Unavailable for url: /')"),
    (503, "HTTPError('503 Server Error: Service Unavailable for url: /')"),
    (503, "HTTPError('503 Server Error: Service Unavailable for url: /')"),
    (0, "ConnectionRefusedError(111, 'Connection refused')"),
)
FAILURE_SEED = 20240601


@dataclass
class Tiled:
    tiles: int
    group: int  # rows per row group
    sessions: int
    failed: int  # rows written as failed requests


def tile(source: Path, target: Path, rows: int, sessions: int, failures: float = 0.0
         ) -> Tiled:
    """The source file repeated to `rows` rows, `failures` percent of them written as failed
    requests (see the module docstring)."""
    base = pq.read_table(source).select(list(COLUMNS)).combine_chunks()
    n = base.num_rows
    ts = base.column("ts").to_numpy()
    span = float(ts.max() - ts.min()) + 1.0
    ids = base.column("session_id").cast(pa.string()).combine_chunks()
    known = pc.unique(ids.drop_null())
    per_tile = max(1, len(known))
    cycle = max(1, math.ceil(sessions / per_tile))  # tile k's sessions: suffix k mod cycle
    tiles = math.ceil(rows / n)
    suffixes = min(cycle, tiles)
    # one dictionary of every session name the file will hold: `<id>-<m>` for m < suffixes
    names = pc.binary_join_element_wise(
        pa.array(np.tile(np.asarray(known.to_pylist(), dtype=object), suffixes), pa.string()),
        pa.array(np.repeat(np.arange(suffixes).astype(str), per_tile).astype(object),
                 pa.string()), "-")
    position = pc.index_in(ids, value_set=known)
    valid = np.asarray(pc.is_valid(position).to_numpy(zero_copy_only=False), dtype=np.bool_)
    code = np.asarray(position.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    schema = arrow_schema()
    errors = pa.array(sorted({text for _, text in FAILURES}), pa.string())
    failed = 0
    with pq.ParquetWriter(target, schema, compression="zstd",
                          use_dictionary=[f.name for f in schema
                                          if pa.types.is_string(f.type)]) as writer:
        for first in range(0, rows, BLOCK_ROWS):
            row = np.arange(first, min(rows, first + BLOCK_ROWS), dtype=np.int64)
            k, i = np.divmod(row, n)
            block = base.take(pa.array(i))
            block = block.set_column(0, "ts", pa.array(ts[i] + k * span))
            index = code[i] + (k % cycle) * per_tile
            session = pa.DictionaryArray.from_arrays(
                pa.array(index.astype(np.int32), mask=~valid[i]), names).cast(pa.string())
            block = block.set_column(COLUMNS.index("session_id"), "session_id", session)
            if failures:
                block = with_failures(block, first, failures, errors)
                failed += int(pc.sum(pc.is_valid(block.column("error"))).as_py() or 0)
            writer.write_table(block.cast(schema), row_group_size=ROW_GROUP_ROWS)
    return Tiled(tiles, ROW_GROUP_ROWS, suffixes * per_tile, failed)


def with_failures(block: pa.Table, first: int, percent: float, errors: pa.Array) -> pa.Table:
    """The block (its first row: `first`) with `percent` of its rows, drawn at random with a
    seed of their own (the same file for the same arguments), turned into failed requests of
    the kinds of FAILURES, in turn."""
    rng = np.random.default_rng([FAILURE_SEED, first])
    fail = rng.random(block.num_rows) < percent / 100
    which = np.cumsum(fail) % len(FAILURES)
    kinds = np.array([code for code, _ in FAILURES], dtype=np.int32)
    names = errors.to_pylist()
    texts = np.array([names.index(text) for _, text in FAILURES], dtype=np.int32)
    status = np.where(fail, kinds[which], np.asarray(block.column("status").to_numpy(),
                                                     dtype=np.int32))
    error = pa.DictionaryArray.from_arrays(pa.array(texts[which], mask=~fail), errors)
    mask = pa.array(fail)
    for name in ("container_id", "cache"):
        column = block.column(name)
        block = block.set_column(COLUMNS.index(name), name,
                                 pc.if_else(mask, pa.scalar(None, column.type), column))
    block = block.set_column(COLUMNS.index("status"), "status", pa.array(status, pa.int32()))
    return block.set_column(COLUMNS.index("error"), "error", error.cast(pa.string()))


# Runs a command and prints its wall time, CPU time and peak RSS. It runs in a small process of
# its own: a child's peak RSS (ru_maxrss) counts the memory of the process it was forked from,
# and this one holds a 10-million-row table. argv[1]: the RSS (bytes) past which the command is
# stopped (SIGKILL, by its id), polled every 50 ms; 0: no cap.
MEASURE = """
import json, os, signal, subprocess, sys, threading, time
cap = int(sys.argv[1])
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
capped = []
def watch():
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                rss = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
        except (OSError, StopIteration, ValueError):
            rss = 0
        if cap and rss > cap:
            capped.append(rss)
            os.kill(proc.pid, signal.SIGKILL)
            return
        time.sleep(0.05)
threading.Thread(target=watch, daemon=True).start()
output = proc.stdout.read()
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"wall": time.perf_counter() - start, "code": os.waitstatus_to_exitcode(status),
                  "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss * 1024,
                  "capped": bool(capped), "output": output}))
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
    capped: bool = False  # stopped at the RSS cap: wall and peak are lower bounds


def measure(command: list[str], cap: int = 0, timeout: float = 900) -> Timing:
    """The command in a fresh process: wall and CPU seconds, peak RSS bytes, output; stopped
    when its RSS passes `cap` bytes (0: never)."""
    done = subprocess.run([sys.executable, "-c", MEASURE, str(cap), *command], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=True)
    result = json.loads(done.stdout)
    if result["capped"]:
        return Timing(result["wall"], result["cpu"], result["rss"], result["output"], True)
    if result["code"] != 0:
        raise SystemExit(f"{' '.join(command[:3])} exited {result['code']}:\n"
                         f"{result['output'][-3000:]}")
    return Timing(result["wall"], result["cpu"], result["rss"], result["output"])


def side_by_side(prefix: Path, repeat: int, label: str, show_output: bool = False) -> float:
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
    return report


def big_run(prefix: Path, rows: int, small_rows: int, small_wall: float, cap: int,
            failed: str = "") -> None:
    """The full report once on the day's soak: wall time, peak RSS, time over the small run's."""
    print(f"  load average before: {os.getloadavg()[0]:.1f}")
    t = measure([sys.executable, "-m", "reports", str(prefix)], cap=cap, timeout=6 * 3600)
    ratio = t.wall / small_wall
    if t.capped:
        print(f"{rows:,} rows{failed}: the report was STOPPED at the RSS cap "
              f"({cap / 1024**3:.1f} GiB) after {t.wall:.1f} s wall ({t.cpu:.1f} s CPU): "
              f"peak RSS > {t.peak / 1024**3:.2f} GiB (goal <= "
              f"{BIG_TARGET_BYTES / 1024**3:.0f} GiB); no time ratio; load average "
              f"{os.getloadavg()[0]:.1f}")
        print(f"{rows:,} rows{failed}: OVER GOAL")
        return
    print(f"{rows:,} rows{failed}: full report {t.wall:.1f} s wall (CPU {t.cpu:.1f} s), "
          f"peak RSS {t.peak / 1024**3:.2f} GiB (goal <= {BIG_TARGET_BYTES / 1024**3:.0f} "
          f"GiB) | time over the {small_rows:,}-row report {ratio:.2f} (goal <= "
          f"{TARGET_TIME_RATIO:.0f}; rows ratio {rows / small_rows:.1f}) | "
          f"{rows / t.wall:,.0f} rows/s; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    ok = t.peak <= BIG_TARGET_BYTES and ratio <= TARGET_TIME_RATIO
    print(f"{rows:,} rows{failed}: " + ("within goals" if ok else "OVER GOAL"))


def compact(source: Path, target: Path) -> None:
    """The recorder's file rewritten as a writer that need not flush every second would."""
    strings = [c for c in COLUMNS if arrow_schema().field(c).type == pa.string()]
    pq.write_table(pq.read_table(source), target, compression="zstd",
                   row_group_size=COMPACT_GROUP, use_dictionary=strings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--big-rows", type=int, default=86_000_000,
                        help="the day's soak (0: skip it)")
    parser.add_argument("--sessions", type=int, default=100_000,
                        help="sessions the tiled runs grow to")
    parser.add_argument("--failures", type=float, default=0.0, metavar="PCT",
                        help="percent of the tiled rows written as failed requests (503s and "
                             "connection errors, spread through the run; default 0)")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep the files")
    parser.add_argument("--repeat", type=int, default=3, help="report runs to time (median)")
    parser.add_argument("--rss-cap-gib", type=float, default=11.0,
                        help="stop the big report past this RSS (the machine is shared)")
    parser.add_argument("--no-compacted", action="store_false", dest="compacted",
                        help="skip the compacted copy of the file")
    args = parser.parse_args()
    if not 0 <= args.failures <= 100:
        parser.error(f"--failures is a percentage from 0 to 100, not {args.failures}")
    print(f"load average at the start: {os.getloadavg()[0]:.1f}, {os.getloadavg()[1]:.1f}, "
          f"{os.getloadavg()[2]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench_report_") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        how = real_run(work / "real")
        real = Path(str(work / "real") + SUFFIX)
        real_rows = pq.ParquetFile(real).metadata.num_rows
        print(f"real run ({how}): {real_rows:,} rows")
        sizes = [("big", args.rows)] + ([("day", args.big_rows)] if args.big_rows else [])
        for name, rows in sizes:
            target = Path(str(work / name) + SUFFIX)
            start = time.perf_counter()
            tiled = tile(real, target, rows, args.sessions, args.failures)
            print(f"tiled x{tiled.tiles} to {rows:,} rows, {tiled.sessions:,} sessions, "
                  f"{tiled.failed:,} failed requests ({tiled.failed / rows * 100:.2f}%), row "
                  f"groups of {tiled.group:,}: {target.stat().st_size / 1e6:,.0f} MB of "
                  f"Parquet, written in {time.perf_counter() - start:.1f} s")
        failed = f", {args.failures:g}% failed" if args.failures else ""
        small = side_by_side(work / "big", args.repeat,
                             f"{args.rows:,} rows{failed}, recorder's format", show_output=True)
        if args.big_rows:
            big_run(work / "day", args.big_rows, args.rows, small,
                    int(args.rss_cap_gib * 1024**3), failed)
            Path(str(work / "day") + SUFFIX).unlink(missing_ok=True)
        if args.compacted:
            compact(Path(str(work / "big") + SUFFIX), Path(str(work / "compact") + SUFFIX))
            side_by_side(work / "compact", args.repeat,
                         f"compacted (row groups of {COMPACT_GROUP:,}){failed}")


if __name__ == "__main__":
    main()
