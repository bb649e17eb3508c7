"""Read a recorded run: the request file, the emulator's event log and Locust's stats CSVs.

    run = read_run("out/run1")                 # out/run1_requests.parquet (or .arrows, .csv)
    run = read_run("out/run1", events=Path("emu.jsonl"))

The request file (every form of it, parts included, the canonical columns of
reports/columns.py) is read in one streaming pass over its pieces
(`reports.requestfile.open_request_stream`): each row group goes straight into the numpy
columns, never into one table of the whole file. `read_run_whole` is the in-memory path it
replaced (one Arrow table, then converted), kept as the reference the tests compare it with.
Problems raise the exceptions of `reports.errors`, whose message is one line that names the
file. Strings come back as integer codes into a list of names (`Labels`), so that the metrics
work on numpy integers, never on Python strings, whatever the size of the run.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from reports.columns import COLUMNS, TYPES
from reports.errors import (
    ColumnMismatch,
    CorruptInput,
    EmptyRun,
    MissingInput,
    ReportInputError,
    first_line,
)
from reports.requestfile import (
    normalize_prefix,
    open_request_stream,
    read_request_table,
    run_files,
)

__all__ = [
    "ColumnMismatch",
    "CorruptInput",
    "EmptyRun",
    "MissingInput",
    "ReportInputError",
    "normalize_prefix",
    "read_run",
]

STREAM_COLUMNS: tuple[str, ...] = ("ttfb_ms", "ttft_ms", "tokens", "max_gap_ms")
STRING_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if TYPES[c] == "string")
UNUSED_COLUMNS = frozenset({"name"})  # not read: the report does not split by name
# string columns the report reads only by value (never a key of a sort or a block): their codes
# are narrowed (see `narrow`); sessions and containers stay int32
VALUE_COLUMNS = frozenset({"user_class", "cache", "error", "worker", "affinity"})
EVENTS_SUFFIX = "_events.jsonl"
MEMBERSHIP_EVENTS = frozenset({"added", "removed"})
SNAPSHOT = "snapshot"  # the harness's first line: the live set when its run started

Codes = NDArray[np.int32]
Floats = NDArray[np.float64]


def take(values: Any, order: NDArray[np.integer]) -> Any:
    """values[order]; a constant column (a zero-stride view) stays one, at no cost."""
    if values.ndim == 1 and values.strides == (0,) and len(values):
        return np.broadcast_to(values[:1], (len(order),))
    return values[order]


def constant(value: int, n: int, dtype: type[Any]) -> Any:
    """A read-only array of n equal values that takes no memory."""
    return np.broadcast_to(np.array([value], dtype=dtype), (n,))


@dataclass
class Labels:
    """A string column as codes into `names`; -1 is null. int32, but for the columns the
    report reads only by value (VALUE_COLUMNS): the narrowest signed type that holds them."""

    codes: Codes
    names: list[str]

    def take(self, order: NDArray[np.integer]) -> Labels:
        return Labels(take(self.codes, order), self.names)


@dataclass
class Requests:
    """The request file, one numpy array per column (see reports.columns) but `name`."""

    ts: Floats
    response_time_ms: Floats
    status: NDArray[np.int32]
    session: Labels
    user_class: Labels
    container: Labels
    cache: Labels
    error: Labels
    worker: Labels
    affinity: Labels
    # streaming figures, NaN where not recorded (`tokens` too: float64, so NaN can stand)
    ttfb_ms: Floats
    ttft_ms: Floats
    tokens: Floats
    max_gap_ms: Floats

    def __len__(self) -> int:
        return len(self.ts)

    def permute(self, order: NDArray[np.integer], skip: tuple[str, ...] = ()) -> None:
        """Reorder the columns (but those in `skip`) in place, one at a time: the old one is
        freed before the next is made."""
        for name in ("ts", "response_time_ms", "status", *STREAM_COLUMNS):
            if name not in skip:
                setattr(self, name, take(getattr(self, name), order))
        for name in ("session", "user_class", "container", "cache", "error", "worker",
                     "affinity"):
            if name not in skip:
                setattr(self, name, getattr(self, name).take(order))


@dataclass(frozen=True)
class Event:
    """A membership change ("added"/"removed") or a "snapshot" of the live set; the report
    skips the other kinds of the log ("control", "exited")."""

    ts: float
    event: str
    container_id: str
    cause: str
    live: tuple[str, ...]


@dataclass(frozen=True)
class LocustStats:
    """What Locust's own CSVs say: the aggregated counts and users over time."""

    requests: int | None
    failures: int | None
    users: tuple[tuple[float, int], ...]


@dataclass
class RawRun:
    prefix: str
    request_path: Path
    requests: Requests
    events_path: Path | None
    events: list[Event] | None
    locust: LocustStats | None
    notes: list[str] = field(default_factory=list)  # what reading the request file noticed
    # why the recording is incomplete (the run did not end normally, rows were lost): such a
    # run is not judged unless the user accepts an incomplete recording
    incomplete: list[str] = field(default_factory=list)


# -- the request file --------------------------------------------------------------------------


Window = tuple[float | None, float | None]


def read_run(prefix: str | os.PathLike[str], events: Path | None = None, *,
             parts: Iterable[int] | None = None, window: Window | None = None) -> RawRun:
    """The run, read in one streaming pass over the row groups of its file (or parts): each
    piece goes straight into compact numpy columns (strings as codes into names that grow as
    they come; a column with one value throughout takes no memory), never into one table of
    the whole file. `parts`: only these parts (indices from 1) of a run written as parts;
    `window`: only the requests that started in [start, end) (Unix seconds, None: open). A
    selection is not the whole recording: it is not judged (see RawRun.incomplete)."""
    check_window(window)
    prefix = normalize_prefix(prefix)
    stream = open_request_stream(prefix, core_columns() + stream_columns_of(
        run_files(prefix).paths), parts)
    path = stream.path
    built = Builder(path, stream.rows, window)
    for piece in stream.pieces():
        built.add(piece)
    notes, incomplete = stream.notes, list(stream.incomplete)
    if built.no_session:
        notes.append(f"{path}: {built.no_session} requests of users with no session id left "
                     "out")
    if built.n == 0:
        if built.no_session:
            raise EmptyRun(f"{path}: no requests of users with a session id")
        raise EmptyRun(f"{path}: no requests in the window {window_text(window)}")
    if window is not None:
        line = (f"{path}: only the requests that started in {window_text(window)} read: "
                f"not the whole recording ({built.outside} left out)")
        notes.append(line)
        incomplete.append(line)
    requests = built.requests()
    del built
    pa.default_memory_pool().release_unused()  # the pieces' buffers, kept by the allocator
    return finish_run(prefix, path, requests, notes, incomplete, events)


def read_run_whole(prefix: str | os.PathLike[str], events: Path | None = None) -> RawRun:
    """The reference: the run read as one Arrow table, then converted (the in-memory path
    that `read_run` replaced; it holds the whole table and the arrays at once). The tests
    check that both give the same run."""
    prefix = normalize_prefix(prefix)
    read = read_request_table(prefix, core_columns() + stream_columns_of(
        run_files(prefix).paths))
    path, table = read.path, read.table
    if table.column("session_id").null_count:  # users with no session: not in any session
        read.notes.append(f"{path}: {table.column('session_id').null_count} requests of users "
                          "with no session id left out")
        table = table.filter(pc.is_valid(table.column("session_id")))
        if table.num_rows == 0:
            raise EmptyRun(f"{path}: no requests of users with a session id")
    requests = to_requests(path, table)
    del table
    return finish_run(prefix, path, requests, read.notes, list(read.incomplete), events)


def core_columns() -> list[str]:
    return [c for c in COLUMNS if c not in UNUSED_COLUMNS and c not in STREAM_COLUMNS]


def check_window(window: object) -> None:
    """A (start, end) pair of Unix seconds, either None; TypeError in one line otherwise."""
    if window is None:
        return
    if not isinstance(window, tuple) or len(window) != 2 or not all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool)
                          and math.isfinite(v)) for v in window):
        raise TypeError(f"window= must be a (start, end) pair of Unix seconds (None: open), "
                        f"not {window!r}")


def window_text(window: Window | None) -> str:
    start, end = window or (None, None)
    return f"[{'-inf' if start is None else f'{start:.3f}'}, " \
           f"{'inf' if end is None else f'{end:.3f}'})"


def finish_run(prefix: str, path: Path, requests: Requests, notes: list[str],
               incomplete: list[str], events: Path | None) -> RawRun:
    """The request rows with the event log and Locust's stats beside them."""
    if events is not None and not events.is_file():
        raise MissingInput(f"no event log {events}")
    events_path = events or Path(prefix + EVENTS_SUFFIX)
    event_list = read_events(events_path) if events_path.is_file() else None
    if event_list is not None and not event_list:
        event_list = None  # a log with no membership change says nothing about epochs
    locust = read_locust_stats(prefix)
    if locust is not None and locust.requests is not None and locust.requests > len(requests.ts):
        incomplete.append(f"Locust counted {locust.requests} requests, the request file has "
                          f"{len(requests.ts)}: rows were lost")
    return RawRun(prefix, path, requests, events_path if event_list is not None else None,
               event_list, locust, notes, incomplete)


# -- the streaming pass ------------------------------------------------------------------------


class Numbers:
    """A numeric column filled piece by piece: into one array when the rows are known
    beforehand (Parquet), else into chunks joined at the end."""

    def __init__(self, dtype: type[Any], capacity: int | None) -> None:
        self.dtype = dtype
        self.array: Any = None if capacity is None else np.empty(capacity, dtype=dtype)
        self.chunks: list[Any] = []
        self.n = 0

    def add(self, values: Any) -> None:
        if self.array is not None:
            self.array[self.n:self.n + len(values)] = values
        else:
            self.chunks.append(np.array(values, dtype=self.dtype, copy=True))
        self.n += len(values)

    def fill(self, value: float, count: int) -> None:
        self.add(np.full(count, value, dtype=self.dtype))

    def result(self) -> Any:
        if self.array is not None:
            return self.array[:self.n]
        if not self.chunks:
            return np.empty(0, dtype=self.dtype)
        out = np.concatenate(self.chunks)
        self.chunks = []
        return out


class LabelColumn:
    """A string column as codes into names that grow piece by piece, in the order
    `Table.unify_dictionaries` gives (each piece's dictionary in its order, new names
    appended), -1 for null. While every row has one code it holds no per-row array."""

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity
        self.index: dict[str, int] = {}  # name -> code, in the order the names came
        self.constant: int | None = None
        self.codes: Numbers | None = None
        self.n = 0
        self.valid = False  # some row has a value

    def add(self, column: pa.ChunkedArray) -> None:
        remap: NDArray[np.int32] | None = None
        for chunk in column.chunks:
            if pa.types.is_null(chunk.type):
                self.extend_constant(-1, len(chunk))
                continue
            if remap is None:  # the chunks share one dictionary (Table.unify_dictionaries)
                remap = self.remap(chunk.dictionary)  # even with no rows, as unify would
            if len(chunk) == 0:
                continue
            if chunk.null_count == len(chunk):
                self.extend_constant(-1, len(chunk))
                continue
            if len(remap) == 2 and chunk.null_count == 0:  # one value throughout: no pass
                self.valid = True
                self.extend_constant(int(remap[0]), len(chunk))
                continue
            indices = chunk.indices
            if indices.null_count:
                indices = indices.fill_null(len(remap) - 1)  # the last slot: -1
            codes = remap[as_numpy(indices.cast(pa.int32()), np.int32)]
            if not self.valid:
                self.valid = chunk.null_count < len(chunk)
            first = int(codes[0])
            if self.codes is None and (self.n == 0 or self.constant == first) \
                    and bool((codes == first).all()):
                self.constant = first
                self.n += len(codes)
                continue
            self.materialize().add(codes)
            self.n += len(codes)

    def extend_constant(self, code: int, count: int) -> None:
        if not count:
            return
        if self.codes is None and (self.n == 0 or self.constant == code):
            self.constant = code
        else:
            self.materialize().fill(code, count)
        self.n += count

    def materialize(self) -> Numbers:
        if self.codes is None:
            self.codes = Numbers(np.int32, self.capacity)
            if self.n:
                self.codes.fill(-1 if self.constant is None else self.constant, self.n)
        return self.codes

    def remap(self, dictionary: pa.Array) -> NDArray[np.int32]:
        """Each entry of a piece's dictionary as a code into the names (new ones appended);
        one more slot at the end, -1, for the nulls. A dict lookup per entry: the cost is
        the piece's distinct values, whatever the run's."""
        index = self.index
        values = [str(v) for v in dictionary.to_pylist()]
        codes = np.empty(len(values) + 1, dtype=np.int32)
        codes[:-1] = np.fromiter((index.setdefault(v, len(index)) for v in values),
                                 dtype=np.int32, count=len(values))
        codes[-1] = -1
        return codes

    def result(self) -> Labels:
        if not self.valid:
            return Labels(constant(-1, self.n, np.int32), [])
        names = list(self.index)
        if self.codes is None:
            return Labels(constant(-1 if self.constant is None else self.constant, self.n,
                                   np.int32), names)
        return Labels(self.codes.result(), names)


class Optional:
    """A nullable numeric column as float64 with NaN for null; no memory while all null."""

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity
        self.values: Numbers | None = None
        self.n = 0

    def add(self, path: Path, name: str, column: pa.ChunkedArray) -> None:
        if self.values is None and column.null_count == len(column):
            self.n += len(column)
            return
        if self.values is None:
            self.values = Numbers(np.float64, self.capacity)
            self.values.fill(np.nan, self.n)
        try:
            filled = column.cast(pa.float64()).fill_null(np.nan)
        except pa.ArrowInvalid as exc:
            raise CorruptInput(f"{path}: column {name}: {first_line(exc)}") from None
        for chunk in filled.chunks:
            self.values.add(as_numpy(chunk, np.float64))
        self.n += len(column)

    def result(self) -> Floats:
        if self.values is None:
            return np.broadcast_to(np.array([np.nan]), (self.n,))
        return np.asarray(self.values.result())


NUMBER_TYPES: dict[str, type[Any]] = {"ts": np.float64, "response_time_ms": np.float64,
                                      "status": np.int32}
LABEL_COLUMNS: tuple[str, ...] = tuple(c for c in STRING_COLUMNS if c not in UNUSED_COLUMNS)


class Builder:
    """The Requests of a run from its pieces (reports.requestfile.RequestStream)."""

    def __init__(self, path: Path, capacity: int | None, window: Window | None) -> None:
        self.path = path
        self.window = window
        self.numbers = {name: Numbers(dtype, capacity) for name, dtype in NUMBER_TYPES.items()}
        self.labels = {name: LabelColumn(capacity) for name in LABEL_COLUMNS}
        self.optional = {name: Optional(capacity) for name in STREAM_COLUMNS}
        self.n = 0
        self.no_session = 0  # rows left out: no session id
        self.outside = 0  # rows left out: outside the window

    def add(self, piece: pa.Table) -> None:
        session = piece.column("session_id")
        keep: Any = None
        if session.null_count:
            self.no_session += session.null_count
            keep = pc.is_valid(session)
        if self.window is not None:
            start, end = self.window
            ts = piece.column("ts")
            inside = pc.is_valid(ts)
            if start is not None:
                inside = pc.and_(inside, pc.greater_equal(ts, start))
            if end is not None:
                inside = pc.and_(inside, pc.less(ts, end))
            if keep is not None:
                self.outside += int(pc.sum(pc.and_(keep, pc.invert(inside))).as_py() or 0)
                keep = pc.and_(keep, inside)
            else:
                self.outside += len(ts) - int(pc.sum(inside).as_py() or 0)
                keep = inside
        if keep is not None:
            piece = piece.filter(keep)
        for name, numbers in self.numbers.items():
            for chunk in piece.column(name).chunks:
                numbers.add(as_numpy(chunk, NUMBER_TYPES[name]))
        piece = piece.unify_dictionaries()  # one dictionary per column: one remap each
        for name, label in self.labels.items():
            label.add(piece.column(name))
        for name, optional in self.optional.items():
            if name in piece.column_names:
                optional.add(self.path, name, piece.column(name))
            else:
                optional.n += piece.num_rows
        self.n += piece.num_rows

    def requests(self) -> Requests:
        ts = self.numbers["ts"].result()
        check_seconds(self.path, ts)
        labels = {name: narrow(label.result()) if name in VALUE_COLUMNS else label.result()
                  for name, label in self.labels.items()}
        stream = {name: optional.result() for name, optional in self.optional.items()}
        return Requests(ts, self.numbers["response_time_ms"].result(),
                        self.numbers["status"].result(), labels["session_id"],
                        labels["user_class"], no_blanks(labels["container_id"]),
                        labels["cache"], labels["error"], labels["worker"], labels["affinity"],
                        stream["ttfb_ms"], stream["ttft_ms"], stream["tokens"],
                        stream["max_gap_ms"])


def stream_columns_of(paths: list[Path]) -> list[str]:
    """The streaming columns worth reading in any of the run's files (see stream_columns)."""
    wanted: set[str] = set()
    for path in paths:
        wanted.update(stream_columns(path))
        if len(wanted) == len(STREAM_COLUMNS):
            break
    return [name for name in STREAM_COLUMNS if name in wanted]


def stream_columns(path: Path) -> list[str]:
    """The streaming columns worth reading: for a Parquet file, those whose row-group
    statistics show a value somewhere (a run without streaming has them all null: 280 MB of
    nulls at 10 M rows, not read); for a CSV, those its header has; for the stream form, all."""
    if path.suffix == ".csv":
        with contextlib.suppress(OSError, UnicodeDecodeError), path.open(encoding="utf-8") as f:
            header = f.readline().strip().split(",")
            return [name for name in STREAM_COLUMNS if name in header]
        return list(STREAM_COLUMNS)  # read_request_table will say what is wrong
    if path.suffix != ".parquet":
        return list(STREAM_COLUMNS)
    try:
        meta = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError, ValueError):
        return list(STREAM_COLUMNS)  # read_request_table has read it: let it say what is wrong
    names = meta.schema.names
    wanted = []
    for name in STREAM_COLUMNS:
        if name not in names:
            continue
        index = names.index(name)
        for i in range(meta.num_row_groups):
            group = meta.row_group(i)
            stats = group.column(index).statistics
            if stats is None or not stats.has_null_count or stats.null_count < group.num_rows:
                wanted.append(name)
                break
    return wanted


def to_requests(path: Path, table: pa.Table) -> Requests:
    """Numpy columns from the canonical table (reports.requestfile)."""
    n = table.num_rows
    table = table.unify_dictionaries()
    columns = {name: table.column(name) for name in table.column_names}
    del table
    ts = numbers(path, "ts", columns.pop("ts"), np.float64)
    check_seconds(path, ts)
    response_time = numbers(path, "response_time_ms", columns.pop("response_time_ms"),
                            np.float64)
    status = numbers(path, "status", columns.pop("status"), np.int32)
    strings = {name: narrow(labels(columns.pop(name))) if name in VALUE_COLUMNS
               else labels(columns.pop(name))
               for name in STRING_COLUMNS if name not in UNUSED_COLUMNS}
    stream = {name: optional_numbers(path, name, columns.pop(name, None), n)
              for name in STREAM_COLUMNS}
    return Requests(ts, response_time, status, strings["session_id"], strings["user_class"],
                    no_blanks(strings["container_id"]), strings["cache"], strings["error"],
                    strings["worker"], strings["affinity"], stream["ttfb_ms"],
                    stream["ttft_ms"], stream["tokens"], stream["max_gap_ms"])


MAX_UNIX_SECONDS = 1e11  # the year 5138: a larger ts is in milliseconds or worse


def check_seconds(path: Path, ts: Floats) -> None:
    """`ts` is Unix seconds: a value that cannot be (negative, or in milliseconds) is bad input,
    in one line, before any figure is computed from it."""
    if not len(ts):
        return
    high, low = float(np.nanmax(ts)), float(np.nanmin(ts))
    if high > MAX_UNIX_SECONDS:
        unit = " (milliseconds?)" if high < MAX_UNIX_SECONDS * 1000 else ""
        raise CorruptInput(f"{path}: ts {high:.6g} is not Unix seconds{unit}")
    if low < 0:
        raise CorruptInput(f"{path}: ts {low:.6g} is negative: not Unix seconds")


def optional_numbers(path: Path, name: str, column: pa.ChunkedArray | None, n: int) -> Floats:
    """A nullable numeric column as float64 with NaN for null; all NaN (no memory) when
    absent."""
    if column is None or column.null_count == len(column):
        return np.broadcast_to(np.array([np.nan]), (n,))
    try:
        filled = column.cast(pa.float64()).fill_null(np.nan)
    except pa.ArrowInvalid as exc:
        raise CorruptInput(f"{path}: column {name}: {first_line(exc)}") from None
    return as_numpy(filled.combine_chunks(), np.float64) if filled.num_chunks else \
        np.empty(0, dtype=np.float64)


def numbers(path: Path, name: str, column: pa.ChunkedArray, dtype: type[Any]) -> Any:
    target = pa.from_numpy_dtype(dtype)
    if column.type != target:
        try:
            column = column.cast(target)
        except pa.ArrowInvalid as exc:
            raise CorruptInput(f"{path}: column {name}: {first_line(exc)}") from None
    if column.num_chunks == 0:
        return np.empty(0, dtype=dtype)
    return as_numpy(column.combine_chunks(), dtype)


def as_numpy(array: pa.Array, dtype: type[Any]) -> Any:
    """A zero-copy numpy view of a primitive arrow array with no nulls. (Array.to_numpy
    would import pandas, 0.3 s, for nothing.)"""
    width = np.dtype(dtype).itemsize
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array),
                         offset=array.offset * width)


def labels(column: pa.ChunkedArray) -> Labels:
    """Dictionary codes (int32, -1 = null) and names, from a string or dictionary column."""
    n = len(column)
    if pa.types.is_null(column.type) or column.null_count == n:
        return Labels(constant(-1, n, np.int32), [])
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    combined = column.combine_chunks()  # one dictionary: the chunks' were unified
    names = [str(v) for v in combined.dictionary.to_pylist()]
    indices = combined.indices
    if indices.null_count:
        indices = indices.fill_null(-1)
    return Labels(as_numpy(indices.cast(pa.int32()), np.int32), names)


def narrow(column: Labels) -> Labels:
    """The codes in the narrowest signed integer type that holds -1 and every name's code: a
    byte a row, not 4, for a column of a few names (the error texts of a run with failures,
    two user classes, a few workers). A column with one value throughout stays one (no
    memory)."""
    codes = column.codes
    dtype = np.min_scalar_type(-max(len(column.names), 1))
    if codes.dtype == dtype:
        return column
    if codes.ndim == 1 and codes.strides == (0,) and len(codes):
        return Labels(np.broadcast_to(codes[:1].astype(dtype), codes.shape), column.names)
    return Labels(codes.astype(dtype), column.names)


def no_blanks(column: Labels) -> Labels:
    """An empty or blank container id names no container: null (a 2xx with it is then a body
    error, as the recorder and the probe say), whatever file form it was read from."""
    blank = [i for i, name in enumerate(column.names) if not name.strip()]
    if not blank:
        return column
    codes = column.codes.copy()
    codes[np.isin(codes, blank)] = -1
    return Labels(codes, column.names)


# -- the event log -----------------------------------------------------------------------------


def read_events(path: Path) -> list[Event]:
    """Membership events and snapshots, in file order; other kinds are skipped.

    The emulator's own log (`--events`) starts with the "added" events of its first replicas;
    the Locust harness's `PREFIX_events.jsonl` starts with a snapshot of the live set when the
    load started, then the emulator's events from then on."""
    events = []
    for lineno, record in json_lines(path):
        if record.get("event") not in MEMBERSHIP_EVENTS | {SNAPSHOT}:
            continue
        events.append(parse_event(path, lineno, record))
    return events


def json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptInput(f"{path}: cannot read the event log ({first_line(exc)})") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise CorruptInput(f"{path}:{lineno}: not JSON (truncated or corrupt)") from None
        if not isinstance(record, dict):
            raise CorruptInput(f"{path}:{lineno}: not a JSON object")
        yield lineno, record


def parse_event(path: Path, lineno: int, record: dict[str, Any]) -> Event:
    ts, container, live = record.get("ts"), record.get("container_id"), record.get("live")
    if not isinstance(ts, int | float) or isinstance(ts, bool) or not math.isfinite(ts):
        raise CorruptInput(f"{path}:{lineno}: 'ts' is not a number")
    if record["event"] == SNAPSHOT and container is None:
        container = ""
    if not isinstance(container, str):
        raise CorruptInput(f"{path}:{lineno}: 'container_id' is not a string")
    if not isinstance(live, list) or not all(isinstance(x, str) for x in live):
        raise CorruptInput(f"{path}:{lineno}: 'live' is not a list of container ids")
    return Event(float(ts), record["event"], container, str(record.get("cause", "")),
                 tuple(live))


# -- Locust's CSVs -----------------------------------------------------------------------------


def read_locust_stats(prefix: str) -> LocustStats | None:
    stats_path = Path(prefix + "_stats.csv")
    history_path = Path(prefix + "_stats_history.csv")
    if not stats_path.is_file() and not history_path.is_file():
        return None
    requests = failures = None
    if stats_path.is_file():
        for row in csv_rows(stats_path, ("Name", "Request Count", "Failure Count")):
            if row["Name"] == "Aggregated":
                requests = integer(stats_path, row["Request Count"])
                failures = integer(stats_path, row["Failure Count"])
    users: list[tuple[float, int]] = []
    if history_path.is_file():
        for row in csv_rows(history_path, ("Timestamp", "User Count", "Name")):
            if row["Name"] == "Aggregated":
                users.append((float(integer(history_path, row["Timestamp"])),
                              integer(history_path, row["User Count"])))
    return LocustStats(requests, failures, tuple(users))


def csv_rows(path: Path, needed: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in needed if c not in (reader.fieldnames or [])]
            if missing:
                raise ColumnMismatch(f"{path}: missing columns {', '.join(missing)}")
            return [row for row in reader if None not in row.values()]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CorruptInput(f"{path}: not a readable CSV file ({first_line(exc)})") from None


def integer(path: Path, text: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        raise CorruptInput(f"{path}: {text!r} is not a number") from None
