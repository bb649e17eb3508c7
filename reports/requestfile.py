"""Read the request file, in whichever form a run left it: `read_request_table(prefix)`.

    table = read_request_table("out/run1")              # -> RequestTable(table, path, notes)
    table = read_request_table("out/run1", ["ts", "container_id"])

The prefix (or the file itself) resolves to, in this order (reports/columns.py):
1. `PREFIX_requests.parquet`, the final file of a run that ended normally;
2. `PREFIX_requests.arrows`, the Arrow IPC stream the recorder appends to during the run: a
   run killed mid-way (SIGKILL, OOM, a power cut) or whose end could not write the Parquet
   file leaves it. Every complete record batch is read; a batch cut short by the crash is
   dropped, and `notes` says so;
3. `PREFIX_requests.csv`, the same columns as CSV (a peer's harness).

The table has the asked columns (default: every column of `COLUMNS`, in that order) with the
canonical types; string columns come as dictionary arrays; a column the file predates (see
`LATER_COLUMNS`) comes as nulls, with a note. Problems raise the exceptions of
`reports/errors.py`, each one line naming the file. `session_id` may be null (a request of a
user with no session); `ts`, `response_time_ms` and `status` may not.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from reports.columns import (
    AFFINITIES,
    COLUMNS,
    CSV_SUFFIX,
    LATER_COLUMNS,
    RECORDING_KEY,
    REQUEST_SUFFIXES,
    REQUIRED_COLUMNS,
    STREAM_SUFFIX,
    SUFFIX,
    TYPES,
)
from reports.errors import ColumnMismatch, CorruptInput, EmptyRun, MissingInput, first_line

STRING = pa.dictionary(pa.int32(), pa.string())
KINDS: dict[str, pa.DataType] = {"float64": pa.float64(), "int32": pa.int32(), "string": STRING}
READ_ERRORS = (pa.ArrowException, OSError, ValueError)


@dataclass
class RequestTable:
    """The request file as one Arrow table, the file it came from, and what the reader noticed
    (e.g. "run did not end normally: ...")."""

    table: pa.Table
    path: Path
    notes: list[str] = field(default_factory=list)
    # why the recording is incomplete: the run did not end normally (only the stream form is
    # there) or the file's own record says rows were lost (RECORDING_KEY)
    incomplete: list[str] = field(default_factory=list)


def normalize_prefix(prefix: str) -> str:
    """Accept the request file itself as well as its prefix."""
    for suffix in REQUEST_SUFFIXES:
        if prefix.endswith(suffix):
            return prefix[: -len(suffix)]
    return prefix


def request_path(prefix: str) -> Path:
    """The file to read for a prefix: the final Parquet file, else the crash form, else CSV."""
    prefix = normalize_prefix(prefix)
    for suffix in REQUEST_SUFFIXES:
        path = Path(prefix + suffix)
        if path.is_file():
            return path
    raise MissingInput(f"no request file {prefix}{SUFFIX} (nor {prefix}{STREAM_SUFFIX}, "
                       f"{prefix}{CSV_SUFFIX}){runs_near(prefix)}")


def runs_near(prefix: str, shown: int = 8) -> str:
    """For a prefix that names no run: the runs in its folder (or in the folder it names),
    as the text that ends the error message."""
    path = Path(prefix)
    folder = path if path.is_dir() else path.parent
    if not folder.is_dir():
        return ""
    runs = sorted({str(folder / f.name[: -len(suffix)]) for f in folder.iterdir()
                   for suffix in REQUEST_SUFFIXES if f.name.endswith(suffix)})
    if not runs:
        return f"; {folder} holds no run"
    more = f" and {len(runs) - shown} more" if len(runs) > shown else ""
    return f"; the runs in {folder}: {', '.join(runs[:shown])}{more}"


def read_request_table(prefix: str, columns: Sequence[str] | None = None) -> RequestTable:
    """The request file of a run (see the module docstring)."""
    names = tuple(COLUMNS if columns is None else columns)
    unknown = [c for c in names if c not in TYPES]
    if unknown:
        raise ValueError(f"no such request-file columns: {', '.join(unknown)}")
    path = request_path(prefix)
    notes: list[str] = []
    if path.name.endswith(STREAM_SUFFIX):
        table = read_stream(path, notes)
        return RequestTable(conform(path, table, names, notes), path, notes, notes[-1:])
    if path.suffix == ".csv":
        return RequestTable(conform(path, read_csv(path), names, notes), path, notes)
    table = read_parquet(path, names, notes)
    incomplete = recording_gaps(path, pq.read_schema(path).metadata or {})
    notes += incomplete
    return RequestTable(table, path, notes, incomplete)


def recording_gaps(path: Path, metadata: dict[bytes, bytes]) -> list[str]:
    """What the file's record of its recording (RECORDING_KEY) says was lost; [] when it
    says nothing was, or the file has no such record (another tool's file)."""
    raw = metadata.get(RECORDING_KEY.encode())
    if raw is None:
        return []
    try:
        record = json.loads(raw)
        lost = [str(line) for line in record.get("lost") or []]
        ended, recorded = record.get("ended"), record.get("recorded")
        sent = record.get("locust_requests")
    except (ValueError, AttributeError, TypeError):
        return [f"{path}: its record of the recording is unreadable"]
    gaps = [f"{path}: {line}" for line in lost]
    if ended != "normally" and not gaps:
        gaps.append(f"{path}: the run ended {ended}")
    if isinstance(sent, int) and isinstance(recorded, int) and sent > recorded:
        gaps.append(f"{path}: Locust counted {sent} requests, the recorder recorded "
                    f"{recorded}")
    return gaps


# ## The forms


def read_parquet(path: Path, names: tuple[str, ...], notes: list[str]) -> pa.Table:
    """Reads only what it must: a string column that the row-group statistics show to hold one
    value throughout (or only nulls), as `worker` and `cache` often do, is built, not read."""
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except READ_ERRORS as exc:
        raise CorruptInput(f"{path}: not a readable Parquet file ({first_line(exc)})") from None
    check_schema(path, schema)
    n = parquet.metadata.num_rows
    if n == 0:
        raise EmptyRun(f"{path}: no requests (an empty run)")
    present = [c for c in names if schema.get_field_index(c) >= 0]
    strings = [c for c in present if TYPES[c] == "string"]
    known = uniform_values(parquet.metadata, strings)
    read = [c for c in present if c not in known]
    dictionary = [c for c in read if TYPES[c] == "string"]
    try:
        table = pq.ParquetFile(path, read_dictionary=dictionary).read(columns=read)
    except READ_ERRORS as exc:
        raise CorruptInput(f"{path}: truncated or corrupt ({first_line(exc)})") from None
    for name, value in known.items():
        table = table.append_column(name, constant_strings(value, n))
    return conform(path, table, names, notes)


def read_stream(path: Path, notes: list[str]) -> pa.Table:
    """Every complete record batch of the Arrow IPC stream, in order."""
    try:
        reader = ipc.open_stream(pa.memory_map(str(path)))
    except READ_ERRORS as exc:
        if path.stat().st_size == 0:
            raise EmptyRun(f"{path}: no requests (the file is empty: the run stopped before "
                           "its first flush, or that flush failed)")\
                from None
        raise CorruptInput(f"{path}: not a readable Arrow stream ({first_line(exc)})") from None
    check_schema(path, reader.schema)
    batches: list[pa.RecordBatch] = []
    cut = ""
    while True:
        try:
            batches.append(reader.read_next_batch())
        except StopIteration:
            break
        except READ_ERRORS as exc:
            cut = f"; the batch after them was cut short ({first_line(exc)})"
            break
    rows = sum(b.num_rows for b in batches)
    notes.append(f"run did not end normally (no {path.name.removesuffix(STREAM_SUFFIX)}"
                 f"{SUFFIX}): read {len(batches)} closed batches, {rows} requests, from "
                 f"{path}{cut}")
    if rows == 0:
        raise EmptyRun(f"{path}: no requests (the run stopped before its first flush, or that "
                       "flush failed)")
    return pa.Table.from_batches(batches, schema=reader.schema)


def read_csv(path: Path) -> pa.Table:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CorruptInput(f"{path}: not a readable CSV file ({first_line(exc)})") from None
    present = [c for c in COLUMNS if c in header]
    missing = [c for c in COLUMNS if c not in header and c not in LATER_COLUMNS]
    if missing:
        raise ColumnMismatch(f"{path}: missing columns {', '.join(missing)} "
                             f"(expected {', '.join(COLUMNS)})")
    kinds = {"float64": pa.float64(), "int32": pa.int32(), "string": pa.string()}
    options = pacsv.ConvertOptions(column_types={c: kinds[TYPES[c]] for c in present},
                                   include_columns=present, strings_can_be_null=True)
    try:
        table = pacsv.read_csv(path, convert_options=options)
    except READ_ERRORS as exc:
        raise CorruptInput(f"{path}: truncated or corrupt CSV ({first_line(exc)})") from None
    if table.num_rows == 0:
        raise EmptyRun(f"{path}: no requests (an empty run)")
    return table


# ## Checks and the canonical form


def check_schema(path: Path, schema: pa.Schema) -> None:
    missing = [c for c in COLUMNS if schema.get_field_index(c) < 0 and c not in LATER_COLUMNS]
    if missing:
        raise ColumnMismatch(f"{path}: missing columns {', '.join(missing)} "
                             f"(expected {', '.join(COLUMNS)})")
    for name in COLUMNS:
        if schema.get_field_index(name) >= 0:
            kind = schema.field(name).type
            if not type_fits(TYPES[name], kind):
                raise ColumnMismatch(f"{path}: column {name} is {kind}, expected {TYPES[name]}")


def type_fits(expected: str, kind: pa.DataType) -> bool:
    if pa.types.is_null(kind):
        return True
    if expected == "float64":
        return bool(pa.types.is_floating(kind) or pa.types.is_integer(kind))
    if expected == "int32":
        return bool(pa.types.is_integer(kind))
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def conform(path: Path, table: pa.Table, names: tuple[str, ...], notes: list[str]) -> pa.Table:
    """The asked columns in order, canonical types, nulls for a column the file predates."""
    n = table.num_rows
    absent = [c for c in names if c not in table.column_names]
    if absent:
        notes.append(f"{path} predates the columns {', '.join(absent)}: read as nulls")
    arrays = []
    for name in names:
        if name in absent:
            arrays.append(pa.chunked_array([pa.nulls(n, KINDS[TYPES[name]])]))
            continue
        column = table.column(name)
        if name in REQUIRED_COLUMNS and column.null_count:
            raise CorruptInput(f"{path}: {column.null_count} rows with no {name}")
        arrays.append(canonical(path, name, column))
    result = pa.Table.from_arrays(arrays, schema=pa.schema(
        [(name, KINDS[TYPES[name]]) for name in names]))
    check_values(path, result)
    return result


def canonical(path: Path, name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    target = KINDS[TYPES[name]]
    if column.type == target:
        return column
    try:
        if target == STRING and not pa.types.is_dictionary(column.type):
            if not pa.types.is_string(column.type):
                column = column.cast(pa.string())
            return pc.dictionary_encode(column).cast(target)
        return column.cast(target)
    except pa.ArrowInvalid as exc:
        raise CorruptInput(f"{path}: column {name}: {first_line(exc)}") from None


def check_values(path: Path, table: pa.Table) -> None:
    for name in ("ts", "response_time_ms"):
        if name in table.column_names:
            finite = pc.all(pc.is_finite(table.column(name))).as_py()
            if finite is False:
                raise CorruptInput(f"{path}: {name} is not a finite number")
    if "affinity" in table.column_names:
        seen = set(pc.unique(table.column("affinity")).to_pylist())
        bad = sorted(str(v) for v in seen - {*AFFINITIES, None})
        if bad:
            raise CorruptInput(f"{path}: affinity {', '.join(bad)} is none of "
                               f"{', '.join(AFFINITIES)}")


# ## Parquet statistics


def uniform_values(meta: pq.FileMetaData, names: list[str]) -> dict[str, object]:
    """The columns that hold one value throughout by their statistics, with that value (None:
    all null). One pass over the row groups."""
    left = {name: meta.schema.names.index(name) for name in names}
    values: dict[str, object] = {}
    for i in range(meta.num_row_groups):
        if not left:
            break
        group = meta.row_group(i)
        for name, index in list(left.items()):
            here = group_value(group.column(index).statistics, group.num_rows)
            if here is NOT_UNIFORM or (i and values[name] != here):
                del left[name]
            values[name] = here
    return {name: values[name] for name in left}


NOT_UNIFORM = object()


def group_value(stats: pq.Statistics | None, rows: int) -> object:
    if stats is None or not stats.has_null_count:
        return NOT_UNIFORM
    if stats.null_count == rows:
        return None
    if stats.null_count == 0 and stats.has_min_max and stats.min == stats.max:
        return stats.min
    return NOT_UNIFORM


def constant_strings(value: object, n: int) -> pa.Array:
    """n equal strings (None: n nulls) as a dictionary array, with no per-row work."""
    if value is None:
        return pa.nulls(n, STRING)
    indices = pa.array(np.zeros(n, dtype=np.int32))
    return pa.DictionaryArray.from_arrays(indices, pa.array([str(value)], pa.string()))
