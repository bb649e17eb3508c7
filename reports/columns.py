"""The request file: one row per request, written by the Locust recorder, read by the report.

This module is the single definition both sides use. It imports nothing heavy: pyarrow is
imported only by `arrow_schema()`, when a file is written or read.

File: `PREFIX_requests.parquet` (Apache Parquet, zstd, one row group per flushed batch).

| column           | type    | meaning                                                         |
|------------------|---------|-----------------------------------------------------------------|
| ts               | float64 | request start, Unix seconds                                     |
| response_time_ms | float64 | Locust's response time, milliseconds                            |
| session_id       | string  | the user's Modal-Session-Id (NonStickyUser: its own id, unsent) |
| user_class       | string  | Locust user class name                                          |
| name             | string  | Locust request name                                             |
| status           | int32   | HTTP status; 0 = connection error or timeout                    |
| container_id     | string  | CONTAINER_ID from the body; null when absent or unparseable     |
| cache            | string  | "hit" / "miss" when the replica simulates a KV cache, else null |
| error            | string  | Locust's error or a body error; null when the request succeeded |
| worker           | string  | "local", or the Locust worker's client id                       |
"""

from __future__ import annotations

from typing import Any

COLUMNS: tuple[str, ...] = (
    "ts", "response_time_ms", "session_id", "user_class", "name", "status",
    "container_id", "cache", "error", "worker",
)
TYPES: dict[str, str] = {
    "ts": "float64", "response_time_ms": "float64", "session_id": "string",
    "user_class": "string", "name": "string", "status": "int32", "container_id": "string",
    "cache": "string", "error": "string", "worker": "string",
}
SUFFIX = "_requests.parquet"


def arrow_schema() -> Any:
    """The pyarrow schema of the request file."""
    import pyarrow as pa

    kinds = {"float64": pa.float64(), "string": pa.string(), "int32": pa.int32()}
    return pa.schema([(name, kinds[TYPES[name]]) for name in COLUMNS])
