"""The container recorder: one row per request, which container answered, nothing lost.

Use, in a locustfile (`locustfiles/sticky.py` does this):

    from locust import events
    from locustfiles.recorder import install

    install(events)   # at import: the quitting listener must be registered before Locust's own

Then `locust -f locustfiles/sticky.py --csv out/run ...` writes the request file next to
Locust's `out/run_stats.csv`: `out/run_requests.arrows` while the run goes (crash-safe),
`out/run_requests.parquet` at its end, one row per request, failures included, in the columns
of `reports/columns.py` (docs/request-file.md). Without `--csv` nothing is written, but the
summary, the exit code and the web UI's Stickiness tab work the same.

The parts, one job each:
- this module: the plugin (`Recorder.register`), the request listener that turns each request
  into a row (`on_request`, the hot path) and the wiring of Locust's events;
- `requestwriter.py`: the row writer (flushes, fsync, compaction, fail closed);
- `shipping.py`: rows from workers to the master;
- `summary.py`: the per-session counters and the console summary; `ending.py`: the verdict
  and the exit code.

The hot path costs about a microsecond per request (scripts/bench_recorder.py measures each
part): the answer's body is parsed once per distinct body (`Bodies`: the replica's answers
repeat, so a bounded memo of exact parses answers nearly every request with one dict lookup);
the row is one append per column (rowbuffer.py). Everything else takes the rows a batch at a
time: the per-session counters and the live metrics count them once a second and before
anything reads them (`absorb`, locustfiles/batch.py), and the writer turns them into Arrow
arrays once per flush. With the context's "stream" (streaming requests) the body is not read
at all.

The end: the file is closed, the summary printed and the exit code set in a `quitting`
listener registered at import, so that it runs after Locust's own quitting listeners (they run
last registered first): on `-t` expiry, Ctrl-C, SIGTERM or a stop from the web UI the workers'
last reports have arrived by then. A worker, the other way round, stops its users and sends
its last report in a quitting listener registered in `init`, which runs before the worker
runner's own: before its "quit" message, after which the master no longer listens. Ctrl-C is
delivered to the main greenlet only (Locust's default raises it in whichever greenlet runs,
and in the master's message loop that loses the last reports).

Listeners never raise: a bad body is a recorded error (`error` = "body: ..."), and any other
surprise is counted and reported in the summary. A write error of the request file ends the
run: one line naming the file and the cause, then exit code 2 (see requestwriter.py).
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent
import greenlet
from locust.env import Environment
from locust.event import Events
from locust.runners import STATE_INIT, STATE_STOPPED, MasterRunner, WorkerRunner
from locust.stats import StatsError

from locustfiles import affinity, ending, lasttails
from locustfiles import summary as summary_mod
from locustfiles.affinity import InstanceReader
from locustfiles.batch import Batch
from locustfiles.ending import STICKINESS_EXIT_CODE, WRITE_FAILED_EXIT_CODE
from locustfiles.rowbuffer import BATCH_ROWS, RowBuffer
from locustfiles.shipping import PAYLOAD, Intake, Outbox, ship_last
from locustfiles.summary import Stickiness
from reports.columns import BODY_PREFIX, STREAM_CUT_PREFIX, STREAM_SHORT_PREFIX

if TYPE_CHECKING:
    from locustfiles.requestwriter import RequestFileWriter

__all__ = ["STICKINESS_EXIT_CODE", "WRITE_FAILED_EXIT_CODE", "Recorder", "install",
           "parse_body"]

logger = logging.getLogger(__name__)
console = logging.getLogger("locust.stats_logger")  # where Locust prints its own final tables

SHIP_ROWS = 2000  # a worker ships at least this often (rows), and every FLUSH_S
FLUSH_S = 1.0
NO_CONTEXT: dict[str, Any] = {}
ERROR_PREFIXES = (STREAM_CUT_PREFIX, STREAM_SHORT_PREFIX, BODY_PREFIX)


# ## Options


def add_arguments(parser: Any, **_kwargs: Any) -> None:
    """`init_command_line_parser` listener: the recorder's options, also shown in the web UI."""
    parser.add_argument(
        "--max-multi-container-sessions", type=int, default=0,
        env_var="LOCUST_MAX_MULTI_CONTAINER_SESSIONS", include_in_web_ui=True,
        help="Exit with code 3 when more sessions of the classes that ask for affinity than "
             "this saw more than one container (default 0: as strict as Modal's example)")
    parser.add_argument(
        "--accept-incomplete", action="store_true", default=False,
        env_var="LOCUST_ACCEPT_INCOMPLETE", include_in_web_ui=True,
        help="Judge the run even when a process lost rows (a worker killed before its final "
             "batch): without it such a run is NOT JUDGED (exit 4)")
    parser.add_argument(
        "--no-judgement", action="store_true", default=False, env_var="LOCUST_NO_JUDGEMENT",
        include_in_web_ui=True,
        help="Ask for no verdict (a control-only baseline): NOT JUDGED then exits 0, not 4")
    from locustfiles import partoptions  # --request-file-part-mb, --request-file-part-minutes

    partoptions.add_arguments(parser)


# ## The plugin


class Recorder:
    """The recorder plugin; `register(environment)` hooks it on one Locust environment."""

    def __init__(self, *, batch_rows: int = BATCH_ROWS, ship_rows: int = SHIP_ROWS,
                 flush_s: float = FLUSH_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.batch_rows = batch_rows
        self.flush_s = flush_s
        self.clock = clock
        self._stickiness = Stickiness()
        self.bodies = Bodies()
        self._parsed = self.bodies.known  # the hot path reads the memo itself
        self.instance: InstanceReader | None = None  # --instance-header/--instance-field
        self.environment: Environment | None = None
        self.role = "local"  # "local", "master" or "worker"
        self.writer: RequestFileWriter | None = None
        self.outbox = Outbox(batch_rows=ship_rows, flush_s=flush_s, clock=clock)
        self.intake = Intake(batch_rows=ship_rows, flush_s=flush_s, clock=clock)
        self._recorded = 0  # rows counted (local, master) since start
        self._run_recorded = 0  # since the last test start or stats reset, as Locust counts
        self._counted = 0  # local: the buffer's rows counted so far (`absorb`)
        self.listener_errors = 0
        self.closed = False
        self.metrics: Any = None  # live metrics (livemetrics.py) take every row when on
        # where rows go: the writer's (--csv), the outbox's (a worker), else counted and dropped
        self._use(RowBuffer(), batch_rows)
        self._ticker: gevent.Greenlet | None = None

    # ### Wiring

    def on_init(self, environment: Environment, **_kwargs: Any) -> None:
        """`init` listener, for the locust command (see install())."""
        route_sigint_to_main_greenlet()
        self.register(environment)

    def register(self, environment: Environment) -> None:
        self.environment = environment
        events, runner = environment.events, environment.runner
        self.instance = affinity.reader_for(environment)
        classes: list[Any] = [*(environment.available_user_classes or {}).values(),
                               *environment.user_classes]
        # judged by their attribute only when their users record no affinity (summary.py)
        self._stickiness = Stickiness(
            c.__name__ for c in classes if getattr(c, "expects_one_container",
                                                   getattr(c, "sends_session_id", False)))
        if isinstance(runner, WorkerRunner):
            self.become_worker(runner.client_id)
            events.request.add_listener(self.on_request)
            events.report_to_master.add_listener(self.on_report_to_master)
            events.test_start.add_listener(self.on_worker_test_start)
            events.test_stop.add_listener(self.on_worker_test_stop)
            # registered after the worker runner's own quitting listener, so it runs before it:
            # the last batch must reach the master before the worker's "quit" message does
            events.quitting.add_listener(self.on_quitting)
        else:
            if isinstance(runner, MasterRunner):
                self.role = "master"
                lasttails.install(runner)  # the workers' last rows arrive before it ends
                events.worker_report.add_listener(self.on_worker_report)
                runner.register_message(PAYLOAD, self.on_rows_message)
            else:
                events.request.add_listener(self.on_request)
            events.test_start.add_listener(self.on_reset)
            events.reset_stats.add_listener(self.on_reset)
            prefix = getattr(environment.parsed_options, "csv_prefix", None)
            if prefix:
                self.open_file(prefix)
                affinity.record(environment, prefix)
        if environment.web_ui is not None:
            from locustfiles import webui

            webui.install(environment.web_ui, self)
        self._ticker = gevent.spawn(self._tick)

    def become_worker(self, worker_id: str) -> None:
        """Rows go to the outbox, shipped to the master."""
        self.role = "worker"
        self._use(self.outbox.buffer, self.outbox.batch_rows)

    def open_file(self, prefix: str) -> RequestFileWriter:
        """The request file (local, master): pyarrow is imported now, before any load, and
        only where a file is written (a worker or a run without --csv never imports it)."""
        from locustfiles import partoptions
        from locustfiles.requestwriter import RequestFileWriter

        options = getattr(self.environment, "parsed_options", None)
        self.writer = RequestFileWriter(prefix, batch_rows=self.batch_rows,
                                        on_failure=self.on_write_failure, clock=self.clock,
                                        **partoptions.writer_options(options))
        self._use(self.writer.buffer, self.batch_rows)
        return self.writer

    def _use(self, buffer: RowBuffer, limit: int) -> None:
        """Rows go to `buffer`, flushed (or shipped) when it holds `limit` rows. The hot path
        holds its first column and its appends: one attribute each per request."""
        self._buffer, self._limit = buffer, limit
        self._rows, self._appends = buffer.dense[0], buffer.appends

    # ### Requests: the hot path

    def on_request(self, *, name: str, response_time: float, response: Any = None,
                   context: dict[str, Any] | None = None, exception: Exception | None = None,
                   start_time: float | None = None, request_type: Any = None,
                   response_length: Any = None, url: Any = None, **_kwargs: Any) -> None:
        """The request listener: one row per request; never raises. Every argument Locust
        passes is named (unused ones too), so that no dict of the rest is built per call."""
        try:
            ctx = context or NO_CONTEXT
            status = getattr(response, "status_code", 0) or 0  # None: a connection error
            error = None if exception is None else error_text(exception)
            stream = ctx.get("stream")
            container = cache = extra = None
            if stream is not None:
                container, cache = stream.get("container_id"), stream.get("cache")
                if self.instance is not None:
                    container = self.instance.stream(response, container)
                if isinstance(container, str) and not container.strip():
                    container = None  # a blank id names no container (a body error)
                extra = (stream.get("ttfb_ms"), stream.get("ttft_ms"), stream.get("tokens"),
                         stream.get("max_gap_ms"))
            elif 200 <= status < 300:
                if self.instance is None:
                    content = getattr(response, "content", None)
                    try:  # the memo of `Bodies.parse`, read here: one call fewer per request
                        parsed = self._parsed.get(content)
                    except TypeError:  # unhashable (a bytearray): parsed, not kept
                        parsed = None
                    if parsed is None:
                        parsed = self.bodies.learn(content)
                else:
                    parsed = self.instance.read(response)
                container, cache, body_error = parsed
                if body_error is not None and error is None:
                    error = body_error
            response_ms = float(response_time)  # before any append: the columns stay aligned
            n = len(self._rows)
            if not n:
                self.outbox.since = self.clock()
            ts, rt, sid, cls, rname, st, cid, hit, aff = self._appends
            ts(start_time if start_time is not None else time.time())
            rt(response_ms)
            sid(ctx.get("session_id"))
            cls(ctx.get("user_class"))
            rname(name)
            st(status)
            cid(container)
            hit(cache)
            aff(ctx.get("affinity"))
            if error is not None or extra is not None:
                self._buffer.note((n, error, extra))
            if n + 1 >= self._limit:
                self._full()
        except Exception:
            self._listener_error()

    def _full(self) -> None:
        """The buffer holds `_limit` rows, or a second has passed: count and write them
        (local), write them (master: counted as they arrived) or ship them (worker)."""
        if self.role == "worker":
            self.outbox.send(self.environment.runner if self.environment else None)
            return
        counted = self.absorb()
        if self.writer is not None:
            self.writer.flush(counted)  # the strings' codes of the rows counted are reused
        else:
            self._buffer.clear()  # no --csv: counted, not kept
        self._counted = 0

    def absorb(self) -> Batch | None:
        """Count the rows taken since the last call (local; the master counts each payload as
        it arrives): the per-session counters and the live metrics take them as one batch
        (locustfiles/batch.py), returned. Called once a second (the live metrics are then up
        to the last second) and before the summary, the verdict or the web tab is read."""
        buffer = self._buffer
        if self.role != "local" or len(buffer) <= self._counted:
            return None
        start, self._counted = self._counted, len(buffer)
        batch = Batch(buffer.dense, buffer.notes, start)
        self._count(batch)
        return batch

    def _count(self, batch: Batch) -> None:
        self._recorded += batch.n
        self._run_recorded += batch.n
        try:
            self._stickiness.add_batch(batch)
            if self.metrics is not None:
                self.metrics.observe_batch(batch)
        except Exception:
            self._listener_error()

    @property
    def stickiness(self) -> Stickiness:
        """The per-session counters, up to the last request."""
        self.absorb()
        return self._stickiness

    @property
    def recorded(self) -> int:
        """Rows taken in (local, master) since start."""
        self.absorb()
        return self._recorded

    @property
    def run_recorded(self) -> int:
        """Rows taken in since the last test start or stats reset, as Locust counts them."""
        self.absorb()
        return self._run_recorded

    # ### Worker side

    def on_report_to_master(self, *, data: dict[str, Any], **_kwargs: Any) -> None:
        try:
            data[PAYLOAD] = self.outbox.payload()
        except Exception:
            self._listener_error()

    def on_worker_test_start(self, **_kwargs: Any) -> None:
        self.outbox.stopped = False
        self.instance = affinity.reader_for(self.environment)  # the master's options

    def on_worker_test_stop(self, **_kwargs: Any) -> None:
        self.outbox.stopped = True

    # ### Master side

    def on_worker_report(self, *, client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
        if PAYLOAD in data:
            self.ingest(client_id, data[PAYLOAD])

    def on_rows_message(self, *, msg: Any, **_kwargs: Any) -> None:
        self.ingest(msg.node_id, msg.data)

    def ingest(self, worker_id: str, payload: dict[str, Any]) -> None:
        """A worker's payload: its rows, in order, and whether its users had stopped."""
        try:
            dense, notes = self.intake.accept(worker_id, payload)
            n = len(dense[0])
            if not n:
                return
            self._count(Batch(dense, notes))
            if self.writer is not None:
                self.writer.extend(dense, notes, worker_id)
        except Exception:
            self._listener_error()

    def recording(self) -> dict[str, Any]:
        """How the recording ended, for the request file (reports.columns.RECORDING_KEY)."""
        runner = self.environment.runner if self.environment else None
        lost = self.lost_tails()
        processes = {worker: {"recorded": ledger.rows, "done": ledger.done}
                     for worker, ledger in sorted(self.intake.workers.items())}
        if not processes:
            processes = {"local": {"recorded": self.run_recorded, "done": True}}
        return {"ended": "with lost rows" if lost else "normally",
                "locust_requests": runner.stats.total.num_requests if runner else None,
                "recorded": self.run_recorded, "lost": lost, "processes": processes}

    def lost_tails(self) -> list[str]:
        runner = self.environment.runner if self.environment else None
        missing = [node.id for node in getattr(getattr(runner, "clients", None), "missing", [])]
        return self.intake.lost_tails(missing)

    # ### Both

    def on_reset(self, **_kwargs: Any) -> None:
        """A new test or the web UI's Reset Stats: the summary restarts, as Locust's stats do."""
        buffer = self._buffer
        if self.role == "local" and len(buffer) > self._counted:
            self._recorded += len(buffer) - self._counted  # before the reset: not counted
            self._counted = len(buffer)
        self._stickiness.reset()
        self._run_recorded = 0
        self.instance = affinity.reader_for(self.environment)  # the web form's options
        prefix = getattr(getattr(self.environment, "parsed_options", None), "csv_prefix", None)
        if self.writer is not None and prefix:
            affinity.record(self.environment, prefix)

    def _tick(self) -> None:
        """Once a second: the rows counted and written (or shipped), then the live metrics'
        clock moves, every row of the second counted. One count of the whole buffer per
        second: the writer reuses its codes (a count of part of it could not be reused)."""
        while not self.closed:
            gevent.sleep(self.flush_s)
            try:
                if self.role != "worker" or self.outbox.due():
                    self._full()
                if self.metrics is not None:
                    self.metrics.step()
            except Exception:
                self._listener_error()

    def _listener_error(self) -> None:
        self.listener_errors += 1
        if self.listener_errors <= 3:
            logger.exception("recorder: unexpected error (the run goes on)")

    def on_write_failure(self, line: str) -> None:
        """The request file cannot be written: say it once, in one line, and end the run."""
        console.error("recorder: %s; the run stops (rows written before stay readable)", line)
        if not self.closed:
            gevent.spawn(self._stop_run)

    def _stop_run(self) -> None:
        environment = self.environment
        runner = environment.runner if environment else None
        if runner is None:
            return
        if getattr(environment.parsed_options, "headless", False):  # type: ignore[union-attr]
            runner.quit()  # the main greenlet returns: Locust shuts down, our quitting runs
        else:
            runner.stop()  # the web UI stays, showing the verdict

    # ### The end

    def on_quitting(self, environment: Environment, **_kwargs: Any) -> None:
        """Module-level `quitting` listener: last batch, file closed, summary, exit code."""
        try:
            self.close()
            if self.role != "worker":
                for line in self.report_lines():
                    console.info(line)
                self.set_exit_code(environment)
        except Exception:
            logger.exception("recorder: could not finish cleanly")
            if environment.process_exit_code in (None, 0):
                environment.process_exit_code = WRITE_FAILED_EXIT_CODE

    def close(self) -> None:
        """Stop the users (Locust would right after), then flush or ship the rest. Idempotent."""
        if self.closed:
            return
        runner = self.environment.runner if self.environment else None
        if runner is not None and self.role != "master" and runner.state not in (
                STATE_INIT, STATE_STOPPED):
            # no request may complete after the last batch; this also waits for a stop that
            # another greenlet began (a worker handling the master's quit message)
            runner.stop()
        self.closed = True
        if self._ticker is not None:
            self._ticker.kill(block=False)
        if self.role == "worker":
            self.outbox.stopped = True
            ship_last(runner, self.outbox)
            return
        self.absorb()  # every row counted, before the live metrics' last classification
        if self.writer is not None:
            self.writer.close(self.recording())

    def summary(self) -> summary_mod.Summary:
        return self.stickiness.summarise()

    def result(self, summary: summary_mod.Summary | None = None) -> ending.Verdict:
        failure = self.writer.failure if self.writer is not None else None
        options = self.environment.parsed_options if self.environment else None
        # a process's tail is lost only once the run has ended without it (mid-run, no
        # worker has sent its final batch yet)
        lost = self.lost_tails() if self.closed and not getattr(
            options, "accept_incomplete", False) else []
        return ending.verdict(self.summary() if summary is None else summary, self.max_multi(),
                              failure, bool(getattr(options, "no_judgement", False)), lost)

    def verdict(self) -> str:
        """The stickiness check's one-line result."""
        return self.result().line

    def report_lines(self) -> list[str]:
        summary = self.summary()
        lines = summary_mod.render(summary)
        runner = self.environment.runner if self.environment else None
        counted = runner.stats.total.num_requests if runner is not None else 0
        where = " (no --csv: no file)"
        writer = self.writer
        if writer is not None:
            where = f" to {writer.written_to()}"
            if writer.failure is not None:
                where += (f" ({writer.written} written before the failure, {writer.dropped} "
                          "after it not written)")
        lines.append(f"  recorder: {self.run_recorded} requests recorded{where}; Locust counted "
                     f"{counted}")
        if self.listener_errors:
            lines.append(f"  recorder: {self.listener_errors} unexpected errors (see the log)")
        lines.extend("  " + line for line in self.lost_tails())
        lines.append("  " + self.result(summary).line)
        return lines

    def tab_rows(self, limit: int) -> list[dict[str, object]]:
        """The web tab's rows: the verdict and any lost tail first, then the table."""
        summary = self.summary()
        notes = [self.result(summary).line, *self.lost_tails(), *summary.notes]
        blank = dict.fromkeys(key["key"] for key in summary_mod.TABLE_STRUCTURE)
        rows: list[dict[str, object]] = [{**blank, "session": note} for note in notes if note]
        return rows + self.stickiness.table(limit, summary)

    def max_multi(self) -> int:
        options = self.environment.parsed_options if self.environment else None
        return int(getattr(options, "max_multi_container_sessions", 0) or 0)

    def set_exit_code(self, environment: Environment) -> None:
        """Make the exit code worse on a failed verdict, never better."""
        ending.set_exit_code(environment, self.result())



# ## Addenda


class Bodies:
    """The replica's answers, parsed once per distinct body.

    The answers repeat (`{"CONTAINER_ID":"ta-...","cache":"hit"}`: one per container and
    cache state), so an exact memo of `parse_body` answers nearly every request with one dict
    lookup. Bounded: at most `limit` bodies of at most `max_bytes` each are kept.
    """

    def __init__(self, limit: int = 4096, max_bytes: int = 512) -> None:
        self.known: dict[Any, tuple[str | None, str | None, str | None]] = {}
        self.limit = limit
        self.max_bytes = max_bytes

    def parse(self, content: Any) -> tuple[str | None, str | None, str | None]:
        """(container id, cache, error) of a 2xx answer's body."""
        try:
            known = self.known.get(content)
        except TypeError:  # a bytearray, say: not kept
            return parse_body(content)
        if known is not None:
            return known
        return self.learn(content)

    def learn(self, content: Any) -> tuple[str | None, str | None, str | None]:
        """A body not in the memo: parsed, and kept if it is small bytes and there is room."""
        result = parse_body(content)
        if (len(self.known) < self.limit and isinstance(content, bytes)
                and len(content) <= self.max_bytes):
            self.known[content] = result
        return result


def error_text(exception: Exception | str) -> str:
    """The `error` column: the message itself when it carries a prefix of the request file's
    (e.g. the harness's "stream cut: ..." through `response.failure()`), else Locust's text."""
    text = exception if isinstance(exception, str) else str(exception)
    if text.startswith(ERROR_PREFIXES):
        return text
    return StatsError.parse_error(exception)


def parse_body(content: Any) -> tuple[str | None, str | None, str | None]:
    """(container id, cache, error) from the replica's answer, never raising."""
    if not content:
        return None, None, BODY_PREFIX + "empty body"
    try:
        data = json.loads(content)
    except ValueError:
        return None, None, BODY_PREFIX + "not JSON"
    container = data.get("CONTAINER_ID") if isinstance(data, dict) else None
    if not isinstance(container, str):
        return None, None, BODY_PREFIX + "no CONTAINER_ID"
    if not container.strip():
        return None, None, BODY_PREFIX + "empty CONTAINER_ID"
    cache = data.get("cache")
    return container, cache if isinstance(cache, str) else None, None


def route_sigint_to_main_greenlet() -> None:
    """Deliver Ctrl-C to the main greenlet only, where Locust waits for it.

    By default the KeyboardInterrupt is raised in whichever greenlet runs at that instant: in a
    master's message loop it kills the loop and the workers' last reports are never read; in a
    worker it can cut a message in half. Locust's shutdown starts in the main greenlet anyway.
    """
    main = greenlet.getcurrent()  # `init` fires in the main greenlet

    def interrupt() -> None:
        if not main.dead:
            main.throw(KeyboardInterrupt)

    gevent.signal_handler(signal.SIGINT, interrupt)


def install(events: Events, recorder: Recorder | None = None) -> Recorder:
    """Hook a recorder on Locust's module-level events; call it when the locustfile is imported."""
    recorder = recorder or Recorder()
    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(recorder.on_init)
    events.quitting.add_listener(recorder.on_quitting)
    return recorder
