"""Rows held as columns until they are written (local, master) or shipped (worker).

    buffer = RowBuffer()
    ts, rt, session, user_class, name, status, container, cache, affinity = buffer.appends
    ts(1e9); rt(3.0); ...                       # the hot path: one list append per column
    buffer.note(len(buffer) - 1, error, stream) # only a row with an error or stream figures
    buffer.add(row)                             # a whole row, in ROW_COLUMNS order (tests)

Why columns: a tuple per row costs a transposition per flush (zip over thousands of rows) and
keeps thousands of young container objects alive for the garbage collector to scan; appending
numbers and strings to a few long lists creates no container at all. Every row fills the
DENSE columns; the SPARSE ones (the error, the streaming figures) are null for nearly every
row, so they are kept as (row, error, stream figures) notes, one per row that has any.
The lists are never replaced (the hot path holds their `append`): `clear()` empties them.
"""

from __future__ import annotations

from typing import Any

DENSE: tuple[str, ...] = ("ts", "response_time_ms", "session_id", "user_class", "name",
                          "status", "container_id", "cache", "affinity")
STREAM: tuple[str, ...] = ("ttfb_ms", "ttft_ms", "tokens", "max_gap_ms")
SPARSE: tuple[str, ...] = ("error", *STREAM)
ROW_COLUMNS: tuple[str, ...] = DENSE + SPARSE  # a whole row (every column but `worker`)
BATCH_ROWS = 32768  # rows buffered at most before a flush: more than a second's worth of
#                   one Locust process, which is then flushed (and counted) once a second

Row = tuple[Any, ...]  # in ROW_COLUMNS order
Note = tuple[int, str | None, Any]  # (row, error, stream figures in STREAM order or None)


class RowBuffer:
    """Dense columns as lists, sparse ones as notes (see the module docstring)."""

    def __init__(self) -> None:
        self.dense: list[list[Any]] = [[] for _ in DENSE]
        self.notes: list[Note] = []
        self.appends = tuple(column.append for column in self.dense)
        self.note = self.notes.append

    def __len__(self) -> int:
        return len(self.dense[0])

    def add(self, row: Row) -> None:
        """One whole row, in ROW_COLUMNS order."""
        n = len(self)
        for append, value in zip(self.appends, row, strict=False):
            append(value)
        error, stream = row[len(DENSE)], tuple(row[len(DENSE) + 1:])
        has_stream = any(v is not None for v in stream)
        if error is not None or has_stream:
            self.note((n, error, stream if has_stream else None))

    def extend(self, dense: list[list[Any]], notes: list[Any]) -> None:
        """Columns and notes of another buffer (a worker's payload): appended in order."""
        n = len(self)
        count = len(dense[0]) if dense else 0
        if len(dense) != len(DENSE) or any(len(column) != count for column in dense):
            raise ValueError(f"columns of unequal length or not {len(DENSE)} of them")
        for column, values in zip(self.dense, dense, strict=True):
            column.extend(values)
        for row, error, stream in notes:
            if not 0 <= row < count:
                raise ValueError(f"a note for row {row} of {count}")
            self.note((n + row, error, None if stream is None else tuple(stream)))

    def take(self) -> tuple[list[list[Any]], list[Note]]:
        """Copies of the columns and notes; the buffer is then empty."""
        taken = [list(column) for column in self.dense], list(self.notes)
        self.clear()
        return taken

    def clear(self) -> None:
        for column in self.dense:
            column.clear()
        self.notes.clear()

    def sparse_columns(self) -> list[list[Any]]:
        """The SPARSE columns in full (None where no note says otherwise)."""
        n = len(self)
        columns: list[list[Any]] = [[None] * n for _ in SPARSE]
        errors = columns[0]
        for row, error, stream in self.notes:
            errors[row] = error
            if stream is not None:
                for column, value in zip(columns[1:], stream, strict=True):
                    column[row] = value
        return columns

    def rows(self) -> list[Row]:
        """Every row, in ROW_COLUMNS order (for tests and small batches)."""
        return list(zip(*self.dense, *self.sparse_columns(), strict=True))
