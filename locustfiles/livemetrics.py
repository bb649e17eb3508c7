"""Live metrics for Prometheus: `--metrics-port PORT` serves the run's stickiness as it goes.

    locust -f locustfiles/sticky.py StickyUser --headless ... --metrics-port 9646
    curl http://127.0.0.1:9646/metrics

The Locust process that sees every request serves them (a local run, or the master in
distributed runs: the workers' rows reach it as they reach the recorder, so the figures are
merged across workers). The recorder hands the rows over a batch at a time (`observe_batch`,
locustfiles/batch.py: once a second, so a scrape shows the run up to the last second, and all
of it at the end), and this module only counts: requests by label set, the per-session state
the figures need (the last container, whether the session had two answers, whether it moved),
and per-second buckets of switches for flaps.
The exposition is prometheus-client's, from a collector that turns these counts into metric
families when scraped, on a registry of the run's own (`CollectorRegistry`, never the global
one). docs/metrics-live.md lists the metrics.

Membership, live: a container is live from its first answer until it has been silent for
`IDLE_S` seconds while others answered; containers first seen within `STARTUP_S` of the run's
first answer were there all along. A switch is *forced* when a change (a container first
seen, or the last answer of one that went silent) falls within `SETTLE_S` seconds before it
(or the same second); otherwise it is a *flap*. A forced switch is a remapped session, and
*collateral* when it moved between two containers that this change neither removed nor added.
A switch is classified once a removal that could explain it would have been seen, about
IDLE_S + SETTLE_S seconds later (and at the end of the run). The report's figures
(python -m reports) work from the whole run and the emulator's event log; these are what a
live process can know.

The counts restart at each test start and at the web UI's Reset Stats, as the Stickiness tab
does (Prometheus reads a counter that drops as a counter reset).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from typing import Any

import gevent
import numpy as np
from gevent.pywsgi import WSGIServer
from locust.env import Environment
from locust.event import Events
from locust.runners import WorkerRunner
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from locustfiles.batch import AFFINITY, Batch, one_row
from locustfiles.summary import error_kind

logger = logging.getLogger(__name__)

USAGE_EXIT_CODE = 2
# latency buckets, in milliseconds as the rows carry them (exposed in seconds)
BOUNDS_MS = (1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
             10000.0, 30000.0, 60000.0)
LE = (*(f"{b / 1000:g}" for b in BOUNDS_MS), "+Inf")
BOUNDS = np.array(BOUNDS_MS)
IDLE_S = 5  # a container silent this long, while others answered, left the live set
STARTUP_S = 2  # containers first seen this soon after the first answer were there all along
SETTLE_S = 2  # a switch this soon after a change was forced by it (the report's --settle)
NO_ERROR = "none"
NO_CACHE = "none"
MISSING: Any = object()

def port_number(text: str) -> int:
    """argparse `type=`: 0 (off) or a TCP port."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number, not {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 (off) or a port 1..65535, not {port}")
    return port


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text!r}")
    return value


def add_arguments(parser: Any, **_kwargs: Any) -> None:
    """`init_command_line_parser` listener: the options, also in the web UI's form."""
    parser.add_argument(
        "--metrics-port", type=port_number, default=0, env_var="LOCUST_METRICS_PORT",
        include_in_web_ui=True,
        help="Serve live Prometheus metrics (stickiness, errors, latency) on this port, at "
             "/metrics, from the process that sees every request (default 0: off)")
    parser.add_argument(
        "--metrics-host", default="127.0.0.1", env_var="LOCUST_METRICS_HOST",
        include_in_web_ui=True,
        help="The address the metrics are served on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument(
        "--metrics-linger", type=seconds, default=0.0, env_var="LOCUST_METRICS_LINGER",
        include_in_web_ui=True,
        help="At the end, keep serving the metrics until they have been scraped once more, "
             "for at most this many seconds (default 0: stop at once); give it your scrape "
             "interval so that Prometheus has the final values")


class SessionState:
    """What one session's figures need."""

    __slots__ = ("answered", "last", "moved")

    def __init__(self) -> None:
        self.last: str | None = None  # the container of its last answer
        self.answered = 0  # answers, counted up to 2
        self.moved = False  # saw a second container


class Counts:
    """The counts of one test (reset at each start), a batch of rows at a time."""

    def __init__(self) -> None:
        # (user_class, status, error kind, container, cache, latency bucket) -> [count, sum ms]
        self.cells: dict[tuple[Any, ...], list[float]] = {}
        self.ttft: dict[tuple[Any, ...], list[float]] = {}  # (class, cache, bucket) -> same
        self.sessions: dict[str, SessionState] = {}
        self.classes: dict[str, list[int]] = {}  # class -> [sessions, repeat, multi,
        #                                                    switches, transitions]
        self.affinity: dict[str, str] = {}
        self.seen: dict[str, int] = {}  # container -> tick of its last answer
        self.first: dict[str, int] = {}  # container -> tick of its first answer
        self.live: set[str] = set()
        self.first_tick: int | None = None
        self.changes: list[tuple[int, str, str]] = []  # (tick, "added"/"removed", container)
        self.change_counts: Counter[str] = Counter()
        self.pending: Counter[tuple[int, str, str, str]] = Counter()  # (tick, class, old, new)
        self.flaps: Counter[str] = Counter()
        self.remapped: Counter[str] = Counter()
        self.collateral: Counter[str] = Counter()
        self.tick = 0

    def observe(self, session_id: str | None, user_class: str | None, status: int,
                container: str | None, cache: str | None, error: str | None,
                response_ms: float, stream: Any = None, affinity: str | None = None) -> None:
        """One row (a batch of one: tests, and callers with a row at a time)."""
        self.observe_batch(one_row(session_id, user_class, affinity, status, container, error,
                                   cache=cache, response_ms=response_ms, stream=stream))

    def observe_batch(self, batch: Batch) -> None:
        """Rows, in their order (locustfiles/batch.py), all at the current tick."""
        if not batch.n:
            return
        self._cells(batch)
        tick = self.tick
        containers = batch.containers
        for name in containers.names[:containers.present]:
            if self.seen.get(name) != tick:
                self.seen[name] = tick
                if name not in self.first:
                    self._first_answer(name)
        if batch.sessions.present:
            self._sessions(batch)

    def _cells(self, batch: Batch) -> None:
        """Requests by (class, status, error kind, container, cache, latency bucket), and the
        time to first token of streams."""
        classes, containers, caches = batch.classes, batch.containers, batch.caches
        status, times = batch.status, batch.response_ms
        kinds = np.zeros(batch.n, dtype=np.int64)
        kind_names = [NO_ERROR]
        for row, error in batch.errors():
            kind = error_kind(int(status[row]), error)
            if kind not in kind_names:
                kind_names.append(kind)
            kinds[row] = kind_names.index(kind)
        buckets = np.searchsorted(BOUNDS, times, side="left")
        statuses, status_codes = np.unique(status, return_inverse=True)
        key = classes.codes + 1
        for codes, width in ((status_codes, len(statuses)), (kinds, len(kind_names)),
                             (containers.codes + 1, containers.present + 1),
                             (caches.codes + 1, caches.present + 1),
                             (buckets, len(BOUNDS_MS) + 1)):
            key = key * width + codes
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        counts = np.bincount(inverse).tolist()
        sums = np.bincount(inverse, weights=times).tolist()
        cells = self.cells
        for row, count, total in zip(first.tolist(), counts, sums, strict=True):
            cls = classes.name_at(row)
            cell_key = ("?" if cls is None else cls, int(status[row]),
                        kind_names[kinds[row]], containers.name_at(row), caches.name_at(row),
                        int(buckets[row]))
            cell = cells.get(cell_key)
            if cell is None:
                cells[cell_key] = [count, total]
            else:
                cell[0] += count
                cell[1] += total
        for row, _error, stream in batch.notes:
            if stream is not None and stream[1] is not None:
                cls = classes.name_at(row)
                ttft = float(stream[1])
                tkey = ("?" if cls is None else cls, caches.name_at(row),
                        bisect_left(BOUNDS_MS, ttft))
                tcell = self.ttft.get(tkey)
                if tcell is None:
                    tcell = self.ttft[tkey] = [0, 0.0]
                tcell[0] += 1
                tcell[1] += ttft

    def _sessions(self, batch: Batch) -> None:
        """Sessions, repeat and multi-container sessions, transitions and switches (by the
        class of the row that makes them), and the switches to classify."""
        classes = batch.classes
        class_names = ["?" if c is None else c for c in classes.names] + ["?"]  # [-1]: None
        affinity_of = batch.column(AFFINITY)
        states: list[SessionState] = []
        for name, row in zip(batch.sessions.names, batch.sessions.first_rows, strict=True):
            state = self.sessions.get(name)
            if state is None:
                state = self.sessions[name] = SessionState()
                self._figures(class_names[classes.codes[row]], affinity_of[row])[0] += 1
            states.append(state)
        steps = batch.steps([state.last for state in states])
        if not len(steps.rows):
            return
        class_codes = classes.codes[steps.rows]  # of each step's row
        has_prev, switch = steps.prev >= 0, steps.switch
        for index, what in ((4, has_prev), (3, switch)):  # transitions, switches
            counts = np.bincount(class_codes[what] + 1, minlength=len(class_names))
            for code in np.flatnonzero(counts).tolist():
                self._figures(class_names[code - 1])[index] += int(counts[code])
        moved = steps.first_in_group(switch)
        repeat = steps.first_in_group(has_prev)
        names = batch.containers.names
        for g, (code, last) in enumerate(zip(steps.groups.tolist(), steps.last_containers(),
                                             strict=True)):
            state = states[code]
            state.last = names[last]
            if state.answered < 2:
                if g in repeat:
                    state.answered = 2
                    self._figures(class_names[class_codes[repeat[g]]])[1] += 1
                else:
                    state.answered = 1
            if g in moved and not state.moved:
                state.moved = True
                self._figures(class_names[class_codes[moved[g]]])[2] += 1
        if switch.any():
            width = len(names)
            key = ((class_codes[switch] + 1) * width + steps.prev[switch]) * width \
                + steps.container[switch]
            found, counts = np.unique(key, return_counts=True)
            tick = self.tick
            for k, count in zip(found.tolist(), counts.tolist(), strict=True):
                rest, new = divmod(k, width)
                cls, old = divmod(rest, width)
                self.pending[(tick, class_names[cls - 1], names[old], names[new])] += count

    def _figures(self, user_class: str, affinity: str | None = None) -> list[int]:
        figures = self.classes.get(user_class)
        if figures is None:
            figures = self.classes[user_class] = [0, 0, 0, 0, 0]
            self.affinity[user_class] = affinity or "unknown"
        return figures

    def _first_answer(self, container: str) -> None:
        self.first[container] = self.tick
        self.live.add(container)
        if self.first_tick is None:
            self.first_tick = self.tick
        elif self.tick - self.first_tick > STARTUP_S:
            self._change(self.tick, "added", container)

    def _change(self, tick: int, what: str, container: str) -> None:
        self.changes.append((tick, what, container))
        self.change_counts[what] += 1

    # ### Once a second

    def step(self) -> None:
        """The clock moves one second: membership inferred, switches classified."""
        self.tick += 1
        tick = self.tick
        latest = max(self.seen.values(), default=None)
        if latest is not None and latest >= tick - 1:  # the run answers: silence means gone
            for container in sorted(self.live):
                last = self.seen[container]
                if last < tick - IDLE_S:
                    self.live.discard(container)
                    self._change(last, "removed", container)
                    del self.first[container]  # answering again is joining again
        self.classify(before=tick - IDLE_S - SETTLE_S - 1)

    def classify(self, before: int | None = None) -> None:
        """Switches older than `before` (all: None) as flaps, remaps, collateral."""
        done = [key for key in self.pending if before is None or key[0] < before]
        for key in done:
            at, user_class, old, new = key
            count = self.pending.pop(key)
            near = [(what, c) for t, what, c in self.changes if at - SETTLE_S - 1 <= t <= at + 1]
            if not near:
                self.flaps[user_class] += count
                continue
            self.remapped[user_class] += count
            if ("removed", old) not in near and ("added", new) not in near:
                self.collateral[user_class] += count
        horizon = (before if before is not None else self.tick) - 2 * SETTLE_S - IDLE_S
        self.changes = [c for c in self.changes if c[0] >= horizon]

    # ### The exposition

    def families(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "sticky_requests", "Requests recorded, failures included, by user class, HTTP "
            "status (0: connection error) and error kind (none: succeeded)",
            labels=["user_class", "status", "error"])
        by_request: Counter[tuple[str, str, str]] = Counter()
        by_container: Counter[tuple[str, str]] = Counter()
        latency: dict[tuple[str, str], list[float]] = {}
        for (cls, status, kind, container, cache, bucket), (count, total) in self.cells.items():
            by_request[(cls, str(status), kind)] += int(count)
            if container is not None:
                by_container[(cls, container)] += int(count)
            hist = latency.setdefault((cls, cache or NO_CACHE), [0.0] * (len(LE) + 1))
            hist[bucket] += count
            hist[-1] += total
        for labels, count in sorted(by_request.items()):
            requests.add_metric(list(labels), count)
        yield requests
        per_container = CounterMetricFamily(
            "sticky_container_requests", "Answered requests by the container that answered",
            labels=["user_class", "container"])
        for labels2, count in sorted(by_container.items()):
            per_container.add_metric(list(labels2), count)
        yield per_container
        yield histogram("sticky_request_duration_seconds",
                        "Response time (a stream: to its end), by cache state "
                        "(none: not reported)", latency)
        ttft: dict[tuple[str, str], list[float]] = {}
        for (cls, cache, bucket), (count, total) in self.ttft.items():
            hist = ttft.setdefault((cls, cache or NO_CACHE), [0.0] * (len(LE) + 1))
            hist[bucket] += count
            hist[-1] += total
        yield histogram("sticky_time_to_first_token_seconds",
                        "Streamed requests: time to the first token, by cache state", ttft)
        names = sorted(self.classes)
        gauges = (("sticky_sessions", "Sessions seen", 0),
                  ("sticky_repeat_sessions", "Sessions with 2+ answered requests", 1),
                  ("sticky_multi_container_sessions", "Sessions answered by 2+ containers", 2))
        for name, text, index in gauges:
            gauge = GaugeMetricFamily(name, text, labels=["user_class"])
            for cls in names:
                gauge.add_metric([cls], self.classes[cls][index])
            yield gauge
        counters = (
            ("sticky_switches", "Answers from another container than the session's previous "
             "answer", lambda cls: self.classes[cls][3]),
            ("sticky_transitions", "Answers after each session's first (same-container rate "
             "= 1 - switches / transitions)", lambda cls: self.classes[cls][4]),
            ("sticky_flaps", "Switches with no membership change near them (classified about "
             f"{IDLE_S + SETTLE_S + 1} s late)", lambda cls: self.flaps[cls]),
            ("sticky_remapped_sessions", "Switches at a membership change: a session remapped",
             lambda cls: self.remapped[cls]),
            ("sticky_collateral_sessions", "Remapped sessions that moved between two "
             "containers the change neither removed nor added", lambda cls: self.collateral[cls]))
        for name, text, value in counters:
            counter = CounterMetricFamily(name, text, labels=["user_class"])
            for cls in names:
                counter.add_metric([cls], value(cls))
            yield counter
        info = GaugeMetricFamily("sticky_user_class_info", "The affinity a user class asks for "
                                 "(session, strict, none)", labels=["user_class", "affinity"])
        for cls in names:
            info.add_metric([cls, self.affinity[cls]], 1)
        yield info
        changes = CounterMetricFamily(
            "sticky_membership_changes", "Containers that joined or left the live set, as seen "
            "from their answers", labels=["change"])
        for what in ("added", "removed"):
            changes.add_metric([what], self.change_counts[what])
        yield changes
        yield GaugeMetricFamily("sticky_live_containers", f"Containers that answered in the "
                                f"last {IDLE_S} s (or since)", value=len(self.live))


def histogram(name: str, text: str, cells: dict[tuple[str, str], list[float]]
              ) -> HistogramMetricFamily:
    """Per-bucket counts (milliseconds, last item the sum) to a cumulative histogram in
    seconds."""
    family = HistogramMetricFamily(name, text, labels=["user_class", "cache"])
    for labels, hist in sorted(cells.items()):
        running, buckets = 0.0, []
        for le, count in zip(LE, hist[:-1], strict=True):
            running += count
            buckets.append((le, running))
        family.add_metric(list(labels), buckets, hist[-1] / 1000.0)
    return family


class Collector:
    """prometheus-client's side: the current counts as metric families, at each scrape."""

    def __init__(self, metrics: LiveMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self.metrics.counts.families()


class LiveMetrics:
    """The plugin: `register(environment)`; the recorder feeds it rows once attached."""

    def __init__(self) -> None:
        self.counts = Counts()
        self.registry = CollectorRegistry()
        self.registry.register(Collector(self))
        self.environment: Environment | None = None
        self.recorder: Any = None
        self.server: WSGIServer | None = None
        self.address: tuple[str, int] | None = None
        self.scrapes = 0  # scrapes answered

    def install(self, events: Events) -> LiveMetrics:
        """At import, before the recorder is installed: our quitting listener then runs after
        the recorder's, once every row is in."""
        events.init_command_line_parser.add_listener(add_arguments)
        events.init.add_listener(self.on_init)
        events.quitting.add_listener(self.on_quitting)
        return self

    def on_init(self, environment: Environment, **_kwargs: Any) -> None:
        self.register(environment)

    def register(self, environment: Environment) -> None:
        self.environment = environment
        if isinstance(environment.runner, WorkerRunner):
            return  # the master counts the workers' rows
        events = environment.events
        events.test_start.add_listener(self.on_test_start)
        events.reset_stats.add_listener(self.reset)
        port = int(getattr(environment.parsed_options, "metrics_port", 0) or 0)
        if port:
            try:
                self.serve(port)
            except OSError as exc:
                logger.error("%s", self.bind_error(port, exc))
                sys.exit(USAGE_EXIT_CODE)

    def bind_error(self, port: int, exc: OSError) -> str:
        return f"--metrics-port {port}: cannot serve metrics on {self.host()}:{port}: " \
               f"{exc.strerror or exc}"

    def host(self) -> str:
        options = self.environment.parsed_options if self.environment else None
        return str(getattr(options, "metrics_host", "127.0.0.1") or "127.0.0.1")

    def serve(self, port: int) -> None:
        """Start serving /metrics, and take the recorder's rows."""
        if self.server is not None:
            if self.address == (self.host(), port):
                return
            self.stop()
        app = make_wsgi_app(self.registry)

        def counted(environ: dict[str, Any], start_response: Any) -> Any:
            body = app(environ, start_response)
            self.scrapes += 1
            return body

        server = WSGIServer((self.host(), port), counted, log=None, error_log=logger)
        server.start()  # binds now: an error is raised here
        self.server, self.address = server, (self.host(), port)
        self.attach()
        logger.info("metrics: serving Prometheus metrics on http://%s:%d/metrics", *self.address)

    def attach(self) -> None:
        """The recorder hands its rows over while the metrics are served, never otherwise:
        without --metrics-port nothing is counted here (no cost per request). Its ticker
        moves the counts' clock once a second, right after counting the second's rows."""
        if self.recorder is not None and self.server is not None:
            self.recorder.metrics = self.counts

    def on_test_start(self, environment: Environment, **_kwargs: Any) -> None:
        self.reset()
        port = int(getattr(environment.parsed_options, "metrics_port", 0) or 0)
        if port and not getattr(environment.parsed_options, "headless", False):
            try:  # the web UI's form may have set or changed it
                self.serve(port)
            except OSError as exc:
                logger.error("%s; the run goes on without metrics", self.bind_error(port, exc))

    def reset(self, **_kwargs: Any) -> None:
        self.counts = Counts()
        self.attach()

    def on_quitting(self, environment: Environment, **_kwargs: Any) -> None:
        """After the recorder's end: every switch classified, then, with --metrics-linger,
        one more scrape waited for, then the server stopped."""
        if self.server is None:
            return
        self.counts.classify()
        linger = float(getattr(environment.parsed_options, "metrics_linger", 0) or 0)
        if linger > 0:
            assert self.address is not None
            logger.info("metrics: waiting up to %gs for a last scrape of http://%s:%d/metrics",
                        linger, *self.address)
            scrapes, start = self.scrapes, time.monotonic()
            while self.scrapes == scrapes and time.monotonic() - start < linger:
                gevent.sleep(0.05)
            if self.scrapes > scrapes:
                logger.info("metrics: final values scraped")
            else:
                logger.warning("metrics: not scraped within %gs of the end: the last values "
                               "may be missing from Prometheus", linger)
        self.stop()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(timeout=1)
            self.server = None


def install(events: Events) -> LiveMetrics:
    """Hook live metrics on Locust's module-level events (call before the recorder's install)."""
    return LiveMetrics().install(events)
