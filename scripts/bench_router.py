#!/usr/bin/env python3
"""What the emulator's router costs, beside HAProxy, over 3, 8 and 16 replicas.

For each replica count N, the same Locust load (`locustfiles/plain.py`: FastHttpUsers, each
with its own Modal-Session-Id) runs, alternated, in one run:
- through the emulator with N replicas;
- through HAProxy over the very same N replica processes (`balance hdr(Modal-Session-Id)`,
  `hash-type consistent`), when `haproxy` is installed (Debian: `apt-get install haproxy`);
- straight at one replica started as the emulator starts them.
It prints requests/s of each leg and the ratios emulator/direct, HAProxy/direct and
emulator/HAProxy (aim: 0.9 or better), then the curve over N (aim: flat).

    .venv/bin/python scripts/bench_router.py [--rounds 3] [--seconds 10] [--users 50]
                                             [--replicas 3,8,16] [--haproxy-threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import emulator, replica, run_locust

LOCUSTFILE = "locustfiles/plain.py"


def haproxy_config(fd: int, ports: list[int], threads: int) -> str:
    servers = "\n".join(f"    server r{i} 127.0.0.1:{port}" for i, port in enumerate(ports))
    return f"""global
    maxconn 20000
    nbthread {threads}
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend bench
    bind fd@{fd}
    default_backend replicas
backend replicas
    balance hdr(Modal-Session-Id)
    hash-type consistent
{servers}
"""


@contextlib.contextmanager
def haproxy(binary: str, ports: list[int], threads: int) -> Iterator[str]:
    """HAProxy in the foreground on a socket the OS bound; stopped by its own id."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "haproxy.cfg"
        config.write_text(haproxy_config(sock.fileno(), ports, threads))
        proc = subprocess.Popen([binary, "-db", "-f", str(config)], pass_fds=(sock.fileno(),),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        sock.close()
        try:
            url = f"http://127.0.0.1:{port}"
            wait_answers(url, proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_answers(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        request = urllib.request.Request(url + "/", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"haproxy did not answer: {err[-500:]}")
        time.sleep(0.1)


def replica_ports(url: str) -> list[int]:
    with urllib.request.urlopen(url + "/_emulator/replicas", timeout=10) as answer:
        return [row["port"] for row in json.load(answer) if row["state"] == "live"]


@dataclass
class Point:
    replicas: int
    rates: dict[str, list[float]] = field(default_factory=dict)

    def add(self, leg: str, rps: float) -> None:
        self.rates.setdefault(leg, []).append(rps)

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
        if binary:
            legs["haproxy"] = stack.enter_context(
                haproxy(binary, replica_ports(emu.url), args.haproxy_threads))
        names = list(legs)
        for r in range(args.rounds):
            order = names[r % len(names):] + names[: r % len(names)]  # rotate who goes first
            line = []
            for leg in order:
                result = run_locust(LOCUSTFILE, legs[leg], args.users, args.seconds)
                point.add(leg, result.rps)
                line.append(f"{leg} {result.rps:7.0f} req/s ({result.failures} failures)")
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
