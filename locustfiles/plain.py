"""A bare FastHttpUser: the same requests as StickyUser, with no recording. Benchmarks only.

    locust -f locustfiles/plain.py --headless -u 50 -r 50 -t 10s --host URL
"""

from __future__ import annotations

import uuid

from locust import FastHttpUser, task


class PlainUser(FastHttpUser):
    def on_start(self) -> None:
        self.headers = {"Modal-Session-Id": uuid.uuid4().hex}

    @task
    def whoami(self) -> None:
        self.client.post("/", json={}, headers=self.headers)
