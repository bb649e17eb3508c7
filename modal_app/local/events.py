"""The membership event log: one JSON object per line, appended and flushed at each change.

Each line: `{"ts": <unix seconds>, "event": "added"|"removed", "container_id": "ta-...",
"cause": "ready"|"scale"|"stop"|"kill"|"crash"|"refused"|"health"|"shutdown",
"live": [<container ids live after the change>]}`. Control actions that change no membership
by themselves (a scale request, say) are logged with `"event": "control"`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any


class EventLog:
    def __init__(self, path: Path | None) -> None:
        self._file: IO[str] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"ts": round(time.time(), 6), "event": event, **fields}
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        return record

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
