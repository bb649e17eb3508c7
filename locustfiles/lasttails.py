"""The master waits for its workers' last rows before it stops listening.

Locust's `MasterRunner.quit()` sends "quit" to every worker and then gives them a fixed 0.5 s
for their final reports before it kills its own greenlets (locust 2.47, runners.py). A worker
answers "quit" by stopping its users and shipping its last batch of rows, then its own "quit"
message, on the same connection; on a busy machine that can take longer than 0.5 s, and the
rows would be lost (the run then says NOT JUDGED: the recording is incomplete, as it must).

`install(runner)` gives the master a `quit` that does what Locust's does, but waits until every
connected worker has said "quit" (so its last rows, sent before, have arrived) or until
`WAIT_S` has passed; a worker the master already counts as missing is not waited for.
"""

from __future__ import annotations

import time
import types

import gevent
from locust.rpc import Message
from locust.runners import STATE_MISSING, MasterRunner

WAIT_S = 10.0  # at most, when a worker is slow to answer (it is usually a few milliseconds)
LOCUST_WAIT_S = 0.5  # what Locust itself waits, kept as the least


def pending(runner: MasterRunner) -> int:
    """Workers still connected that have not said "quit"."""
    return sum(1 for client in runner.clients.all if client.state != STATE_MISSING)


def patient_quit(runner: MasterRunner) -> None:
    runner.stop(send_stop_to_client=False)
    for client in list(runner.clients.all):
        runner.server.send_to_client(Message("quit", None, client.id))
    start = time.monotonic()
    gevent.sleep(LOCUST_WAIT_S)
    while pending(runner) and time.monotonic() - start < WAIT_S:
        gevent.sleep(0.05)
    runner.greenlet.kill(block=True)


def install(runner: MasterRunner) -> None:
    runner.quit = types.MethodType(patient_quit, runner)  # type: ignore[method-assign]
