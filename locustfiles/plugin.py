"""The harness's Locust plugin, wired once per process by the Locust files (`sticky.py`,
`sessioned.py`): the user classes' options, the wait for the target before load, the kept host
lookups, the live metrics, the recorder (every request, the summary, the exit code, the web
UI's tab) and the churn schedule.

    PLUGIN = install(events)   # at a Locust file's import; a second call returns the first
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any

import gevent
from locust.env import Environment
from locust.event import Events
from locust.runners import WorkerRunner

from locustfiles import dnscache
from locustfiles.livemetrics import LiveMetrics
from locustfiles.livemetrics import install as install_live_metrics
from locustfiles.membership import Churn
from locustfiles.membership import install as install_membership
from locustfiles.recorder import Recorder
from locustfiles.recorder import install as install_recorder
from locustfiles.target import TargetNotReady, WaitConfig, probe_for, wait_until_ready
from locustfiles.users import add_arguments, bad_option

NOT_READY_EXIT_CODE = 1

logger = logging.getLogger(__name__)



# ## Waiting for the target


class TargetGate:
    """Waits for the target once per host, before any user starts.

    Headless, the wait happens at `init`, so `-t` counts load only, and a target that never
    comes up ends the run with exit code 1. With the web UI the host is known at each test
    start: the wait happens then, and a target that never comes up stops the test.
    """

    def on_init(self, environment: Environment, **_kwargs: Any) -> None:
        if self._skip(environment) or not _headless(environment):
            return
        try:
            self.wait(environment)
        except TargetNotReady as e:
            logger.error("%s", e)
            sys.exit(NOT_READY_EXIT_CODE)
        except KeyboardInterrupt:
            logger.error("interrupted while waiting for %s", environment.host)
            sys.exit(NOT_READY_EXIT_CODE)

    def on_test_start(self, environment: Environment, **_kwargs: Any) -> None:
        if self._skip(environment) or _headless(environment):
            return
        try:
            problem = bad_option(environment.parsed_options)  # the start form's values
            if problem is not None:
                raise TargetNotReady(problem)
            self.wait(environment)
        except TargetNotReady as e:
            logger.error("%s; stopping", e)
            if environment.runner is not None:
                gevent.spawn(environment.runner.stop)
            raise gevent.GreenletExit from e  # abandons this start: no user is spawned

    def wait(self, environment: Environment) -> None:
        host = environment.host or ""
        timeout = float(getattr(environment.parsed_options, "wait_timeout", 60.0))
        # the classes this run uses (headless: those named, else all of the locustfiles)
        classes: list[Any] = list(environment.user_classes) or [
            *(environment.available_user_classes or {}).values()]
        probe = probe_for(host, classes, environment.parsed_options)
        logger.info("waiting up to %gs for a live replica at %s", timeout, host)
        waited = wait_until_ready(host, WaitConfig(timeout_s=timeout), probe=probe)
        logger.info("target %s ready after %.1fs", host, waited)

    @staticmethod
    def _skip(environment: Environment) -> bool:
        return isinstance(environment.runner, WorkerRunner) or not environment.host


def _headless(environment: Environment) -> bool:
    return bool(getattr(environment.parsed_options, "headless", False))


def keep_lookups(**_kwargs: Any) -> None:
    """`init` listener: the users' new connections (--reconnect-every) look the host up once
    per dnscache.TTL_S, not once each (locustfiles/dnscache.py)."""
    dnscache.install()


@dataclass(frozen=True)
class Plugin:
    gate: TargetGate
    live_metrics: LiveMetrics
    recorder: Recorder
    churn: Churn


_installed: Plugin | None = None


def install(events: Events) -> Plugin:
    """Registers every listener of the harness, once (a process that imports both Locust
    files wires it once)."""
    global _installed
    if _installed is None:
        events.init_command_line_parser.add_listener(add_arguments)
        gate = TargetGate()
        events.init.add_listener(keep_lookups)
        events.init.add_listener(gate.on_init)
        events.test_start.add_listener(gate.on_test_start)
        live = install_live_metrics(events)  # before the recorder: its end runs after
        recorder = install_recorder(events)
        live.recorder = recorder
        _installed = Plugin(gate, live, recorder, install_membership(events))
    return _installed
