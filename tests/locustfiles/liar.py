"""A locustfile for the tests: a user that claims to send Modal-Session-Id but does not, so
that the stickiness check fails on purpose (exit code 3)."""

from __future__ import annotations

from locustfiles.sticky import NonStickyUser


class LiarUser(NonStickyUser):
    sends_session_id = True  # what the recorder believes

    def on_start(self) -> None:
        super().on_start()
        self.headers = {}  # what it does
