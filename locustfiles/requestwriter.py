"""The row writer: rows to a request file that survives a crash, compacted at a normal end.

    writer = RequestFileWriter("out/run", on_failure=print)  # out/run_requests.{arrows,parquet}
    writer.buffer.appends        # the hot path appends to its columns (rowbuffer.py)
    writer.extend(dense, notes, "w1")  # the master: a worker's rows
    writer.flush()               # every second, and whenever `batch_rows` rows are buffered
    writer.close()               # at the end: the final Parquet file; idempotent

During the run each flush appends one record batch to `PREFIX_requests.arrows` (an Arrow IPC
stream, lz4) and hands it to the OS: a SIGKILL or an OOM kill of the process loses only the
rows buffered since the last flush (at most `batch_rows`, about one second of requests). The
file is fsync'ed at most every `fsync_s` seconds and at the end, so a power cut or kernel crash
loses at most the last `fsync_s` seconds more. At a normal end the stream is compacted into
`PREFIX_requests.parquet` (written under a temporary name, fsync'ed, renamed), and the stream
file is removed. reports/requestfile.py reads either; docs/request-file.md says it for users.

Parts (`part_bytes`, `part_s`: the Locust options of partoptions.py): the stream is written as
`PREFIX_requests-00001.arrows`, `-00002.arrows`, ...: after a flush that brings the open part to
`part_bytes`, or before the first flush `part_s` seconds after it opened, the part is closed
(end-of-stream marker, fsync) and the next flush opens the next one. At a normal end each is
compacted into `PREFIX_requests-0000N.parquet`, whose metadata carries the run's recording
(with "parts": N) and {"index", "of", "rows"} under PART_KEY; the stream parts go once every
part is written, and if one cannot be, the Parquet parts written so far go instead (the run
stays whole, in stream form). docs/request-file.md#parts.

Fail closed: the first error writing either file (ENOSPC, EIO, a read-only disk) is kept as
one line naming the file and the cause (`failure`), `on_failure` is called once with it, and
nothing is written after it: rows that arrive later are counted (`dropped`) and let go, so
memory stays bounded while the disk fails. The batches written before the error stay readable
in the stream file, which is then never compacted or removed.

Rows are buffered as columns (rowbuffer.py: no tuple or dict per row) and become Arrow arrays
once per flush: numbers through `array.array` buffers, strings dictionary-encoded with the
distinct values of the batch. It never calls `pyarrow.array()` on Python objects, which would
import pandas into the Locust process (a second's stall mid-run, and pandas for nothing).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from locustfiles.batch import Batch, Coded
from locustfiles.rowbuffer import BATCH_ROWS, DENSE, ROW_COLUMNS, SPARSE, RowBuffer
from reports.columns import (
    PART_KEY,
    PART_PATTERN,
    PART_STEM,
    RECORDING_KEY,
    STREAM_SUFFIX,
    SUFFIX,
    TYPES,
    arrow_schema,
    part_path,
)

FSYNC_S = 5.0
ROW_GROUP_ROWS = 1 << 17  # rows per row group of the final Parquet file
__all__ = ["BATCH_ROWS", "ROW_COLUMNS", "RequestFileWriter", "RowBuffer", "encode", "stream_schema"]
STRING = pa.dictionary(pa.int32(), pa.string())


def stream_schema() -> pa.Schema:
    """The stream file's schema: the request file's, strings dictionary-encoded."""
    return pa.schema([(f.name, STRING if pa.types.is_string(f.type) else f.type)
                      for f in arrow_schema()])


class RequestFileWriter:
    """Rows to `PREFIX_requests.arrows` during the run, `PREFIX_requests.parquet` at the end."""

    def __init__(self, prefix: str, *, worker: str = "local", batch_rows: int = BATCH_ROWS,
                 fsync_s: float = FSYNC_S, on_failure: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, part_bytes: int | None = None,
                 part_s: float | None = None) -> None:
        self.prefix = prefix
        # parts: a new part once the stream part reaches part_bytes or has been open part_s
        self.part_bytes = part_bytes or None
        self.part_s = part_s or None
        self.parted = bool(self.part_bytes or self.part_s)
        self.path = Path(prefix + SUFFIX)
        self.stream_path = Path(part_path(prefix, 1, ".arrows") if self.parted
                                else prefix + STREAM_SUFFIX)
        self.stream_paths: list[Path] = []  # the stream files opened, in order (parts: 1, 2..)
        self.stream_rows: list[int] = []  # rows written to each
        self.worker = worker
        self.batch_rows = batch_rows
        self.fsync_s = fsync_s
        self.on_failure = on_failure
        self.clock = clock
        self.buffer = RowBuffer()
        self.runs: list[tuple[str, int]] = []  # the worker column: (worker, first row) runs
        self.written = 0  # rows in closed batches of the stream file
        self.batches = 0
        self.dropped = 0  # rows let go after a write failure
        self.failure: str | None = None
        self.closed = False
        self._file: Any = None
        self._stream: Any = None
        self._synced_at = 0.0
        self._schema = stream_schema()
        self._opened_at = 0.0
        # a file of an earlier run under this prefix must not be read as this run's
        for stale in (self.path, Path(prefix + STREAM_SUFFIX), *stale_parts(prefix)):
            stale.unlink(missing_ok=True)

    # ## During the run

    def extend(self, dense: list[list[Any]], notes: list[Any], worker: str) -> None:
        """A worker's rows (the master): its columns and notes (rowbuffer.py)."""
        n = len(self.buffer)
        if n == 0:
            self.runs = [(worker, 0)]
        elif not self.runs:  # the rows so far came without a worker: they are self.worker's
            self.runs = [(self.worker, 0)] + ([(worker, n)] if worker != self.worker else [])
        elif worker != self.runs[-1][0]:
            self.runs.append((worker, n))
        self.worker = worker
        self.buffer.extend(dense, notes)
        if len(self.buffer) >= self.batch_rows:
            self.flush()

    def flush(self, coded: Batch | None = None) -> None:
        """Append the buffered rows to the stream file as one record batch; they leave the
        buffer whether written or, after a failure, dropped. `coded`: the same rows as the
        recorder counted them (locustfiles/batch.py), whose codes the strings reuse."""
        buffer = self.buffer
        n = len(buffer)
        if not n:
            return
        if self.failure is None and not self.closed:
            try:
                batch = encode(buffer, self._worker_runs(n), self._schema, coded)
                if self._part_old():  # this batch starts the next part
                    self._next_part()
                if self.failure is None:
                    self._write(batch)
                    self.written += n
                    self.batches += 1
                    self.stream_rows[-1] += n
                    if self._part_full():  # the next batch starts the next part
                        self._next_part()
            except Exception as exc:  # ENOSPC, EIO, a closed file...: fail closed, never retry
                self._fail(self.stream_path, exc)
        if self.failure is not None:
            self.dropped += n
        buffer.clear()  # the same lists: the recorder holds their `append`
        self.runs.clear()

    def _worker_runs(self, n: int) -> list[tuple[str, int]]:
        """(worker, rows) runs of the buffer, from the (worker, first row) runs."""
        runs = self.runs or [(self.worker, 0)]
        return [(w, (runs[i + 1][1] if i + 1 < len(runs) else n) - start)
                for i, (w, start) in enumerate(runs)]

    def _write(self, batch: pa.RecordBatch) -> None:
        if self._stream is None:
            self.stream_path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.stream_path, "wb")  # noqa: SIM115 (closed in close())
            self.stream_paths.append(self.stream_path)
            self.stream_rows.append(0)
            # compressed in this thread: Arrow's thread pool, for a second's rows, cost the
            # load's own thread more preemptions than it saved (scripts/bench_recorder.py)
            options = ipc.IpcWriteOptions(compression="lz4", use_threads=False)
            self._stream = ipc.new_stream(self._file, self._schema, options=options)
            self._synced_at = self._opened_at = self.clock()
        self._stream.write_batch(batch)
        self._file.flush()  # to the OS: a killed process loses nothing written so far
        if self.clock() - self._synced_at >= self.fsync_s:
            os.fsync(self._file.fileno())
            self._synced_at = self.clock()

    def _part_full(self) -> bool:
        """Parts: the open stream part has reached its size."""
        return self.part_bytes is not None and self._stream is not None \
            and self._file.tell() >= self.part_bytes

    def _part_old(self) -> bool:
        """Parts: the open stream part has been open part_s (its batches are those flushed
        in [opened, opened + part_s))."""
        return self.part_s is not None and self._stream is not None \
            and self.clock() - self._opened_at >= self.part_s

    def _next_part(self) -> None:
        """Close the stream part (end-of-stream marker, fsync'ed); the next flush opens the
        next one. A failure to close it fails the writer closed, as any write error."""
        self._close_stream()
        self._stream = self._file = None
        self.stream_path = Path(part_path(self.prefix, len(self.stream_paths) + 1, ".arrows"))

    def written_to(self) -> str:
        """Where the rows are, for the console: the final file (or parts), or after a
        failure the stream file (part) being written."""
        if self.failure is not None:
            return str(self.stream_path)
        if not self.parted:
            return str(self.path)
        n = max(len(self.stream_paths), 1)
        last = Path(part_path(self.prefix, n, ".parquet")).name
        return f"{part_path(self.prefix, 1, '.parquet')}{'' if n == 1 else ' .. ' + last} " \
               f"({n} part{'s' if n > 1 else ''})"

    def _fail(self, path: Path, exc: BaseException) -> None:
        if self.failure is not None:
            return
        self.failure = f"cannot write {path}: {describe(exc)}"
        if self.on_failure is not None:
            self.on_failure(self.failure)

    # ## The end

    def close(self, recording: dict[str, Any] | None = None) -> None:
        """Flush, close the stream, compact it into the final Parquet file, which records
        `recording` (how the run ended, what each process sent and recorded: see
        reports.columns.RECORDING_KEY) in its metadata. Idempotent."""
        if self.closed:
            return
        self.flush()
        self.closed = True
        self._close_stream()
        if self.failure is None:
            self._compact(recording)

    def _close_stream(self) -> None:
        if self._stream is None:
            return
        try:
            try:
                self._stream.close()  # the end-of-stream marker
            finally:
                self._file.flush()
                os.fsync(self._file.fileno())
        except Exception as exc:
            self._fail(self.stream_path, exc)
        finally:
            with contextlib.suppress(Exception):
                self._file.close()

    def _compact(self, recording: dict[str, Any] | None = None) -> None:
        """The stream file's batches into `PREFIX_requests.parquet`, then the stream goes.
        Parts: each stream part into its Parquet part; the stream parts go once every part is
        written (a failure removes the Parquet parts written so far: the run stays whole, in
        stream form)."""
        if not self.parted:
            self._compact_one(self.stream_paths[:1], self.path, recording, None)
            return
        streams: list[Path | None] = list(self.stream_paths) or [None]  # no rows: one empty part
        rows = self.stream_rows or [0]
        record = None if recording is None else {**recording, "parts": len(streams)}
        written: list[Path] = []
        for i, stream in enumerate(streams, 1):
            final = Path(part_path(self.prefix, i, ".parquet"))
            part = {"index": i, "of": len(streams), "rows": rows[i - 1]}
            if not self._compact_one([] if stream is None else [stream], final, record, part,
                                     remove_stream=False):
                for path in written:
                    with contextlib.suppress(OSError):
                        path.unlink(missing_ok=True)
                return
            written.append(final)
        for stream in self.stream_paths:
            stream.unlink(missing_ok=True)

    def _compact_one(self, streams: list[Path], final: Path, recording: dict[str, Any] | None,
                     part: dict[str, int] | None, remove_stream: bool = True) -> bool:
        tmp = final.with_name(final.name + ".tmp")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            write_parquet(tmp, stream_batches(streams), recording, part)
            os.replace(tmp, final)
            sync_directory(final.parent)
        except Exception as exc:
            self._fail(tmp, exc)
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            return False
        if remove_stream:
            for stream in streams:
                stream.unlink(missing_ok=True)
        return True


def stream_batches(paths: list[Path]) -> Iterable[pa.RecordBatch]:
    for path in paths:
        with pa.memory_map(str(path)) as source:
            yield from ipc.open_stream(source)


def stale_parts(prefix: str) -> list[Path]:
    """The part files (and their temporary files) of an earlier run under this prefix."""
    path = Path(prefix)
    folder, stem = path.parent, path.name + PART_STEM
    if not folder.is_dir():
        return []
    return [f for f in folder.iterdir() if f.name.startswith(stem)
            and PART_PATTERN.search(f.name.removesuffix(".tmp"))]


def write_parquet(path: Path, batches: Iterable[pa.RecordBatch],
                  recording: dict[str, Any] | None = None,
                  part: dict[str, int] | None = None) -> None:
    """Batches into one Parquet file, `ROW_GROUP_ROWS` rows per row group, fsync'ed; with
    `recording` as JSON under RECORDING_KEY in the file's metadata (and `part`, for a part of
    a run, under PART_KEY)."""
    schema = arrow_schema()
    metadata = {}
    if recording is not None:
        metadata[RECORDING_KEY] = json.dumps(recording)
    if part is not None:
        metadata[PART_KEY] = json.dumps(part)
    if metadata:
        schema = schema.with_metadata(metadata)
    strings = [f.name for f in schema if pa.types.is_string(f.type)]
    # dictionary pages for the strings only: the numbers gain nothing from them
    with pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=strings,
                          write_page_checksum=True) as writer:
        pending: list[pa.RecordBatch] = []
        size = 0
        for batch in itertools.chain(batches, [None]):
            if batch is not None:
                pending.append(batch)
                size += batch.num_rows
            if pending and (batch is None or size >= ROW_GROUP_ROWS):
                table = pa.Table.from_batches(pending).cast(schema)
                writer.write_table(table, row_group_size=max(size, 1))
                pending, size = [], 0
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def sync_directory(path: Path) -> None:
    """The rename itself survives a power cut once the directory is synced (POSIX)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def describe(exc: BaseException) -> str:
    """An OS error as its cause ("No space left on device (errno 28)"), else one line."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} (errno {exc.errno})"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


# ## Rows to columns


def encode(buffer: RowBuffer, workers: list[tuple[str, int]], schema: pa.Schema,
           coded: Batch | None = None) -> pa.RecordBatch:
    """One record batch from the buffer's columns and the worker column's runs; the string
    columns that `coded` (the same rows) has coded already are taken from it."""
    n = len(buffer)
    done = {} if coded is None or coded.n != n else {
        "session_id": coded.sessions, "user_class": coded.classes,
        "container_id": coded.containers, "cache": coded.caches}
    values: dict[str, Sequence[Any]] = dict(zip(DENSE, buffer.dense, strict=True))
    if buffer.notes:
        values.update(zip(SPARSE, buffer.sparse_columns(), strict=True))
    arrays: list[pa.Array] = []
    for field in schema:
        column = values.get(field.name)
        if field.name == "worker":
            arrays.append(runs_of(workers, n))
        elif field.name in done:
            arrays.append(dictionary(done[field.name]))
        elif column is None:
            arrays.append(pa.nulls(n, field.type))
        elif TYPES[field.name] == "string":
            arrays.append(strings(column))
        else:
            arrays.append(numbers(column, TYPES[field.name]))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


NUMBER_CODES = {"float64": ("d", pa.float64(), 0.0), "int32": ("i", pa.int32(), 0)}


def numbers(values: Sequence[Any], kind: str) -> pa.Array:
    """A float64 or int32 column; None is null."""
    code, arrow_type, zero = NUMBER_CODES[kind]
    n = len(values)
    try:  # the usual column: no null, nothing odd
        return pa.Array.from_buffers(arrow_type, n, [None, pa.py_buffer(array(code, values))])
    except (TypeError, OverflowError):
        pass
    nulls = values.count(None)
    if nulls == n:
        return pa.nulls(n, arrow_type)
    validity = None
    if nulls:
        validity = bitmap([v is not None for v in values])
        values = [zero if v is None else v for v in values]
    try:
        data = array(code, values)
    except (TypeError, OverflowError):  # a stray value from a user's own event: null
        cleaned = [number(v, kind) for v in values]
        validity = bitmap([v is not None for v in cleaned])
        data = array(code, [zero if v is None else v for v in cleaned])
    return pa.Array.from_buffers(arrow_type, n, [validity, pa.py_buffer(data)])


def number(value: Any, kind: str) -> float | int | None:
    try:
        return float(value) if kind == "float64" else int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def strings(values: Sequence[Any]) -> pa.Array:
    """A dictionary-encoded string column; the dictionary holds the batch's distinct values."""
    return dictionary(Coded(values))


def dictionary(coded: Coded) -> pa.Array:
    """A dictionary-encoded string column from its codes (batch.py): the distinct values
    first seen first, "" first under the nulls."""
    n = len(coded.codes)
    names = coded.names[:coded.present]
    if not names:
        return pa.nulls(n, STRING)
    valid = coded.codes >= 0
    if valid.all():
        codes, validity = coded.codes.astype(np.int32), None
        dictionary_names: list[Any] = names
    else:
        codes = (coded.codes + 1).astype(np.int32)
        validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
        dictionary_names = ["", *names]
    indices = pa.Array.from_buffers(pa.int32(), n, [validity, pa.py_buffer(codes)])
    return pa.DictionaryArray.from_arrays(indices, string_array(dictionary_names))


def string_array(values: Sequence[Any]) -> pa.Array:
    encoded = [str(v).encode("utf-8", "surrogatepass") for v in values]
    offsets = array("i", itertools.accumulate(map(len, encoded), initial=0))
    data = b"".join(encoded)
    return pa.Array.from_buffers(pa.string(), len(encoded),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def runs_of(workers: list[tuple[str, int]], n: int) -> pa.Array:
    """The worker column from (worker, rows) runs."""
    names = list(dict.fromkeys(w for w, _ in workers))
    if len(names) == 1:
        codes = np.zeros(n, dtype=np.int32)
    else:
        code_of = {w: i for i, w in enumerate(names)}
        codes = np.repeat(np.array([code_of[w] for w, _ in workers], dtype=np.int32),
                          [count for _, count in workers])
    indices = pa.Array.from_buffers(pa.int32(), n, [None, pa.py_buffer(codes)])
    return pa.DictionaryArray.from_arrays(indices, string_array(names))


def bitmap(flags: list[bool]) -> pa.Buffer:
    return pa.py_buffer(np.packbits(np.array(flags, dtype=bool), bitorder="little"))
