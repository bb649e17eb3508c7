"""A locustfile for the tests: StickyUser whose users take 1.5 s to stop, so that a worker
ships its last rows well after Locust's master would have stopped listening (0.5 s)."""

from __future__ import annotations

import gevent

from locustfiles.sticky import StickyUser

STOP_S = 1.5


class SlowStopUser(StickyUser):
    def on_stop(self) -> None:
        gevent.sleep(STOP_S)
