"""Synthetic runs with known answers, written in the real request-file format
(reports.columns): rows, event logs and two scenarios."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from modal_app.local.rendezvous import pick
from reports.columns import COLUMNS, arrow_schema

T0 = 1_795_000_000.0
A, B, C, D = "ta-A", "ta-B", "ta-C", "ta-D"


@dataclass
class Row:
    ts: float
    session_id: str
    container_id: str | None
    status: int = 200
    response_time_ms: float = 10.0
    user_class: str = "StickyUser"
    name: str = "POST /"
    cache: str | None = None
    error: str | None = None
    worker: str = "local"
    # the columns of newer files (affinity: issue 9; streaming: issue 13), written only when
    # some row sets them: a file without them is an older file
    affinity: str | None = None
    ttfb_ms: float | None = None
    ttft_ms: float | None = None
    tokens: int | None = None
    max_gap_ms: float | None = None


NEWER: dict[str, pa.DataType] = {
    "affinity": pa.string(), "ttfb_ms": pa.float64(), "ttft_ms": pa.float64(),
    "tokens": pa.int32(), "max_gap_ms": pa.float64()}


def request_schema(records: list[dict[str, object]]) -> pa.Schema:
    schema = arrow_schema()
    for name, kind in NEWER.items():
        if name not in schema.names and any(r[name] is not None for r in records):
            schema = schema.append(pa.field(name, kind))
    return schema


def write_requests(path: Path, rows: Iterable[Row]) -> Path:
    records = [asdict(r) for r in rows]
    schema = request_schema(records)
    table = pa.Table.from_pylist(records, schema=schema) if records else schema.empty_table()
    pq.write_table(table.select([*COLUMNS, *(n for n in schema.names if n not in COLUMNS)]),
                   path, compression="zstd")
    return path


def write_events(path: Path, events: Iterable[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def added(ts: float, cid: str, live: list[str], cause: str = "ready") -> dict[str, object]:
    return {"ts": ts, "event": "added", "container_id": cid, "cause": cause, "live": live}


def removed(ts: float, cid: str, live: list[str], cause: str = "kill") -> dict[str, object]:
    return {"ts": ts, "event": "removed", "container_id": cid, "cause": cause, "live": live}


def session_ids(count: int, tag: str = "s") -> list[str]:
    return [f"{tag}{i:04d}" for i in range(count)]


# -- scenario 1: exactly 3 of 50 sessions switched ---------------------------------------------


def three_switched_rows() -> list[Row]:
    """50 sessions x 10 requests, 1 s apart, on 3 stable containers; sessions 0, 1 and 2
    move to another container at their 6th request and stay there (one switch each)."""
    rows = []
    containers = (A, B, C)
    for i, sid in enumerate(session_ids(50)):
        home = containers[i % 3]
        for j in range(10):
            cid = containers[(i + 1) % 3] if i < 3 and j >= 5 else home
            rows.append(Row(T0 + j + i * 0.01, sid, cid, response_time_ms=10.0 + j))
    return rows


# -- scenario 2: a scale-up with rendezvous remaps and one collateral move ---------------------

CHANGE_AT = T0 + 10.0
COLLATERAL_SESSION = "c0000"


def scale_up_rows(sessions: int = 200) -> tuple[list[Row], int]:
    """Sessions on [A, B, C], then D joins at CHANGE_AT; each session sends a request every
    second from T0. Owners follow rendezvous hashing exactly, except COLLATERAL_SESSION, which
    moves from A to B (both live throughout): one collateral move. Every session that
    rendezvous moves also sends a request just before the change that is routed after it
    (answered after the change, on the new owner). Returns the rows and the number of
    sessions that change owner."""
    rows = []
    moved = 0
    ids = [COLLATERAL_SESSION, *session_ids(sessions, "c")[1:]]
    for i, sid in enumerate(ids):
        before = A if sid == COLLATERAL_SESSION else pick(sid, [A, B, C])
        after = B if sid == COLLATERAL_SESSION else pick(sid, [A, B, C, D])
        moved += before != after
        offset = 0.3 + (i % 50) * 0.01
        for j in range(20):
            ts = T0 + j + offset
            rows.append(Row(ts, sid, before if ts < CHANGE_AT else after))
        if before != after and sid != COLLATERAL_SESSION:
            rows.append(Row(CHANGE_AT - 0.02, sid, after, response_time_ms=60.0))
    return rows, moved


def scale_up_events() -> list[dict[str, object]]:
    return [
        added(T0 - 5, A, [A]), added(T0 - 5, B, [A, B]), added(T0 - 5, C, [A, B, C]),
        {"ts": CHANGE_AT - 1.5, "event": "control", "action": "scale", "replicas": 4},
        added(CHANGE_AT, D, [A, B, C, D]),
        removed(T0 + 40, A, [B, C, D], "shutdown"),
    ]
