#!/usr/bin/env python3
"""A router shoot-out: the same sticky load and membership changes through each router.

Starts N whoami replicas (real uvicorn processes on ports the OS chose, each with its own
container id) and puts each router in front of them in turn: the emulator of Modal's proxy
(which runs its own replicas), HAProxy (`balance hdr(Modal-Session-Id)`, `hash-type
consistent`), nginx (`hash $http_modal_session_id consistent`), Caddy (`lb_policy header
Modal-Session-Id`) and nginx `random`, the non-sticky floor. Through each it runs the same
headless Locust run of locustfiles/sticky.py StickyUser, paced, with `--csv`: steady load,
then one replica added (a third of the way), then one killed with SIGKILL (two thirds of the
way), each change made through the router's own runtime interface and written to
PREFIX_events.jsonl in the emulator's format. Each run is then read with the report's library
and the routers are compared in one table (printed, and written as routers.html and
routers.csv in --out): session and settled stickiness, the share of sessions moved on +1 and
-1 against the least possible, collateral moves, load skew, errors at the kill, rate and
latency.

Exit 0 when every router that ran kept its promise (no collateral move and no flap for the
rendezvous and consistent-hash routers) and the random floor was seen not sticky; 1
otherwise; 2 on bad arguments. A router whose program is missing is skipped with the line
that installs it. See docs/routers.md.

    scripts/routers [--replicas 4] [--seconds 18] [--users 100] [--pace-rps 2]
                    [--routers emulator,haproxy,nginx,caddy,random] [--out results/routers]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import ROOT, Replica, Replicas, stop_process
from routers_table import Figures, html_page, read, text_table, write_csv
from routers_targets import (
    CADDY,
    EMULATOR,
    FLOOR,
    ROUTERS,
    Event,
    Router,
    Target,
    caddy_promise,
    emulator_target,
    external_target,
    find,
)

LOAD_STARTED = "Ramping to"  # Locust's log line when the users start


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/routers", description=__doc__.splitlines()[0])
    add = p.add_argument
    add("--replicas", type=int, default=4, help="replicas before the scale-up (default 4)")
    add("--seconds", type=int, default=18,
        help="load time per router (default 18): a replica is added at a third, one killed at "
             "two thirds")
    add("--users", type=int, default=100, help="Locust users, one session each (default 100)")
    add("--pace-rps", type=float, default=2.0,
        help="requests/s per user (default 2: the same offered load through every router)")
    add("--settle", type=float, default=2.0,
        help="seconds after a change before its sessions are judged (the report's --settle, "
             "default 2)")
    add("--routers", default=",".join(r.name for r in ROUTERS),
        help="which routers, in order (default: all of " + ", ".join(r.name for r in ROUTERS)
             + ")")
    add("--out", type=Path, default=ROOT / "results" / "routers",
        help="where the runs, routers.html and routers.csv go (default results/routers)")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.routers.split(",") if n.strip()]
    known = {r.name: r for r in ROUTERS}
    unknown = [n for n in names if n not in known]
    if unknown or not names or len(set(names)) != len(names):
        p.error(f"--routers takes distinct names among {', '.join(known)}")
    args.chosen = [known[n] for n in names]
    if not 1 <= args.replicas <= 32 or args.users < 1 or not args.pace_rps > 0:
        p.error("--replicas must be 1..32, --users >= 1 and --pace-rps > 0")
    if not 0 < args.settle <= 10 or args.seconds < 3 * args.settle + 3:
        p.error("--settle must be in (0, 10] and --seconds at least 3 x --settle + 3 (each "
                "third of the load needs settled time)")
    return args


# -- one leg: Locust through a router, membership changes on a timer ----------------------------


@contextlib.contextmanager
def locust(url: str, prefix: Path, args: argparse.Namespace
           ) -> Iterator[tuple[subprocess.Popen[str], threading.Event]]:
    """Headless Locust at `url`; yields it and an event set once its users started. Its output
    goes to PREFIX.log; it is stopped by its own id when the block ends early."""
    cmd = [sys.executable, "-m", "locust", "-f", "locustfiles/sticky.py", "StickyUser",
           "--headless", "-u", str(args.users), "-r", str(10 * args.users), "-t",
           f"{args.seconds}s", "--host", url, "--csv", str(prefix), "--pace-rps",
           f"{args.pace_rps:g}", "--max-multi-container-sessions", str(args.users),
           "--exit-code-on-error", "0", "--only-summary", "--loglevel", "INFO"]
    log = prefix.with_name(prefix.name + ".log")
    started = threading.Event()
    with log.open("a") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.PIPE, text=True)

    def pump() -> None:
        assert proc.stderr is not None
        with log.open("a") as err:
            for line in proc.stderr:
                err.write(line)
                if LOAD_STARTED in line:
                    started.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        yield proc, started
    finally:
        stop_process(proc)
        reader.join(5)


def sleep_until(deadline: float, proc: subprocess.Popen[str]) -> None:
    while (left := deadline - time.monotonic()) > 0:
        if proc.poll() is not None:
            raise RuntimeError(f"Locust ended early (exit {proc.returncode})")
        time.sleep(min(left, 0.05))


def drive(target: Target, prefix: Path, args: argparse.Namespace) -> None:
    """The scenario through `target`: load, +1 at a third, a kill at two thirds (later when
    the +1 took long to become live, so that it has settled first). Raises RuntimeError. The
    changes made are written to PREFIX_events.jsonl whatever happens (the emulator's run gets
    its own log from the harness)."""
    snapshot: Event = {"ts": round(time.time(), 6), "event": "snapshot", "live": target.live()}
    try:
        with locust(target.url, prefix, args) as (proc, started):
            deadline = time.monotonic() + 60
            while not started.wait(0.05):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Locust did not start its users (see {prefix}.log)")
            t0 = time.monotonic()
            sleep_until(t0 + args.seconds / 3, proc)
            target.add()
            kill_at = max(2 * args.seconds / 3, time.monotonic() - t0 + args.settle + 0.5)
            if kill_at + args.settle + 0.5 > args.seconds:
                raise RuntimeError(f"the added replica took {time.monotonic() - t0:.1f}s to "
                                   "join: no time left to judge a kill (give more --seconds)")
            sleep_until(t0 + kill_at, proc)
            target.kill()
            code = proc.wait(args.seconds + 120)
    finally:
        if not target.logs_itself:
            path = Path(f"{prefix}_events.jsonl")
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text("".join(json.dumps(e) + "\n" for e in (snapshot, *target.events)))
            tmp.replace(path)
    if code != 0:
        raise RuntimeError(f"Locust exited {code} (see {prefix}.log)")


def clear(out: Path, name: str) -> None:
    """Files of an earlier run of this router (only ours: PREFIX_* and PREFIX.log)."""
    for old in [*out.glob(f"{name}_*"), out / f"{name}.log"]:
        if old.is_file():
            old.unlink()


def run_leg(router: Router, binary: str | None, replicas: Replicas, live: list[Replica],
            args: argparse.Namespace) -> tuple[Figures, list[Replica]]:
    """One router's run and its figures; the replicas live after it (for the next router)."""
    out: Path = args.out
    prefix = out / router.name
    clear(out, router.name)
    try:
        if binary is None:
            with emulator_target(args.replicas) as emu:
                drive(emu, prefix, args)
        else:
            live = topped_up(replicas, live, args.replicas)
            spare = replicas.start(1)[0]
            live = [*live, spare]  # until the router says otherwise: what may serve next
            with external_target(router, binary, live[:-1], spare) as target:
                drive(target, prefix, args)
                live = list(target.members)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return Figures(router, str(prefix), problem=str(exc).strip().splitlines()[-1]), live
    return read(router, prefix, args.settle), live


def topped_up(replicas: Replicas, live: list[Replica], count: int) -> list[Replica]:
    """`count` running replicas: those of `live` still running (a failed leg may leave one
    killed, or its spare unused), and new ones for the missing."""
    running = [r for r in live if r.process.poll() is None][:count]
    return running + replicas.start(count - len(running)) if len(running) < count else running


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupted)  # stop what was started, as on Ctrl-C
    try:
        return shoot_out(args)
    except KeyboardInterrupt:
        print("routers: interrupted; every process it started was stopped", file=sys.stderr)
        return 130


def interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def shoot_out(args: argparse.Namespace) -> int:
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    legs: list[tuple[Router, str | None]] = []
    for router in args.chosen:
        binary = find(router.binary) if router.binary else None
        if router.binary and binary is None:
            print(f"routers: {router.name} skipped: no {router.binary} on this machine "
                  f"(Debian: {router.install})", flush=True)
            continue
        if router.name == CADDY.name and binary:
            router = caddy_promise(binary)
        legs.append((router, binary))
    rows: list[Figures] = []
    with Replicas() as replicas:
        live: list[Replica] = []
        for router, binary in legs:
            print(f"routers: {router.name}: {router.title} ...", flush=True)
            leg_started = time.monotonic()
            figures, live = run_leg(router, binary, replicas, live, args)
            rows.append(figures)
            print(f"routers: {router.name}: {figures.problem or 'measured'} "
                  f"({time.monotonic() - leg_started:.0f}s)", flush=True)
    scenario = (f"{args.replicas} replicas, {args.users} StickyUsers at {args.pace_rps:g} "
                f"req/s each, {args.seconds}s per router: +1 replica at a third, a SIGKILL "
                f"at two thirds; settle {args.settle:g}s")
    print(f"\nrouters: {scenario}\n{text_table(rows)}" if rows else "routers: no router ran")
    if rows:
        write_csv(rows, args.out / "routers.csv")
        html_page(rows, scenario, args.out / "routers.html")
        print(f"\n  {args.out / 'routers.html'}\n  {args.out / 'routers.csv'}")
    print(f"routers: done in {time.monotonic() - started:.0f}s")
    problems = [f"{f.router.name} was not measured ({f.problem})" if f.problem
                else f"{f.router.name} did not keep its promise" for f in rows if not f.kept]
    if not rows:
        problems.append("no router ran")
    if FLOOR in args.chosen and not any(f.router.name == FLOOR.name for f in rows):
        problems.append("the random floor did not run: the instrument was not checked")
    if EMULATOR in args.chosen and not any(f.router.name == EMULATOR.name for f in rows):
        problems.append("the emulator did not run")
    for problem in problems:
        print(f"routers: FAIL: {problem}", file=sys.stderr)
    if problems:
        return 1
    print("routers: PASS: every router kept its promise, and the floor was seen not sticky"
          if FLOOR in args.chosen else "routers: PASS: every router kept its promise")
    return 0


if __name__ == "__main__":
    sys.exit(main())
