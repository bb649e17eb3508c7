"""The membership event log: one JSON object per line, appended and flushed at each change.

Each membership line: `{"ts": <unix seconds>, "event": "added"|"removed", "container_id":
"ta-...", "cause": "ready"|"scale"|"stop"|"kill"|"crash"|"exit"|"refused"|"hung"|"unhealthy"|
"shutdown", "live": [<container ids live after the change>]}`, written at the real time of the
change (`--membership-delay-ms` delays only the router's view); one cause per removal, decided
from what the process did (see supervisor.py). Other lines carry no live set: `"control"` (a
scale request), `"exited"` (a replica process died on its own: cause "crash", its return
code, always after the removal), `"backoff"` (repeated deaths: the next start waits `delay_s`,
doubling with each `attempt` in a row) and `"cut"` (cause "idle": an answer cut after its
replica stayed silent for `idle_timeout_s` in the middle of it).
"""

from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path
from typing import IO, Any

MEMBERSHIP = ("added", "removed")


class EventLog:
    """Appends to the file (when given) and keeps the last `keep` events in memory, so that a
    harness can fetch the ones of its own run (`GET /_emulator/events?since=TS`)."""

    def __init__(self, path: Path | None, keep: int = 100_000) -> None:
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self._file: IO[str] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"ts": round(time.time(), 6), "event": event, **fields}
        self.recent.append(record)
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        return record

    def since(self, ts: float) -> dict[str, Any]:
        """The live set at `ts` and every event after it."""
        live: list[str] = []
        after = []
        for record in self.recent:
            if record["ts"] <= ts:
                if record["event"] in MEMBERSHIP:
                    live = record["live"]
            else:
                after.append(record)
        return {"since": ts, "live": live, "events": after}

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
