#!/usr/bin/env python3
"""The main job in one command: is routing sticky, and what does stickiness buy?

Starts the local emulator of Modal's proxy (4 replicas, each with a simulated KV cache with
room for 1.75 times its share of the sessions when routing is sticky, not for all of them),
then runs Locust headless four times against it, each leg paced at the same offered load,
well below what the replicas can serve:

1. StickyUser, then NonStickyUser (the control): POST /, a cache miss costs 20 ms, a hit 2 ms;
2. the streaming leg, StickyUser then NonStickyUser with --stream-tokens: a miss prefills the
   whole prompt before the first token, a hit only the new tokens.

Each pair is compared only when both legs achieved the offered load (requests over the load
time, within a few percent of each other); otherwise the comparison is "not valid" and the
demo does not pass. It builds the reports and comparisons (`python -m reports`), prints the
headlines from their summary.json, and exits 0 with PASS only when every session of the sticky
legs (the classes that ask for affinity) stayed on one container and both comparisons are
valid.

    scripts/demo                       # sets itself up, then runs this
    scripts/demo --seconds 10 --users 80 --pace-rps 2 --out results/demo

See docs/harness.md ("The demo").
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modal_app.local.launch import emulator  # noqa: E402
from reports.errors import ReportInputError  # noqa: E402
from reports.summary import (  # noqa: E402
    Latency,
    Percentiles,
    Summary,
    UserClassSummary,
    load_summary,
)

STICKY, CONTROL = "StickyUser", "NonStickyUser"
REPORT_BAD_INPUT = 2


@dataclass(frozen=True)
class Leg:
    name: str  # the files' prefix in --out
    user_class: str
    streaming: bool


LEGS = (Leg("sticky", STICKY, False), Leg("nonsticky", CONTROL, False),
        Leg("stream_sticky", STICKY, True), Leg("stream_nonsticky", CONTROL, True))
PAIRS = ((LEGS[0], LEGS[1]), (LEGS[2], LEGS[3]))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.splitlines()[0])
    add = p.add_argument
    add("--seconds", type=int, default=8, help="load time of each of the 4 legs (default 8)")
    add("--users", type=int, default=80, help="Locust users per leg (default 80)")
    add("--pace-rps", type=float, default=2.0,
        help="requests/s per user (default 2: 160 req/s offered by 80 users)")
    add("--stream-pace-rps", type=float, default=1.0,
        help="streams/s per user in the streaming leg (default 1)")
    add("--replicas", type=int, default=4, help="emulated replicas (default 4)")
    add("--out", type=Path, default=ROOT / "results" / "demo",
        help="where the runs and reports go (default results/demo)")
    add("--cache-miss-ms", type=float, default=20.0,
        help="POST /: simulated prefill on a KV-cache miss, ms (default 20)")
    add("--cache-hit-ms", type=float, default=2.0, help="POST /: a KV-cache hit, ms (default 2)")
    add("--stream-tokens", type=int, default=8, help="tokens per stream (default 8)")
    add("--prompt-tokens", type=int, default=512,
        help="the prompt a miss prefills in full (default 512; a hit prefills 32 new ones)")
    add("--prefill-ms-per-token", type=float, default=0.1,
        help="prefill per prompt token, ms (default 0.1: a miss waits 51 ms, a hit 3 ms)")
    add("--token-ms", type=float, default=5.0, help="time per streamed token, ms (default 5)")
    add("--max-rate-gap", type=float, default=0.05,
        help="largest relative difference between two compared legs' achieved rates "
             "(default 0.05)")
    add("--max-shortfall", type=float, default=0.10,
        help="largest shortfall of a leg's achieved rate from the offered load (default 0.10: "
             "a paced user sends a little late when the machine is busy)")
    args = p.parse_args(argv)
    if args.seconds < 2 or args.users < 1 or not 1 <= args.replicas <= 64:
        p.error("--seconds must be >= 2, --users >= 1 and --replicas 1..64")
    if not (args.pace_rps > 0 and args.stream_pace_rps > 0 and 0 < args.max_rate_gap < 1
            and 0 < args.max_shortfall < 1):
        p.error("--pace-rps and --stream-pace-rps must be > 0, --max-rate-gap and "
                "--max-shortfall in (0, 1)")
    if not 1 <= args.stream_tokens <= 4096 or args.prompt_tokens < 0:
        p.error("--stream-tokens must be 1..4096 and --prompt-tokens >= 0")
    return args


def cache_capacity(users: int, replicas: int) -> int:
    """Room for each replica's share of the sessions when routing is sticky, with 75% to spare
    for an uneven hash (80 sessions on 4 replicas: 35 each, 4 standard deviations above the
    mean share of 20); without stickiness every replica would need room for all of them."""
    return max(1, math.ceil(1.75 * users / replicas))


def pace_of(leg: Leg, args: argparse.Namespace) -> float:
    return float(args.stream_pace_rps if leg.streaming else args.pace_rps)


def run_locust(url: str, leg: Leg, prefix: Path, args: argparse.Namespace) -> int:
    # all users start within 0.1 s (Locust spreads a spawn over users/rate seconds): the load
    # time is then all at the offered load, and a paced user's first request comes at a
    # random point of its first period
    cmd = [sys.executable, "-m", "locust", "-f", "locustfiles/sticky.py", leg.user_class,
           "--headless", "-u", str(args.users), "-r", str(10 * args.users), "-t",
           f"{args.seconds}s", "--host", url, "--csv", str(prefix), "--cache-key",
           "--pace-rps", f"{pace_of(leg, args):g}", "--only-summary", "--loglevel", "WARNING"]
    if leg.user_class == CONTROL:
        cmd.append("--no-judgement")  # the control baseline asks for no verdict
    if leg.streaming:
        cmd += ["--stream-tokens", str(args.stream_tokens), "--prompt-tokens",
                str(args.prompt_tokens)]
    with prefix.with_suffix(".log").open("w") as out:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                              timeout=args.seconds + 120, check=False)
    return proc.returncode


WARMUP_S = 1.0  # set apart from the cost lines' latency figures (report --warmup), not verdicts


def run_report(*prefixes: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reports", *map(str, prefixes), "--warmup",
                           f"{WARMUP_S:g}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


# ## Judging


@dataclass(frozen=True)
class Rates:
    offered: float
    achieved: dict[str, float]  # leg name -> requests/s over the load time
    problem: str | None  # why the comparison is not valid, or None


def rates(pair: tuple[Leg, Leg], summaries: dict[str, Summary],
          args: argparse.Namespace) -> Rates:
    """Each leg's achieved rate (its own request count over the load time) against the
    offered load (users x pace), and whether the two were equal enough to compare."""
    offered = args.users * pace_of(pair[0], args)
    achieved = {leg.name: summaries[leg.name].requests / args.seconds for leg in pair}
    low, high = min(achieved.values()), max(achieved.values())
    problem = None
    if high <= 0:
        problem = "no requests"
    elif low < (1 - args.max_shortfall) * offered:
        problem = (f"a leg fell short of the offered {offered:g} req/s "
                   f"({', '.join(f'{n} {r:.1f}' for n, r in achieved.items())})")
    elif (high - low) / high > args.max_rate_gap:
        problem = (f"the legs' rates differ by {100 * (high - low) / high:.1f}% (more than "
                   f"{100 * args.max_rate_gap:g}%)")
    return Rates(offered, achieved, problem)


def sticky_problems(summary: Summary, leg: Leg) -> list[str]:
    """Why a sticky leg was not sticky (its judged classes only: those that ask for
    affinity), or []."""
    if not summary.judged_classes:
        return [f"{leg.name}: no class asking for affinity to judge"]
    problems = []
    for name in summary.judged_classes:
        figures = summary.user_classes.get(name)
        if figures is None:
            problems.append(f"{leg.name}: {name} is not in the report")
        elif figures.session_stickiness is None:
            problems.append(f"{leg.name}: {name} has no session with 2+ successful requests")
        elif figures.sessions_multi_container > 0:
            problems.append(f"{leg.name}: {figures.sessions_multi_container} {name} "
                            f"sessions saw more than one container")
    return problems


# ## Headlines


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f} ms"


def change(ours: float | None, theirs: float | None) -> str:
    """'(67% less)' or '(12% more)': plain words, no negative percentages; nothing when
    either is unknown."""
    if ours is None or theirs is None or theirs <= 0:
        return ""
    ratio = ours / theirs
    if ratio <= 1:
        return f" ({100 * (1 - ratio):.0f}% less)"
    return f" ({100 * (ratio - 1):.0f}% more)"


def hit_rate(summary: Summary) -> float | None:
    return summary.cache.hit_rate if summary.cache is not None else None


def class_figures(s: Summary, leg: Leg) -> UserClassSummary | None:
    """The leg's class as the report counts it (a control's figures are under user_classes
    only: the top-level ones cover the judged classes)."""
    return s.user_classes.get(leg.user_class)


def leg_line(leg: Leg, s: Summary, rate: float) -> str:
    lat = s.latency["all"]
    c = class_figures(s, leg)
    unit = "streams/s" if leg.streaming else "req/s"
    if c is None:
        figures = "not in the report"
    else:
        figures = (f"sessions {c.sessions}, on 2+ containers {c.sessions_multi_container}/"
                   f"{c.sessions_multi_request}, session stickiness "
                   f"{pct(c.session_stickiness)}, same-container rate "
                   f"{pct(c.same_container_rate)}")
    line = (f"  {leg.name:<17}{rate:6.1f} {unit}, {leg.user_class} "
            f"({c.affinity if c is not None and c.affinity else '?'}): {figures}, errors "
            f"{pct(s.error_rate)}, cache hits {pct(hit_rate(s))}, latency p50 "
            f"{ms(lat.p50_ms)} p95 {ms(lat.p95_ms)}")
    ttft = ttft_all(s)
    if leg.streaming:
        line += (f", TTFT p50 {ms(ttft.p50_ms if ttft else None)} "
                 f"p95 {ms(ttft.p95_ms if ttft else None)}")
    return line


def latency_headline(sticky: Summary, control: Summary, rate: float) -> str:
    ours, theirs = sticky.latency["all"], control.latency["all"]
    return (f"stickiness buys, at {rate:.0f} req/s each: median latency {ms(ours.p50_ms)} "
            f"instead of {ms(theirs.p50_ms)}{change(ours.p50_ms, theirs.p50_ms)}, cache hits "
            f"{pct(hit_rate(sticky))} instead of {pct(hit_rate(control))}; "
            f"{tails(ours, theirs)}")


def tails(ours: Latency | Percentiles | None, theirs: Latency | Percentiles | None) -> str:
    """'p95 X ms instead of Y ms, p99 ...': the tails beside the median (a sticky run's
    warm-up misses and a hot replica show there first)."""
    def at(f: Latency | Percentiles | None, p: str) -> float | None:
        return None if f is None else f.p95_ms if p == "p95" else f.p99_ms
    words = [f"{p} {ms(at(ours, p))} instead of {ms(at(theirs, p))}"
             f"{change(at(ours, p), at(theirs, p))}" for p in ("p95", "p99")]
    return ", ".join(words)


def cost_line(sticky: Summary, control: Summary, streaming: bool) -> str:
    """What stickiness costs, beside what it buys: load skew over the replicas, the hottest
    replica, and the tail once the warm-up is set apart (reports/costs.py)."""
    ours, theirs = sticky.costs or {}, control.costs or {}
    hot = ours.get("hottest") or {}

    def ratio(x: Any) -> str:
        return "n/a" if x is None else f"{x:.2f}"

    key = "ttft_steady" if streaming else "latency_steady"
    what = "TTFT" if streaming else "latency"
    steady, other = ours.get(key) or {}, theirs.get(key) or {}
    return (f"stickiness costs: busy time max/mean over the replicas "
            f"{ratio(ours.get('busy_max_over_mean'))} instead of "
            f"{ratio(theirs.get('busy_max_over_mean'))} (uniform hashing "
            f"{ratio(ours.get('expected_max_over_mean'))}), hottest replica "
            f"{pct(hot.get('busy_share'))} of busy time with latency p95 "
            f"{ms(hot.get('latency_p95_ms'))}"
            f"; after the {WARMUP_S:g} s warm-up {what} p95 {ms(steady.get('p95_ms'))} instead "
            f"of {ms(other.get('p95_ms'))}, p99 {ms(steady.get('p99_ms'))} instead of "
            f"{ms(other.get('p99_ms'))}")


def ttft_all(summary: Summary) -> Percentiles | None:
    """Time to first token over every stream of the run; None when it streamed nothing."""
    return (summary.ttft or {}).get("all")


def ttft_headline(sticky: Summary, control: Summary, rate: float) -> str | None:
    ours, theirs = ttft_all(sticky), ttft_all(control)
    if ours is None or theirs is None or ours.p50_ms is None or theirs.p50_ms is None:
        return None
    return (f"stickiness buys, at {rate:.0f} streams/s each: TTFT p50 {ms(ours.p50_ms)} "
            f"instead of {ms(theirs.p50_ms)}{change(ours.p50_ms, theirs.p50_ms)}, cache hit "
            f"rate {pct(hit_rate(sticky))} instead of {pct(hit_rate(control))}; TTFT "
            f"{tails(ours, theirs)}")


# ## The demo


def run_legs(args: argparse.Namespace, out: Path) -> dict[str, int]:
    capacity = cache_capacity(args.users, args.replicas)
    miss = args.prompt_tokens * args.prefill_ms_per_token
    print(f"demo: emulator with {args.replicas} replicas, each caching {capacity} of the "
          f"{args.users} conversations (POST /: miss {args.cache_miss_ms:g} ms, hit "
          f"{args.cache_hit_ms:g} ms; /generate: {args.stream_tokens} tokens of "
          f"{args.token_ms:g} ms, a miss prefills {miss:g} ms); {args.users} users, "
          f"{args.seconds}s per leg", flush=True)
    codes: dict[str, int] = {}
    with emulator(args.replicas, "--cache-sessions", str(capacity), "--cache-miss-ms",
                  str(args.cache_miss_ms), "--cache-hit-ms", str(args.cache_hit_ms),
                  "--prefill-ms-per-token", str(args.prefill_ms_per_token), "--token-ms",
                  str(args.token_ms)) as emu:
        for leg in LEGS:
            offered = args.users * pace_of(leg, args)
            print(f"demo: {leg.name}: {leg.user_class} at {offered:g} "
                  f"{'streams' if leg.streaming else 'req'}/s against {emu.url} ...", flush=True)
            codes[leg.name] = run_locust(emu.url, leg, out / leg.name, args)
    return codes


def reports(out: Path) -> tuple[dict[str, Summary], list[str]] | str:
    """Each leg's report and each pair's comparison; their summaries (parsed once, here) and
    output files, or the one-line reason the reports failed."""
    summaries, files = {}, []
    for leg in LEGS:
        done = run_report(out / leg.name)
        if done.returncode == REPORT_BAD_INPUT:
            lines = done.stderr.strip().splitlines() or ["no output"]
            return f"the {leg.name} report failed: {lines[-1]}"
        try:
            summaries[leg.name] = load_summary(out / f"{leg.name}_summary.json")
        except ReportInputError as exc:
            return f"the {leg.name} report failed: {exc}"
        files.append(str(out / f"{leg.name}_report.html"))
    for sticky, control in PAIRS:  # A the reference (the control), B the candidate
        compared = run_report(out / control.name, out / sticky.name)
        files += [line.strip() for line in compared.stdout.splitlines()
                  if ".html" in line and "comparison" in line]
    return summaries, files


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    started = time.monotonic()
    codes = run_legs(args, out)
    built = reports(out)
    if isinstance(built, str):
        print(f"demo: {built}", file=sys.stderr)
        return 2
    summaries, files = built
    print(f"\ndemo: done in {time.monotonic() - started:.0f}s")
    problems: list[str] = []
    for pair in PAIRS:
        r = rates(pair, summaries, args)
        for leg in pair:
            print(leg_line(leg, summaries[leg.name], r.achieved[leg.name]))
        sticky, control = (summaries[leg.name] for leg in pair)
        kind = "streaming" if pair[0].streaming else "POST /"
        if r.problem is not None:
            print(f"  {kind} comparison not valid: {r.problem}")
            problems.append(f"the {kind} comparison is not valid ({r.problem})")
            continue
        rate = sum(r.achieved.values()) / 2
        headline = (ttft_headline(sticky, control, rate) if pair[0].streaming
                    else latency_headline(sticky, control, rate))
        if headline is None:
            print("  streaming comparison not valid: the reports have no TTFT (ttft in "
                  "summary.json)")
            problems.append("the streaming comparison has no TTFT")
            continue
        print(f"  {headline}")
        print(f"  {cost_line(sticky, control, pair[0].streaming)}")
    for leg in (LEGS[0], LEGS[2]):
        problems += sticky_problems(summaries[leg.name], leg)
        if codes[leg.name] != 0:
            problems.append(f"{leg.name}: Locust exited {codes[leg.name]} (see "
                            f"{out / (leg.name + '.log')})")
    print("\nreports:")
    for name in files:
        print(f"  {name}")
    if problems:
        for problem in problems:
            print(f"demo: FAIL: {problem}", file=sys.stderr)
        return 1
    print("demo: PASS: every sticky session stayed on one container, and both comparisons ran "
          "at equal offered load")
    return 0


if __name__ == "__main__":
    sys.exit(main())
