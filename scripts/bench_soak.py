#!/usr/bin/env python3
"""A soak stays flat: Locust's memory over a long run with the recorder and live metrics on.

StickyUser (every request parsed, counted per session and written to the request file, and
counted for the live metrics, scraped every 15 s by this script as Prometheus would) runs
unpaced, as fast as this machine goes, straight at one replica (or through the emulator with
`--replicas N`). The Locust process's resident memory (RSS, psutil) is sampled every few
seconds; after the warm-up its least-squares slope is printed in MB per minute, with the rate.
Per-session state (a fixed number of users) is paid once, in the warm-up: what must not grow
is memory per request. Aim: under 1 MB a minute.

    .venv/bin/python scripts/bench_soak.py [--minutes 10] [--users 50] [--replicas 0]

The request file grows on disk, not in memory. The end of the run (the file compacted to
Parquet) is outside the sampled window: only the load is sampled.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import ROOT, emulator, replica, stop_process

AIM_MB_PER_MIN = 1.0
SCRAPE_S = 15.0


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


@contextlib.contextmanager
def target(replicas: int) -> Iterator[str]:
    if replicas > 0:
        with emulator(replicas) as emu:
            yield emu.url
    else:
        with replica() as url:
            yield url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="load time (default 10)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="minutes left out of the slope (default 1)")
    parser.add_argument("--users", type=int, default=50, help="users (default 50)")
    parser.add_argument("--replicas", type=int, default=0,
                        help="through the emulator with N replicas (default 0: straight at "
                             "one replica)")
    parser.add_argument("--interval", type=float, default=5.0,
                        help="seconds between RSS samples (default 5)")
    args = parser.parse_args()
    if args.minutes <= args.warmup or args.interval <= 0 or args.users < 1:
        parser.error("--minutes must exceed --warmup; --interval and --users must be positive")
    seconds = round(args.minutes * 60)
    port = free_port()
    where = f"emulator with {args.replicas} replicas" if args.replicas else "one replica"
    print(f"soak: {args.minutes:g} min, {args.users} users unpaced, StickyUser with the "
          f"recorder (--csv) and live metrics (scraped every {SCRAPE_S:g} s), "
          f"{where}; "
          f"load average at start {os.getloadavg()[0]:.1f}", flush=True)
    samples: list[tuple[float, float]] = []
    scrapes = 0
    with target(args.replicas) as url, tempfile.TemporaryDirectory(prefix="soak_") as tmp:
        cmd = [sys.executable, "-m", "locust", "-f", "locustfiles/sticky.py", "StickyUser",
               "--headless", "-u", str(args.users), "-r", str(args.users), "-t", f"{seconds}s",
               "--host", url, "--csv", str(Path(tmp) / "soak"), "--json", "--only-summary",
               "--exit-code-on-error", "0", "--loglevel", "WARNING",
               "--metrics-port", str(port)]
        if args.replicas <= 1:  # one container cannot falsify stickiness: no verdict asked
            cmd.append("--no-judgement")
        out = Path(tmp) / "stdout"
        err = Path(tmp) / "stderr"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=stdout, stderr=stderr)
        try:
            process = psutil.Process(proc.pid)
            start = time.monotonic()
            next_scrape = start + SCRAPE_S
            next_report = 60.0
            while proc.poll() is None:
                now = time.monotonic()
                elapsed = now - start
                if elapsed > seconds:  # the load is over: the end (compaction) is not sampled
                    break
                with contextlib.suppress(psutil.Error):
                    samples.append((elapsed / 60, process.memory_info().rss / 2**20))
                if now >= next_scrape:
                    with contextlib.suppress(OSError), urllib.request.urlopen(
                            f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                        answer.read()
                        scrapes += 1
                    next_scrape += SCRAPE_S
                if samples and elapsed >= next_report:
                    print(f"  {elapsed / 60:4.1f} min: RSS {samples[-1][1]:.1f} MB", flush=True)
                    next_report += 60
                time.sleep(args.interval)
            code = proc.wait(timeout=600)
        finally:
            stop_process(proc)
        if code != 0:
            sys.exit(f"soak: locust exited {code}: {err.read_text()[-2000:]}")
        stats = json.loads(out.read_text())
    requests = sum(s["num_requests"] for s in stats)
    span = (max(s["last_request_timestamp"] for s in stats)
            - min(s["start_time"] for s in stats))
    steady = [p for p in samples if p[0] >= args.warmup]
    if len(steady) < 3:
        sys.exit("soak: too few samples after the warm-up to fit a slope")
    mb_per_min = slope(steady)
    verdict = "flat" if mb_per_min < AIM_MB_PER_MIN else "GROWS"
    print(f"rate: {requests / span:.0f} req/s ({requests} requests in {span:.0f} s), "
          f"{scrapes} scrapes of the metrics; load average at end {os.getloadavg()[0]:.1f}")
    print(f"RSS: {steady[0][1]:.1f} MB after the {args.warmup:g}-min warm-up, "
          f"{steady[-1][1]:.1f} MB at {steady[-1][0]:.1f} min, peak "
          f"{max(y for _, y in samples):.1f} MB ({len(samples)} samples)")
    print(f"slope: {mb_per_min:+.3f} MB/min after the warm-up (aim < {AIM_MB_PER_MIN:g}): "
          f"{verdict}; {mb_per_min * 2**20 / 60 / (requests / span):+.3f} bytes per "
          "request")
    late = [p for p in samples if p[0] >= args.minutes / 2]
    if len(late) >= 3:  # growth that goes on, or a warm-up that ended late
        print(f"slope over the second half alone: {slope(late):+.3f} MB/min")


if __name__ == "__main__":
    main()
