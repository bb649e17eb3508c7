"""A bare FastHttpUser: the same requests as StickyUser, with no recording. Benchmarks only.

    locust -f locustfiles/plain.py --headless -u 50 -r 50 -t 10s --host URL
    locust -f locustfiles/plain.py --headless -u 50 -r 50 -t 10s --host URL --stream-tokens 32

`PlainUser` sends what StickyUser sends: POST `{}` to `/` with a Modal-Session-Id or, with
`--stream-tokens N` (and `--prompt-tokens`, `--cache-key`, as in `sticky.py`), the streaming
POST /generate, read and measured by the same code (`locustfiles/streaming.py`). It does not
wait for the target, record rows, nor print a summary.

It sends as a locustfile usually does: `client.post("/", json={}, headers=...)`, which dumps
the JSON and merges the headers on every request. StickyUser builds its POST once and sends
it through `client.request` (locustfiles/users.py), which costs Locust less. With `--lean`
PlainUser sends the same way, so that the difference against StickyUser at the same load is
what the recorder and the harness cost, and nothing else.
"""

from __future__ import annotations

import uuid
from typing import Any

from locust import FastHttpUser, events, task

from locustfiles import streaming
from locustfiles.users import post_request


class PlainUser(FastHttpUser):
    def on_start(self) -> None:
        session_id = uuid.uuid4().hex
        self.headers = {"Modal-Session-Id": session_id}
        self.stream_body = streaming.request_body(self.environment.parsed_options, session_id)
        self.lean: tuple[str, dict[str, str]] | None = None
        if getattr(self.environment.parsed_options, "lean", False):
            self.lean = post_request({}, self.headers)

    @task
    def whoami(self) -> None:
        if self.stream_body is not None:
            streaming.generate(self.client, self.stream_body, self.headers)
        elif self.lean is not None:
            self.client.request("POST", "/", data=self.lean[0], headers=self.lean[1])
        else:
            self.client.post("/", json={}, headers=self.headers)


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any, **_kwargs: Any) -> None:
    streaming.add_arguments(parser)
    parser.add_argument("--lean", action="store_true", default=False, env_var="LOCUST_LEAN",
                        help="POST / as StickyUser sends it: built once, through "
                             "client.request (no JSON dump nor header merge per request)")
    parser.add_argument("--cache-key", action="store_true", default=False,
                        env_var="LOCUST_CACHE_KEY",
                        help='With --stream-tokens: send the session id as {"cache_key": ...}')
