"""The metrics of docs/metrics.md, on the request rows as integer codes.

    analysis = analyze(read_run("out/run1"), ReportConfig())   # reports.load.read_run
    analysis.summary.session_stickiness

The public API (reports.api) builds its DataFrames from this.

pandas: the tables with one row per session, class, container or epoch are pandas groupbys on
categorical codes (`session_table`, `user_classes`, `per_container`); `run.latency` is pandas
quantiles over the request DataFrame.

numpy, and why (the work per row, where the report's time goes at 10 M rows):
- the one sort of the rows, by session then start: a radix and counting sort of the session
  codes (`stable_order`), where `DataFrame.sort_values` on two keys is an argsort with copies;
- per-row flags on neighbouring rows (a switch: a container code unlike the row before in the
  same session): `cont[1:] != cont[:-1]` on views, where `groupby().shift()` copies and hashes;
- epochs: `np.searchsorted` of each start against the change times, and the owner before and
  after each change matched with `np.intersect1d` over (session, epoch) keys (pandas'
  `merge_asof` needs sorted copies of both sides);
- the main container: (session, container) pairs counted with `np.bincount` in one slot
  per pair, a block of whole sessions at a time (`pair_counts`); pandas' two-key groupby
  took 2.6 s on a loaded machine for 10 M rows;
- failed requests (the few): their rows found once (`Frame.failed_rows`) and taken out of
  what is read from every row (flags, pairs, spans, outages), never a copy of the 99%
  that succeeded;
- row-level histograms (status codes, error classes by phase, timeline bins): `np.bincount`
  on small integer codes, where `value_counts`/`crosstab` on 10 M rows build an index each;
- percentiles of the summary: a sort of one copy, then `np.quantile` at several points (the
  CDF for the chart too).
Nothing loops over rows in Python.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from reports import collateral as per_answer
from reports import epochs
from reports.columns import AFFINITIES, STREAM_CUT_PREFIX, STREAM_SHORT_PREFIX
from reports.config import ReportConfig
from reports.epochs import Membership
from reports.gates import control_as_sticky
from reports.lanes import Lanes, lanes_of_rows
from reports.load import Labels, RawRun, Requests
from reports.stats import (
    Curve,
    balance_figures,
    curve_at,
    curve_sorted,
    curve_sorted_without,
    expected_max_ratio,
    quantiles_at,
    quantiles_sorted,
    sorted_without,
    wilson,
)
from reports.summary import (
    ERROR_CLASSES,
    LATENCY_STATES,
    PHASES,
    Balance,
    CacheSummary,
    ChangeSummary,
    ContainerSummary,
    EpochSummary,
    Latency,
    LocustCheck,
    Outage,
    Percentiles,
    Summary,
    UserClassSummary,
)

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]

(OK, BAD_BODY, S401, S429, S503, S4XX, S5XX, CONNECTION, OTHER, STREAM_CUT,
 STREAM_SHORT) = range(len(ERROR_CLASSES))
_, CHANGE, NO_LIVE = range(len(PHASES))
MAX_TIMELINE_BINS = 200_000
TOP_ERRORS = 10


# -- what analyze() returns ----------------------------------------------------------------------


@dataclass
class Timeline:
    start: float  # the left edge of the first bin, Unix seconds
    bin_s: float
    requests: Ints
    classes: Ints  # (bins, len(ERROR_CLASSES))
    sessions: Ints  # active sessions per bin
    live: Ints  # live containers at each bin's middle
    mean_ms: Floats
    users: Floats | None  # Locust's user count, NaN where unknown


@dataclass
class Rows:
    """The per-request arrays behind the figures, for the DataFrame API (reports.api)."""

    requests: Requests
    frame: Frame
    ok: Ok
    epoch: Ints  # per request: the changes settled before it started
    within: Bools  # per request (read for the successful ones): wholly in a settled epoch
    forced: Bools  # per switch
    phase: NDArray[np.int8]
    failed: Bools  # counted errors
    judged: Bools  # per session


@dataclass
class Analysis:
    summary: Summary
    sessions: pd.DataFrame  # one row per session: the sessions CSV
    timeline: Timeline
    rows: Rows | None  # None when analysed with keep_rows=False
    curves: Curves  # the page's distribution curves
    lanes: Lanes  # the page's swimlane


@dataclass
class Frame:
    """All requests, sorted by session then start; session codes dense in 0..S-1."""

    sess: NDArray[np.int32]
    ts: Floats
    end: Floats
    rt: Floats
    status: NDArray[np.int32]
    cont: NDArray[np.int32]
    cls: NDArray[np.int8]
    ok: Bools
    first_row: Ints  # index of each session's first row
    n_sessions: int
    n_containers: int
    failed_rows: NDArray[np.intp]  # the rows that did not succeed (not `ok`), ascending


@dataclass
class Ok:
    """The successful requests of a Frame, as flags on its rows: its arrays are read through
    `mask`, never copied (a run with failed requests takes about the memory of one without).
    A session's previous successful request is the one before in the session, failed ones
    skipped."""

    mask: Bools  # succeeded (the Frame's `ok`)
    everyone: bool  # every request succeeded: `mask` need not be applied
    first: Bools  # the session's first successful request
    switch: Bools  # succeeded, on another container than the session's previous success
    judged: Bools  # the session asks for affinity (every row; a view when all are judged)


# -- sorting -----------------------------------------------------------------------------------


ORDER_BLOCK_ROWS = 1 << 22  # rows per block of the passes that need a temporary per row


def stable_order(keys: NDArray[np.integer]) -> NDArray[np.integer]:
    """A stable argsort of non-negative integer keys; the row indices come back as int32 when
    they fit (half the memory of a day's run). Keys below the number of rows (a run's session
    codes): `counting_order`, a radix and counting sort that needs no temporary per row but
    its result (4 bytes a row). Larger ones (times): one value sort of packed int64 keys
    (key, row), which numpy does several times faster than an argsort (a peak of 12 bytes a
    row)."""
    n = len(keys)
    if not n:
        return np.empty(0, dtype=np.int32)
    top = int(keys.max())
    if top < min(1 << 32, max(n, 1 << 16)) and int(keys.min()) >= 0 \
            and n <= np.iinfo(np.int32).max:
        return counting_order(keys, top + 1)
    index_bits = max(1, (n - 1).bit_length())
    if index_bits + top.bit_length() > 63:
        return np.argsort(keys, kind="stable")
    packed = keys.astype(np.int64) << index_bits
    for first in range(0, n, ORDER_BLOCK_ROWS):  # the row numbers, a block at a time
        last = min(n, first + ORDER_BLOCK_ROWS)
        packed[first:last] |= np.arange(first, last, dtype=np.int64)
    packed.sort()
    packed &= (1 << index_bits) - 1
    if n <= np.iinfo(np.int32).max:
        return packed.astype(np.int32)
    return packed.astype(np.intp, copy=False)


COUNTING_BLOCK_ROWS = 1 << 18  # rows sorted at a time (counting_order): its temporaries small


def counting_order(keys: NDArray[np.integer], size: int) -> NDArray[np.int32]:
    """The stable argsort of keys in [0, size), as int32 rows, a block of rows at a time: the
    block sorted by a radix sort (numpy's stable argsort of 16-bit keys, one pass a 16-bit
    digit), then each key's rows placed after that key's rows of the blocks before (a counting
    sort). Memory: the result and a block's temporaries."""
    n = len(keys)
    counts = np.zeros(size, dtype=np.int64)
    for first in range(0, n, ORDER_BLOCK_ROWS):
        counts += np.bincount(keys[first:first + ORDER_BLOCK_ROWS], minlength=size)
    free = np.cumsum(counts) - counts  # where each key's next row goes
    del counts
    order = np.empty(n, dtype=np.int32)
    for first in range(0, n, COUNTING_BLOCK_ROWS):
        block = keys[first:first + COUNTING_BLOCK_ROWS]
        rows = np.argsort((block & 0xFFFF).astype(np.uint16), kind="stable")
        if size > 1 << 16:  # the high digit next: stable, so the low one orders its ties
            rows = rows[np.argsort((block[rows] >> 16).astype(np.uint16), kind="stable")]
        ordered = block[rows]
        begin = np.flatnonzero(starts_of_runs(ordered))  # each key's stretch of the block
        length = np.diff(np.append(begin, len(ordered)))
        key = ordered[begin]
        del ordered
        into = np.repeat(free[key] - begin, length)
        into += np.arange(len(rows))
        order[into] = rows + first
        free[key] += length
    return order


def in_session_order(ts: Floats, sess: NDArray[np.integer]) -> bool:
    """Are the rows, sorted by session, in start order within each session? Block by block
    (a block's temporaries, never the run's)."""
    n = len(ts)
    for first in range(0, max(n - 1, 0), ORDER_BLOCK_ROWS):
        stop = min(n, first + ORDER_BLOCK_ROWS + 1)  # one row of overlap
        t, s = ts[first:stop], sess[first:stop]
        if ((t[1:] < t[:-1]) & (s[1:] == s[:-1])).any():
            return False
    return True


def sort_by_session(requests: Requests) -> None:
    """Reorder the requests in place by session, then start time; session codes dense.

    A Locust user sends its requests one after the other and the recorder writes them as they
    complete, so the rows of one session are already in start order: one stable sort by
    session is enough, and that is checked on the sorted rows. When it is not so, they are
    sorted again, by time and then by session (the rows of a session stay in file order, as
    a sort of the file's rows would leave them)."""
    requests.permute(stable_order(requests.session.codes))  # a column at a time: the old
    ts, sess = requests.ts, requests.session.codes  # one freed before the next
    if not in_session_order(ts, sess):
        by_time = stable_order(((ts - ts.min()) * 1e6).astype(np.int64)) \
            if float(ts.max() - ts.min()) < 1e12 else np.argsort(ts, kind="stable")
        order = by_time[stable_order(sess[by_time])]
        del by_time, ts, sess
        requests.permute(order)
        del order
    else:
        del ts, sess
    codes = requests.session.codes
    used = np.bincount(codes, minlength=len(requests.session.names)) > 0
    if not used.all():  # dictionary entries no row uses: renumber densely
        dense = (np.cumsum(used) - 1).astype(np.int32)
        names = requests.session.names
        requests.session = Labels(dense[codes], [names[i] for i in np.flatnonzero(used)])


def starts_of_runs(values: NDArray[np.integer]) -> Bools:
    new = np.empty(len(values), dtype=np.bool_)
    if len(values):
        new[0] = True
        np.not_equal(values[1:], values[:-1], out=new[1:])
    return new


def ends_of_runs(values: NDArray[np.integer]) -> Bools:
    last = np.empty(len(values), dtype=np.bool_)
    if len(values):
        last[-1] = True
        np.not_equal(values[1:], values[:-1], out=last[:-1])
    return last


# -- classification ----------------------------------------------------------------------------


def classify(status: NDArray[np.int32], has_container: Bools) -> NDArray[np.int8]:
    cls = np.full(len(status), OTHER, dtype=np.int8)
    cls[(status >= 400) & (status < 500)] = S4XX
    cls[(status >= 500) & (status < 600)] = S5XX
    cls[status == 401] = S401
    cls[status == 429] = S429
    cls[status == 503] = S503
    cls[status == 0] = CONNECTION
    two = (status >= 200) & (status < 300)
    cls[two & has_container] = OK
    cls[two & ~has_container] = BAD_BODY
    return cls


def stream_errors(cls: NDArray[np.int8], status: NDArray[np.int32], error: Labels) -> None:
    """A 2xx stream that was cut ("stream cut: ...") or came short ("stream short: ...") is a
    failure of its own class, though it named a container (docs/metrics.md#errors)."""
    kinds = np.full(len(error.names) + 1, -1, dtype=np.int8)  # the last: null error
    for i, text in enumerate(error.names):
        if text.startswith(STREAM_CUT_PREFIX):
            kinds[i] = STREAM_CUT
        elif text.startswith(STREAM_SHORT_PREFIX):
            kinds[i] = STREAM_SHORT
    if not (kinds >= 0).any():
        return
    kind = kinds[error.codes]
    hit = (kind >= 0) & (status >= 200) & (status < 300)
    cls[hit] = kind[hit]


def make_frame(requests: Requests, n_containers: int) -> Frame:
    sess = requests.session.codes
    cont = requests.container.codes
    cls = classify(requests.status, cont >= 0)
    stream_errors(cls, requests.status, requests.error)
    end = requests.response_time_ms * 0.001
    end += requests.ts
    ok = cls == OK
    return Frame(sess, requests.ts, end,
                 requests.response_time_ms, requests.status, cont, cls, ok,
                 np.flatnonzero(starts_of_runs(sess)), len(requests.session.names),
                 n_containers, np.flatnonzero(~ok))


def failed_stretches(frame: Frame) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """The first and last row of each stretch of consecutive failed rows (the few)."""
    rows = frame.failed_rows
    breaks = np.flatnonzero(np.diff(rows) != 1)
    return (rows[np.concatenate(([0], breaks + 1))] if len(rows) else rows,
            rows[np.concatenate((breaks, [len(rows) - 1]))] if len(rows) else rows)


def successful_requests(frame: Frame, judged_sessions: Bools) -> Ok:
    """The one definition of a successful request (the Frame's `ok`: classified OK) and of
    its flags. The flags are those of every row, the session's previous row taken as the
    previous success; then the few failed rows are taken out: their flags cleared, and the
    success after each stretch of failed rows judged against the success before it (no copy
    of the successful rows)."""
    n = len(frame.ts)
    everyone = not len(frame.failed_rows)
    judged = np.broadcast_to(np.True_, (n,)) if judged_sessions.all() \
        else judged_sessions[frame.sess]
    first, switch = run_flags(frame.sess, frame.cont)
    if everyone:
        return Ok(frame.ok, True, first, switch, judged)
    first[frame.failed_rows] = False
    switch[frame.failed_rows] = False
    lo, hi = failed_stretches(frame)
    after = hi + 1  # a success: the row after a stretch of failures
    keep = after < n
    before, after = lo[keep] - 1, after[keep]
    same = before >= 0
    same[same] = frame.sess[before[same]] == frame.sess[after[same]]
    first[after] = ~same
    switch[after] = same & (frame.cont[after] != frame.cont[before])
    return Ok(frame.ok, False, first, switch, judged)


def run_flags(sess: NDArray[np.int32], cont: NDArray[np.int32]) -> tuple[Bools, Bools]:
    """Of consecutive answers sorted by session: each session's first, and the switches (a
    container unlike the one before in the same session)."""
    first = starts_of_runs(sess)
    switch = np.zeros(len(sess), dtype=np.bool_)
    if len(sess) > 1:
        switch[1:] = ~first[1:] & (cont[1:] != cont[:-1])
    return first, switch


def session_blocks(sess: NDArray[np.int32], n_sessions: int, rows: int
                   ) -> list[tuple[int, int]]:
    """[a, b) bounds of blocks of whole sessions, about `rows` rows each, of rows sorted by
    session (a session longer than that is a block of its own)."""
    edges = np.unique(np.concatenate(([0], sess[::rows][1:], [n_sessions]))).astype(np.int64)
    at = np.searchsorted(sess, edges.astype(sess.dtype))  # (in its dtype: no wider copy)
    return [(int(at[j]), int(at[j + 1])) for j in range(len(edges) - 1)]


def count_where(values: NDArray[np.integer], where: Bools | None, size: int) -> Ints:
    """np.bincount(values[where], minlength=size)[:size] (where None: every row), a block at
    a time: no temporary per row of the run."""
    counts = np.zeros(size, dtype=np.int64)
    for at in range(0, len(values), ORDER_BLOCK_ROWS):
        block = values[at:at + ORDER_BLOCK_ROWS]
        if where is not None:
            block = block[where[at:at + ORDER_BLOCK_ROWS]]
        counts += np.bincount(block, minlength=size)[:size]
    return counts


@dataclass
class Spans:
    """Per container code: its successful requests, their first and last start."""

    counts: Ints
    first: Floats
    last: Floats


def container_spans(frame: Frame) -> Spans:
    """Per container code: its successful requests, their first and last start. Rows are
    sorted by session, then start: in a stretch of consecutive successful rows of one session
    on one container, the first starts first and the last last. So the stretches are found (a
    block of rows at a time: no temporary per row of the run) and only their ends are read."""
    c = frame.n_containers
    counts = np.zeros(c, dtype=np.int64)
    first = np.full(c, np.inf)
    last = np.full(c, -np.inf)
    n = len(frame.ts)
    for at in range(0, n, ORDER_BLOCK_ROWS):
        stop = min(n, at + ORDER_BLOCK_ROWS)
        new = starts_of_runs(frame.cont[at:stop])  # a new stretch: another container,
        lo, hi = np.searchsorted(frame.first_row, [at, stop])
        new[frame.first_row[lo:hi] - at] = True  # another session,
        lo, hi = np.searchsorted(frame.failed_rows, [at, stop])
        failed = frame.failed_rows[lo:hi] - at
        new[failed] = True  # a failed row (a stretch of its own, left out) or the row after
        new[failed[failed + 1 < stop - at] + 1] = True
        begin = np.flatnonzero(new)
        end = np.append(begin[1:], stop - at) - 1
        kept = frame.ok[at + begin]
        begin, end = at + begin[kept], at + end[kept]
        cont = frame.cont[begin]
        np.add.at(counts, cont, end - begin + 1)
        np.minimum.at(first, cont, frame.ts[begin])
        np.maximum.at(last, cont, frame.ts[end])
    return Spans(counts, first, last)


def judge(requests: Requests, frame: Frame) -> tuple[Bools, NDArray[np.int8], str]:
    """Per session: does it ask for affinity, and its affinity code (index into AFFINITIES,
    -1 unknown); the source, "recorded" or "assumed". A session's affinity is that of its first
    request; a session whose file does not say is judged (assumed to ask for affinity). The
    reader (reports.requestfile) has refused any value that is not one of AFFINITIES."""
    aff = requests.affinity
    known = [a for a in aff.names if a in AFFINITIES]
    if not known or not (aff.codes >= 0).any():
        unknown = np.full(frame.n_sessions, -1, dtype=np.int8)
        return np.ones(frame.n_sessions, dtype=np.bool_), unknown, "assumed"
    remap = np.array([AFFINITIES.index(a) for a in aff.names] + [-1], dtype=np.int8)
    per_session = remap[aff.codes[frame.first_row]]
    judged = per_session != AFFINITIES.index("none")
    return judged, per_session, "recorded"


# -- membership --------------------------------------------------------------------------------


def membership(run: RawRun, spans: Spans, containers: list[str], start: float,
               end: float, config: ReportConfig) -> Membership:
    if run.events is not None:
        return epochs.from_events(run.events, start, end, config.change_window_s,
                                  settle_s=config.settle_s)
    return epochs.infer(containers, spans.first, spans.last, start, end, config.change_window_s,
                        config.infer_margin_s)


@dataclass
class Switches:
    """The successful requests on another container than the session's previous success (the
    few), as rows; and per switch, was it forced by a membership change (forced_switches)."""

    rows: NDArray[np.intp]
    forced: Bools


@dataclass
class Matched:
    """Judged sessions active on both sides of a change: its index, owners before and after
    (the settled one), and when the session first reached its new owner."""

    change: Ints
    session: Ints
    before: NDArray[np.int32]
    after: NDArray[np.int32]
    reached_ts: Floats


def epoch_of(ts: Floats, end: Floats, starts: Floats, settled: Floats
             ) -> tuple[Ints, Bools, Bools]:
    """Per request: how many changes had settled before it started (its epoch); whether it
    started while one was under way or settling ([start, settled]); whether it lies wholly
    within the settled part of its epoch (started after the last change settled, answered
    before the next one began)."""
    if not len(starts):
        # no change: epoch 0 and nothing inside a change (zeros: pages the OS maps only when
        # written), every request within (one value for all: no memory)
        nothing = np.zeros(len(ts), dtype=np.bool_)
        return (np.zeros(len(ts), dtype=np.int64), nothing,
                np.broadcast_to(np.True_, (len(ts),)))
    epoch = np.searchsorted(settled, ts, side="left").astype(np.int64)
    latest = np.searchsorted(starts, ts, side="right") - 1
    inside = (latest >= 0) & (ts <= settled[np.maximum(latest, 0)])
    k = len(starts)
    within = ~inside & ((epoch >= k) | (end < starts[np.minimum(epoch, k - 1)]))
    return epoch, inside, within


def match_changes(frame: Frame, ok: Ok, epoch: Ints, inside: Bools, starts: Floats
                  ) -> Matched:
    """Owner before = last request answered before the change (and started after the previous
    one settled); owner after = the settled owner: first request started after the change
    settled (and before the next one). Judged sessions only."""
    k = len(starts)
    if k == 0:
        empty = np.empty(0, dtype=np.int64)
        return Matched(empty, empty, empty.astype(np.int32), empty.astype(np.int32),
                       empty.astype(np.float64))
    width = k + 1
    keys = frame.sess.astype(np.int64) * width + epoch
    after_rows = np.flatnonzero(~inside & (epoch >= 1) & ok.judged & ok.mask)
    after_rows = after_rows[starts_of_runs(keys[after_rows])]
    clipped = np.minimum(epoch, k - 1)
    before_rows = np.flatnonzero((epoch < k) & (frame.end < starts[clipped]) & ok.judged
                                 & ~inside & ok.mask)
    before_rows = before_rows[ends_of_runs(keys[before_rows])]
    common, ia, ib = np.intersect1d(keys[after_rows] - 1, keys[before_rows],
                                    assume_unique=True, return_indices=True)
    after_rows, before_rows = after_rows[ia], before_rows[ib]
    change, session = common % width, common // width
    after = frame.cont[after_rows]
    return Matched(change, session, frame.cont[before_rows], after,
                   reached(frame, ok, inside, starts, change, session, after,
                           frame.ts[after_rows]))


def reached(frame: Frame, ok: Ok, inside: Bools, starts: Floats, change: Ints,
            session: Ints, after: NDArray[np.int32], after_ts: Floats) -> Floats:
    """When each matched session first reached its settled owner after the change began: its
    first request there while the change was under way or settling, else the settled request.
    (np.unique: the first occurrence of each (session, change, container) key among the
    few requests that start inside a change, in start order.)"""
    rows = np.flatnonzero(inside & ok.mask)
    if not len(rows):
        return after_ts
    cont = frame.cont[rows]
    k, c = len(starts), int(max(cont.max(initial=0), after.max(initial=0))) + 1
    latest = np.searchsorted(starts, frame.ts[rows], side="right") - 1
    keys = (frame.sess[rows].astype(np.int64) * k + latest) * c + cont
    unique, first = np.unique(keys, return_index=True)
    wanted = (session * k + change) * c + after
    where = np.minimum(np.searchsorted(unique, wanted), len(unique) - 1)
    found = unique[where] == wanted
    ts = np.where(found, frame.ts[rows[first[where]]], np.inf)
    return np.minimum(ts, after_ts)


def change_summaries(matched: Matched, members: Membership, index: dict[str, int],
                     n_containers: int, run_start: float, settle_s: float
                     ) -> tuple[list[ChangeSummary], Bools]:
    changes = members.changes
    k = len(changes)
    live_after = np.zeros((k, n_containers), dtype=np.bool_)
    added = np.zeros((k, n_containers), dtype=np.bool_)
    for i, change in enumerate(changes):
        live_after[i, [index[c] for c in change.live_after]] = True
        added[i, [index[c] for c in change.added]] = True
    remapped = matched.before != matched.after
    collateral = (remapped & live_after[matched.change, matched.before]
                  & ~added[matched.change, matched.after])
    sessions = np.bincount(matched.change, minlength=k)
    moved = np.bincount(matched.change[remapped], minlength=k)
    side = np.bincount(matched.change[collateral], minlength=k)
    restick = (matched.reached_ts - members.starts[matched.change])[remapped]
    restick_by = split_by(restick, matched.change[remapped], k)
    out = [change_summary(c, int(sessions[i]), int(moved[i]), int(side[i]), restick_by[i],
                          run_start, settle_s) for i, c in enumerate(changes)]
    return out, remapped


def split_by(values: Floats, groups: Ints, k: int) -> list[Floats]:
    order = np.argsort(groups, kind="stable")
    bounds = np.cumsum(np.bincount(groups, minlength=k))[:-1]
    return np.split(values[order], bounds)


def change_summary(change: epochs.Change, sessions: int, moved: int, collateral: int,
                   restick: Floats, run_start: float, settle_s: float) -> ChangeSummary:
    expected = change.expected_fraction
    fraction = moved / sessions if sessions else None
    excess = z = None
    if fraction is not None and expected:
        excess = fraction / expected
        if 0 < expected < 1:
            z = (fraction - expected) / math.sqrt(expected * (1 - expected) / sessions)
    ci = wilson(moved, sessions)
    return ChangeSummary(
        at=change.start, at_offset_s=change.start - run_start, end=change.end,
        settled_at=change.end + settle_s,
        causes=list(change.causes), added=sorted(change.added), removed=sorted(change.removed),
        live_before=len(change.live_before), live_after=len(change.live_after),
        sessions=sessions, remapped=moved, remapped_fraction=fraction,
        remapped_fraction_ci=list(ci) if ci else None, expected_fraction=expected,
        excess=excess, z=z, collateral=collateral,
        restick_p50_s=float(np.median(restick)) if len(restick) else None,
        restick_max_s=float(restick.max()) if len(restick) else None)


ANSWER_BLOCK_ROWS = 1 << 20  # requests per block of whole sessions (successful_requests, answers)


def judge_answers(ok: Ok, frame: Frame, judged: Bools, members: Membership,
                  index: dict[str, int], n_containers: int, settled: Floats, settle_s: float,
                  switch_rows: NDArray[np.intp], switch_prev: NDArray[np.intp]
                  ) -> per_answer.PerAnswer:
    """reports.collateral.judge_answers over blocks of whole sessions, about
    ANSWER_BLOCK_ROWS requests each, added up. Only a switch (`switch_rows`, the answer
    before each at `switch_prev`) can be collateral: those of the judged sessions are the
    moves. Each figure counts a session's own answers (a repeat answer and the one before it,
    never across sessions) or its own requests in flight, so the sums are the run's; with
    changes, the spans of the repeat answers and the requests in flight (some 40 bytes a
    request) take the memory of one block, not of the run."""
    k = len(members.changes)
    blocks = []
    nothing = (np.empty(0), np.empty(0))
    for a, b in session_blocks(frame.sess, frame.n_sessions, ANSWER_BLOCK_ROWS):
        lo, hi = np.searchsorted(switch_rows, [a, b])
        moved, prev = switch_rows[lo:hi], switch_prev[lo:hi]
        mine = np.asarray(ok.judged[moved])
        moved, prev = moved[mine], prev[mine]
        repeat = ~ok.first[a:b] & ok.judged[a:b]
        if not ok.everyone:
            repeat &= ok.mask[a:b]
        spans = flight = nothing
        if k:
            rows = a + np.flatnonzero(repeat)
            spans = (frame.ts[previous_successes(frame, ok, rows)], frame.end[rows])
            mask = judged[frame.sess[a:b]]
            flight = (frame.ts[a:b][mask], frame.end[a:b][mask])
        blocks.append(per_answer.judge_answers(
            per_answer.Moves(frame.ts[prev], frame.cont[prev], frame.ts[moved],
                             frame.end[moved], frame.cont[moved]),
            int(np.count_nonzero(repeat)), members, index, n_containers, settled, settle_s,
            spans, flight))
    if len(blocks) == 1:
        return blocks[0]
    return per_answer.PerAnswer(
        sum(x.total for x in blocks), sum(x.outside for x in blocks),
        sum((x.per_change for x in blocks), np.zeros(k, dtype=np.int64)),
        sum((x.answers for x in blocks), np.zeros(k, dtype=np.int64)),
        sum((x.in_flight for x in blocks), np.zeros(k, dtype=np.int64)),
        sum(x.transitions for x in blocks))


def judge_changes(changes: list[ChangeSummary], answers: per_answer.PerAnswer
                  ) -> list[ChangeSummary]:
    """Collateral per change by the per-answer rule; a change with requests in flight but no
    judged repeat answer across it is not judged, with the reason."""
    for i, c in enumerate(changes):
        c.collateral = int(answers.per_change[i])
        c.answers = int(answers.answers[i])
        c.in_flight = int(answers.in_flight[i])
        if not c.answers:
            c.judged = False
            c.not_judged = (
                f"{c.in_flight} requests of judged sessions in flight, but no session had two "
                "successful answers across or inside the change" if c.in_flight
                else "no request of a judged session during the change")
    return changes


def outages(frame: Frame, start: float, end: float) -> list[Outage]:
    """Stretches of whole seconds from the run's start (`start`: no request starts before it)
    in which requests started and none succeeded (seconds with no request at all join a
    stretch, never start or end one)."""
    if not len(frame.ts) or not len(frame.failed_rows):
        return []
    bins = int((end - start) // 1.0) + 1
    sent = np.zeros(bins, dtype=np.int64)
    for at in range(0, len(frame.ts), ORDER_BLOCK_ROWS):  # a block's temporaries at a time
        offset = frame.ts[at:at + ORDER_BLOCK_ROWS] - start
        sent += np.bincount(offset.astype(np.int64), minlength=bins)[:bins]  # floor: >= 0
    # the failed requests are the few: counted, and the successes are the rest
    failed = np.bincount((frame.ts[frame.failed_rows] - start).astype(np.int64),
                         minlength=bins)[:bins]
    good = sent - failed
    out: list[Outage] = []
    i = 0
    duration = max(end - start, 1e-9)
    while i < bins:
        if good[i] or not failed[i]:
            i += 1
            continue
        j = i
        while j + 1 < bins and not good[j + 1]:
            j += 1
        while not failed[j]:  # trailing seconds with nothing sent are not part of it
            j -= 1
        lo, hi = start + i, min(start + j + 1, end)
        out.append(Outage(lo, hi, lo - start, hi - start, int(failed[i:j + 1].sum()),
                          (hi - lo) / duration))
        i = j + 1
    return out


def run_not_judged(s: Summary, run: RawRun, config: ReportConfig) -> list[str]:
    """Why the run cannot back a stickiness verdict at all (docs/gates.md#not-judged)."""
    reasons = []
    if s.sessions_multi_request and s.containers < 2:
        reasons.append(f"only {s.containers} container answered: stickiness cannot be "
                       "falsified with one container")
    judged_rate = s.session_stickiness
    for name, c in s.user_classes.items():
        if c.judged or c.session_stickiness is None or judged_rate is None:
            continue
        if control_as_sticky(c.sessions_multi_request - c.sessions_multi_container,
                             c.sessions_multi_request, judged_rate):
            reasons.append(
                f"the control class {name} (no session id) is as sticky as the judged "
                f"classes ({c.session_stickiness * 100:.1f}% vs {judged_rate * 100:.1f}%): "
                "the target pins by something other than the session (the connection?)")
    if not config.accept_incomplete:
        reasons += [f"incomplete recording: {n} (--accept-incomplete judges it all the same)"
                    for n in run.incomplete]
    return reasons


def forced_switches(frame: Frame, switch_rows: NDArray[np.intp],
                    switch_prev: NDArray[np.intp], starts: Floats, settled: Floats) -> Bools:
    """Per switch row (`switch_rows`, the session's previous success at `switch_prev`): did a
    change begin, run or settle between the start of the session's previous request and the
    answer to this one? (A request sent just before a change may be routed after it; a proxy
    may move a session while the change settles.) The others are flaps: switches inside a
    settled epoch."""
    if not len(starts) or not len(switch_rows):
        return np.zeros(len(switch_rows), dtype=np.bool_)
    latest = np.searchsorted(starts, frame.end[switch_rows], side="right") - 1
    return (latest >= 0) & (settled[np.maximum(latest, 0)] >= frame.ts[switch_prev])


def previous_successes(frame: Frame, ok: Ok, rows: NDArray[np.integer]
                       ) -> NDArray[np.intp]:
    """The row of each successful request's previous success in its session (`rows`:
    ascending, none a session's first): the row before, but for a row just after a stretch
    of failed rows, the row before that stretch (successful_requests)."""
    prev = np.asarray(rows, dtype=np.intp) - 1
    if ok.everyone or not len(rows):
        return prev
    lo, hi = failed_stretches(frame)
    at = np.searchsorted(rows, hi + 1)
    hit = at < len(rows)
    hit[hit] = rows[at[hit]] == hi[hit] + 1
    prev[at[hit]] = lo[hit] - 1
    return prev


# -- analyze -----------------------------------------------------------------------------------


def analyze(run: RawRun, config: ReportConfig, keep_rows: bool = True) -> Analysis:
    """Every figure of the report. Sorts `run.requests` in place (by session, then ts).
    keep_rows=False: the per-request arrays behind the figures (Analysis.rows, what the API's
    `run.requests` is built from) are not kept: the page needs only the curves and lanes."""
    sort_by_session(run.requests)
    requests = run.requests
    containers = container_names(run)
    index = {name: i for i, name in enumerate(containers)}
    frame = make_frame(requests, len(containers))
    statuses = status_counts(frame.status)
    if not keep_rows:  # nothing reads the status codes again (their classes are in the frame)
        frame.status = requests.status = np.empty(0, dtype=np.int32)
    judged, affinity, affinity_source = judge(requests, frame)
    if config.judge_controls:
        judged = np.ones_like(judged)
    ok = successful_requests(frame, judged)
    start, end = float(frame.ts.min()), float(frame.end.max())
    spans = container_spans(frame)
    members = membership(run, spans, containers, start, end, config)
    starts, settled = members.starts, members.ends + config.settle_s
    epoch, inside, within = epoch_of(frame.ts, frame.end, starts, settled)
    matched = match_changes(frame, ok, epoch, inside, starts)
    changes, remapped = change_summaries(matched, members, index, len(containers), start,
                                         config.settle_s)
    switch_rows = np.flatnonzero(ok.switch)  # the few, found once
    switch_prev = previous_successes(frame, ok, switch_rows)
    answers = judge_answers(ok, frame, judged, members, index, len(containers), settled,
                            config.settle_s, switch_rows, switch_prev)
    changes = judge_changes(changes, answers)
    switches = Switches(switch_rows, forced_switches(frame, switch_rows, switch_prev, starts,
                                                     settled))
    phase = phases(frame, members, starts, members.ends, config.change_margin_s)
    if not keep_rows:  # what is left does not need the answer times
        frame.end = np.empty(0, dtype=np.float64)
    failed = errors_of(frame, phase)
    per_session = session_table(frame, ok, switches, matched, remapped, failed, requests,
                                containers, judged, affinity)
    cache = requests.cache.codes
    constant = cache.ndim == 1 and cache.strides == (0,)  # load.constant: one value, no memory
    curves = Curves({}, {}, {}, {}, bool(((cache[:1] if constant else cache) >= 0).any()))
    latency = latencies(frame, ok, requests, curves)
    summary = build_summary(run, frame, ok, members, changes, epoch, within, switches, phase,
                            failed, per_session, latency, containers, spans, start, end, config,
                            affinity_source, statuses, curves)
    summary.collateral = answers.total if answers.transitions else None
    summary.collateral_outside_changes = answers.outside
    summary.outages = outages(frame, start, end)
    summary.notes += [f"Outage: no request succeeded from {o.start_offset_s:.0f} s to "
                      f"{o.end_offset_s:.0f} s ({o.share * 100:.0f}% of the run; {o.failed:,} "
                      "requests failed)." for o in summary.outages]
    summary.not_judged = run_not_judged(summary, run, config)
    lanes = lanes_of_rows(frame.ts, frame.ok, frame.sess, frame.first_row, frame.cont,
                          requests.session.names, requests.container.names, per_session.table,
                          config.swimlane_sessions, config.swimlane_bins)
    rows = Rows(requests, frame, ok, epoch, within, switches.forced, phase, failed, judged) \
        if keep_rows else None
    return Analysis(summary, per_session.table, timeline(frame, members, run, config), rows,
                    curves, lanes)


def container_names(run: RawRun) -> list[str]:
    names = list(run.requests.container.names)
    seen = set(names)
    for event in run.events or ():
        for cid in (event.container_id, *event.live):
            if cid and cid not in seen:
                seen.add(cid)
                names.append(cid)
    return names


def phases(frame: Frame, members: Membership, starts: Floats, ends: Floats,
           margin: float) -> NDArray[np.int8]:
    phase = np.zeros(len(frame.ts), dtype=np.int8)
    if len(starts):
        latest = np.searchsorted(starts, frame.end, side="right") - 1
        near = (latest >= 0) & (frame.ts <= ends[np.maximum(latest, 0)] + margin)
        phase[near] = CHANGE
    if members.initial == 0 or (members.counts == 0).any():
        gone = ((members.live_count_at(frame.ts) == 0)
                | (members.live_count_at(frame.end) == 0))
        phase[gone] = NO_LIVE
    return phase


def errors_of(frame: Frame, phase: NDArray[np.int8]) -> Bools:
    """The requests that count as errors: every one that did not succeed, whatever its cause
    (the 503s answered while no replica was live are also counted apart, beside)."""
    return ~frame.ok


# -- per session -------------------------------------------------------------------------------


@dataclass
class SessionStats:
    table: pd.DataFrame  # the sessions CSV, one row per session in code order
    n_ok: Ints
    n_containers: Ints
    main: Ints  # main container code, -1 when none
    main_count: Ints
    container_sessions: Ints
    container_main_sessions: Ints
    switches: Ints
    flaps: Ints
    session_class: Ints
    judged: Bools
    affinity: NDArray[np.int8]


PAIR_SLOTS_PER_ROW = 4  # counted in slots when a block's (session, container) slots are few


def pair_counts(sess: NDArray[np.int32], cont: NDArray[np.int32], n_containers: int,
                where: Bools | None = None, without: NDArray[np.intp] | None = None
                ) -> tuple[Ints, Ints, Ints]:
    """Distinct (session, container) pairs with their request counts, session-major, of the
    rows in `where` (None: every row) but the rows `without` (ascending, among those: the few
    failed ones, counted and taken off). Rows are sorted by session: a block of whole
    sessions at a time, its pairs counted in one slot per (session, container) with
    np.bincount (no sort), or when the slots would outnumber its rows, by a value sort of its
    keys."""
    width = n_containers + 1  # slot 0 of each session: no container (-1)
    n = len(sess)
    out: list[tuple[Ints, Ints]] = []
    for a, b in session_blocks(sess, int(sess[-1]) + 1 if n else 0, ANSWER_BLOCK_ROWS):
        low = int(sess[a])
        keys = (sess[a:b] - np.int32(low)).astype(np.int64)
        keys *= width
        keys += cont[a:b]
        keys += 1
        if where is not None:
            keys = keys[where[a:b]]
        taken = np.empty(0, dtype=np.int64)
        if without is not None:
            lo, hi = np.searchsorted(without, [a, b])
            rows = without[lo:hi]
            taken = (sess[rows] - np.int32(low)).astype(np.int64) * width + cont[rows] + 1
        slots = (int(sess[b - 1]) + 1 - low) * width
        if slots <= PAIR_SLOTS_PER_ROW * (b - a):
            counts = np.bincount(keys, minlength=slots)
            if len(taken):
                counts -= np.bincount(taken, minlength=slots)
            pairs = np.flatnonzero(counts)
            counts = counts[pairs]
        else:
            keys.sort()
            firsts = np.flatnonzero(starts_of_runs(keys))
            counts = np.diff(np.append(firsts, len(keys)))
            pairs = keys[firsts]
            gone, times = np.unique(taken, return_counts=True)
            counts[np.searchsorted(pairs, gone)] -= times
            pairs, counts = pairs[counts > 0], counts[counts > 0]
        named = pairs % width != 0
        out.append((pairs[named] + low * width, counts[named]))
    pairs = np.concatenate([p for p, _ in out]) if out else np.empty(0, dtype=np.int64)
    counts = np.concatenate([c for _, c in out]) if out else np.empty(0, dtype=np.int64)
    return pairs // width, pairs % width - 1, counts.astype(np.int64)


def main_containers(p_sess: Ints, p_cont: Ints, counts: Ints, n_sessions: int
                    ) -> tuple[Ints, Ints]:
    """Per session: the container with most requests (ties: the lower code), and its count."""
    main = np.full(n_sessions, -1, dtype=np.int64)
    best = np.zeros(n_sessions, dtype=np.int64)
    if len(p_sess):
        order = np.lexsort((p_cont, -counts, p_sess))
        first = order[starts_of_runs(p_sess[order])]
        main[p_sess[first]] = p_cont[first]
        best[p_sess[first]] = counts[first]
    return main, best


def by_code(codes: NDArray[np.integer], names: Sequence[str]) -> pd.Categorical[str]:
    """Codes into `names` as a pandas Categorical (-1 = NaN): a groupby key that pandas
    groups by its codes, with no hashing of strings."""
    return pd.Categorical.from_codes(np.asarray(codes), categories=pd.Index(list(names)),
                                     validate=False)


SESSION_BLOCK_ROWS = 1 << 20  # requests per block of whole sessions


def per_session_rows(frame: Frame, switches: Switches, failed: Bools) -> pd.DataFrame:
    """Per session (in code order): requests, errors, first and last start, mean response
    time, successful requests, switches, flaps. A pandas groupby over blocks of whole
    sessions (about SESSION_BLOCK_ROWS requests each; rows are sorted by session): each
    session's figures are its own rows', so the blocks give the run's, and the groupby's
    temporaries take the memory of a block, not of the run."""
    switch_rows = switches.rows
    flap_rows = switch_rows[~switches.forced]
    blocks = []
    for a, b in session_blocks(frame.sess, frame.n_sessions, SESSION_BLOCK_ROWS):
        first_session = int(frame.sess[a])
        switch = np.zeros(b - a, dtype=np.bool_)
        switch[switch_rows[(switch_rows >= a) & (switch_rows < b)] - a] = True
        flap = np.zeros(b - a, dtype=np.bool_)
        flap[flap_rows[(flap_rows >= a) & (flap_rows < b)] - a] = True
        session = pd.Categorical.from_codes(
            frame.sess[a:b] - np.int32(first_session),
            categories=pd.RangeIndex(int(frame.sess[b - 1]) + 1 - first_session),
            validate=False)
        every = pd.DataFrame({"session_id": session, "ts": frame.ts[a:b],
                              "rt": frame.rt[a:b], "failed": failed[a:b], "ok": frame.ok[a:b],
                              "switch": switch, "flap": flap}, copy=False)
        blocks.append(every.groupby("session_id", observed=False, sort=True).agg(
            requests=("ts", "size"), errors=("failed", "sum"), first_ts=("ts", "first"),
            last_ts=("ts", "last"), mean_ms=("rt", "mean"), ok_requests=("ok", "sum"),
            switches=("switch", "sum"), flaps=("flap", "sum")))
        del every, switch, flap, session
    return pd.concat(blocks, ignore_index=True) if len(blocks) != 1 else blocks[0]


def session_table(frame: Frame, ok: Ok, switches: Switches, matched: Matched, remapped: Bools,
                  failed: Bools, requests: Requests, containers: list[str], judged: Bools,
                  affinity: NDArray[np.int8]) -> SessionStats:
    """One row per session, with pandas groupbys on the session's categorical codes (rows are
    sorted by session, then start). numpy: the main container (pair_counts: pandas'
    two-key groupby was 5x slower at 10 M rows)."""
    s, c = frame.n_sessions, frame.n_containers
    names = requests.session.names
    per = per_session_rows(frame, switches, failed)

    n_ok = per["ok_requests"].to_numpy(np.int64)
    p_sess, p_cont, counts = pair_counts(frame.sess, frame.cont, c, without=frame.failed_rows)
    n_cont = np.bincount(p_sess, minlength=s)
    main, best = main_containers(p_sess, p_cont, counts, s)
    remaps = pd.Series(matched.session[remapped]).value_counts().reindex(
        range(s), fill_value=0).to_numpy(np.int64)
    uc = requests.user_class
    session_class = uc.codes[frame.first_row].astype(np.int64)
    table = pd.DataFrame({
        "session_id": list(names),
        "user_class": by_code(session_class, uc.names),
        "affinity": by_code(affinity, list(AFFINITIES)),
        "judged": judged,
        "requests": per["requests"].to_numpy(np.int64),
        "ok_requests": n_ok,
        "errors": per["errors"].to_numpy(np.int64),
        "containers": n_cont,
        "main_container": by_code(main, containers),
        "main_share": np.where(n_ok > 0, best / np.maximum(n_ok, 1), np.nan),
        "switches": per["switches"].to_numpy(np.int64),
        "flaps": per["flaps"].to_numpy(np.int64),
        "remaps": remaps,
        "first_ts": per["first_ts"].to_numpy(np.float64),
        "last_ts": per["last_ts"].to_numpy(np.float64),
        "mean_ms": per["mean_ms"].round(3).to_numpy(np.float64),
    })
    table["session_id"] = table["session_id"].astype("category")
    judged_main = main[(main >= 0) & judged]
    return SessionStats(table, n_ok, n_cont, main, best, np.bincount(p_cont, minlength=c),
                        np.bincount(judged_main, minlength=c),
                        table["switches"].to_numpy(), table["flaps"].to_numpy(),
                        session_class, judged, affinity)


# -- the summary -------------------------------------------------------------------------------


def build_summary(run: RawRun, frame: Frame, ok: Ok, members: Membership,
                  changes: list[ChangeSummary], epoch: Ints, within: Bools,
                  switches: Switches,
                  phase: NDArray[np.int8], failed: Bools, per: SessionStats,
                  latency: dict[str, Latency], containers: list[str], spans: Spans,
                  start: float, end: float, config: ReportConfig, affinity_source: str,
                  statuses: dict[str, int], curves: Curves | None = None) -> Summary:
    """The stickiness figures cover the judged sessions (those that ask for affinity); errors,
    latency and the timeline every request."""
    judged = per.judged
    multi = (per.n_ok >= 2) & judged
    n_multi = int(multi.sum())
    n_multi_cont = int((multi & (per.n_containers > 1)).sum())
    judged_ok = per.n_ok[judged]
    total_ok = int(judged_ok.sum())
    main_total = int(per.main_count[judged].sum())
    sessions_ok = int((judged_ok > 0).sum())
    errors = int(failed.sum())
    n = len(frame.ts)
    switch_judged = ok.judged[switches.rows]
    n_switches = int(switch_judged.sum())
    forced_judged = int((switches.forced & switch_judged).sum())
    transitions = total_ok - sessions_ok
    notes = run_notes(run, members, containers, per, affinity_source)
    counts = epoch_counts(frame, ok, epoch, within, len(members.changes), per)
    pairs, pairs_multi = int(counts.pairs_multi.sum()), int(counts.pairs_multi_cont.sum())
    classes = user_classes(run.requests, failed, per, ok)
    return Summary(
        prefix=run.prefix, request_file=str(run.request_path),
        events_file=str(run.events_path) if run.events_path else None,
        epochs_source=members.source, affinity_source=affinity_source,
        judged_classes=sorted(name for name, c in classes.items() if c.judged),
        settle_s=config.settle_s, start=start, end=end, duration_s=end - start,
        requests=n, ok_requests=int(per.n_ok.sum()), sessions=frame.n_sessions,
        sessions_multi_request=n_multi, sessions_multi_container=n_multi_cont,
        session_stickiness=1 - n_multi_cont / n_multi if n_multi else None,
        session_stickiness_ci=interval(n_multi - n_multi_cont, n_multi),
        same_container_rate=1 - n_switches / transitions if transitions else None,
        same_container_rate_ci=interval(transitions - n_switches, transitions),
        transitions=transitions,
        settled_stickiness=1 - pairs_multi / pairs if pairs else None,
        settled_stickiness_ci=interval(pairs - pairs_multi, pairs),
        settled_pairs_multi_request=pairs, settled_pairs_multi_container=pairs_multi,
        request_stickiness=main_total / total_ok if total_ok else None,
        request_stickiness_ci=interval(main_total, total_ok),
        switches=n_switches, forced_switches=forced_judged, flaps=n_switches - forced_judged,
        sessions_with_flaps=int(((per.flaps > 0) & judged).sum()),
        warm_hit_upper_bound=1 - int(per.n_containers[judged].sum()) / total_ok
        if total_ok else None,
        warm_hit_ideal=1 - sessions_ok / total_ok if total_ok else None,
        errors=errors, error_rate=errors / n, error_rate_ci=interval(errors, n),
        errors_no_live_replica=int(((frame.cls == S503) & (phase == NO_LIVE)).sum()),
        status_counts=statuses,
        error_classes=dict(zip(ERROR_CLASSES, counts_of(frame.cls, len(ERROR_CLASSES)),
                               strict=True)),
        errors_by_phase=errors_by_phase(frame.cls, phase),
        top_errors=top_errors(run.requests, frame.failed_rows),
        containers=int((per.container_sessions > 0).sum()),
        per_container=per_container(containers, spans, per),
        membership_changes=changes,
        epochs=epoch_summaries(members, counts, start, end, config.settle_s),
        balance=balance(frame, ok, members, epoch, within, containers, counts.sessions,
                        per, spans),
        latency={k: v for k, v in latency.items() if k in LATENCY_STATES},
        cache=cache_summary(run.requests, latency),
        ttft=ttft_summary(frame, run.requests, None if curves is None else curves.ttft_cache),
        ttft_by_state=ttft_by_state(ok, frame, run.requests,
                                    None if curves is None else curves.ttft_state),
        inter_token_gap=gap_summary(run.requests),
        user_classes=classes,
        workers=labels_used(run.requests.worker),
        locust=LocustCheck(run.locust.requests, run.locust.failures, n) if run.locust else None,
        notes=notes)


# -- streaming ---------------------------------------------------------------------------------


def percentiles(values: Floats, curves: dict[str, Curve] | None = None, key: str = ""
                ) -> Percentiles:
    """Percentiles of the finite values; with `curves`, their curve too, as curves[key] (the
    finite values are then sorted: np.percentile gives the same figures on them)."""
    values = values[np.isfinite(values)]
    if not len(values):
        return Percentiles()
    if curves is not None:
        values.sort()
        curve = curve_sorted(values)
        if curve is not None:
            curves[key] = curve
    p50, p95, p99 = (float(x) for x in np.percentile(values, [50, 95, 99],
                                                     overwrite_input=True))
    return Percentiles(len(values), p50, p95, p99)


def streaming(requests: Requests) -> bool:
    return bool(np.isfinite(requests.ttft_ms[:1]).any() or np.isfinite(requests.ttft_ms).any())


def ttft_summary(frame: Frame, requests: Requests, curves: dict[str, Curve] | None = None
                 ) -> dict[str, Percentiles] | None:
    """Time to first token of every request that recorded one, by cache state (their curves
    into `curves`, by cache state)."""
    if not streaming(requests):
        return None
    ttft = requests.ttft_ms
    out = {"all": percentiles(ttft, curves, "all")}
    names = [n.lower() for n in requests.cache.names]
    for label in ("hit", "miss"):
        code = names.index(label) if label in names else -2
        out[label] = percentiles(ttft[requests.cache.codes == code], curves, label)
    return out


def ttft_by_state(ok: Ok, frame: Frame, requests: Requests,
                  curves: dict[str, Curve] | None = None) -> dict[str, Percentiles] | None:
    """Time to first token of the successful requests by stickiness state (their curves into
    `curves`)."""
    if not streaming(requests):
        return None
    ttft = requests.ttft_ms
    repeat = ok.mask & ~ok.first & ~ok.switch
    return {"first": percentiles(ttft[ok.first], curves, "first"),
            "repeat": percentiles(ttft[repeat], curves, "repeat"),
            "after_switch": percentiles(ttft[ok.switch], curves, "after_switch")}


def gap_summary(requests: Requests) -> Percentiles | None:
    """Percentiles of each stream's largest gap between two tokens (max_gap_ms)."""
    gaps = requests.max_gap_ms
    if not np.isfinite(gaps).any():
        return None
    return percentiles(gaps)


def labels_used(labels: Labels) -> int:
    """How many names of a string column some row has: a flag per name, set a block of rows at
    a time (no temporary per row of the run)."""
    codes = labels.codes
    if codes.ndim == 1 and codes.strides == (0,):  # one value throughout (load.constant)
        codes = codes[:1]
    seen = np.zeros(len(labels.names) + 1, dtype=np.bool_)  # the last: null
    for first in range(0, len(codes), ORDER_BLOCK_ROWS):
        seen[codes[first:first + ORDER_BLOCK_ROWS]] = True
    return int(seen[:-1].sum())


def interval(successes: int, trials: int) -> list[float] | None:
    ci = wilson(successes, trials)
    return list(ci) if ci else None


def counts_of(values: NDArray[np.integer], size: int) -> list[int]:
    return [int(x) for x in np.bincount(values, minlength=size)[:size]]


def status_counts(status: NDArray[np.int32]) -> dict[str, int]:
    if status.min() >= 0 and status.max() < 1000:
        counts = np.zeros(1000, dtype=np.int64)
        for at in range(0, len(status), ORDER_BLOCK_ROWS):  # a block's temporaries
            counts += np.bincount(status[at:at + ORDER_BLOCK_ROWS], minlength=1000)
        codes = np.flatnonzero(counts)
        return {str(int(c)): int(counts[c]) for c in codes}
    values, counts = np.unique(status, return_counts=True)
    return {str(int(v)): int(n) for v, n in zip(values, counts, strict=True)}


def errors_by_phase(cls: NDArray[np.int8], phase: NDArray[np.int8]) -> dict[str, dict[str, int]]:
    k = len(ERROR_CLASSES)
    table = np.bincount(phase.astype(np.int64) * k + cls, minlength=len(PHASES) * k)
    table = table.reshape(len(PHASES), k)
    return {p: dict(zip(ERROR_CLASSES, (int(x) for x in table[i]), strict=True))
            for i, p in enumerate(PHASES)}


def top_errors(requests: Requests, failed_rows: NDArray[np.intp]) -> list[dict[str, object]]:
    codes = requests.error.codes[failed_rows]
    codes = codes[codes >= 0]
    if not len(codes):
        return []
    counts = np.bincount(codes)
    top = np.argsort(-counts, kind="stable")[:TOP_ERRORS]
    return [{"error": requests.error.names[i], "count": int(counts[i])}
            for i in top if counts[i] > 0]


def per_container(containers: list[str], spans: Spans, per: SessionStats
                  ) -> list[ContainerSummary]:
    """Per container that answered (in code order): its successful requests, first and last
    start (container_spans)."""
    counts, first, last = spans.counts, spans.first, spans.last
    return [ContainerSummary(containers[j], int(counts[j]), int(per.container_sessions[j]),
                             int(per.container_main_sessions[j]), float(first[j]),
                             float(last[j]))
            for j in np.flatnonzero(counts)]


@dataclass
class EpochCounts:
    """Per epoch, over the judged sessions' successful requests wholly in its settled part."""

    sessions: Ints
    requests: Ints
    pairs_multi: Ints  # sessions with 2+ such requests
    pairs_multi_cont: Ints  # of those, answered by 2+ containers


def epoch_counts(frame: Frame, ok: Ok, epoch: Ints, within: Bools, k: int,
                 per: SessionStats) -> EpochCounts:
    if k == 0:  # one epoch, settled throughout: the per-session figures of the judged
        judged = per.judged
        multi = judged & (per.n_ok >= 2)
        return EpochCounts(np.array([int((judged & (per.n_ok > 0)).sum())]),
                           np.array([int(per.n_ok[judged].sum())]),
                           np.array([int(multi.sum())]),
                           np.array([int((multi & (per.n_containers > 1)).sum())]))
    rows = within & ok.judged & ok.mask
    e = epoch[rows]
    keys = frame.sess[rows].astype(np.int64) * (k + 1) + e  # ascending: session, then time
    cont = frame.cont[rows]
    new = starts_of_runs(keys)
    pair = np.cumsum(new) - 1
    size = np.bincount(pair)
    firsts = np.flatnonzero(new)
    moved = np.zeros(len(firsts), dtype=np.bool_)
    if len(cont):
        other = cont != cont[firsts][pair]
        moved = np.bincount(pair[other], minlength=len(firsts)) > 0
    pair_epoch = e[firsts]
    return EpochCounts(np.bincount(pair_epoch, minlength=k + 1),
                       np.bincount(e, minlength=k + 1),
                       np.bincount(pair_epoch[size >= 2], minlength=k + 1),
                       np.bincount(pair_epoch[(size >= 2) & moved], minlength=k + 1))


def epoch_summaries(members: Membership, counts: EpochCounts, start: float, end: float,
                    settle_s: float) -> list[EpochSummary]:
    bounds = [start, *(v for c in members.changes for v in (c.start, c.end)), end]
    out = []
    for i in range(len(members.changes) + 1):
        multi, moved = int(counts.pairs_multi[i]), int(counts.pairs_multi_cont[i])
        out.append(EpochSummary(
            bounds[2 * i], bounds[2 * i + 1], bounds[2 * i] + (settle_s if i else 0.0),
            sorted(members.epochs[i]), int(counts.sessions[i]), int(counts.requests[i]),
            multi, moved, 1 - moved / multi if multi else None))
    return out


def balance(frame: Frame, ok: Ok, members: Membership, epoch: Ints, within: Bools,
            containers: list[str], per_epoch: Ints, per: SessionStats, spans: Spans
            ) -> Balance | None:
    """Balance in the epoch with the most sessions (see summary.Balance)."""
    if not per_epoch.any():
        return None
    best = int(np.argmax(per_epoch))
    c = len(containers)
    if len(members.changes) == 0 and ok.judged.all():  # one epoch: the whole run's figures
        main = per.main
        per_container = spans.counts  # every successful request
    else:
        rows = within & (epoch == best) & ok.judged & ok.mask
        p_sess, p_cont, counts = pair_counts(frame.sess, frame.cont, c, rows)
        main, _ = main_containers(p_sess, p_cont, counts, len(per.n_ok))
        per_container = count_where(frame.cont, rows, c)
    if len(members.changes) == 0 and not ok.judged.all():
        main = np.where(per.judged, main, -1)
    index = {name: i for i, name in enumerate(containers)}
    seen = np.flatnonzero(np.bincount(main[main >= 0], minlength=c))
    live = sorted({index[x] for x in members.epochs[best]} | set(seen.tolist()))
    if not live:
        return None
    sessions = np.bincount(main[main >= 0], minlength=c)[live]
    requests = per_container[live]
    ratio, cv, p = balance_figures(sessions)
    r_ratio, r_cv, r_p = balance_figures(requests)
    n, total = len(live), int(sessions.sum())
    return Balance(
        epoch=best, containers=n, sessions=total, max_over_mean=ratio,
        expected_max_over_mean=expected_max_ratio(n, total), cv=cv,
        expected_cv=math.sqrt((n - 1) / total) if total else None, chi2_p=p,
        requests=int(requests.sum()), requests_max_over_mean=r_ratio, requests_cv=r_cv,
        requests_chi2_p=r_p,
        sessions_per_container={containers[j]: int(x) for j, x in zip(live, sessions,
                                                                      strict=True)},
        requests_per_container={containers[j]: int(x) for j, x in zip(live, requests,
                                                                      strict=True)})


def latency_sorted(values: Floats, owned: bool = False
                   ) -> tuple[Latency, Curve | None, Floats]:
    """Figures of latencies, their curve (of the non-NaN values) and the values sorted (NaN
    last); `owned` values may be sorted in place."""
    if not len(values):
        return Latency(), None, values
    ordered = values if owned else values.copy()
    ordered.sort()
    p50, p95, p99 = (float(x) for x in quantiles_sorted(ordered, [0.5, 0.95, 0.99]))
    figures = Latency(len(ordered), float(ordered.mean()), p50, p95, p99, float(ordered[-1]))
    # numpy sorts NaN last, and its searchsorted finds the first NaN
    return figures, curve_sorted(ordered[:int(np.searchsorted(ordered, np.nan))]), ordered


@dataclass
class Curves:
    """The distribution curves of the report's charts, computed where their values are
    sorted, so that the page needs no per-request table: response times of all requests
    ("all"), of the successful ones ("ok") and of those by state (first, repeat,
    after_switch) and by cache state (hit, miss); TTFT of every request that has one ("all"),
    by cache state and by state."""

    latency: dict[str, Curve]
    latency_cache: dict[str, Curve]
    ttft_cache: dict[str, Curve]
    ttft_state: dict[str, Curve]
    cache_recorded: bool  # some request recorded a cache state


def latency_without(ordered: Floats, removed: Floats, total: float
                    ) -> tuple[Latency, Curve | None]:
    """`latency_sorted` of the sorted `ordered` (no NaN, summing to `total`) with the sorted
    `removed` taken out, read from `ordered` (`stats.sorted_without`): no copy of the rest is
    made or sorted. Its mean is (total - removed) / count."""
    n, kept = sorted_without(ordered, removed)
    if n <= 0:
        return Latency(), None
    p50, p95, p99, top = (float(x) for x in quantiles_at(kept, n, [0.5, 0.95, 0.99, 1.0]))
    mean = (total - float(removed.sum())) / n
    return Latency(n, mean, p50, p95, p99, top), curve_at(kept, n)


def latencies(frame: Frame, ok: Ok, requests: Requests, curves: Curves | None = None
              ) -> dict[str, Latency]:
    """Latency by state (all, a session's first, repeat, first after a switch, errors) and
    by cache hit/miss when recorded; their curves into `curves`. The states but "all" and
    "repeat" are few requests, each sorted from a copy; "all" is sorted once, and "repeat"
    (all but the errors, the first and the after_switch ones) and the curve of the successful
    requests ("ok", all but the errors) are read from it (`latency_without`)."""
    rt = frame.rt
    order = ["all", "first", "repeat", "after_switch", "errors"]  # the figures' order
    figures: dict[str, Latency] = {}
    found: dict[str, Curve | None] = {}
    few: dict[str, Floats] = {}  # the sorted times of the states "repeat" is all without
    for state, rows in (("errors", frame.failed_rows), ("first", ok.first),
                        ("after_switch", ok.switch)):
        figures[state], found[state], few[state] = latency_sorted(rt[rows], owned=True)
    figures["all"], found["all"], ordered = latency_sorted(rt)
    if curves is not None:  # every successful request (a comparison's)
        found["ok"] = found["all"] if ok.everyone else \
            curve_sorted_without(ordered, few["errors"])
    if len(ordered) and not np.isnan(ordered[-1]):  # no NaN (NaN sorts last)
        removed = np.concatenate([few["errors"], few["first"], few["after_switch"]])
        removed.sort()
        figures["repeat"], found["repeat"] = latency_without(
            ordered, removed, float(ordered.sum()))
        del ordered, removed
    else:
        del ordered
        figures["repeat"], found["repeat"], _ = latency_sorted(
            rt[ok.mask & ~ok.first & ~ok.switch], owned=True)
    del few
    names = [n.lower() for n in requests.cache.names]
    for label in ("hit", "miss"):  # one sorted copy at a time
        if label in names:
            state = f"cache {label}"
            order.append(state)
            mask = (requests.cache.codes == names.index(label)) & frame.ok
            figures[state], found[state], _ = latency_sorted(rt[mask], owned=True)
            del mask
    if curves is not None:
        for state, curve in found.items():
            if curve is not None and state != "errors":
                into = curves.latency_cache if state.startswith("cache ") else curves.latency
                into[state.removeprefix("cache ")] = curve
    return {state: figures[state] for state in order}


def cache_summary(requests: Requests, by_state: dict[str, Latency]) -> CacheSummary | None:
    names = [n.lower() for n in requests.cache.names]
    if "hit" not in names and "miss" not in names:
        return None
    codes = requests.cache.codes
    hit = codes == names.index("hit") if "hit" in names else np.zeros(len(codes), np.bool_)
    miss = codes == names.index("miss") if "miss" in names else np.zeros(len(codes), np.bool_)
    hits, misses = int(hit.sum()), int(miss.sum())
    total = hits + misses
    return CacheSummary(hits, misses, hits / total if total else None, interval(hits, total),
                        {"hit": by_state.get("cache hit", Latency()),
                         "miss": by_state.get("cache miss", Latency())})


def user_classes(requests: Requests, failed: Bools, per: SessionStats, ok: Ok
                 ) -> dict[str, UserClassSummary]:
    """Each class's own figures, controls included (never pooled into the headline): a pandas
    groupby of the session table by class. A class's affinity is its sessions' (the first
    that says)."""
    t = per.table
    by = pd.DataFrame({
        "user_class": t["user_class"].cat.add_categories(["(none)"]).fillna("(none)"),
        "affinity": t["affinity"], "judged": t["judged"], "requests": t["requests"],
        "errors": t["errors"], "switches": t["switches"], "flaps": t["flaps"],
        "transitions": np.maximum(t["ok_requests"] - 1, 0),
        "multi": t["ok_requests"] >= 2,
        "multi_cont": (t["ok_requests"] >= 2) & (t["containers"] > 1)})
    groups = by.groupby("user_class", observed=True, sort=False).agg(
        affinity=("affinity", "first"), judged=("judged", "any"), sessions=("requests", "size"),
        requests=("requests", "sum"), errors=("errors", "sum"), switches=("switches", "sum"),
        flaps=("flaps", "sum"), transitions=("transitions", "sum"), multi=("multi", "sum"),
        multi_cont=("multi_cont", "sum"))
    out = {}
    for name, g in groups.sort_index(key=lambda x: x.map(str)).iterrows():
        m, mc, t_ = int(g["multi"]), int(g["multi_cont"]), int(g["transitions"])
        reqs, errs, sw = int(g["requests"]), int(g["errors"]), int(g["switches"])
        out[str(name)] = UserClassSummary(
            None if pd.isna(g["affinity"]) else str(g["affinity"]), bool(g["judged"]),
            int(g["sessions"]), reqs, m, mc, 1 - mc / m if m else None, interval(m - mc, m),
            1 - sw / t_ if t_ else None, sw, int(g["flaps"]), errs,
            errs / reqs if reqs else None)
    return out


def run_notes(run: RawRun, members: Membership, containers: list[str], per: SessionStats,
              affinity_source: str) -> list[str]:
    notes = list(run.notes)
    if affinity_source == "assumed":
        notes.append("The request file does not record which classes ask for affinity: every "
                     "class is judged as asking for it (affinity_source \"assumed\"), so a "
                     "control class in this run counts against the stickiness figures.")
    elif not per.judged.any():
        notes.append("No class in this run asks for affinity: the stickiness figures have "
                     "nothing to judge (see user_classes for the controls).")
    if members.source == "inferred":
        notes.append("No event log: membership changes are inferred from the containers "
                     "seen answering, which needs traffic on every container.")
    else:
        known = set().union(*members.epochs) | {
            c for ch in members.changes for c in ch.live_before | ch.live_after}
        answered = {containers[i] for i in np.flatnonzero(per.container_sessions)}
        strangers = answered - known
        if strangers:
            notes.append(f"{len(strangers)} containers answered that the event log does not "
                         "list as live during the run: is it the log of this run?")
    if run.locust and run.locust.requests is not None \
            and run.locust.requests > len(run.requests):
        notes.append(f"Locust counted {run.locust.requests} requests, the request file has "
                     f"{len(run.requests)}: the recorder missed some.")
    return notes


# -- chart data --------------------------------------------------------------------------------


def timeline(frame: Frame, members: Membership, run: RawRun, config: ReportConfig) -> Timeline:
    origin = math.floor(float(frame.ts.min()))
    span = float(frame.ts.max()) - origin
    bin_s = max(1.0, math.ceil(span / MAX_TIMELINE_BINS))
    which = np.empty(len(frame.ts), dtype=np.intp)  # each request's bin, made a block at a
    for at in range(0, len(which), ORDER_BLOCK_ROWS):  # time (bincount takes it uncopied)
        offset = frame.ts[at:at + ORDER_BLOCK_ROWS] - origin
        offset *= 1 / bin_s
        which[at:at + ORDER_BLOCK_ROWS] = offset.astype(np.int32)
    bins = int(which.max()) + 1
    k = len(ERROR_CLASSES)
    requests = np.bincount(which, minlength=bins)
    failed = frame.failed_rows  # the few: counted, and the successes are the rest
    classes = np.bincount(which[failed].astype(np.int64) * k + frame.cls[failed],
                          minlength=bins * k).reshape(bins, k)
    classes[:, OK] = requests - classes.sum(axis=1)
    new = starts_of_runs(which)  # a new (session, bin): rows are by session, then time
    new[frame.first_row] = True
    sessions = np.bincount(which[new], minlength=bins)
    del new
    mean = np.bincount(which, weights=frame.rt, minlength=bins) / np.maximum(requests, 1)
    middles = origin + (np.arange(bins, dtype=np.float64) + 0.5) * bin_s
    return Timeline(origin, bin_s, requests, classes, sessions, members.live_count_at(middles),
                    mean, users_per_bin(run, origin, bin_s, bins))


def users_per_bin(run: RawRun, origin: float, bin_s: float, bins: int) -> Floats | None:
    if run.locust is None or not run.locust.users:
        return None
    users = np.full(bins, np.nan)
    for ts, count in run.locust.users:
        i = int((ts - origin) // bin_s)
        if 0 <= i < bins:
            users[i] = count
    return users
