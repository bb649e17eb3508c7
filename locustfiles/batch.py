"""A stretch of recorded rows as integer codes: what the counters count, once per batch.

    batch = Batch(buffer.dense, buffer.notes, start)   # rows start.. of a RowBuffer
    batch.sessions.codes, batch.sessions.names          # numpy codes (-1: None) and the names
    steps = batch.steps(last)                           # each session's answers, in order

The request listener only appends a row to the buffer's columns (rowbuffer.py). The per-session
counters (`summary.Stickiness.add_batch`) and the live metrics (`livemetrics.Counts
.observe_batch`) take the rows a batch at a time: once a second, at each flush, and before
anything reads them (the summary, the web tab, a scrape). A batch costs numpy operations over
its rows and Python work per distinct session, container and label set, not per row.

What must follow the rows' order (a session's previous answer, its switches) is in `Steps`:
each session's answered rows in their order, with the container of the answer before each, the
batch's first one taking the session's last answer before the batch from the caller's state.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from operator import itemgetter
from typing import Any

import numpy as np

from locustfiles.rowbuffer import DENSE, Note

__all__ = ["Batch", "Coded", "Steps", "one_row"]

SESSION, CLASS, STATUS, CONTAINER, CACHE, AFFINITY, TIME = (
    DENSE.index(c) for c in ("session_id", "user_class", "status", "container_id", "cache",
                             "affinity", "response_time_ms"))


class Coded:
    """A column's values as codes: `codes[i]` indexes `names` (first seen first), -1 is None.
    `code(name)` adds a name the column lacks (a session's answer before the batch)."""

    def __init__(self, values: Sequence[Any]) -> None:
        try:
            distinct = dict.fromkeys(values)
        except TypeError:  # a user's own event with an unhashable value: its text
            values = [v if v is None or _hashable(v) else str(v) for v in values]
            distinct = dict.fromkeys(values)
        has_none = None in distinct
        if has_none:
            del distinct[None]
        self.names: list[Any] = list(distinct)
        self.present = len(self.names)  # names that occur in the column
        self._code_of: dict[Any, int] = {name: i for i, name in enumerate(self.names)}
        if not distinct or (len(distinct) == 1 and not has_none):  # one value: -1 or 0
            self.codes = np.full(len(values), 0 if distinct else -1, dtype=np.int64)
            return
        lookup = {**self._code_of, None: -1}
        self.codes = np.fromiter(map(lookup.__getitem__, values), dtype=np.int64,
                                 count=len(values))

    def code(self, name: Any) -> int:
        if name is None:
            return -1
        code = self._code_of.get(name)
        if code is None:
            code = self._code_of[name] = len(self.names)
            self.names.append(name)
        return code

    def name_at(self, row: int) -> Any:
        """The value at a row (None where None)."""
        code = int(self.codes[row])
        return None if code < 0 else self.names[code]

    @cached_property
    def first_rows(self) -> list[int]:
        """The row of each present name's first occurrence, in code order."""
        codes = self.codes
        valid = np.flatnonzero(codes >= 0)
        _, first = np.unique(codes[valid], return_index=True)
        return valid[first].tolist()  # np.unique sorts by code: code order


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


@dataclass(frozen=True)
class Steps:
    """Each session's answered rows of a batch, grouped by session (in code order), each group
    in the rows' order, with the container of the answer before each row (-1: none, the
    session's first answer)."""

    rows: np.ndarray  # batch rows
    session: np.ndarray  # their session codes
    container: np.ndarray  # their container codes
    prev: np.ndarray  # the container code of the session's answer before (-1: none)
    starts: np.ndarray  # where each group begins in `rows`

    @property
    def groups(self) -> np.ndarray:
        """The session code of each group."""
        return self.session[self.starts]

    @cached_property
    def sizes(self) -> np.ndarray:
        return np.diff(np.append(self.starts, len(self.rows)))

    @cached_property
    def switch(self) -> np.ndarray:
        """An answer from another container than the session's previous answer."""
        return (self.prev >= 0) & (self.prev != self.container)

    def per_group(self, flags: np.ndarray) -> np.ndarray:
        """How many of each group's rows have the flag."""
        if not len(self.starts):
            return np.zeros(0, dtype=np.int64)
        return np.add.reduceat(flags.astype(np.int64), self.starts)

    def first_in_group(self, flags: np.ndarray) -> dict[int, int]:
        """group index -> position (in `rows`) of its first row with the flag."""
        where = np.flatnonzero(flags)
        if not len(where):
            return {}
        group = np.searchsorted(self.starts, where, side="right") - 1
        groups, first = np.unique(group, return_index=True)
        return dict(zip(groups.tolist(), where[first].tolist(), strict=True))

    def last_containers(self) -> list[int]:
        """The container code of each group's last answer."""
        return self.container[np.append(self.starts[1:], len(self.rows)) - 1].tolist()

    def first_seen(self) -> list[tuple[int, int]]:
        """(session code, container code) pairs, each session's containers in the order first
        answered, sessions in code order."""
        if not len(self.rows):
            return []
        width = int(self.container.max()) + 1
        _, first = np.unique(self.session * width + self.container, return_index=True)
        first.sort()
        return list(zip(self.session[first].tolist(), self.container[first].tolist(),
                        strict=True))


class Batch:
    """Rows `start:` of a buffer's dense columns and notes (rowbuffer.py), coded on demand."""

    def __init__(self, dense: list[list[Any]], notes: list[Note], start: int = 0) -> None:
        if start:
            dense = [column[start:] for column in dense]
            first = bisect_left(notes, start, key=itemgetter(0))
            notes = [(row - start, error, stream) for row, error, stream in notes[first:]]
        self.columns = dense
        self.notes = notes
        self.n = len(dense[0]) if dense else 0

    def column(self, index: int) -> list[Any]:
        return self.columns[index]

    @cached_property
    def sessions(self) -> Coded:
        return Coded(self.columns[SESSION])

    @cached_property
    def classes(self) -> Coded:
        return Coded(self.columns[CLASS])

    @cached_property
    def containers(self) -> Coded:
        return Coded(self.columns[CONTAINER])

    @cached_property
    def caches(self) -> Coded:
        return Coded(self.columns[CACHE])

    @cached_property
    def status(self) -> np.ndarray:
        """HTTP status (0: a connection error, or none recorded)."""
        return _numbers(self.columns[STATUS], np.int64, _int)

    @cached_property
    def response_ms(self) -> np.ndarray:
        return _numbers(self.columns[TIME], np.float64, _float)

    def errors(self) -> list[tuple[int, str]]:
        """(row, error) of the rows that failed."""
        return [(row, error) for row, error, _ in self.notes if error is not None]

    @cached_property
    def _answers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The answered rows grouped by session, each group in the rows' order: (rows, their
        session codes, their container codes, where each group starts); sorted once, for
        every counter that asks for `steps`."""
        sessions, containers = self.sessions.codes, self.containers.codes
        answered = np.flatnonzero((sessions >= 0) & (containers >= 0))
        rows = answered[np.argsort(sessions[answered], kind="stable")]
        session = sessions[rows]
        starts = np.flatnonzero(np.append(True, session[1:] != session[:-1])) if len(rows) \
            else np.zeros(0, dtype=np.int64)
        return rows, session, containers[rows], starts

    def steps(self, before: Sequence[Any]) -> Steps:
        """Each session's answered rows in order; `before[k]`: the container of session k's
        last answer before this batch (None: it had none)."""
        rows, session, container, starts = self._answers
        prev = np.empty_like(container)
        if len(rows):
            prev[1:] = container[:-1]
            code = self.containers.code
            prev[starts] = [code(before[k]) for k in session[starts].tolist()]
        return Steps(rows, session, container, prev, starts)


def _numbers(values: list[Any], dtype: Any, clean: Callable[[Any], Any]) -> np.ndarray:
    """A column as numbers; an odd value (None, text from a user's own event) cleaned."""
    try:
        return np.array(values, dtype=dtype).reshape(len(values))
    except (TypeError, ValueError, OverflowError):
        return np.array([clean(v) for v in values], dtype=dtype)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def one_row(session_id: str | None, user_class: str | None, affinity: str | None, status: int,
            container_id: str | None, error: str | None, *, cache: str | None = None,
            response_ms: float = 0.0, stream: Any = None) -> Batch:
    """A batch of one row (tests, and callers that count a row at a time)."""
    values = {"session_id": session_id, "user_class": user_class, "affinity": affinity,
              "status": status, "container_id": container_id, "cache": cache,
              "response_time_ms": response_ms}
    dense = [[values.get(name)] for name in DENSE]
    notes: list[Note] = [] if error is None and stream is None else [(0, error, stream)]
    return Batch(dense, notes)
