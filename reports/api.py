"""The report as a pandas library: `load_run(prefix)` and `compare(a, b)`.

    from reports import load_run, compare
    run = load_run("results/run")
    run.sessions.groupby("user_class", observed=True).switches.sum()
    run.summary()["settled_stickiness"]

Columns and dtypes of every DataFrame: docs/api.md; definitions: docs/metrics.md.

The figures are computed once, when the run is loaded (reports.metrics: one sort of the rows and
numpy passes over integer codes, which is what makes 10 M rows fast); the DataFrames are
built from them on first use, so that a run's summary costs no per-request DataFrame. The
per-session, per-container, per-change and per-epoch figures are pandas frames from the
start.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from reports import comparison as comparing
from reports import costs
from reports import gates as gating
from reports.columns import AFFINITIES
from reports.config import Gates, ReportConfig
from reports.load import Labels, RawRun, read_run
from reports.metrics import Analysis, Rows, analyze, by_code
from reports.summary import ERROR_CLASSES, LATENCY_STATES, PHASES, clean, failed_column

STATES: tuple[str, ...] = ("first", "repeat", "after_switch")
CACHES: tuple[str, ...] = ("all", "hit", "miss")

__all__ = ["Run", "compare", "load_run"]


def categorical(labels: Labels) -> pd.Categorical[str]:
    """Codes into names as a pandas Categorical (-1 = NaN), without a pass over strings."""
    return by_code(labels.codes, labels.names)


@dataclasses.dataclass
class Run:
    """One recorded run: its DataFrames and summary (see docs/api.md)."""

    prefix: str
    config: ReportConfig
    analysis: Analysis
    # what was read, kept so that the run can be analysed again without reading it again
    raw: RawRun | None = dataclasses.field(default=None, repr=False)

    @property
    def notes(self) -> list[str]:
        return list(self.analysis.summary.notes)

    def summary(self) -> dict[str, Any]:
        """The dict written as PREFIX_summary.json (docs/summary-json.md)."""
        return dict(clean(self.analysis.summary.to_dict()))

    # -- per request ---------------------------------------------------------------------------

    def rows(self) -> Rows:
        """The per-request arrays; ValueError for a run loaded with keep_rows=False."""
        if self.analysis.rows is None:
            raise ValueError("this run was loaded with keep_rows=False: its per-request "
                             "rows were not kept (load_run(prefix) keeps them)")
        return self.analysis.rows

    @cached_property
    def requests(self) -> pd.DataFrame:
        """One row per request, by session then start (docs/api.md#runrequests)."""
        rows = self.rows()
        r, frame, ok = rows.requests, rows.frame, rows.ok
        state = np.where(ok.first, 0, np.where(ok.switch, 2, 1)).astype(np.int8)
        state[~ok.mask] = -1
        flap = np.zeros(len(frame.ts), dtype=np.bool_)
        flap[np.flatnonzero(ok.switch)[~rows.forced]] = True
        missing = ~np.isfinite(r.tokens)
        tokens = pd.arrays.IntegerArray(np.where(missing, 0, r.tokens).astype(np.int32),
                                        np.asarray(missing))
        data: dict[str, Any] = {
            "ts": frame.ts, "response_time_ms": frame.rt, "end": frame.end,
            "session_id": categorical(r.session), "user_class": categorical(r.user_class),
            "affinity": self.affinity_rows(),
            "judged": rows.judged[frame.sess], "status": np.asarray(frame.status),
            "container_id": categorical(r.container), "cache": categorical(r.cache),
            "error": categorical(r.error), "worker": categorical(r.worker),
            "ttfb_ms": np.asarray(r.ttfb_ms), "ttft_ms": np.asarray(r.ttft_ms), "tokens": tokens,
            "max_gap_ms": np.asarray(r.max_gap_ms), "ok": np.asarray(frame.ok),
            "error_class": by_code(frame.cls, ERROR_CLASSES),
            "counted_error": rows.failed, "phase": by_code(rows.phase, PHASES),
            "state": by_code(state, STATES), "epoch": np.asarray(rows.epoch),
            "settled": rows.within & ok.mask,
            "flap": flap,
        }
        return pd.DataFrame(data, copy=False)

    def affinity_rows(self) -> pd.Categorical[str]:
        aff = self.rows().requests.affinity
        remap = np.array([AFFINITIES.index(a) if a in AFFINITIES else -1 for a in aff.names]
                         + [-1], dtype=np.int8)
        return by_code(remap[np.asarray(aff.codes)], AFFINITIES)

    # -- per session, container, change, epoch -------------------------------------------------

    @cached_property
    def sessions(self) -> pd.DataFrame:
        """One row per session: the rows of PREFIX_sessions.csv (docs/api.md#runsessions)."""
        return self.analysis.sessions

    @cached_property
    def containers(self) -> pd.DataFrame:
        """One row per container that answered (docs/api.md#runcontainers)."""
        rows = [dataclasses.asdict(c) for c in self.analysis.summary.per_container]
        df = pd.DataFrame(rows, columns=["container_id", "requests", "sessions",
                                         "main_sessions", "first_ts", "last_ts"])
        df["container_id"] = df["container_id"].astype("category")
        return df.astype({"requests": "int64", "sessions": "int64", "main_sessions": "int64",
                          "first_ts": "float64", "last_ts": "float64"})

    @cached_property
    def changes(self) -> pd.DataFrame:
        """One row per membership change (docs/api.md#runchanges)."""
        columns = ["at", "at_offset_s", "end", "settled_at", "causes", "added", "removed",
                   "live_before", "live_after", "sessions", "remapped", "remapped_fraction",
                   "remapped_fraction_ci_low", "remapped_fraction_ci_high",
                   "expected_fraction", "excess", "z", "collateral", "restick_p50_s",
                   "restick_max_s"]
        rows = []
        for c in self.analysis.summary.membership_changes:
            row = dataclasses.asdict(c)
            ci = row.pop("remapped_fraction_ci") or (None, None)
            row["remapped_fraction_ci_low"], row["remapped_fraction_ci_high"] = ci
            rows.append(row)
        df = pd.DataFrame(rows, columns=columns)
        floats = [c for c in columns if c not in ("causes", "added", "removed", "live_before",
                                                  "live_after", "sessions", "remapped",
                                                  "collateral")]
        ints = ["live_before", "live_after", "sessions", "remapped", "collateral"]
        return df.astype({**dict.fromkeys(floats, "float64"), **dict.fromkeys(ints, "int64")})

    @cached_property
    def epochs(self) -> pd.DataFrame:
        """One row per epoch (docs/api.md#runepochs)."""
        rows = []
        for i, e in enumerate(self.analysis.summary.epochs):
            rows.append({"epoch": i, "start": e.start, "end": e.end,
                         "settled_start": e.settled_start, "live": e.live,
                         "n_live": len(e.live), "sessions": e.sessions,
                         "requests": e.requests, "pairs_multi_request": e.pairs_multi_request,
                         "pairs_multi_container": e.pairs_multi_container,
                         "settled_stickiness": e.settled_stickiness})
        df = pd.DataFrame(rows)
        return df.astype({"settled_stickiness": "float64"})

    @cached_property
    def timeline(self) -> pd.DataFrame:
        """Per second: requests, successes, failures by class, live containers
        (docs/api.md#runtimeline)."""
        t = self.analysis.timeline
        bins = len(t.requests)
        second = np.arange(bins, dtype=np.float64) * t.bin_s
        data: dict[str, Any] = {"second": second, "ts": t.start + second,
                                "time": pd.to_datetime(t.start + second, unit="s", utc=True),
                                "requests": t.requests.astype(np.int64),
                                "ok": t.classes[:, 0].astype(np.int64)}
        for i, name in enumerate(ERROR_CLASSES[1:], 1):
            data[failed_column(name)] = t.classes[:, i].astype(np.int64)
        data["sessions"] = t.sessions.astype(np.int64)
        data["live_containers"] = t.live.astype(np.int64)
        data["mean_ms"] = t.mean_ms
        data["users"] = t.users if t.users is not None else np.full(bins, np.nan)
        return pd.DataFrame(data)

    @cached_property
    def latency(self) -> pd.DataFrame:
        """Response time, time to first token and inter-token gap by state and cache
        (docs/api.md#runlatency). pandas groupby/quantile over the request DataFrame."""
        df = self.requests
        states = {"all": np.ones(len(df), dtype=np.bool_), "errors": ~df["ok"].to_numpy()}
        state = df["state"]
        for name in STATES:
            states[name] = (state == name).to_numpy()
        cache = df["cache"]
        caches = {"all": np.ones(len(df), dtype=np.bool_),
                  "hit": (cache == "hit").to_numpy(), "miss": (cache == "miss").to_numpy()}
        rows = []
        for s in LATENCY_STATES:
            for c in CACHES:
                mask = states[s] & caches[c]
                rows.append({"state": s, "cache": c,
                             **figures(df["response_time_ms"], mask, "", with_mean=True),
                             **figures(df["ttft_ms"], mask, "ttft_"),
                             **figures(df["max_gap_ms"], mask, "gap_")})
        out = pd.DataFrame(rows)
        out["state"] = pd.Categorical(out["state"], categories=list(LATENCY_STATES))
        out["cache"] = pd.Categorical(out["cache"], categories=list(CACHES))
        return out


def figures(values: pd.Series, mask: NDArray[np.bool_], prefix: str,
            with_mean: bool = False) -> dict[str, float | int]:
    picked = values[mask].dropna()
    out: dict[str, float | int] = {f"{prefix}count": len(picked)}
    if with_mean:
        out["mean_ms"] = float(picked.mean()) if len(picked) else np.nan
    quantiles = picked.quantile([0.5, 0.95, 0.99]) if len(picked) else None
    for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        out[f"{prefix}{name}_ms"] = float(quantiles[q]) if quantiles is not None else np.nan
    if with_mean:
        out["max_ms"] = float(picked.max()) if len(picked) else np.nan
    return out


PathLike = str | os.PathLike[str]


def path_text(value: object, what: str) -> str:
    """A str or os.PathLike as text (as pandas takes paths); TypeError for anything else."""
    if isinstance(value, str | os.PathLike):
        text = os.fspath(value)
        if isinstance(text, str):
            return text
    raise TypeError(f"{what} must be a str or an os.PathLike, not {type(value).__name__}")


def load_run(prefix: PathLike, events: PathLike | None = None, *,
             settle_s: float | None = None, config: ReportConfig | None = None,
             parts: Iterable[int] | None = None,
             window: tuple[float | None, float | None] | None = None,
             keep_rows: bool = True) -> Run:
    """Read and analyse one run (docs/api.md): PREFIX as `locust --csv PREFIX` wrote it, or
    its request file; EVENTS, an event log other than PREFIX_events.jsonl. `parts`: only these
    parts (indices from 1) of a run written as parts; `window`: only the requests that started
    in [start, end) (Unix seconds; None leaves that side open): a selection is read, and
    analysed, as a run of its own, not judged. `keep_rows=False`: the per-request arrays are
    dropped once every figure is computed (the summary, sessions, containers, changes, epochs
    and timeline stay; `requests` and `latency` raise ValueError): what the command line does,
    to keep a long run's memory small. Raises TypeError for a prefix that is not a
    path or bad `parts`/`window`, ValueError for a part the run does not have,
    reports.errors.ReportInputError (one-line message) on bad input."""
    text = path_text(prefix, "load_run(prefix)")
    log = None if events is None else Path(path_text(events, "load_run(events=)"))
    config = config or ReportConfig()
    if settle_s is not None:
        config = dataclasses.replace(config, settle_s=settle_s)
    return analysed(read_run(text, log, parts=parts, window=window), config, keep_rows)


def analysed(raw: RawRun, config: ReportConfig, keep_rows: bool = True) -> Run:
    """Every figure of a run that was read, its gates judged."""
    analysis = analyze(raw, config, keep_rows)
    analysis.summary.costs = costs.cost_summary(raw, config.warmup_s)
    analysis.summary.gates = gating.evaluate(analysis.summary, config.gates)
    analysis.summary.verdicts = gating.verdicts(analysis.summary)
    analysis.summary.verdict = gating.overall(analysis.summary)
    # a run analysed without its rows is not analysed again from them (see `comparable`):
    # what was read is let go with them
    return Run(raw.prefix, config, analysis, raw if keep_rows else None)


CONTROLS_NOTE = ("no class of this run asks for affinity: in the comparison its figures cover "
                 "its control classes ({classes}), which are not judged")


def comparable(run: Run) -> Run:
    """The run as one side of a comparison. A run whose classes all ask for no affinity (a
    NonStickyUser control run) has no judged figures: compared as it is, its stickiness would
    be empty and its switches 0. Its figures are then computed over its control classes, with
    a note; its gates and verdicts stay those of the run as judged."""
    summary = run.analysis.summary
    if summary.judged_classes or summary.affinity_source != "recorded" or not summary.sessions:
        return run
    events = Path(summary.events_file) if summary.events_file else None
    config = dataclasses.replace(run.config, judge_controls=True, gates=Gates())
    keep = run.analysis.rows is not None
    controls = analysed(run.raw, config, keep) if run.raw is not None else load_run(
        run.prefix, events, config=config, keep_rows=keep)
    judged = controls.analysis.summary
    judged.gates, judged.verdicts = summary.gates, summary.verdicts
    judged.judged_classes = []
    judged.notes.append(CONTROLS_NOTE.format(classes=", ".join(sorted(judged.user_classes))))
    return controls


def as_run(value: object, side: str) -> Run:
    if isinstance(value, Run):
        return value
    if isinstance(value, str | os.PathLike):
        return load_run(value)
    raise TypeError(f"compare({side}) must be a Run (reports.load_run) or a run's prefix as a "
                    f"str or an os.PathLike, not {type(value).__name__}")


def compare(a: Run | PathLike, b: Run | PathLike) -> pd.DataFrame:
    """Two runs side by side: index `metric`, columns kind, a, b, delta (b - a). A side with no
    class asking for affinity is compared by its control classes (see `comparable`)."""
    first = comparable(as_run(a, "a"))
    second = comparable(as_run(b, "b"))
    rows = comparing.rows(first.analysis.summary, second.analysis.summary)
    df = pd.DataFrame({"metric": [r.metric for r in rows], "kind": [r.kind for r in rows],
                       "a": [np.nan if r.a is None else float(r.a) for r in rows],
                       "b": [np.nan if r.b is None else float(r.b) for r in rows]})
    df["delta"] = df["b"] - df["a"]
    return df.set_index("metric")

