"""A locustfile for the tests: a user that claims to send Modal-Session-Id but does not, so
that the stickiness check fails on purpose (exit code 3)."""

from __future__ import annotations

from locustfiles.sticky import NonStickyUser


class LiarUser(NonStickyUser):
    sends_session_id = True

    def on_start(self) -> None:
        super().on_start()  # its context now says affinity "session", from the header it had
        self.headers = {}  # what it does: no header, so its sessions spread (and it is judged)
