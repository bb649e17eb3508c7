#!/usr/bin/env python3
"""What recording costs: StickyUser with the recorder on against a bare FastHttpUser.

The same load (50 users, each POSTing `{}` with its own Modal-Session-Id) runs straight at one
replica, alternated, in one run: `locustfiles/sticky.py StickyUser` with `--csv` (so every
request is parsed, counted per session and written to the Parquet request file) and
`locustfiles/plain.py` (PlainUser: the same requests, nothing recorded). Prints requests/s of
each and their ratio; 1.0 would be a recorder that costs nothing (aim: 0.97 or more).

On a shared 2-core machine requests/s swing by tens of percent from one run to the next, far
more than recording costs, so it also prints Locust's CPU time per request (user + sys of the
locust process, startup included) and the recorder's listener timed alone in this process on a
synthetic answer (file writes included); their quotient is the ratio recording allows.

    .venv/bin/python scripts/bench_recorder.py [--rounds 3] [--seconds 10] [--users 50]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import replica, run_locust

AIM = 0.97


@dataclass
class Measured:
    rps: float
    failures: int
    cpu_us: float  # the locust process's CPU time per request, microseconds


def measure(locustfile: str, url: str, users: int, seconds: int, *extra: str,
            user_class: str | None = None) -> Measured:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run_locust(locustfile, url, users, seconds, *extra, user_class=user_class)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measured(result.rps, result.failures, 1e6 * cpu / max(result.requests, 1))


class Answer:
    status_code = 200
    content = b'{"CONTAINER_ID":"ta-01KQ9XZ5EXAMPLE00000000000"}'


def listener_cost_us(tmp: Path, n: int = 100_000) -> float:
    """The recorder's request listener alone: best of 3, microseconds per request."""
    os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"  # no gevent patching of this process
    try:
        from locustfiles.recorder import Recorder, RequestFileWriter
    finally:
        del os.environ["LOCUST_SKIP_MONKEY_PATCH"]
    recorder = Recorder()
    recorder.writer = RequestFileWriter(tmp / "listener.parquet")
    sessions = [{"session_id": f"{i:032x}", "user_class": "StickyUser"} for i in range(50)]
    answer, best = Answer(), float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i in range(n):
            recorder.on_request(response_time=3.0, name="/", response=answer,
                                context=sessions[i % 50], exception=None, start_time=1e9)
        best = min(best, (time.perf_counter() - start) / n)
    recorder.writer.close()
    return 1e6 * best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()
    recorded: list[Measured] = []
    bare: list[Measured] = []
    with replica() as url, tempfile.TemporaryDirectory(prefix="bench_recorder_") as tmp:
        for n in range(1, args.rounds + 1):
            sticky = measure("locustfiles/sticky.py", url, args.users, args.seconds,
                             "--csv", str(Path(tmp) / f"round{n}"), user_class="StickyUser")
            plain = measure("locustfiles/plain.py", url, args.users, args.seconds)
            recorded.append(sticky)
            bare.append(plain)
            print(f"round {n}: StickyUser + recorder {sticky.rps:6.0f} req/s "
                  f"({sticky.cpu_us:.0f} us CPU/req, {sticky.failures} failures) | "
                  f"bare FastHttpUser {plain.rps:6.0f} req/s ({plain.cpu_us:.0f} us CPU/req, "
                  f"{plain.failures} failures) | ratio {sticky.rps / plain.rps:.3f}", flush=True)
        listener = listener_cost_us(Path(tmp))
    ratios = [s.rps / p.rps for s, p in zip(recorded, bare, strict=True)]
    cpu = [s.cpu_us - p.cpu_us for s, p in zip(recorded, bare, strict=True)]
    bare_cpu = statistics.median(p.cpu_us for p in bare)
    print(f"median: recorder {statistics.median(s.rps for s in recorded):.0f} req/s, bare "
          f"{statistics.median(p.rps for p in bare):.0f} req/s, ratio "
          f"{statistics.median(ratios):.3f} (aim {AIM}); CPU per request "
          f"{statistics.median(s.cpu_us for s in recorded):.0f} vs {bare_cpu:.0f} us "
          f"(difference {statistics.median(cpu):+.1f} us)")
    print(f"listener alone: {listener:.2f} us per request against {bare_cpu:.0f} us of Locust's "
          f"own CPU: ratio {bare_cpu / (bare_cpu + listener):.3f} at full CPU")


if __name__ == "__main__":
    main()
