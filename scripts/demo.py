#!/usr/bin/env python3
"""The main job in one command: is routing sticky, and what does stickiness buy?

Starts the local emulator of Modal's proxy (3 replicas, each with a simulated KV cache), runs
Locust headless twice against it (StickyUser, then NonStickyUser: the control), builds both
stickiness reports and their comparison, prints the headline numbers and where the reports
are, and exits non-zero when the sticky run was not sticky.

    scripts/demo                       # sets itself up, then runs this
    scripts/demo --seconds 20 --users 60 --out results/demo
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modal_app.local.launch import emulator  # noqa: E402

RUNS = (("sticky", "StickyUser"), ("nonsticky", "NonStickyUser"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=15, help="length of each run (default 15)")
    p.add_argument("--users", type=int, default=30, help="Locust users per run (default 30)")
    p.add_argument("--replicas", type=int, default=3, help="emulated replicas (default 3)")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "demo",
                   help="where the runs and reports go (default results/demo)")
    p.add_argument("--cache-miss-ms", type=float, default=20.0,
                   help="simulated prefill on a KV-cache miss, ms (default 20)")
    p.add_argument("--cache-hit-ms", type=float, default=2.0,
                   help="a KV-cache hit, ms (default 2)")
    args = p.parse_args(argv)
    if args.seconds < 2 or args.users < 1 or not 1 <= args.replicas <= 64:
        p.error("--seconds must be >= 2, --users >= 1 and --replicas 1..64")
    return args


def cache_capacity(users: int, replicas: int) -> int:
    """Room for each replica's share of the sessions when routing is sticky, with 50% to
    spare for an uneven hash: without stickiness every replica would need room for all."""
    return max(1, math.ceil(1.5 * users / replicas))


def run_locust(url: str, user_class: str, prefix: Path, args: argparse.Namespace) -> int:
    cmd = [sys.executable, "-m", "locust", "-f", "locustfiles/sticky.py", user_class,
           "--headless", "-u", str(args.users), "-r", str(args.users), "-t", f"{args.seconds}s",
           "--host", url, "--csv", str(prefix), "--cache-key", "--only-summary",
           "--loglevel", "WARNING"]
    log = prefix.with_suffix(".log")
    with log.open("w") as out:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                              timeout=args.seconds + 120, check=False)
    return proc.returncode


def run_report(*prefixes: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reports", *map(str, prefixes)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f} ms"


def headline(name: str, s: dict[str, Any]) -> str:
    cache = s.get("cache") or {}
    lat = s["latency"]["all"]
    return (f"  {name:<10} sessions {s['sessions']:>4}, on 2+ containers "
            f"{s['sessions_multi_container']}/{s['sessions_multi_request']}, stickiness "
            f"{pct(s['session_stickiness'])}, requests {s['requests']}, errors "
            f"{pct(s['error_rate'])}, cache hits {pct(cache.get('hit_rate'))}, latency p50 "
            f"{ms(lat['p50_ms'])} p95 {ms(lat['p95_ms'])}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    capacity = cache_capacity(args.users, args.replicas)
    started = time.monotonic()
    print(f"demo: emulator with {args.replicas} replicas, each caching {capacity} "
          f"conversations (miss {args.cache_miss_ms:g} ms, hit {args.cache_hit_ms:g} ms); "
          f"{args.users} users for {args.seconds}s per run", flush=True)
    codes: dict[str, int] = {}
    with emulator(args.replicas, "--cache-sessions", str(capacity), "--cache-miss-ms",
                  str(args.cache_miss_ms), "--cache-hit-ms", str(args.cache_hit_ms)) as emu:
        for name, user_class in RUNS:
            print(f"demo: {user_class} run against {emu.url} ...", flush=True)
            codes[name] = run_locust(emu.url, user_class, out / name, args)
    summaries = {}
    for name, _ in RUNS:
        done = run_report(out / name)
        if done.returncode == 2:
            print(f"demo: the {name} report failed: {done.stderr.strip()}", file=sys.stderr)
            return 2
        summaries[name] = json.loads((out / f"{name}_summary.json").read_text())
    compared = run_report(out / "sticky", out / "nonsticky")
    print(f"\ndemo: done in {time.monotonic() - started:.0f}s")
    for name, _ in RUNS:
        print(headline(name, summaries[name]))
    sticky, control = summaries["sticky"], summaries["nonsticky"]
    p50 = (sticky["latency"]["all"]["p50_ms"], control["latency"]["all"]["p50_ms"])
    if None not in p50 and p50[1]:
        print(f"  stickiness buys: median latency {ms(p50[0])} instead of {ms(p50[1])} "
              f"({100 * (1 - p50[0] / p50[1]):.0f}% less), cache hit rate "
              f"{pct((sticky.get('cache') or {}).get('hit_rate'))} instead of "
              f"{pct((control.get('cache') or {}).get('hit_rate'))}")
    print("\nreports:")
    for name, _ in RUNS:
        print(f"  {out / f'{name}_report.html'}  (+ _summary.json, _sessions.csv, "
              f"_requests.parquet, Locust's _stats.csv)")
    for line in compared.stdout.splitlines():
        if ".html" in line or ".csv" in line:
            print(f"  {line.strip()}")
    not_sticky = sticky["sessions_multi_container"] > 0 or codes["sticky"] != 0
    if not_sticky:
        print(f"demo: FAIL: the sticky run was not sticky (Locust exit {codes['sticky']}, "
              f"{sticky['sessions_multi_container']} sessions on 2+ containers; see "
              f"{out / 'sticky.log'})", file=sys.stderr)
        return 1
    print("demo: PASS: every sticky session stayed on one container")
    return 0


if __name__ == "__main__":
    sys.exit(main())
