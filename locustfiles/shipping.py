"""Shipping rows from Locust workers to the master (`--processes N`, `--master`/`--worker`).

Workers only buffer (`Outbox`); they ship their rows as column lists (msgpack-friendly) in each
`report_to_master` payload, the same message as Locust's own statistics, and in a custom
message (`PAYLOAD`, through the public `runner.send_message`) whenever `batch_rows` rows or
`flush_s` seconds have piled up. Workers send deltas and forget them. The master (`Intake`)
merges the payloads in arrival order and keeps a ledger per worker. A worker marks its
payloads `done` once its users have stopped; a worker whose last payload is not `done` at the
end (killed, cut off) lost at most its last unsent batch, and `lost_tails()` says so.

One Locust internal stays: `ship_last()` calls `runner._send_stats()` for the worker's last
report (tests/locustfiles/test_recorder_pins.py pins it).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from locustfiles.requestwriter import ROW_COLUMNS, Row

PAYLOAD = "modal_sticky_rows"  # key in report_to_master data, and the custom message type


class Outbox:
    """A worker's rows not yet shipped."""

    def __init__(self, *, batch_rows: int, flush_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.batch_rows = batch_rows
        self.flush_s = flush_s
        self.clock = clock
        self.rows: list[Row] = []
        self.stopped = False  # users stopped since the last test start
        self.since = 0.0

    def due(self) -> bool:
        """Rows have waited `flush_s` (the ticker's question)."""
        return bool(self.rows) and self.clock() - self.since >= self.flush_s

    def payload(self) -> dict[str, Any]:
        """Take the rows as a msgpack-friendly payload: column lists."""
        rows = self.rows
        self.rows = []
        columns = [list(c) for c in zip(*rows, strict=True)] if rows else []
        return {"n": len(rows), "cols": columns, "done": self.stopped}

    def send(self, runner: Any) -> None:
        """Ship the rows now, in our own message."""
        if runner is not None and self.rows:
            runner.send_message(PAYLOAD, self.payload())


def ship_last(runner: Any, outbox: Outbox) -> None:
    """The worker's last payload, in a last statistics report: after a Ctrl-C of its own
    Locust would not send one, and its last requests would be missing from both its
    statistics and the request file. (After the master's quit message Locust has sent it:
    this one is then empty.) Locust internal: `WorkerRunner._send_stats`."""
    if runner is None:
        return
    send_stats = getattr(runner, "_send_stats", None)
    if callable(send_stats):
        send_stats()
    else:
        outbox.send(runner)


@dataclass(slots=True)
class WorkerLedger:
    rows: int = 0
    payloads: int = 0
    done: bool = True  # its last payload came after its users stopped
    last_payload_at: float = 0.0
    rate: float = 0.0  # rows/s between its last two payloads


class Intake:
    """The master's side: payloads to rows, with a ledger per worker."""

    def __init__(self, *, batch_rows: int, flush_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.batch_rows = batch_rows
        self.flush_s = flush_s
        self.clock = clock
        self.workers: dict[str, WorkerLedger] = {}

    def rows(self, worker_id: str, payload: dict[str, Any]) -> Iterator[Row]:
        """A worker's payload as rows, in order; the ledger notes it. Raises on a bad one."""
        n = int(payload["n"])
        columns = payload["cols"]
        if n and (len(columns) != len(ROW_COLUMNS) or any(len(c) != n for c in columns)):
            raise ValueError(f"worker {worker_id}: a payload of {len(columns)} columns")
        ledger = self.workers.setdefault(worker_id, WorkerLedger())
        now = self.clock()
        if ledger.payloads and now > ledger.last_payload_at:
            ledger.rate = n / (now - ledger.last_payload_at)
        ledger.payloads += 1
        ledger.rows += n
        ledger.done = bool(payload["done"])
        ledger.last_payload_at = now
        return zip(*columns, strict=True) if n else iter(())

    def lost_tails(self, missing: Iterable[str] = ()) -> list[str]:
        """One line per worker that ended without its final batch (`missing`: the ids Locust
        lists as missing workers)."""
        lines = []
        for worker_id, ledger in sorted(self.workers.items()):
            if not ledger.done:
                estimate = min(self.batch_rows, round(ledger.rate * self.flush_s) + 1)
                lines.append(f"worker {worker_id}: at most {self.batch_rows} requests not "
                             f"recorded (no final batch; about {estimate} at its last rate); "
                             "Locust's statistics lose its last report too")
        for node_id in itertools.filterfalse(self.workers.__contains__, missing):
            lines.append(f"worker {node_id}: went missing before sending any rows: at most "
                         f"{self.batch_rows} requests not recorded")
        return lines
