#!/usr/bin/env python3
"""The whole user's cost: StickyUser as shipped against a bare FastHttpUser, and the listener's.

The same load (50 users, each POSTing `{}` with its own Modal-Session-Id) runs at one target,
nginx answering every request with a replica's answer (`--target replica`: the whoami replica,
which costs about as much CPU per request as Locust and can hide part of the user's cost on a
2-core machine), alternated round by round in one run: `locustfiles/sticky.py StickyUser`
with `--csv` (every request parsed, counted per session and written to the request file) and
`locustfiles/plain.py` (PlainUser: the same requests, nothing recorded), both with `--csv`
so that Locust's own statistics CSVs weigh the same on both sides. StickyUser is the user as
shipped: its headers, body, context, answer parsing, recording and the affinity and conversation
options at their defaults. The order alternates (A B, B A, ...) so that a drift of the shared
machine's load weighs on both sides. It prints both rates, their ratio per round and the
median, the whole-user ratio (aim: 0.97 or more at 5,000 requests/s or more; 1.0 would be a
user class that costs nothing), and the load average before and after. On a shared machine the
rates swing with other processes, so each round also runs both sides for 1 s: the CPU per
request with the fixed costs apart (start-up, probe, the request file's end) is the difference
of CPU over the difference of requests, and its ratio is the whole-user CPU ratio, which other
processes change little.

The machine's rate comes first: the bare FastHttpUser's requests/s, and a fixed pure-Python
workload's rate, so that a slow machine (where Locust's own cost hides the recorder's) cannot
flatter the ratio: below 5,000 requests/s the ratio is printed as "not at full speed".

Then the recorder's parts, timed alone in this process on a synthetic answer (microseconds per
request): the whole listener as Locust calls it, and each part of it: the body parse (the memo
of exact parses, beside a full `json.loads` for comparison), the per-session counters, the row
(an append per column, beside a tuple per row and a dict per row), and the flush (rows to an
Arrow batch on disk, per row). Times are CPU time of this process, best of 5.

    .venv/bin/python scripts/bench_recorder.py [--rounds 9] [--seconds 6] [--users 50]
    .venv/bin/python scripts/bench_recorder.py --stream-tokens 16   # streaming users

With `--interleave SLOTS` both sides instead take turns (SIGSTOP/SIGCONT), one slot of
`--slot-seconds` at a time, each side one Locust process per block of `--block-slots` slots;
each side's requests and CPU count only its own slots (read by scripts/benchcount.py), so that
a slow spell of the shared machine weighs on both alike, and the fresh processes of each block
average over what differs from one process to the next. It prints both rates, their ratio,
the CPU ratio and the geometric mean of the blocks' ratios with its 95% interval. Each side
counts once its users are past their start (60 requests each: a StickyUser renews once within
its first 50), and StickyUser renews at most once per 5 s of its own sending
(`--reconnect-min-seconds 10` while it sends one slot in two), as a run of its own does.

With `--metrics` the StickyUser side also serves live Prometheus metrics (`--metrics-port`,
locustfiles/livemetrics.py), scraped once a second by this script as Prometheus would: the
ratio is then the recorder's and the metrics' cost together.

With `--bare lean` the bare user sends as StickyUser does (`locustfiles/plain.py --lean`: the
POST built once and sent through `client.request`, where the usual `client.post(...,
json=...)` dumps the JSON and merges the headers on every request): the ratio is then the
recorder's and the harness's cost alone, without the saving of StickyUser's leaner sending.

With `--side-by-side` each round also runs both at the same moment, each with its own 50 users
against the same replica, for the same seconds (and 1 s for the fixed costs): both then see
the same load of the shared machine, so their CPU per request and their rates compare under
equal conditions whatever other processes do; it prints both, and their ratios.

With `--reconnect-leg` each round also runs StickyUser with `--reconnect-every 0` (one
connection per user, as the bare user keeps): what the shipped default (a new connection after
50 requests and at most once every 5 s, which exposes a router that pins by connection) costs is
then the difference of the two StickyUser legs, printed as CPU per request and as a rate ratio.
The parts below also time that renewal alone in this process, against the same replica.

With `--stream-tokens N` both sides stream instead: each user POSTs `/generate` for N tokens
and reads the server-sent events (locustfiles/streaming.py), StickyUser recording
`ttft_ms`, tokens and gaps, PlainUser recording nothing. The replica then runs with no
prefill or token delay, so that the rate measures the client's cost, not the replica's sleeps.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import locust_command, replica, run_locust, run_locusts_together, stop_process
from routers_targets import find, free_port, on_free_ports, started

AIM = 0.97
FULL_SPEED_RPS = 5000
BODY = b'{"CONTAINER_ID":"ta-01KQ9XZ5EXAMPLE00000000000","cache":"hit"}'


@dataclass
class Measured:
    rps: float
    failures: int
    cpu_us: float  # the locust process's CPU time per request, microseconds
    requests: int = 0
    cpu_s: float = 0.0  # the locust process's CPU time, start-up and end included


def cpu_slope_us(long: Measured, short: Measured) -> float | None:
    """CPU per request with the fixed costs apart (start-up, probe, the file's end): the
    difference of two runs' CPU over the difference of their requests. CPU time, unlike a
    rate, is little changed by other processes on a shared machine."""
    extra = long.requests - short.requests
    return 1e6 * (long.cpu_s - short.cpu_s) / extra if extra > 0 else None


# One replica answers everything: a verdict cannot be reached there (Locust would exit 4, NOT
# JUDGED), and the benchmark asks for none; the recorder still records every request.
NO_VERDICT = ("--no-judgement",)


def measure(locustfile: str, url: str, users: int, seconds: int, *extra: str,
            user_class: str | None = None) -> Measured:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run_locust(locustfile, url, users, seconds, *extra, user_class=user_class)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measured(result.rps, result.failures, 1e6 * cpu / max(result.requests, 1),
                    result.requests, cpu)


def python_rate() -> float:
    """Millions of simple Python operations per second: the machine's speed, for the record."""
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i & 7
        best = max(best, 1.0 / (time.perf_counter() - start))
    return best


@contextlib.contextmanager
def scraping(on: bool, require: bool = True) -> Iterator[tuple[str, ...]]:
    """With `on`: Locust's metrics options, and a thread scraping them once a second (with
    `require`, a run never scraped is an error)."""
    if not on:
        yield ()
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = threading.Event()
    scrapes = [0]

    def scrape() -> None:
        while not done.wait(1.0):
            with contextlib.suppress(OSError), urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                answer.read()
                scrapes[0] += 1

    thread = threading.Thread(target=scrape, daemon=True)
    thread.start()
    try:
        yield "--metrics-port", str(port)
    finally:
        done.set()
        thread.join()
    if require and not scrapes[0]:
        raise RuntimeError(f"the metrics on port {port} were never scraped")


# ## The parts, in this process


class Answer:
    status_code = 200
    content = BODY


def per_call_us(fn: Callable[[int], Any], n: int) -> float:
    """Best of 5 of n calls, microseconds of this process's CPU per call (CPU time: other
    processes on a shared machine slow it less than they slow a wall clock)."""
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        fn(n)
        best = min(best, (time.process_time() - start) / n)
    return 1e6 * best


def reconnect_us(url: str, every: int = 50, n: int = 2000) -> tuple[float, float]:
    """A new connection every `every` requests, per request, as StickyUser renews it (the
    client's pool closed, the host's lookup kept by locustfiles/dnscache.py), and without the
    kept lookup: microseconds of this process's CPU per request, best of 3 rounds of `n`
    requests each way, one connection throughout the baseline."""
    import gevent
    from locust.contrib.fasthttp import FastHttpSession
    from locust.event import EventHook

    from locustfiles import dnscache

    hub_resolver = gevent.get_hub().resolver
    payload = "{}"
    headers = {"Modal-Session-Id": "bench", "Content-Type": "application/json",
               "Accept": "application/json"}

    def run(renew: int, cached: bool) -> float:
        hub = gevent.get_hub()
        hub.resolver = dnscache.CachingResolver(hub_resolver) if cached else hub_resolver
        session = FastHttpSession(url, EventHook(), None)
        try:
            session.post("/", data=payload, headers=headers)
            start = time.process_time()
            for i in range(1, n + 1):
                session.post("/", data=payload, headers=headers)
                if renew and i % renew == 0:
                    session.client.close()
            return 1e6 * (time.process_time() - start) / n
        finally:
            session.client.close()
            hub.resolver = hub_resolver

    kept = uncached = float("inf")
    for _ in range(3):
        base = run(0, True)
        kept = min(kept, run(1, True) - base)
        uncached = min(uncached, run(1, False) - base)
    return kept / every, uncached / every


def https_client_us(n: int = 20) -> tuple[float, float]:
    """The new client a renewal makes for an https host (no connection: that is the same
    either way), with the TLS context kept (locustfiles/tls.py, as StickyUser does) and made
    anew (Locust's default): microseconds of this process's CPU per renewal, best of 3."""
    from geventhttpclient.url import URL
    from locust.contrib.fasthttp import FastHttpSession, insecure_ssl_context_factory
    from locust.event import EventHook

    from locustfiles import tls

    url = "https://bench.invalid"
    best = {True: float("inf"), False: float("inf")}
    for _ in range(3):
        for kept in (True, False):
            factory = tls.kept_context(insecure_ssl_context_factory, True) if kept \
                else insecure_ssl_context_factory
            session = FastHttpSession(url, EventHook(), None, ssl_context_factory=factory)
            start = time.process_time()
            for _ in range(n):
                session.client.clientpool.get_client(URL(url + "/"))
                session.client.close()
            best[kept] = min(best[kept], 1e6 * (time.process_time() - start) / n)
    return best[True], best[False]


def parts_us(tmp: Path, n: int = 100_000, url: str | None = None) -> dict[str, float]:
    with unpatched():
        from locustfiles.batch import Batch
        from locustfiles.recorder import Bodies, Recorder, parse_body
        from locustfiles.requestwriter import RequestFileWriter
        from locustfiles.rowbuffer import BATCH_ROWS, RowBuffer
        from locustfiles.summary import Stickiness
    contexts = [{"session_id": f"{i:032x}", "user_class": "StickyUser", "affinity": "session"}
                for i in range(50)]
    answer = Answer()
    costs: dict[str, float] = {}

    recorder = Recorder()
    writer = recorder.open_file(str(tmp / "listener"))

    def listener(k: int) -> None:
        on_request = recorder.on_request
        for i in range(k):
            on_request(request_type="POST", name="/", response_time=3.0, response_length=60,
                       response=answer, context=contexts[i % 50], exception=None,
                       start_time=1e9, url="http://x/")

    costs["listener, whole (as Locust calls it, flushes included)"] = per_call_us(listener, n)
    from locustfiles.livemetrics import Counts

    recorder.metrics = Counts()
    costs["listener, whole, with live metrics (--metrics-port)"] = per_call_us(listener, n)
    recorder.metrics = None
    writer.close()

    bodies = Bodies()
    costs["body: memo of exact parses (kept)"] = per_call_us(
        lambda k: [bodies.parse(BODY) for _ in range(k)], n)
    costs["body: full json.loads (for comparison)"] = per_call_us(
        lambda k: [parse_body(BODY) for _ in range(k)], n)

    ids = [c["session_id"] for c in contexts]
    second = RowBuffer()  # a second's rows, counted as the recorder counts them: one batch
    for i in range(BATCH_ROWS):
        second.add((1e9 + i, 3.0 + i % 7, ids[i % 50], "StickyUser", "/", 200, "ta-1", "hit",
                    "session", None, None, None, None, None))
    stickiness, live = Stickiness(), Counts()

    def batches(count: Callable[[Batch], None]) -> Callable[[int], None]:
        def run(k: int) -> None:
            for _ in range(k // BATCH_ROWS):
                count(Batch(second.dense, second.notes))
        return run

    costs["per-session counters (a batch of a second's rows, per row)"] = per_call_us(
        batches(stickiness.add_batch), 20 * BATCH_ROWS)
    costs["live metrics (--metrics-port): counts (a batch, per row)"] = per_call_us(
        batches(live.observe_batch), 20 * BATCH_ROWS)
    from prometheus_client import generate_latest

    from locustfiles.livemetrics import LiveMetrics

    scraped = LiveMetrics()
    spread = RowBuffer()  # 2 classes, 4 containers, 2 cache states, spread latencies
    for i in range(20_000):
        spread.add((1e9, (i % 97) * 0.7, ids[i % 50], f"Class{i % 2}", "/", 200, f"ta-{i % 4}",
                    ("hit", "miss")[i % 3 == 0], "session", None, None, None, None, None))
    scraped.counts.observe_batch(Batch(spread.dense, spread.notes))
    costs["live metrics: a scrape (1/s), per request at 1,000 req/s"] = (
        per_call_us(lambda k: [generate_latest(scraped.registry) for _ in range(k)], 200)
        / 1000)

    buffer = RowBuffer()

    def columnar(k: int) -> None:
        buffer.clear()
        ts, rt, sid, cls, name, status, cid, cache, aff = buffer.appends
        for i in range(k):
            ts(i)
            rt(3.0)
            sid(ids[i % 50])
            cls("StickyUser")
            name("/")
            status(200)
            cid("ta-1")
            cache("hit")
            aff("session")

    costs["row: one append per column, no object per row (kept)"] = per_call_us(columnar, n)
    rows: list[tuple[Any, ...]] = []

    def tuple_rows(k: int) -> None:
        rows.clear()
        append = rows.append
        for i in range(k):  # a fresh tuple each time, as a listener would build
            append((i, 3.0, ids[i % 50], "StickyUser", "/", 200, "ta-1", "hit", "session", None,
                    None, None, None, None))
            if len(rows) == 6000:
                list(zip(*rows, strict=True))  # the transposition a flush then needs
                rows.clear()

    costs["row: a tuple per row, transposed at flush (for comparison)"] = per_call_us(
        tuple_rows, n)
    dicts: list[dict[str, Any]] = []

    def dict_rows(k: int) -> None:
        dicts.clear()
        for i in range(k):
            dicts.append({"ts": i, "response_time_ms": 3.0, "session_id": ids[i % 50],
                          "user_class": "StickyUser", "name": "/", "status": 200,
                          "container_id": "ta-1", "cache": "hit", "error": None,
                          "affinity": "session", "ttfb_ms": None, "ttft_ms": None,
                          "tokens": None, "max_gap_ms": None})
            if len(dicts) == 6000:
                dicts.clear()

    costs["row: a dict per row (for comparison)"] = per_call_us(dict_rows, n)

    flush_writer = RequestFileWriter(str(tmp / "flush"))
    batch = RowBuffer()
    for i in range(6000):
        batch.add((1e9 + i, 3.0, ids[i % 50], "StickyUser", "/", 200, f"ta-{i % 3}", "hit",
                   "session", None, None, None, None, None))
    dense, _notes = batch.take()

    def flush(k: int) -> None:
        for _ in range(k // len(dense[0])):
            flush_writer.extend(dense, [], "local")
            flush_writer.flush()

    costs["flush: rows to an Arrow batch on disk, per row"] = per_call_us(flush, 60_000)
    flush_writer.close()
    if url is not None:
        kept, uncached = reconnect_us(url)
        costs[RENEWAL] = kept
        costs["user: the same without the kept lookup (for comparison)"] = uncached
    kept_tls, new_tls = https_client_us()
    costs["user: with https, the new client of a renewal, TLS context kept (per renewal)"] = \
        kept_tls
    costs["user: the same, a new TLS context each time (for comparison; per renewal)"] = new_tls
    return costs


RENEWAL = "user: a new connection every 50 requests, per request (no floor in time)"


def side_by_side(url: str, args: argparse.Namespace, stream: tuple[str, ...], prefix: Path
                 ) -> tuple[float, float, float, float] | None:
    """Both sides at the same moment, `args.seconds` and then 1 s (the fixed costs): the rates
    and the CPU per request with the fixed costs apart (StickyUser, bare), printed; None when
    the short runs leave no difference of requests."""
    runs = []
    for seconds, name in ((args.seconds, "long"), (1, "short")):
        with scraping(args.metrics, require=name == "long") as live:
            sticky = locust_command("locustfiles/sticky.py", url, args.users, seconds, *stream,
                                    *live, *NO_VERDICT, "--csv", f"{prefix}{name}sticky",
                                    user_class="StickyUser")
            plain = locust_command("locustfiles/plain.py", url, args.users, seconds, *stream,
                                   *bare_options(args), "--csv", f"{prefix}{name}plain")
            runs.append(run_locusts_together([sticky, plain], seconds))
    (s_long, s_cpu), (p_long, p_cpu) = runs[0]
    (s_short, s_cpu0), (p_short, p_cpu0) = runs[1]
    if s_long.requests <= s_short.requests or p_long.requests <= p_short.requests:
        return None
    a = 1e6 * (s_cpu - s_cpu0) / (s_long.requests - s_short.requests)
    b = 1e6 * (p_cpu - p_cpu0) / (p_long.requests - p_short.requests)
    print(f"         side by side: StickyUser {s_long.rps:6.0f} req/s ({a:.1f} us CPU/req, "
          f"{s_long.failures} failures) | bare {p_long.rps:6.0f} req/s ({b:.1f} us CPU/req, "
          f"{p_long.failures} failures) | rate ratio {s_long.rps / p_long.rps:.3f}, CPU ratio "
          f"{b / a:.3f}", flush=True)
    return s_long.rps, p_long.rps, a, b


# ## The target: a fixed answer that costs far less than Locust


NGINX_ANSWER = """worker_processes 1;
pid {dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000000;
    keepalive_timeout 600s;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}
}}
"""


@contextlib.contextmanager
def target(kind: str, env: dict[str, str]) -> Iterator[str]:
    """The URL the load goes to. "nginx": Debian's nginx answering every request with a
    replica's answer (BODY), at a few percent of Locust's CPU per request, so that Locust alone
    is the bottleneck and its whole cost shows. "replica": the whoami replica (needed for
    streaming); it costs about as much CPU per request as Locust does, so on a 2-core machine
    it can be the bottleneck and hide part of the user's cost."""
    if kind == "replica":
        with replica(env=env) as url:
            yield url
        return
    binary = find("nginx")
    if binary is None:
        raise SystemExit("bench_recorder: nginx not found (apt-get install nginx), or give "
                         "--target replica")
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as tmp:
        def start() -> tuple[str, subprocess.Popen[bytes]]:
            port = free_port()
            conf = Path(tmp) / "nginx.conf"
            conf.write_text(NGINX_ANSWER.format(dir=tmp, port=port, body=BODY.decode()))
            url = f"http://127.0.0.1:{port}"
            return url, started([binary, "-p", tmp, "-c", str(conf), "-e",
                                 f"{tmp}/error.log", "-g", "daemon off;"],
                                Path(tmp) / "error.log", url, "nginx")

        url, proc = on_free_ports(start)
        try:
            yield url
        finally:
            stop_process(proc)


# ## Interleaved: both processes alive, each run in turn for a slot of a second


@dataclass
class Side:
    """One side's Locust process of a block, and what its slots measured."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int  # scripts/benchcount.py's
    metrics_port: int | None = None
    requests: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0

    def read(self) -> tuple[int, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=30) as answer:
            count, cpu = answer.read().split()
        return int(count), float(cpu)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else math.nan


def start_sides(url: str, args: argparse.Namespace, stream: tuple[str, ...], prefix: Path,
                run_s: int) -> list[Side]:
    """StickyUser's and the bare user's Locust processes, sending, then stopped (SIGSTOP)."""
    sides: list[Side] = []
    try:
        for name, locustfile, extra in (
                ("StickyUser", "locustfiles/sticky.py", ("StickyUser",)),
                ("bare", "locustfiles/plain.py", ())):
            sticky = name == "StickyUser"
            port, metrics = free_port(), free_port() if args.metrics and sticky else None
            options = [*stream, "--csv", f"{prefix}_{name}"]
            if sticky:
                options += [*NO_VERDICT, *(("--metrics-port", str(metrics)) if metrics else ()),
                            "--reconnect-min-seconds", f"{SIDES * renew_min_s():g}"]
            else:
                options += bare_options(args)
            cmd = locust_command(f"{locustfile},scripts/benchcount.py", url, args.users, run_s,
                                 *options)
            proc = subprocess.Popen([*cmd, *extra], cwd=Path(__file__).resolve().parent.parent,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env={**os.environ, "BENCH_COUNT_PORT": str(port)})
            sides.append(Side(name, proc, port, metrics))
        # until its users are past their start: each StickyUser renews its connection once
        # within its first K requests (a one-off that a run of minutes makes nothing of), and
        # both sides warm up alike
        warm = args.users * (shipped("DEFAULT_RECONNECT_EVERY") + 10)
        for side in sides:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(OSError, ValueError):
                    if side.read()[0] >= warm:
                        break
                if side.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the {side.name} Locust process did not start sending")
                time.sleep(0.2)
            os.kill(side.proc.pid, signal.SIGSTOP)
    except BaseException:
        stop_sides(sides)
        raise
    return sides


SIDES = 2  # the sides that take turns: each sends one slot in two


def bare_options(args: argparse.Namespace) -> tuple[str, ...]:
    """The bare user's: `--bare lean` sends the POST as StickyUser does (locustfiles/plain.py)."""
    return ("--lean",) if args.bare == "lean" else ()


def bare_name(args: argparse.Namespace) -> str:
    return "bare FastHttpUser" + (" (lean: the POST built once, sent through client.request)"
                                  if args.bare == "lean" else "")


def renew_min_s() -> float:
    """The shipped floor of StickyUser's renewals, in seconds of wall-clock time. A side that
    sends one slot in SIDES would, at that floor, renew SIDES times as often per request as in
    a run of its own (the floor runs on while it waits): the interleaved run gives it SIDES
    times the floor, so that it renews once per 5 s of its own sending, as a run does."""
    return float(shipped("RENEW_MIN_S"))


def shipped(name: str) -> Any:
    """A default of locustfiles/users.py."""
    with unpatched():
        from locustfiles import users
    return getattr(users, name)


@contextlib.contextmanager
def unpatched() -> Iterator[None]:
    """Imports of the harness that leave this process unpatched by gevent (importing Locust
    patches it, unless told not to)."""
    os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"
    try:
        yield
    finally:
        del os.environ["LOCUST_SKIP_MONKEY_PATCH"]


def stop_sides(sides: list[Side]) -> None:
    for side in sides:
        with contextlib.suppress(ProcessLookupError):
            os.kill(side.proc.pid, signal.SIGCONT)
        stop_process(side.proc)


def take_turns(sides: list[Side], slots: int, slot_s: float) -> None:
    """`slots` turns of `slot_s` each, in alternating order; each side counts its own."""
    for k in range(slots):
        for side in (sides if k % 2 == 0 else sides[::-1]):
            os.kill(side.proc.pid, signal.SIGCONT)
            (n0, c0), t0 = side.read(), time.monotonic()
            time.sleep(slot_s)
            if side.metrics_port is not None:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{side.metrics_port}/metrics", timeout=30) as a:
                    a.read()
            (n1, c1), t1 = side.read(), time.monotonic()
            os.kill(side.proc.pid, signal.SIGSTOP)
            side.requests += n1 - n0
            side.seconds += t1 - t0
            side.cpu_s += c1 - c0


def interleave(url: str, args: argparse.Namespace, stream: tuple[str, ...], tmp: Path
               ) -> dict[str, Any]:
    """StickyUser as shipped and the bare user take turns (SIGSTOP/SIGCONT), one slot of
    `--slot-seconds` at a time, each side one Locust process per block of `--block-slots`
    slots: a slow spell of the shared machine weighs on both sides alike, and fresh processes
    at each block average over what differs from one process to the next (memory layout,
    hash seeds: a few percent either way). Each side's rate and CPU per request count only
    its own slots (scripts/benchcount.py reads them at each end of a slot); with --metrics
    the StickyUser's metrics are scraped once in each of its slots. Prints, and returns, both
    rates, the ratio of the totals, the CPU ratio, and the geometric mean of the blocks'
    ratios with its 95% interval (Student's t over the blocks)."""
    blocks = max(1, math.ceil(args.interleave / args.block_slots))
    run_s = int(args.block_slots * 2 * (args.slot_seconds + 0.5)) + 120
    totals = {"StickyUser": [0, 0.0, 0.0], "bare": [0, 0.0, 0.0]}  # requests, s, CPU s
    ratios: list[float] = []
    for block in range(blocks):
        slots = min(args.block_slots, args.interleave - block * args.block_slots)
        sides = start_sides(url, args, stream, tmp / f"block{block}", run_s)
        try:
            take_turns(sides if block % 2 == 0 else sides[::-1], slots, args.slot_seconds)
        finally:
            stop_sides(sides)
        sticky, bare = sides
        if not (sticky.requests and bare.requests):
            raise RuntimeError(f"block {block + 1}: no requests measured on one side")
        ratios.append(sticky.rate / bare.rate)
        for side in sides:
            total = totals[side.name]
            total[0] += side.requests
            total[1] += side.seconds
            total[2] += side.cpu_s
        print(f"  block {block + 1}/{blocks}: {slots} slots each, StickyUser {sticky.rate:.0f} "
              f"req/s, bare {bare.rate:.0f} req/s, ratio {ratios[-1]:.3f}", flush=True)
    (s_n, s_t, s_cpu), (b_n, b_t, b_cpu) = totals["StickyUser"], totals["bare"]
    logs = [math.log(r) for r in ratios]
    mean = statistics.fmean(logs)
    half = t95(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs)) \
        if len(logs) > 1 else math.inf
    figures = {
        "sticky_rps": s_n / s_t, "bare_rps": b_n / b_t, "sticky_cpu_us": 1e6 * s_cpu / s_n,
        "bare_cpu_us": 1e6 * b_cpu / b_n, "ratio": (s_n / s_t) / (b_n / b_t),
        "geometric_mean": math.exp(mean), "low": math.exp(mean - half),
        "high": math.exp(mean + half), "blocks": ratios, "slots": args.interleave}
    what = "StickyUser as shipped" + (" + live metrics" if args.metrics else "") + (
        f" (a new connection at most once every {renew_min_s():g} s of its own sending: "
        f"--reconnect-min-seconds {SIDES * renew_min_s():g} while it sends one slot in "
        f"{SIDES})")
    print(f"interleaved ({args.interleave} slots of {args.slot_seconds:g} s each, taking turns, "
          f"fresh processes every {args.block_slots}): {what} {figures['sticky_rps']:.0f} req/s "
          f"({figures['sticky_cpu_us']:.1f} us CPU per request), {bare_name(args)} "
          f"{figures['bare_rps']:.0f} req/s ({figures['bare_cpu_us']:.1f} us): ratio "
          f"{figures['ratio']:.3f} (aim {AIM}); CPU ratio "
          f"{figures['bare_cpu_us'] / figures['sticky_cpu_us']:.3f}; geometric mean of the "
          f"{blocks} blocks' ratios {figures['geometric_mean']:.3f}, 95% interval "
          f"{figures['low']:.3f}-{figures['high']:.3f}")
    return figures


def t95(df: int) -> float:
    """Student's t, two-sided 95%, for `df` degrees of freedom (scipy is not a dependency:
    a table to 20, then the value at the low end of each wider range, never too narrow)."""
    table = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201,
             2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086)
    if df < 1:
        return math.inf
    if df <= len(table):
        return table[df - 1]
    return 2.086 if df <= 30 else 2.042 if df <= 60 else 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    # many short rounds: on a shared machine a round's ratio swings by 5-10% either way with
    # other processes, and the median of 9 rounds moves far less than that of 3 long ones
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--metrics", action="store_true",
                        help="StickyUser also serves live metrics, scraped every second")
    parser.add_argument("--bare", choices=("plain", "lean"), default="plain",
                        help="the bare user: as a locustfile usually sends (client.post with "
                             "json=, the default), or lean: the POST built once and sent "
                             "through client.request as StickyUser sends it, so that the ratio "
                             "is the recorder's and the harness's cost alone")
    parser.add_argument("--stream-tokens", type=int, default=0, metavar="N",
                        help="both sides stream POST /generate for N tokens (default 0: POST /)")
    parser.add_argument("--side-by-side", action="store_true",
                        help="each round also runs both sides at the same moment (equal load)")
    parser.add_argument("--target", choices=("nginx", "replica"), default=None,
                        help="what answers: nginx with a replica's fixed answer (default: "
                             "Locust alone is the bottleneck) or the whoami replica (the "
                             "default with --stream-tokens, which nginx cannot answer)")
    parser.add_argument("--interleave", type=int, default=0, metavar="SLOTS",
                        help="instead of rounds: both Locust processes alive, taking turns "
                             "(SIGSTOP/SIGCONT) for SLOTS slots each; the ratio of the turns")
    parser.add_argument("--block-slots", type=int, default=10,
                        help="with --interleave: fresh Locust processes every this many slots "
                             "(default 10): one process's speed differs from the next's")
    parser.add_argument("--slot-seconds", type=float, default=1.0,
                        help="a turn's length with --interleave (default 1). The users' "
                             "renewal floor is wall-clock time, which runs while a side "
                             "waits its turn: StickyUser gets twice the shipped floor, so "
                             "that it renews as often per request as in a run of its own")
    parser.add_argument("--reconnect-leg", action="store_true",
                        help="each round also runs StickyUser with --reconnect-every 0: what "
                             "the default renewal of connections costs")
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds < 2 or args.users < 1:
        parser.error("--rounds must be >= 1, --seconds >= 2 and --users >= 1")
    if args.interleave < 0 or args.block_slots < 1 or not 0.2 <= args.slot_seconds <= 60:
        parser.error("--interleave must be >= 0, --block-slots >= 1 and --slot-seconds in "
                     "0.2..60")
    kind = args.target or ("replica" if args.stream_tokens > 0 else "nginx")
    if kind == "nginx" and args.stream_tokens > 0:
        parser.error("--stream-tokens needs --target replica (nginx answers no stream)")
    recorded: list[Measured] = []
    bare: list[Measured] = []
    kept: list[Measured] = []  # StickyUser with --reconnect-every 0 (--reconnect-leg)
    paired: list[tuple[float, float, float, float]] = []  # side by side: rps, CPU us (S, bare)
    kept_slopes: list[float] = []
    slopes: list[tuple[float, float]] = []  # (StickyUser, bare) CPU us per request
    load_before = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, {python_rate():.1f} M simple Python ops/s, load "
          f"average {load_before[0]:.1f} (1 min), {load_before[1]:.1f} (5 min)", flush=True)
    stream = ("--stream-tokens", str(args.stream_tokens)) if args.stream_tokens > 0 else ()
    no_delays = {"WHOAMI_TOKEN_MS": "0", "WHOAMI_PREFILL_MS_PER_TOKEN": "0"}
    if stream:
        print(f"streaming: POST /generate for {args.stream_tokens} tokens, no replica delays")
    print(f"target: {kind}" + (" (a fixed answer: Locust is the bottleneck)" if kind == "nginx"
                               else " (it may be the bottleneck: then the ratio flatters)"))
    with target(kind, no_delays) as url, \
            tempfile.TemporaryDirectory(prefix="bench_recorder_") as tmp:
        if args.interleave:
            turns = interleave(url, args, stream, Path(tmp))
            if args.json:
                print(json.dumps({"interleaved": turns}))
            return
        for n in range(1, args.rounds + 1):
            def sticky_leg(n: int = n, *extra: str, seconds: int = args.seconds,
                           name: str = "round", require: bool = True) -> Measured:
                with scraping(args.metrics, require) as live:
                    return measure("locustfiles/sticky.py", url, args.users, seconds,
                                   *stream, *live, *NO_VERDICT, *extra,
                                   "--csv", str(Path(tmp) / f"{name}{n}"),
                                   user_class="StickyUser")

            # --csv on both sides: Locust's own stats CSVs cost the same on each, so the
            # difference is the user class's alone (PlainUser records no request file)
            def plain_leg(n: int = n) -> Measured:
                return measure("locustfiles/plain.py", url, args.users, args.seconds, *stream,
                               *bare_options(args), "--csv", str(Path(tmp) / f"plain{n}"))

            one_connection = ("--reconnect-every", "0")
            if n % 2:
                sticky, plain = sticky_leg(), plain_leg()
                kept_leg = sticky_leg(n, *one_connection, name="kept") \
                    if args.reconnect_leg else None
            else:
                kept_leg = sticky_leg(n, *one_connection, name="kept") \
                    if args.reconnect_leg else None
                plain, sticky = plain_leg(), sticky_leg()
            recorded.append(sticky)
            bare.append(plain)
            # a 1 s run of each: the fixed costs, to set apart from the per-request CPU
            short_sticky = sticky_leg(n, seconds=1, name="short", require=False)
            short_plain = measure("locustfiles/plain.py", url, args.users, 1, *stream,
                                  *bare_options(args), "--csv",
                                  str(Path(tmp) / f"shortplain{n}"))
            a, b = cpu_slope_us(sticky, short_sticky), cpu_slope_us(plain, short_plain)
            if a is not None and b is not None:
                slopes.append((a, b))
            what = "recorder + metrics" if args.metrics else "recorder"
            print(f"round {n}: StickyUser + {what} {sticky.rps:6.0f} req/s "
                  f"({sticky.cpu_us:.0f} us CPU/req, {sticky.failures} failures) | "
                  f"{bare_name(args)} {plain.rps:6.0f} req/s ({plain.cpu_us:.0f} us CPU/req, "
                  f"{plain.failures} failures) | ratio {sticky.rps / plain.rps:.3f}", flush=True)
            if kept_leg is not None:
                kept.append(kept_leg)
                short_kept = sticky_leg(n, *one_connection, seconds=1, name="shortkept",
                                        require=False)
                c = cpu_slope_us(kept_leg, short_kept)
                if c is not None:
                    kept_slopes.append(c)
                print(f"         StickyUser --reconnect-every 0 {kept_leg.rps:6.0f} req/s "
                      f"({kept_leg.cpu_us:.0f} us CPU/req, {kept_leg.failures} failures) | "
                      f"ratio to bare {kept_leg.rps / plain.rps:.3f}", flush=True)
            if args.side_by_side:
                figures = side_by_side(url, args, stream, Path(tmp) / f"pair{n}")
                if figures is not None:
                    paired.append(figures)
        parts = parts_us(Path(tmp), url=url if not stream else None)
    ratios = [s.rps / p.rps for s, p in zip(recorded, bare, strict=True)]
    bare_rps = statistics.median(p.rps for p in bare)
    bare_cpu = statistics.median(p.cpu_us for p in bare)
    ratio = statistics.median(ratios)
    speed = ("at full speed" if bare_rps >= FULL_SPEED_RPS else
             f"NOT at full speed (bare rate below {FULL_SPEED_RPS} req/s: the ratio flatters)")
    print(f"machine's rate: bare FastHttpUser {bare_rps:.0f} req/s, {bare_cpu:.0f} us of "
          f"Locust's CPU per request: {speed}")
    cpu_difference = statistics.median(
        s.cpu_us - p.cpu_us for s, p in zip(recorded, bare, strict=True))
    load_after = os.getloadavg()
    print(f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after (1 min); the "
          "machine is shared: a busy machine widens the rounds' spread")
    print(f"whole-user ratio (median): StickyUser as shipped "
          f"{statistics.median(s.rps for s in recorded):.0f} req/s, {bare_name(args)} "
          f"{bare_rps:.0f} req/s, ratio {ratio:.3f} (aim {AIM}); CPU per request "
          f"{statistics.median(s.cpu_us for s in recorded):.0f} vs {bare_cpu:.0f} us "
          f"(difference {cpu_difference:+.1f} us)")
    if slopes:
        a = statistics.median(s[0] for s in slopes)
        b = statistics.median(s[1] for s in slopes)
        print(f"whole-user CPU ratio (median, fixed costs apart): StickyUser {a:.1f} us per "
              f"request, bare {b:.1f} us: ratio {b / a:.3f} (aim {AIM}); rounds "
              + ", ".join(f"{y / x:.3f}" for x, y in slopes))
    if paired:
        print(f"side by side (both at once, equal load; median of {len(paired)} rounds): "
              f"StickyUser {statistics.median(p[0] for p in paired):.0f} req/s, "
              f"{statistics.median(p[2] for p in paired):.1f} us CPU per request, bare "
              f"{statistics.median(p[1] for p in paired):.0f} req/s, "
              f"{statistics.median(p[3] for p in paired):.1f} us: rate ratio "
              f"{statistics.median(p[0] / p[1] for p in paired):.3f}, CPU ratio "
              f"{statistics.median(p[3] / p[2] for p in paired):.3f} (aim {AIM}); rounds "
              + ", ".join(f"{p[3] / p[2]:.3f}" for p in paired))
    if kept:
        renewal = statistics.median(s.rps / k.rps for s, k in zip(recorded, kept, strict=True))
        line = (f"--reconnect-every 50 (the default) against 0: StickyUser "
                f"{statistics.median(s.rps for s in recorded):.0f} against "
                f"{statistics.median(k.rps for k in kept):.0f} req/s, rate ratio {renewal:.3f} "
                f"(median of rounds); StickyUser --reconnect-every 0 against bare: ratio "
                f"{statistics.median(k.rps / p.rps for k, p in zip(kept, bare, strict=True)):.3f}")
        if kept_slopes and slopes:
            line += (f"; CPU per request (fixed costs apart) "
                     f"{statistics.median(s[0] for s in slopes):.1f} against "
                     f"{statistics.median(kept_slopes):.1f} us")
        print(line)
    print("the recorder's parts, alone in this process (us per request):")
    for name, cost in parts.items():
        print(f"  {cost:6.2f}  {name}")
    listener = next(iter(parts.values()))
    print(f"the listener's own cost: {listener:.2f} us against {bare_cpu:.0f} us of Locust's own "
          f"CPU per request: ratio {bare_cpu / (bare_cpu + listener):.3f} at full CPU")
    metered = parts["listener, whole, with live metrics (--metrics-port)"]
    print(f"with live metrics: {metered:.2f} us against {bare_cpu:.0f} us: ratio "
          f"{bare_cpu / (bare_cpu + metered):.3f} at full CPU")
    if RENEWAL in parts:
        # users renew after 50 requests and at most once every renew_min_s(): at this rate per
        # user, after max(50, rate) requests
        per_user = bare_rps / args.users
        every = max(50.0, per_user * renew_min_s())
        renewal = parts[RENEWAL] * 50 / every
        print(f"a new connection after 50 requests and at most once every {renew_min_s():g} s: at "
              f"{per_user:.0f} req/s per user one every {every:.0f} requests, {renewal:.2f} us "
              f"per request against {bare_cpu:.0f} us: ratio "
              f"{bare_cpu / (bare_cpu + renewal):.3f} at full CPU (every 50 requests: "
              f"{parts[RENEWAL]:.2f} us, ratio {bare_cpu / (bare_cpu + parts[RENEWAL]):.3f})")
    if args.json:
        print(json.dumps({"ratio": ratio, "cpu_slopes_us": slopes,
                          "recorder_rps": [s.rps for s in recorded],
                          "bare_rps": [p.rps for p in bare], "parts_us": parts,
                          "kept_connection_rps": [k.rps for k in kept],
                          "kept_connection_cpu_slopes_us": kept_slopes,
                          "side_by_side": paired}))


if __name__ == "__main__":
    main()
