"""A bare FastHttpUser: the same requests as StickyUser, with no recording. Benchmarks only.

    locust -f locustfiles/plain.py --headless -u 50 -r 50 -t 10s --host URL
    locust -f locustfiles/plain.py --headless -u 50 -r 50 -t 10s --host URL --stream-tokens 32

`PlainUser` sends what StickyUser sends: POST `{}` to `/` with a Modal-Session-Id or, with
`--stream-tokens N` (and `--prompt-tokens`, `--cache-key`, as in `sticky.py`), the streaming
POST /generate, read and measured by the same code (`locustfiles/streaming.py`). So the
difference against StickyUser at the same load is what the recorder costs. It does not wait
for the target, record rows, nor print a summary.
"""

from __future__ import annotations

import uuid
from typing import Any

from locust import FastHttpUser, events, task

from locustfiles import streaming


class PlainUser(FastHttpUser):
    def on_start(self) -> None:
        session_id = uuid.uuid4().hex
        self.headers = {"Modal-Session-Id": session_id}
        self.stream_body = streaming.request_body(self.environment.parsed_options, session_id)

    @task
    def whoami(self) -> None:
        if self.stream_body is not None:
            streaming.generate(self.client, self.stream_body, self.headers)
        else:
            self.client.post("/", json={}, headers=self.headers)


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any, **_kwargs: Any) -> None:
    streaming.add_arguments(parser)
    parser.add_argument("--cache-key", action="store_true", default=False,
                        env_var="LOCUST_CACHE_KEY",
                        help='With --stream-tokens: send the session id as {"cache_key": ...}')
