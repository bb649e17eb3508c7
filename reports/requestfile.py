"""Read the request file, in whichever form a run left it: `read_request_table(prefix)`.

    table = read_request_table("out/run1")              # -> RequestTable(table, path, notes)
    table = read_request_table("out/run1", ["ts", "container_id"])

The prefix (or the file itself) resolves to, in this order (reports/columns.py):
1. `PREFIX_requests.parquet`, the final file of a run that ended normally;
2. `PREFIX_requests.arrows`, the Arrow IPC stream the recorder appends to during the run: a
   run killed mid-way (SIGKILL, OOM, a power cut) or whose end could not write the Parquet
   file leaves it. Every complete record batch is read; a batch cut short by the crash is
   dropped, and `notes` says so;
3. `PREFIX_requests.csv`, the same columns as CSV (a peer's harness);
4. the parts of a run written as parts, `PREFIX_requests-00001.parquet`, ... (each the stream
   part `-0000N.arrows` where its Parquet part is not there), read in index order as one run
   (`RunFiles`); a part missing or in stream form makes the recording incomplete
   (`parts_gaps`). `parts=` reads only some of them: a selection is incomplete too.

`open_request_stream(prefix)` gives the same rows as pieces (a million rows of row groups at a
time; a stream part or CSV whole) for a pass that never holds the whole file
(reports.load.read_run).

The table has the asked columns (default: every column of `COLUMNS`, in that order) with the
canonical types; string columns come as dictionary arrays; a column the file predates (see
`LATER_COLUMNS`) comes as nulls, with a note. Problems raise the exceptions of
`reports/errors.py`, each one line naming the file. `session_id` may be null (a request of a
user with no session); `ts`, `response_time_ms` and `status` may not.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator, Sequence
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
    PART_EXTENSIONS,
    PART_KEY,
    PART_PATTERN,
    PART_STEM,
    RECORDING_KEY,
    REQUEST_SUFFIXES,
    REQUIRED_COLUMNS,
    STREAM_SUFFIX,
    SUFFIX,
    TYPES,
    arrow_schema,
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


def normalize_prefix(prefix: str | os.PathLike[str]) -> str:
    """Accept the request file itself (or one of its parts) as well as its prefix."""
    prefix = os.fspath(prefix)
    for suffix in REQUEST_SUFFIXES:
        if prefix.endswith(suffix):
            return prefix[: -len(suffix)]
    part = PART_PATTERN.search(prefix)
    if part:
        return prefix[: part.start()]
    return prefix


def request_path(prefix: str | os.PathLike[str]) -> Path:
    """The file to read for a prefix: the final Parquet file, else the crash form, else CSV;
    for a run written as parts, its first part."""
    return run_files(prefix).paths[0]


@dataclass
class RunFiles:
    """The files of one run: one file, or its parts in index order (each the Parquet part, or
    the stream part where there is no Parquet one). `path` names the run in messages and in
    the summary: the file, or `PREFIX_requests-*.parquet` (`.arrows`) for parts."""

    prefix: str
    paths: list[Path]
    indices: list[int]  # the parts' indices; [] for one file

    @property
    def parted(self) -> bool:
        return bool(self.indices)

    @property
    def path(self) -> Path:
        if not self.parted:
            return self.paths[0]
        streams = any(p.suffix == ".arrows" for p in self.paths)
        return Path(f"{self.prefix}{PART_STEM}*{'.arrows' if streams else '.parquet'}")


def run_files(prefix: str | os.PathLike[str]) -> RunFiles:
    """One file (the final Parquet file, else the crash form, else CSV), else the parts."""
    prefix = normalize_prefix(prefix)
    for suffix in REQUEST_SUFFIXES:
        path = Path(prefix + suffix)
        if path.is_file():
            return RunFiles(prefix, [path], [])
    parts = find_parts(prefix)
    if parts:
        return RunFiles(prefix, [path for _, path in parts], [i for i, _ in parts])
    raise MissingInput(f"no request file {prefix}{SUFFIX} (nor {prefix}{STREAM_SUFFIX}, "
                       f"{prefix}{CSV_SUFFIX}, parts {prefix}{PART_STEM}*.parquet)"
                       f"{runs_near(prefix)}")


def find_parts(prefix: str) -> list[tuple[int, Path]]:
    """(index, file) of each part of the run, by index: its Parquet part, else its stream
    part."""
    path = Path(prefix)
    folder, stem = path.parent, path.name + PART_STEM
    if not folder.is_dir():
        return []
    found: dict[int, Path] = {}
    for f in folder.iterdir():
        match = PART_PATTERN.search(f.name)
        if not f.name.startswith(stem) or not match or match.start() != len(path.name):
            continue
        index = int(match.group(1))
        if index not in found or f.suffix == PART_EXTENSIONS[0]:
            found[index] = f
    return sorted(found.items())


def select_parts(files: RunFiles, parts: Iterable[int] | None, notes: list[str],
                 incomplete: list[str]) -> RunFiles:
    """The parts asked for (None: every one); a selection is not the whole recording."""
    if parts is None:
        return files
    asked = [] if isinstance(parts, str | bytes) else list(parts)
    if not asked or not all(isinstance(i, int) and not isinstance(i, bool) for i in asked):
        raise TypeError(f"parts= must be a non-empty list of part indices (ints from 1), not "
                        f"{parts!r}")
    wanted = sorted(set(asked))
    if not files.parted:
        if wanted != [1]:
            raise ValueError(f"{files.path} is one file, not parts: parts= can only be [1]")
        return files
    index = dict(zip(files.indices, files.paths, strict=True))
    unknown = [i for i in wanted if i not in index]
    if unknown:
        raise ValueError(f"{files.path}: no part {', '.join(map(str, unknown))} (the run has "
                         f"parts {compact_ranges(files.indices)})")
    if wanted != files.indices:
        line = (f"{files.path}: parts {compact_ranges(wanted)} of "
                f"{compact_ranges(files.indices)} read: not the whole recording")
        notes.append(line)
        incomplete.append(line)
    return RunFiles(files.prefix, [index[i] for i in wanted], wanted)


def compact_ranges(values: Sequence[int]) -> str:
    """[1, 2, 3, 5] -> "1-3, 5"."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def runs_near(prefix: str, shown: int = 8) -> str:
    """For a prefix that names no run: the runs in its folder (or in the folder it names),
    as the text that ends the error message."""
    path = Path(prefix)
    folder = path if path.is_dir() else path.parent
    if not folder.is_dir():
        return ""
    runs = sorted({str(folder / f.name[: -len(suffix)]) for f in folder.iterdir()
                   for suffix in REQUEST_SUFFIXES if f.name.endswith(suffix)}
                  | {str(folder / f.name[: m.start()]) for f in folder.iterdir()
                     if (m := PART_PATTERN.search(f.name))})
    if not runs:
        return f"; {folder} holds no run"
    more = f" and {len(runs) - shown} more" if len(runs) > shown else ""
    return f"; the runs in {folder}: {', '.join(runs[:shown])}{more}"


def wanted_columns(columns: Sequence[str] | None) -> tuple[str, ...]:
    names = tuple(COLUMNS if columns is None else columns)
    unknown = [c for c in names if c not in TYPES]
    if unknown:
        raise ValueError(f"no such request-file columns: {', '.join(unknown)}")
    return names


def read_request_table(prefix: str | os.PathLike[str], columns: Sequence[str] | None = None,
                       parts: Iterable[int] | None = None) -> RequestTable:
    """The request file of a run (see the module docstring); `parts`: only these parts of a
    run written as parts (their indices, from 1), which is then not judged as a whole run."""
    names = wanted_columns(columns)
    notes: list[str] = []
    whole = run_files(prefix)
    incomplete = parts_gaps(whole) if whole.parted else []
    notes += incomplete
    files = select_parts(whole, parts, notes, incomplete)
    if not files.parted:
        path = files.paths[0]
        if path.name.endswith(STREAM_SUFFIX):
            table = read_stream(path, notes)
            return RequestTable(conform(path, table, names, notes), path, notes,
                                incomplete + notes[-1:])
        if path.suffix == ".csv":
            return RequestTable(conform(path, read_csv(path), names, notes), path, notes,
                                incomplete)
        table = read_parquet(path, names, notes)
        gaps = recording_gaps(path, pq.read_schema(path).metadata or {})
        notes += gaps
        return RequestTable(table, path, notes, incomplete + gaps)
    tables = [read_part(path, names, notes) for path in files.paths]
    table = pa.concat_tables(tables)
    if table.num_rows == 0:
        raise EmptyRun(f"{files.path}: no requests (an empty run)")
    return RequestTable(table, files.path, notes, incomplete)


def read_part(path: Path, names: tuple[str, ...], notes: list[str]) -> pa.Table:
    """One part, whole, in the canonical form; it may hold no rows. Of a stream part's notes,
    only a cut batch is kept (parts_gaps says the run did not end normally, once)."""
    if path.suffix == ".arrows":
        own: list[str] = []
        table = conform(path, read_stream(path, own, allow_empty=True), names, notes)
        notes += [line for line in own if "cut short" in line]
        return table
    return read_parquet(path, names, notes, allow_empty=True)


def parts_gaps(files: RunFiles) -> list[str]:
    """Why a run's parts are not its whole recording: a part missing (by index, and by the
    count each Parquet part records under PART_KEY), parts still in stream form (the run did
    not end normally), or what the recording's record says (RECORDING_KEY; see
    recording_gaps; its count of rows is checked against the parts' own). [] when whole."""
    gaps: list[str] = []
    streams = [i for i, p in zip(files.indices, files.paths, strict=True)
               if p.suffix == ".arrows"]
    if streams:
        gaps.append(f"run did not end normally (no {Path(files.prefix).name}{SUFFIX} nor "
                    f"every Parquet part): parts {compact_ranges(streams)} read in stream "
                    f"form from {files.path}")
    totals: set[object] = set()
    rows = 0
    last: tuple[Path, dict[bytes, bytes]] | None = None
    for path in files.paths:
        if path.suffix != ".parquet":
            continue
        try:
            meta = pq.read_metadata(path)
        except READ_ERRORS as exc:
            raise CorruptInput(f"{path}: not a readable Parquet file ({first_line(exc)})") \
                from None
        metadata = meta.metadata or {}
        rows += meta.num_rows
        try:
            part = json.loads(metadata.get(PART_KEY.encode(), b"{}"))
            totals.add(part.get("of") if isinstance(part, dict) else None)
        except ValueError:
            totals.add(None)
        last = (path, metadata)
    expected = files.indices[-1]
    if len(totals) > 1:
        gaps.append(f"{files.path}: the parts disagree on how many the run has: parts of "
                    "different runs?")
    elif totals and isinstance(total := next(iter(totals)), int):
        expected = max(expected, total)
    missing = sorted(set(range(1, expected + 1)) - set(files.indices))
    if missing:
        gaps.append(f"{files.path}: parts {compact_ranges(missing)} of {expected} missing: "
                    "their rows are lost")
    if last is not None and not streams:
        gaps += recording_gaps(last[0], last[1], rows)
    return gaps


def recording_gaps(path: Path, metadata: dict[bytes, bytes], rows: int | None = None
                   ) -> list[str]:
    """What the file's record of its recording (RECORDING_KEY) says was lost; [] when it
    says nothing was, or the file has no such record (another tool's file). `rows`: the rows
    read (parts: of all of them), checked against the rows it says were recorded."""
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
    if rows is not None and isinstance(recorded, int) and rows < recorded:
        gaps.append(f"{path}: the recorder recorded {recorded} requests, the parts hold "
                    f"{rows}: rows are lost")
    return gaps


# ## The run as a stream of pieces


@dataclass
class RequestStream:
    """A run's rows as pieces, for a pass that never holds the whole file: `pieces()` yields
    canonical tables (as read_request_table's, in the same order, with the same notes): a row
    group of a Parquet file or part; a stream file or part, or a CSV file, whole. `rows` is
    an upper bound of the rows, when the files say it before they are read (Parquet)."""

    files: RunFiles
    names: tuple[str, ...]
    notes: list[str]
    incomplete: list[str]
    rows: int | None

    @property
    def path(self) -> Path:
        return self.files.path

    def pieces(self) -> Iterator[pa.Table]:
        files, names, notes = self.files, self.names, self.notes
        if not files.parted:
            path = files.paths[0]
            if path.suffix == ".parquet":
                yield from parquet_pieces(path, names, notes)
                return
            read = read_request_table(path, names)  # the stream or CSV form, whole
            notes += read.notes
            self.incomplete += read.incomplete
            yield read.table
            return
        rows = 0
        for path in files.paths:
            if path.suffix == ".parquet":
                for piece in parquet_pieces(path, names, notes, allow_empty=True):
                    rows += piece.num_rows
                    yield piece
            else:
                piece = read_part(path, names, notes)
                rows += piece.num_rows
                yield piece
        if rows == 0:
            raise EmptyRun(f"{files.path}: no requests (an empty run)")


def open_request_stream(prefix: str | os.PathLike[str], columns: Sequence[str] | None = None,
                        parts: Iterable[int] | None = None) -> RequestStream:
    """The run's files, checked as far as their metadata goes, ready for `pieces()`."""
    names = wanted_columns(columns)
    notes: list[str] = []
    whole = run_files(prefix)
    incomplete = parts_gaps(whole) if whole.parted else []
    notes += incomplete
    files = select_parts(whole, parts, notes, incomplete)
    rows: int | None = None
    if all(p.suffix == ".parquet" for p in files.paths):
        rows = 0
        for path in files.paths:
            try:
                rows += pq.read_metadata(path).num_rows
            except READ_ERRORS as exc:
                raise CorruptInput(f"{path}: not a readable Parquet file "
                                   f"({first_line(exc)})") from None
    if not files.parted and files.paths[0].suffix == ".parquet":
        path = files.paths[0]
        try:
            schema = pq.read_schema(path)
        except READ_ERRORS as exc:
            raise CorruptInput(f"{path}: not a readable Parquet file ({first_line(exc)})") \
                from None
        check_schema(path, schema)
        absent = [c for c in names if schema.get_field_index(c) < 0]
        if absent:  # said first, as read_parquet does
            notes.append(f"{path} predates the columns {', '.join(absent)}: read as nulls")
        gaps = recording_gaps(path, schema.metadata or {})
        notes += gaps
        incomplete += gaps
    return RequestStream(files, names, notes, incomplete, rows)


@dataclass
class ParquetPlan:
    """What reading a Parquet request file takes: the file, opened so that its string columns
    come back as dictionaries; the columns to read; the string columns that the row-group
    statistics show to hold one value throughout (or only nulls), as `worker` and `cache`
    often do, built rather than read; and its rows."""

    file: pq.ParquetFile
    read: list[str]
    known: dict[str, object]
    rows: int


def plan_parquet(path: Path, names: tuple[str, ...], allow_empty: bool) -> ParquetPlan:
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except READ_ERRORS as exc:
        raise CorruptInput(f"{path}: not a readable Parquet file ({first_line(exc)})") from None
    check_schema(path, schema)
    rows = parquet.metadata.num_rows
    if rows == 0 and not allow_empty:
        raise EmptyRun(f"{path}: no requests (an empty run)")
    present = [c for c in names if schema.get_field_index(c) >= 0]
    strings = [c for c in present if TYPES[c] == "string"]
    known = uniform_values(parquet.metadata, strings)
    read = [c for c in present if c not in known]
    dictionary = [c for c in read if TYPES[c] == "string"]
    try:
        file = pq.ParquetFile(path, read_dictionary=dictionary)
    except READ_ERRORS as exc:
        raise CorruptInput(f"{path}: not a readable Parquet file ({first_line(exc)})") from None
    return ParquetPlan(file, read, known, rows)


def with_known(path: Path, plan: ParquetPlan, table: pa.Table, names: tuple[str, ...],
               notes: list[str]) -> pa.Table:
    for name, value in plan.known.items():
        table = table.append_column(name, constant_strings(value, table.num_rows))
    return conform(path, table, names, notes)


def parquet_pieces(path: Path, names: tuple[str, ...], notes: list[str],
                   allow_empty: bool = False) -> Iterator[pa.Table]:
    """A Parquet file row group by row group, each as read_parquet reads the whole file."""
    plan = plan_parquet(path, names, allow_empty)
    for block in blocks(plan.file.metadata):
        try:
            table = plan.file.read_row_groups(block, columns=plan.read)
        except READ_ERRORS as exc:
            raise CorruptInput(f"{path}: truncated or corrupt ({first_line(exc)})") from None
        yield with_known(path, plan, table, names, notes)


PIECE_ROWS = 1 << 20  # rows of a piece: row groups are read together up to this many


def blocks(meta: pq.FileMetaData) -> Iterator[list[int]]:
    """Consecutive row groups, about PIECE_ROWS rows at a time (a recorder's file has row
    groups of 131,072 rows, a tiled or another tool's may have far smaller ones): a piece's
    cost per distinct value is paid once per piece, not per row group."""
    block: list[int] = []
    rows = 0
    for i in range(meta.num_row_groups):
        block.append(i)
        rows += meta.row_group(i).num_rows
        if rows >= PIECE_ROWS:
            yield block
            block, rows = [], 0
    if block:
        yield block


# ## The forms


def read_parquet(path: Path, names: tuple[str, ...], notes: list[str],
                 allow_empty: bool = False) -> pa.Table:
    """Reads only what it must (see ParquetPlan), the whole file at once."""
    plan = plan_parquet(path, names, allow_empty)
    try:
        table = plan.file.read(columns=plan.read)
    except READ_ERRORS as exc:
        raise CorruptInput(f"{path}: truncated or corrupt ({first_line(exc)})") from None
    return with_known(path, plan, table, names, notes)


def read_stream(path: Path, notes: list[str], allow_empty: bool = False) -> pa.Table:
    """Every complete record batch of the Arrow IPC stream, in order."""
    try:
        reader = ipc.open_stream(pa.memory_map(str(path)))
    except READ_ERRORS as exc:
        if path.stat().st_size == 0 and allow_empty:
            return arrow_schema().empty_table()
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
    if rows == 0 and not allow_empty:
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
        note = f"{path} predates the columns {', '.join(absent)}: read as nulls"
        if note not in notes:
            notes.append(note)
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
