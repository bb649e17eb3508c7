#!/usr/bin/env python3
"""What the emulator's router costs: the same Locust load through it and straight at a replica.

The same FastHttpUser load (50 users, `locustfiles/plain.py`) runs through the emulator with 3
replicas and straight at one replica, alternated, in one run; prints requests/s of each and
their ratio (1.0 would be a proxy that costs nothing).

    .venv/bin/python scripts/bench_router.py [--rounds 3] [--seconds 10] [--users 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import emulator, replica, run_locust


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()
    ratios, routed, direct = [], [], []
    with emulator(3) as emu, replica() as one_url:
        for n in range(1, args.rounds + 1):
            via = run_locust("locustfiles/plain.py", emu.url, args.users, args.seconds)
            straight = run_locust("locustfiles/plain.py", one_url, args.users, args.seconds)
            routed.append(via.rps)
            direct.append(straight.rps)
            ratios.append(via.rps / straight.rps)
            print(f"round {n}: emulator (3 replicas) {via.rps:8.0f} req/s "
                  f"({via.failures} failures) | one replica direct {straight.rps:8.0f} req/s "
                  f"({straight.failures} failures) | ratio {ratios[-1]:.2f}", flush=True)
    print(f"median: emulator {statistics.median(routed):.0f} req/s, direct "
          f"{statistics.median(direct):.0f} req/s, ratio {statistics.median(ratios):.2f} "
          f"(floor 0.5, aim 0.7)")


if __name__ == "__main__":
    main()
