"""Wait until the target answers anything but 503, with backoff and a deadline.

Modal's proxy answers 503 while no replica is live (a cold start, a fresh deploy); the seed
example polls until it stops doing so. Here the wait has a deadline and a clear message:

    wait_until_ready("https://...modal.run", WaitConfig(timeout_s=60))   # -> seconds waited
    # TargetNotReady: target https://... answered 503 for 60s: no live replica

The probes are plain HTTP (urllib, cooperative under Locust's gevent), not Locust requests, so
they never show in Locust's statistics or in the request file.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

NO_REPLICA = 503


class TargetNotReady(Exception):
    """The target never answered anything but 503 (or never answered) before the deadline."""


@dataclass(frozen=True, kw_only=True)
class WaitConfig:
    timeout_s: float = 60.0
    first_delay_s: float = 0.1
    max_delay_s: float = 2.0
    probe_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.timeout_s < 0 or self.first_delay_s <= 0 or self.max_delay_s < self.first_delay_s:
            raise ValueError(f"bad wait settings: {self}")


@dataclass(frozen=True, slots=True)
class Probe:
    status: int | None  # None: no HTTP answer at all
    error: str = ""


def post_empty_json(url: str, timeout: float) -> Probe:
    """POST `{}` to the target's root, as the load does (and as the seed's wait_available)."""
    request = urllib.request.Request(url.rstrip("/") + "/", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Probe(response.status)
    except urllib.error.HTTPError as e:
        return Probe(e.code)
    except (OSError, ValueError) as e:  # refused, reset, timeout, DNS, bad URL
        return Probe(None, f"{type(e).__name__}: {e}")


def wait_until_ready(url: str, config: WaitConfig, *,
                     probe: Callable[[str, float], Probe] = post_empty_json,
                     sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.monotonic) -> float:
    """Probe until an answer other than 503; returns the seconds waited.

    Delays double from `first_delay_s` up to `max_delay_s`; raises TargetNotReady once
    `timeout_s` has passed (a timeout of 0 means a single probe).
    """
    start = clock()
    delay = config.first_delay_s
    while True:
        result = probe(url, config.probe_timeout_s)
        if result.status is not None and result.status != NO_REPLICA:
            return clock() - start
        waited = clock() - start
        if waited >= config.timeout_s:
            raise TargetNotReady(not_ready_message(url, result, config.timeout_s))
        sleep(min(delay, config.timeout_s - waited))
        delay = min(delay * 2, config.max_delay_s)


def not_ready_message(url: str, last: Probe, timeout_s: float) -> str:
    if last.status == NO_REPLICA:
        return f"target {url} answered 503 for {timeout_s:g}s: no live replica"
    return f"target {url} did not answer for {timeout_s:g}s ({last.error or 'no answer'})"
