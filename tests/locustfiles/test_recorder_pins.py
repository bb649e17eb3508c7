"""Pins on the Locust internals the recorder still relies on: each fails loudly on a Locust
upgrade that changes them, naming the code to re-check."""

from __future__ import annotations

import inspect
import re

import locust
import locust.main
from locust.runners import WorkerNodes, WorkerRunner

from locustfiles import ending, shipping


def squeeze(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_worker_runner_send_stats_still_fires_report_to_master_then_sends_stats() -> None:
    """shipping.ship_last() calls WorkerRunner._send_stats() for the worker's last report."""
    assert "_send_stats" in inspect.getsource(shipping.ship_last)
    method = getattr(WorkerRunner, "_send_stats", None)
    assert callable(method), f"locust {locust.__version__}: WorkerRunner._send_stats is gone: " \
        "re-check locustfiles/shipping.py ship_last()"
    assert list(inspect.signature(method).parameters) == ["self"]
    source = squeeze(inspect.getsource(method))
    assert ("self.environment.events.report_to_master.fire(client_id=self.client_id, data=data)"
            " self.client.send(Message(\"stats\", data, self.client_id))") in source, (
        f"locust {locust.__version__} changed WorkerRunner._send_stats: re-check "
        "locustfiles/shipping.py ship_last()")


EXIT_CODE_RULES = squeeze("""
        if environment.process_exit_code is not None:
            code = environment.process_exit_code
        elif len(runner.errors) or len(runner.exceptions):
            code = options.exit_code_on_error
        elif log.unhandled_greenlet_exception:
            code = 2
        else:
            code = 0
""")


def test_the_exit_code_rules_copied_from_locust_main_are_unchanged() -> None:
    """ending.locust_exit_code() copies these rules of locust.main's shutdown()."""
    assert EXIT_CODE_RULES in squeeze(inspect.getsource(locust.main)), (
        f"locust {locust.__version__} changed its exit-code rules (main.shutdown): re-check "
        "locustfiles/ending.py locust_exit_code()")
    ours = squeeze(inspect.getsource(ending.locust_exit_code))
    for rule in ("environment.process_exit_code is not None",
                 "len(runner.errors) or len(runner.exceptions)", "exit_code_on_error",
                 "2 if log.unhandled_greenlet_exception else 0"):
        assert rule in ours


def test_missing_workers_are_still_listed_by_worker_nodes() -> None:
    """Recorder.lost_tails() reads runner.clients.missing (node ids of lost workers)."""
    assert isinstance(inspect.getattr_static(WorkerNodes, "missing"), property), (
        f"locust {locust.__version__}: WorkerNodes.missing is gone: re-check "
        "locustfiles/recorder.py lost_tails()")
