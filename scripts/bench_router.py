#!/usr/bin/env python3
"""What the emulator's router costs, beside HAProxy, over 3, 8 and 16 replicas.

For each replica count N, the same Locust load (`locustfiles/plain.py`: FastHttpUsers, each
with its own Modal-Session-Id) runs, alternated, in one run:
- through the emulator with N replicas;
- through HAProxy over the very same N replica processes (`balance hdr(Modal-Session-Id)`,
  `hash-type consistent`), when `haproxy` is installed (Debian: `apt-get install haproxy`);
- straight at one replica started as the emulator starts them.
It prints requests/s of each leg and the ratios emulator/direct, HAProxy/direct and
emulator/HAProxy (aim: 0.9 or better), then the curve over N (aim: flat), and the CPU time
each proxy process spent per request (the router alone, not its replicas), a figure a busy
machine disturbs less than the rates.

    .venv/bin/python scripts/bench_router.py [--rounds 3] [--seconds 10] [--users 50]
                                             [--replicas 3,8,16] [--haproxy-threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import emulator, haproxy, replica, run_locust

LOCUSTFILE = "locustfiles/plain.py"


def replica_ports(url: str) -> list[int]:
    with urllib.request.urlopen(url + "/_emulator/replicas", timeout=10) as answer:
        return [row["port"] for row in json.load(answer) if row["state"] == "live"]


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


@dataclass
class Point:
    replicas: int
    rates: dict[str, list[float]] = field(default_factory=dict)
    cpu_us: dict[str, list[float]] = field(default_factory=dict)

    def add(self, leg: str, rps: float) -> None:
        self.rates.setdefault(leg, []).append(rps)

    def add_cpu(self, leg: str, us_per_request: float) -> None:
        self.cpu_us.setdefault(leg, []).append(us_per_request)

    def cpu(self, leg: str) -> float | None:
        values = self.cpu_us.get(leg)
        return statistics.median(values) if values else None

    def median(self, leg: str) -> float | None:
        values = self.rates.get(leg)
        return statistics.median(values) if values else None

    def ratio(self, a: str, b: str) -> float | None:
        """Median of the per-round ratios a/b (legs of one round ran side by side)."""
        pairs = list(zip(self.rates.get(a, []), self.rates.get(b, []), strict=False))
        return statistics.median(x / y for x, y in pairs) if pairs else None


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def measure(n: int, args: argparse.Namespace, binary: str | None) -> Point:
    point = Point(n)
    with contextlib.ExitStack() as stack:
        emu = stack.enter_context(emulator(n))
        direct = stack.enter_context(replica())
        legs = {"emulator": emu.url, "direct": direct}
        proxies: dict[str, int | None] = {"emulator": emu.process.pid, "direct": None}
        if binary:
            legs["haproxy"], proxies["haproxy"] = stack.enter_context(
                haproxy(binary, replica_ports(emu.url), args.haproxy_threads))
        names = list(legs)
        for r in range(args.rounds):
            order = names[r % len(names):] + names[: r % len(names)]  # rotate who goes first
            line = []
            for leg in order:
                before = cpu_seconds(proxies[leg])
                result = run_locust(LOCUSTFILE, legs[leg], args.users, args.seconds)
                point.add(leg, result.rps)
                note = ""
                if proxies[leg] is not None and result.requests:
                    used = (cpu_seconds(proxies[leg]) - before) / result.requests * 1e6
                    point.add_cpu(leg, used)
                    note = f", proxy CPU {used:.0f} us/req"
                line.append(f"{leg} {result.rps:7.0f} req/s ({result.failures} failures{note})")
            print(f"  {n:2d} replicas, round {r + 1}: " + " | ".join(line), flush=True)
    return point


def report(points: list[Point], haproxy_present: bool) -> None:
    print("\nreplicas | emulator req/s | haproxy req/s | direct req/s | emulator/direct | "
          "haproxy/direct | emulator/haproxy")
    for p in points:
        print(f"{p.replicas:8d} | {fmt(p.median('emulator'), '14.0f')} | "
              f"{fmt(p.median('haproxy'), '13.0f')} | {fmt(p.median('direct'), '12.0f')} | "
              f"{fmt(p.ratio('emulator', 'direct')):>15} | "
              f"{fmt(p.ratio('haproxy', 'direct')):>14} | "
              f"{fmt(p.ratio('emulator', 'haproxy')):>16}")
    print("proxy CPU per request (us; less sensitive to a busy machine than the rates): "
          + ", ".join(f"{p.replicas} replicas: emulator {fmt(p.cpu('emulator'), '.0f')}, "
                      f"haproxy {fmt(p.cpu('haproxy'), '.0f')}" for p in points))
    first, last = points[0], points[-1]
    a, b = first.ratio("emulator", "direct"), last.ratio("emulator", "direct")
    if a and b and len(points) > 1:
        print(f"curve: emulator/direct at {last.replicas} replicas is {b / a:.2f} x the ratio "
              f"at {first.replicas} (aim 0.9 or better: flat)")
    if haproxy_present:
        worst = min((p.ratio("emulator", "haproxy") or 0.0) for p in points)
        print(f"emulator/haproxy, worst over the curve: {worst:.2f} (aim 0.9 or better)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--replicas", default="3,8,16",
                        help="comma-separated replica counts (default 3,8,16)")
    parser.add_argument("--haproxy-threads", type=int, default=1,
                        help="HAProxy's nbthread (default 1: one event loop, as the emulator)")
    args = parser.parse_args()
    try:
        counts = [int(x) for x in args.replicas.split(",")]
    except ValueError:
        parser.error("--replicas must be comma-separated integers, e.g. 3,8,16")
    if args.rounds < 1 or args.seconds < 1 or args.users < 1 or not all(
            1 <= n <= 64 for n in counts):
        parser.error("--rounds, --seconds and --users must be positive; replicas 1..64")
    binary = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    if binary is None:
        print("haproxy not found (Debian: apt-get install haproxy): the HAProxy leg is skipped")
    points = []
    for n in counts:
        points.append(measure(n, args, binary))
    report(points, binary is not None)


if __name__ == "__main__":
    main()
