"""Shared pieces of the benchmark scripts: processes on OS-chosen ports, headless Locust runs.

Every process started here is stopped by its own id when the `with` block ends, even on error.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modal_app.local.launch import emulator, replica  # noqa: E402

__all__ = ["LocustResult", "emulator", "replica", "run_locust"]


@dataclass
class LocustResult:
    requests: int
    failures: int
    seconds: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_locust(locustfile: str, host: str, users: int, seconds: int, *extra: str,
               user_class: str | None = None) -> LocustResult:
    """A headless Locust run; requests/s over the span from first to last request."""
    cmd = [sys.executable, "-m", "locust", "-f", locustfile, "--headless", "-u", str(users),
           "-r", str(users), "-t", f"{seconds}s", "--host", host, "--json", "--only-summary",
           "--exit-code-on-error", "0", "--loglevel", "WARNING", *extra]
    if user_class:
        cmd.append(user_class)
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                         timeout=seconds + 120, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"locust failed ({out.returncode}): {out.stderr[-2000:]}")
    stats = json.loads(out.stdout)
    requests = sum(s["num_requests"] for s in stats)
    failures = sum(s["num_failures"] for s in stats)
    start = min(s["start_time"] for s in stats)
    last = max(s["last_request_timestamp"] for s in stats)
    return LocustResult(requests, failures, last - start)
