"""The request file: one row per request, written by the Locust recorder, read by the report.

This module is the single definition both sides use. It imports nothing heavy: pyarrow is
imported only by `arrow_schema()`, when a file is written or read. Users' guide:
docs/request-file.md (the forms of the file, the flush and fsync policy, what a crash loses).

Forms (reports/requestfile.py reads each):
- `PREFIX_requests.parquet`: the final file, Apache Parquet (zstd), written at a normal end.
- `PREFIX_requests.arrows`: the file being written during the run, an Arrow IPC stream of
  record batches (lz4), one per flush; left behind (and readable) when the run did not end
  normally, or when the final Parquet file could not be written.
- `PREFIX_requests.csv`: the same columns as CSV, e.g. from a peer's harness.
- Parts (`--request-file-part-mb` / `--request-file-part-minutes`): the run as numbered files
  `PREFIX_requests-00001.arrows`, `-00002`, ... during the run, each compacted into
  `PREFIX_requests-00001.parquet`, ... at a normal end; read in index order as one run.

| column           | type    | meaning                                                         |
|------------------|---------|-----------------------------------------------------------------|
| ts               | float64 | request start, Unix seconds                                     |
| response_time_ms | float64 | Locust's response time, milliseconds (streams: to the end)      |
| session_id       | string  | the user's session id (NonStickyUser: its own id, never sent);  |
|                  |         | null for a request of a user with no session (not our classes)  |
| user_class       | string  | Locust user class name                                          |
| name             | string  | Locust request name                                             |
| status           | int32   | HTTP status; 0 = connection error or timeout                    |
| container_id     | string  | CONTAINER_ID from the answer; null when absent or unparseable   |
| cache            | string  | "hit" / "miss" when the replica simulates a KV cache, else null |
| error            | string  | Locust's error or a body error; null when the request succeeded |
| worker           | string  | "local", or the Locust worker's client id                       |
| affinity         | string  | what the user sent: "session" (Modal-Session-Id), "strict"      |
|                  |         | (a @modal.sessioned bearer token), "none" (neither: a control); |
|                  |         | null when the user did not say (older harness, other classes)   |
| ttfb_ms          | float64 | streaming rows: time to the first byte of the body, ms          |
| ttft_ms          | float64 | streaming rows: time to the first token event, ms               |
| tokens           | int32   | streaming rows: token events received                           |
| max_gap_ms       | float64 | streaming rows: largest gap between consecutive tokens, ms      |

The last five columns came later: a file written before them reads with nulls there.
Error text prefixes (`error`): "body: ..." (a 2xx answer without a usable CONTAINER_ID),
"stream cut: ..." (the stream ended before [DONE]), "stream short: got X of N tokens".
"""

from __future__ import annotations

import re
from typing import Any

COLUMNS: tuple[str, ...] = (
    "ts", "response_time_ms", "session_id", "user_class", "name", "status",
    "container_id", "cache", "error", "worker",
    "affinity", "ttfb_ms", "ttft_ms", "tokens", "max_gap_ms",
)
TYPES: dict[str, str] = {
    "ts": "float64", "response_time_ms": "float64", "session_id": "string",
    "user_class": "string", "name": "string", "status": "int32", "container_id": "string",
    "cache": "string", "error": "string", "worker": "string",
    "affinity": "string", "ttfb_ms": "float64", "ttft_ms": "float64", "tokens": "int32",
    "max_gap_ms": "float64",
}
# columns added after the first files were written: absent -> all null
LATER_COLUMNS: frozenset[str] = frozenset({"affinity", "ttfb_ms", "ttft_ms", "tokens",
                                           "max_gap_ms"})
# columns every row has (the rest may be null)
REQUIRED_COLUMNS: tuple[str, ...] = ("ts", "response_time_ms", "status")
AFFINITIES: tuple[str, ...] = ("session", "strict", "none")
JUDGED_AFFINITIES: frozenset[str] = frozenset({"session", "strict"})  # ask for one container
STREAM_CUT_PREFIX = "stream cut: "
STREAM_SHORT_PREFIX = "stream short: "
BODY_PREFIX = "body: "
# The names of the kinds of failure these prefixes (and a status of 0) mark, one spelling for
# the live summary, the live metrics and the report; a failed HTTP status is named by its code
BAD_BODY = "bad_body"  # a 2xx answer without a usable container id
STREAM_CUT = "stream_cut"  # a stream that ended before its end, or whose connection dropped
STREAM_SHORT = "stream_short"  # a stream that ended with fewer tokens than asked
CONNECTION = "connection"  # no HTTP answer (status 0): refused, reset, timed out
OTHER_FAILURE = "other"  # any other failure Locust reported on a 2xx/3xx answer

SUFFIX = "_requests.parquet"  # the final file
STREAM_SUFFIX = "_requests.arrows"  # written during the run; left by a crash
CSV_SUFFIX = "_requests.csv"
# The Parquet file's metadata key for the record of the recording, as JSON: {"ended":
# "normally" | "with lost rows", "locust_requests": Locust's count at the end (null if
# unknown), "recorded": rows in the file, "lost": [one line per process that lost rows],
# "processes": {process: {"recorded": rows, "done": whether its final batch arrived}}}.
RECORDING_KEY = "harness.recording"
REQUEST_SUFFIXES: tuple[str, ...] = (SUFFIX, STREAM_SUFFIX, CSV_SUFFIX)
# A run written as parts: PREFIX_requests-NNNNN.arrows during the run, .parquet at a normal end
# (index from 1, at least PART_DIGITS digits). Each final part records RECORDING_KEY (the whole
# run's record, plus "parts": how many parts the run has) and PART_KEY ({"index": i, "rows": n}).
PART_STEM = "_requests-"
PART_DIGITS = 5
PART_EXTENSIONS: tuple[str, ...] = (".parquet", ".arrows")  # in order of preference
PART_PATTERN = re.compile(r"_requests-(\d{5,})\.(parquet|arrows)$")
PART_KEY = "harness.part"


def part_path(prefix: str, index: int, extension: str) -> str:
    """The name of part `index` (from 1) of a run: PREFIX_requests-00001.parquet."""
    return f"{prefix}{PART_STEM}{index:0{PART_DIGITS}d}{extension}"


def arrow_schema() -> Any:
    """The pyarrow schema of the request file."""
    import pyarrow as pa

    kinds = {"float64": pa.float64(), "string": pa.string(), "int32": pa.int32()}
    return pa.schema([(name, kinds[TYPES[name]]) for name in COLUMNS])
