"""A benchmark's window into a running Locust process: its request count and its CPU time.

    locust -f locustfiles/sticky.py,scripts/benchcount.py ...   # BENCH_COUNT_PORT=PORT

Loaded beside the Locust file under test, it serves one line at http://127.0.0.1:PORT/:
requests so far (Locust's own total), then the process's CPU seconds (user + system). It adds
nothing per request: the figures are read when asked, so that `scripts/bench_recorder.py
--interleave` can measure a process during the slots it lets it run. Benchmarks only.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Iterable
from typing import Any

from gevent.pywsgi import WSGIServer
from locust import events
from locust.env import Environment

PORT_VARIABLE = "BENCH_COUNT_PORT"


def answer(environment: Environment) -> bytes:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return f"{environment.stats.total.num_requests} {usage.ru_utime + usage.ru_stime}".encode()


@events.init.add_listener
def serve(environment: Environment, **_kwargs: Any) -> None:
    port = int(os.environ[PORT_VARIABLE])

    def app(_environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = answer(environment)
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    WSGIServer(("127.0.0.1", port), app, log=None).start()
