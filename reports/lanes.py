"""The swimlane's data: a sample of sessions over binned time, a container code per cell.

    lanes = swimlanes(run.requests, limit=120, bins=240, sessions=run.sessions)
    lanes = lanes_of_rows(rows, limit=120, bins=240)   # the same, from the sorted rows

The page (reports.charts.swimlane_figure) draws it. `lanes_of_rows` reads only the rows of the
sampled sessions, from the analysis's arrays sorted by session: no per-request table is built,
which is what keeps the command line's memory small on a long run. Both give the same lanes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.config import ReportConfig

DEFAULTS = ReportConfig()  # the swimlane's sampling: --swimlane-sessions and the like


def labels(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes (-1 = missing) and their names: a categorical's own, without a pass over
    strings (the API's id columns are categoricals), else factorized."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return (np.asarray(values.cat.codes, dtype=np.int64),
                [str(c) for c in values.cat.categories])
    codes, names = pd.factorize(values, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64), [str(n) for n in names]



@dataclass
class Lanes:
    """Sampled sessions x time bins: a container code per cell (-1 for a bin of failed
    requests only, NaN for no request yet or any more)."""

    sessions: list[str]
    containers: list[str]
    codes: np.ndarray  # (lanes, bins) float, NaN = empty
    bin_s: float
    total_sessions: int
    controls: int = 0  # the last lanes: sessions of control classes (sending no session id)


def pick_sessions(per: pd.DataFrame, limit: int) -> list[int]:
    """Up to `limit` sessions: half of them sessions that saw 2+ containers when there are
    any, spread evenly over the run, then ordered by main container and start so that moves
    stand out."""
    moved, steady = per[per["containers"] > 1], per[per["containers"] <= 1]
    take_moved = min(len(moved), limit // 2 if len(steady) > limit // 2 else limit)
    chosen = pd.concat([spread(moved, take_moved), spread(steady, limit - take_moved)])
    return [int(s) for s in chosen.sort_values(["main", "first"]).index]


def spread(frame: pd.DataFrame, count: int) -> pd.DataFrame:
    if count >= len(frame):
        return frame
    if count <= 0:
        return frame.iloc[:0]
    return frame.iloc[np.linspace(0, len(frame) - 1, count).round().astype(int)]


def per_session(requests: pd.DataFrame, session: np.ndarray, container: np.ndarray,
                ok: np.ndarray) -> pd.DataFrame:
    """One row per session code: its first start, whether it is judged, the containers of its
    successful requests and the main one (ties: the lowest code). Hash groupbys on integer
    codes: no string is touched."""
    valid = session >= 0
    ts = pd.Series(requests["ts"].to_numpy()[valid])
    per = pd.DataFrame({"first": ts.groupby(session[valid]).min()})
    judged = (requests["judged"].to_numpy(dtype=bool) if "judged" in requests
              else np.ones(len(requests), dtype=bool))
    per["judged"] = pd.Series(judged[valid]).groupby(session[valid]).all()
    served = valid & ok & (container >= 0)
    counts = pd.DataFrame({"s": session[served], "c": container[served]}).value_counts()
    pairs = counts.reset_index(name="n").sort_values(["n", "c"], ascending=[False, True],
                                                     kind="stable")
    per["containers"] = pairs.groupby("s").size()
    per["main"] = pairs.drop_duplicates("s").set_index("s")["c"]
    return per.fillna({"containers": 0, "main": -1}).sort_values("first")


def from_sessions(sessions: pd.DataFrame, session_names: list[str],
                  container_names: list[str]) -> pd.DataFrame:
    """per_session's frame from the API's `run.sessions` (no pass over the requests)."""
    index = pd.Index(session_names).get_indexer(pd.Index(sessions["session_id"].astype(str)))
    main = pd.Index(container_names).get_indexer(pd.Index(
        sessions["main_container"].astype(object).where(sessions["main_container"].notna(), "")))
    per = pd.DataFrame({"first": sessions["first_ts"].to_numpy(),
                        "judged": sessions["judged"].to_numpy(dtype=bool),
                        "containers": sessions["containers"].to_numpy(),
                        "main": main}, index=index)
    return per[per.index >= 0].sort_values("first")


def swimlanes(requests: pd.DataFrame, limit: int = DEFAULTS.swimlane_sessions,
              bins: int = DEFAULTS.swimlane_bins, sessions: pd.DataFrame | None = None
              ) -> Lanes:
    """The lanes of up to `limit` sessions of the API's `run.requests` (its `ok` column says
    which requests succeeded: reports.metrics defines it once); `sessions` (the API's
    run.sessions) spares a pass over the requests to find them."""
    ok = requests["ok"].to_numpy(dtype=bool)
    session, session_names = labels(requests["session_id"])
    container, container_names = labels(requests["container_id"])
    ts = requests["ts"].to_numpy(dtype="float64")
    needed = {"session_id", "first_ts", "judged", "containers", "main_container"}
    per = (from_sessions(sessions, session_names, container_names)
           if sessions is not None and needed <= set(sessions.columns)
           else per_session(requests, session, container, ok))
    chosen, room = choose(per, limit)
    lane = lane_of(chosen, len(session_names))
    rows = np.flatnonzero(lane[session] >= 0)
    return draw(Picked(chosen, room, len(per), rows), Columns(ts, ok, session, container),
                session_names, container_names, bins)


def lanes_of_rows(ts: np.ndarray, ok: np.ndarray, session: np.ndarray, first_row: np.ndarray,
                  container: np.ndarray, session_names: list[str], container_names: list[str],
                  sessions: pd.DataFrame, limit: int = DEFAULTS.swimlane_sessions,
                  bins: int = DEFAULTS.swimlane_bins) -> Lanes:
    """`swimlanes` from the rows sorted by session, then start (session codes dense,
    `first_row` each session's first row; reports.metrics.Frame) and the session table
    (run.sessions): only the sampled sessions' rows are read."""
    per = from_sessions(sessions, session_names, container_names)
    chosen, room = choose(per, limit)
    bounds = np.append(np.asarray(first_row, dtype=np.int64), len(ts))
    picked = np.sort(np.asarray(chosen, dtype=np.int64))
    rows = (np.concatenate([np.arange(bounds[c], bounds[c + 1]) for c in picked])
            if len(picked) else np.zeros(0, dtype=np.int64))
    return draw(Picked(chosen, room, len(per), rows), Columns(ts, ok, session, container),
                session_names, container_names, bins)


def choose(per: pd.DataFrame, limit: int) -> tuple[list[int], int]:
    """The sessions shown (codes, in lane order) and how many of them, last, are controls."""
    judged, controls = per[per["judged"]], per[~per["judged"].astype(bool)]
    room = min(len(controls), limit // 4 if len(judged) else limit)
    return pick_sessions(judged, limit - room) + pick_sessions(controls, room), room


def lane_of(chosen: list[int], n_sessions: int) -> np.ndarray:
    """Each session code's lane, -1 when not shown (code -1 -> the last slot)."""
    lane = np.full(n_sessions + 1, -1, dtype=np.int64)
    lane[chosen] = np.arange(len(chosen))
    return lane


@dataclass
class Picked:
    chosen: list[int]  # session codes, in lane order
    controls: int
    total_sessions: int
    rows: np.ndarray  # the chosen sessions' rows, ascending


@dataclass
class Columns:
    ts: np.ndarray
    ok: np.ndarray
    session: np.ndarray
    container: np.ndarray


def draw(picked: Picked, c: Columns, session_names: list[str], container_names: list[str],
         bins: int) -> Lanes:
    start = float(c.ts.min())
    span = max(float(c.ts.max()) - start, 1e-6)
    bin_s = span / bins
    chosen, rows = picked.chosen, picked.rows
    lane = lane_of(chosen, len(session_names))
    rows = rows[np.argsort(c.ts[rows], kind="stable")]
    which = lane[c.session[rows]]
    cell = np.minimum(((c.ts[rows] - start) / bin_s).astype(np.int64), bins - 1)
    container, ok = c.container[rows], c.ok[rows]
    used = np.array(sorted(np.unique(container[ok & (container >= 0)]),
                           key=lambda code: container_names[code]), dtype=np.int64)
    colour_of = np.full(len(container_names) + 1, np.nan)
    colour_of[used] = np.arange(len(used))
    codes = np.full((len(chosen), bins), np.nan)
    codes[which, cell] = -1  # failed only, unless a success overwrites it
    good = ok & (container >= 0)
    codes[which[good], cell[good]] = colour_of[container[good]]  # the last one wins
    return Lanes([session_names[i] for i in chosen], [container_names[i] for i in used],
                 fill_forward(codes), bin_s, picked.total_sessions, picked.controls)


def fill_forward(codes: np.ndarray) -> np.ndarray:
    """Each lane keeps its last colour until its next request (not beyond its last one)."""
    out = pd.DataFrame(codes).T.ffill().T.to_numpy(copy=True)
    seen = ~np.isnan(codes)
    last = np.where(seen.any(axis=1), codes.shape[1] - 1 - np.argmax(seen[:, ::-1], axis=1), -1)
    out[np.arange(codes.shape[1])[None, :] > last[:, None]] = np.nan
    return out
