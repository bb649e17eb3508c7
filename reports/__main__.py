"""Command line: `python -m reports PREFIX [options]`, or `python -m reports A B` to compare.

Exit codes (the README's table, shared with the Locust run): 0 every gate passed (or none was
asked for); 1 a gate failed, or with `--require-judged` could not be judged (one line per gate
on stderr; the report is written all the same); 2 bad input or usage (one line on stderr, no
traceback, no report written); 4 not judged: the run cannot back a verdict (an incomplete
recording without `--accept-incomplete`, one container, a control as sticky as the judged
classes), named on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from reports import costs, report
from reports.config import Gates, ReportConfig
from reports.errors import ReportInputError
from reports.output import write_all
from reports.summary import GateResult, Summary

PROG = "python -m reports"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Stickiness report of a recorded run: PREFIX_requests.parquet (or .csv), "
                    "with PREFIX_events.jsonl and Locust's PREFIX_stats*.csv when present. "
                    "Writes PREFIX_summary.json, PREFIX_sessions.csv and PREFIX_report.html. "
                    "With two prefixes A B, writes a comparison (A_vs_B_comparison.html and "
                    ".csv).")
    add = p.add_argument
    add("runs", nargs="+", metavar="PREFIX", help="one run, or two to compare (A B)")
    add("--events", type=Path, help="the emulator's event log (default PREFIX_events.jsonl)")
    add("--out", help="output prefix (default PREFIX, or A_vs_B when comparing)")
    add("--change-window", type=float, default=1.0, dest="change_window_s", metavar="S",
        help="membership events this close together form one change (default 1 s)")
    add("--change-margin", type=float, default=5.0, dest="change_margin_s", metavar="S",
        help="requests up to this long after a change are in its phase (default 5 s)")
    add("--settle", type=float, default=2.0, dest="settle_s", metavar="S",
        help="a membership change has settled S seconds after its last event: moves before "
             "then are remaps of the change, switches after it flaps (default 2 s; "
             "docs/metrics.md)")
    add("--infer-margin", type=float, default=2.0, dest="infer_margin_s", metavar="S",
        help="with no event log: containers first/last seen this close to the run's start/end "
             "were there all along (default 2 s)")
    add("--warmup", type=float, default=0.0, dest="warmup_s", metavar="S",
        help="set the run's first S seconds apart from the cost section's latency and TTFT "
             "figures (the warm-up every conversation pays); never from verdicts or gates "
             "(default 0)")
    add("--accept-incomplete", action="store_true",
        help="judge a run whose recording is incomplete (it did not end normally, or lost "
             "rows) all the same; without it such a run is not judged: exit 4")
    add("--swimlane-sessions", type=int, default=120, metavar="N",
        help="sessions shown in the swimlane (default 120)")
    g = p.add_argument_group(
        "gates (none by default; a failed gate exits 1; a gate with nothing to measure is "
        "'not judged' and exits 0 unless --require-judged; docs/gates.md)")
    gate = g.add_argument
    gate("--require-judged", action="store_true",
         help="a gate that is not judged (nothing to measure) fails the run: exit 1")
    gate("--min-stickiness", type=float, metavar="F",
         help="session stickiness (judged sessions on one container) at least F")
    gate("--min-settled-stickiness", type=float, metavar="F",
         help="settled stickiness ((session, settled epoch) pairs on one container) at least F")
    gate("--min-same-container-rate", type=float, metavar="F",
         help="same-container rate (1 - switches / transitions) at least F")
    gate("--min-request-stickiness", type=float, metavar="F",
         help="request stickiness at least F")
    gate("--max-error-rate", type=float, metavar="F",
         help="error rate (503s with no live replica apart) at most F")
    gate("--max-collateral", type=int, metavar="N",
         help="collateral remaps over all membership changes at most N")
    gate("--max-flaps", type=int, metavar="N",
         help="flaps (switches inside a settled epoch) at most N")
    gate("--max-remap-excess", type=float, metavar="X",
         help="remapped fraction at most X times the rendezvous minimum, at every change")
    gate("--max-p95-ms", type=float, metavar="MS", help="p95 latency at most MS")
    gate("--max-p99-ms", type=float, metavar="MS", help="p99 latency at most MS")
    gate("--max-strict-violations", type=int, metavar="N",
         help="strict sessions on 2+ containers at most N; a run whose file records strict "
              "sessions gets 0 unless given")
    gate("--min-sessions", type=int, metavar="N",
         help="at least N sessions with 2+ successful requests")
    return p


def config_from(args: argparse.Namespace, p: argparse.ArgumentParser) -> ReportConfig:
    try:
        gates = Gates(**{name: getattr(args, name) for name in Gates.__dataclass_fields__})
        return ReportConfig(change_window_s=args.change_window_s,
                            change_margin_s=args.change_margin_s, settle_s=args.settle_s,
                            infer_margin_s=args.infer_margin_s,
                            swimlane_sessions=args.swimlane_sessions, gates=gates,
                            warmup_s=args.warmup_s,
                            accept_incomplete=args.accept_incomplete)
    except ValueError as exc:
        p.error(str(exc))
        raise  # unreachable: p.error exits


def fast_memory_pool() -> None:
    """Arrow's jemalloc pool reads a Parquet file of many row groups faster than the default
    here (about 1.3 s against 2.3 s for 10 M rows); this process only makes one report."""
    import pyarrow as pa

    with contextlib.suppress(NotImplementedError, pa.ArrowException):
        pa.set_memory_pool(pa.jemalloc_memory_pool())


MMAP_THRESHOLD = 1 << 20  # bytes: larger blocks are mapped apart and unmapped when freed


def lean_malloc() -> None:
    """glibc's malloc serves a block below its mmap threshold from its heap, and raises that
    threshold (up to 32 MiB) each time a mapped block is freed: the report's per-block
    temporaries (a few MiB each) would then stay in the heap once freed, adding a GiB of
    resident memory on a day's run. A fixed threshold maps every block of 1 MiB or more
    apart, so that what is freed goes back to the system. No-op off glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(name) if name else None
        if libc is not None:
            libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if len(args.runs) > 2:
        p.error("give one run, or two to compare")
    if len(args.runs) == 2 and args.events is not None:
        p.error("--events is for one run; a comparison reads each run's PREFIX_events.jsonl")
    config = config_from(args, p)
    try:
        if len(args.runs) == 1:
            return single(args.runs[0], config, args.events, args.out, args.require_judged)
        return comparison(args.runs[0], args.runs[1], config, args.out, args.require_judged)
    except ReportInputError as exc:
        print(f"reports: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"reports: cannot write{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2


def single(prefix: str, config: ReportConfig, events: Path | None, out: str | None,
           require_judged: bool = False) -> int:
    analysis, files = report.single_report(prefix, config, events, out)
    write_all(files)
    print(headline(analysis.summary))
    print("wrote " + ", ".join(str(path) for path in files))
    return run_exit(analysis.summary, require_judged)


def comparison(a: str, b: str, config: ReportConfig, out: str | None,
               require_judged: bool = False) -> int:
    first, second, rows, files = report.comparison_report(a, b, config, out)
    write_all(files)
    print("A: " + headline(first.summary))
    print("B: " + headline(second.summary))
    wanted = ("session_stickiness", "settled_stickiness", "same_container_rate",
              "error_rate", "latency_all_p95", "ttft_all_p50", *costs.CONSOLE)
    for row in rows:
        if row.metric in wanted:
            diff = row.difference
            print(f"  {row.metric}: A {fmt(row.a)}, B {fmt(row.b)}, B - A {fmt(diff)}")
    print("wrote " + ", ".join(str(path) for path in files))
    return run_exit(second.summary, require_judged)


def fmt(value: float | int | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def percent(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def headline(s: Summary) -> str:
    ci = s.session_stickiness_ci
    interval = f" [{percent(ci[0])}, {percent(ci[1])}]" if ci else ""
    judged = ", ".join(s.judged_classes) or "none"
    lines = [
        f"{s.prefix}: {s.requests:,} requests, {s.sessions:,} sessions, {s.containers} "
        f"containers, {s.duration_s:.1f} s",
        f"  judged classes: {judged} (affinity {s.affinity_source})",
        f"  session stickiness {percent(s.session_stickiness)}{interval} "
        f"({s.sessions_multi_container:,} of {s.sessions_multi_request:,} sessions saw 2+ "
        f"containers); settled stickiness {percent(s.settled_stickiness)}; "
        f"same-container rate {percent(s.same_container_rate)}",
        f"  switches {s.switches:,} ({s.forced_switches:,} at membership changes, "
        f"{s.flaps:,} flaps); request stickiness {percent(s.request_stickiness)}; "
        f"warm-hit upper bound {percent(s.warm_hit_upper_bound, 1)}",
        f"  errors {s.errors:,} ({percent(s.error_rate)}; of which 503 with no live replica "
        f"{s.errors_no_live_replica:,}); latency p50 {fmt(s.latency['all'].p50_ms)} ms, "
        f"p95 {fmt(s.latency['all'].p95_ms)} ms",
    ]
    if s.ttft is not None:
        t = s.ttft
        lines.append(f"  TTFT p50 {fmt(t['all'].p50_ms)} ms (hit {fmt(t['hit'].p50_ms)}, "
                     f"miss {fmt(t['miss'].p50_ms)}), p95 {fmt(t['all'].p95_ms)} ms")
    for name, u in s.user_classes.items():
        if not u.judged:
            lines.append(f"  control {name} (not judged): session stickiness "
                         f"{percent(u.session_stickiness)}, same-container rate "
                         f"{percent(u.same_container_rate)}")
    for o in s.outages:
        lines.append(f"  OUTAGE from {o.start_offset_s:.0f} s to {o.end_offset_s:.0f} s "
                     f"({percent(o.share, 0)} of the run): {o.failed:,} requests, none "
                     "succeeded")
    for c in s.membership_changes:
        moves = " ".join(short([f"+{x}" for x in c.added] + [f"-{x}" for x in c.removed]))
        judged = (f"collateral {c.collateral} ({c.answers:,} repeat answers judged)"
                  if c.judged else f"collateral NOT JUDGED: {c.not_judged}")
        lines.append(
            f"  change at {c.at_offset_s:.1f} s ({moves}): {c.sessions:,} sessions, remapped "
            f"{percent(c.remapped_fraction, 1)} vs rendezvous minimum "
            f"{percent(c.expected_fraction, 1)}, {judged}")
    if s.collateral_outside_changes:
        lines.append(f"  collateral outside any change: {s.collateral_outside_changes:,} "
                     "answers moved off a live owner to a container already live")
    if s.membership_changes == [] and s.epochs_source == "inferred":
        lines.append("  no membership change (inferred: no event log)")
    lines.extend(costs.headline(s.costs))
    for r in s.gates:
        lines.append(f"  gate --{r.gate}: {r.verdict.upper()}: {r.reason}")
    for reason in s.not_judged:
        lines.append(f"  NOT JUDGED: {reason}")
    lines.append(f"  verdict: {s.verdict.upper()}")
    return "\n".join(lines)


def short(items: list[str], most: int = 8) -> list[str]:
    """At most `most` items, then how many more: a console line stays short."""
    return items if len(items) <= most else [*items[:most], f"(+{len(items) - most} more)"]


NOT_JUDGED_EXIT = 4


def run_exit(s: Summary, require_judged: bool = False) -> int:
    """The README's exit codes: 1 on a failed gate; else 4 when the run cannot back a verdict;
    else 1 when --require-judged and a gate was not judged; else 0."""
    code = gate_exit(s.gates, require_judged)
    if s.not_judged and not any(r.failed for r in s.gates):
        for reason in s.not_judged:
            print(f"reports: not judged: {reason}", file=sys.stderr)
        return NOT_JUDGED_EXIT
    return code


def gate_exit(results: list[GateResult], require_judged: bool = False) -> int:
    """1 when a gate failed, or (with require_judged) could not be judged; else 0."""
    bad = [r for r in results if r.failed or (require_judged and not r.passed)]
    for r in bad:
        what = "failed" if r.failed else "not judged (--require-judged)"
        print(f"reports: gate --{r.gate} {what}: {r.reason}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    fast_memory_pool()
    lean_malloc()
    sys.exit(main())
