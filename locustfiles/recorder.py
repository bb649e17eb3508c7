"""The container recorder: one row per request, which container answered, nothing lost.

Use, in a locustfile (`locustfiles/sticky.py` does this):

    from locust import events
    from locustfiles.recorder import install

    install(events)   # at import: the quitting listener must be registered before Locust's own

Then `locust -f locustfiles/sticky.py --csv out/run ...` writes `out/run_requests.parquet` next
to Locust's `out/run_stats.csv`: one row per request, failures included, in the columns of
`reports/columns.py` (time, session id, user class, name, status, container id, cache, error,
response time, worker). Without `--csv` nothing is written, but the summary, the exit code and
the web UI's Stickiness tab work the same.

How rows travel:

- local mode: the request listener parses the body (`{"CONTAINER_ID": ...}`), updates the
  per-session counters (`summary.Stickiness`) and buffers the row; every `batch_rows` rows or
  `flush_s` seconds the buffer becomes one Parquet row group, so memory stays bounded.
- `--processes N` or `--master`/`--worker`: workers only buffer; they ship their rows (column
  lists, msgpack-friendly) in each `report_to_master` payload, the same message as Locust's own
  statistics, and in a custom message whenever `batch_rows` rows or `flush_s` seconds have
  piled up. The master merges them and writes. A worker marks its payloads `done` once its
  users have stopped; a worker whose last payload is not `done` at the end (killed, cut off)
  lost at most its last unsent batch, and the summary says so.
- the file is closed, the summary printed and the exit code set in a `quitting` listener
  registered at import, so that it runs after Locust's own quitting listeners (they run last
  registered first): on `-t` expiry, Ctrl-C, SIGTERM or a stop from the web UI the workers' last
  reports have arrived by then (see ../shared/notes/locust.md). A worker, the other way round,
  stops its users and sends its last report in a quitting listener registered in `init`, which
  runs before the worker runner's own: before its "quit" message, after which the master no
  longer listens. And Ctrl-C is delivered to the main greenlet only (Locust's default raises it
  in whichever greenlet runs, and in the master's message loop that loses the last reports).

Listeners never raise: a bad body is a recorded error (`error` = "body: ..."), and any other
surprise is counted and reported in the summary.
"""

from __future__ import annotations

import importlib.abc
import itertools
import json
import logging
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import greenlet
from locust.env import Environment
from locust.event import Events
from locust.runners import STATE_INIT, STATE_STOPPED, MasterRunner, WorkerRunner
from locust.stats import StatsError

from locustfiles import summary as summary_mod
from locustfiles.summary import BODY_PREFIX, Stickiness
from reports.columns import COLUMNS, SUFFIX, arrow_schema

logger = logging.getLogger(__name__)
console = logging.getLogger("locust.stats_logger")  # where Locust prints its own final tables

PAYLOAD = "modal_sticky_rows"  # key in report_to_master data, and the custom message type
BATCH_ROWS = 2000
FLUSH_S = 1.0
STICKINESS_EXIT_CODE = 3
SHIPPED = len(COLUMNS) - 1  # workers ship every column but the last, `worker`: the master adds it

Row = tuple[Any, ...]  # in COLUMNS order


# ## Options


def add_arguments(parser: Any, **_kwargs: Any) -> None:
    """`init_command_line_parser` listener: the recorder's options, also shown in the web UI."""
    parser.add_argument(
        "--max-multi-container-sessions", type=int, default=0,
        env_var="LOCUST_MAX_MULTI_CONTAINER_SESSIONS", include_in_web_ui=True,
        help="Exit with code 3 when more sessions that send Modal-Session-Id than this saw more "
             "than one container (default 0: as strict as Modal's example)")


# ## The request file


class RequestFileWriter:
    """Rows to `PREFIX_requests.parquet`, one row group per batch; `close()` is idempotent."""

    def __init__(self, path: Path, *, batch_rows: int = BATCH_ROWS) -> None:
        self.path = path
        self.batch_rows = batch_rows
        self.rows: list[Row] = []
        self.written = 0
        self.closed = False
        self._writer: Any = None
        _import_pyarrow()  # now, before any load: the import blocks the event loop

    def append(self, row: Row) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows as one row group; they leave the buffer once written."""
        if not self.rows or self.closed:
            return
        n = len(self.rows)
        self._write(list(zip(*self.rows, strict=True)))
        del self.rows[:n]
        self.written += n

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.flush()
            if self._writer is None:  # no rows at all: still leave a readable, empty file
                self._write([() for _ in COLUMNS])
        finally:
            self.closed = True
            if self._writer is not None:
                self._writer.close()

    def _write(self, columns: Sequence[Sequence[Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = arrow_schema()
        arrays = [pa.array(col, type=f.type) for col, f in zip(columns, schema, strict=True)]
        table = pa.Table.from_arrays(arrays, schema=schema)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # dictionary pages for the strings only: the floats gain nothing from them, and
            # the report reads such a file about twice as fast
            strings = [f.name for f in schema if pa.types.is_string(f.type)]
            self._writer = pq.ParquetWriter(self.path, schema, compression="zstd",
                                            use_dictionary=strings, write_page_checksum=True)
        self._writer.write_table(table)


def _import_pyarrow() -> None:
    """Import pyarrow, and stop it from importing pandas in this process.

    `pa.array()` of a Python list imports pandas on first use (pyarrow's lazy pandas shim): a
    stall of a second or so in the middle of the run, and a Locust that is slower afterwards
    (../shared/notes/locust.md). The shim tries once: let that one try fail. Nothing here needs
    pandas; a process that has already imported it is left alone.
    """
    import pyarrow as pa

    if "pandas" in sys.modules:
        return
    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        pa.array([], type=pa.int32())
    finally:
        sys.meta_path.remove(blocker)


class _NoPandas(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.partition(".")[0] == "pandas":
            raise ModuleNotFoundError("not in the Locust process", name=fullname)
        return None


# ## Per-worker bookkeeping on the master


@dataclass(slots=True)
class WorkerLedger:
    rows: int = 0
    payloads: int = 0
    done: bool = True  # its last payload came after its users stopped
    last_payload_at: float = 0.0
    rate: float = 0.0  # rows/s between its last two payloads


# ## The plugin


class Recorder:
    """The recorder plugin; `register(environment)` hooks it on one Locust environment."""

    def __init__(self, *, batch_rows: int = BATCH_ROWS, flush_s: float = FLUSH_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.batch_rows = batch_rows
        self.flush_s = flush_s
        self.clock = clock
        self.stickiness = Stickiness()
        self.environment: Environment | None = None
        self.role = "local"  # "local", "master" or "worker"
        self.worker_id = "local"
        self.writer: RequestFileWriter | None = None
        self.recorded = 0  # rows taken in (local, master) since start
        self.run_recorded = 0  # since the last test start or stats reset, as Locust counts
        self.listener_errors = 0
        self.workers: dict[str, WorkerLedger] = {}
        self.outbox: list[Row] = []  # worker: rows not yet shipped
        self.stopped = False  # worker: users stopped since the last test start
        self.closed = False
        self._outbox_since = 0.0
        self._ticker: gevent.Greenlet | None = None

    # ### Wiring

    def on_init(self, environment: Environment, **_kwargs: Any) -> None:
        """`init` listener, for the locust command (see install())."""
        route_sigint_to_main_greenlet()
        self.register(environment)

    def register(self, environment: Environment) -> None:
        self.environment = environment
        events, runner = environment.events, environment.runner
        classes: list[Any] = [*(environment.available_user_classes or {}).values(),
                               *environment.user_classes]
        self.stickiness = Stickiness(
            c.__name__ for c in classes if getattr(c, "expects_one_container",
                                                   getattr(c, "sends_session_id", False)))
        if isinstance(runner, WorkerRunner):
            self.role, self.worker_id = "worker", runner.client_id
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
                events.worker_report.add_listener(self.on_worker_report)
                runner.register_message(PAYLOAD, self.on_rows_message)
            else:
                events.request.add_listener(self.on_request)
            events.test_start.add_listener(self.on_reset)
            events.reset_stats.add_listener(self.on_reset)
            prefix = getattr(environment.parsed_options, "csv_prefix", None)
            if prefix:
                self.writer = RequestFileWriter(Path(prefix + SUFFIX), batch_rows=self.batch_rows)
        if environment.web_ui is not None:
            from locustfiles import webui

            webui.install(environment.web_ui, self)
        self._ticker = gevent.spawn(self._tick)

    # ### Requests

    def on_request(self, *, response_time: float, name: str, response: Any = None,
                   context: dict[str, Any] | None = None, exception: Exception | None = None,
                   start_time: float | None = None, **_kwargs: Any) -> None:
        """The request listener: one row per request; never raises."""
        try:
            row = self.row(response_time=response_time, name=name, response=response,
                           context=context, exception=exception, start_time=start_time)
            if self.role == "worker":
                self._queue(row)
            else:
                self._take(row)
        except Exception:
            self._listener_error()

    def row(self, *, response_time: float, name: str, response: Any, context: dict[str, Any] | None,
            exception: Exception | None, start_time: float | None) -> Row:
        """The request as a row in reports.columns.COLUMNS order."""
        status = (getattr(response, "status_code", 0) or 0) if response is not None else 0
        error = None if exception is None else StatsError.parse_error(exception)
        container = cache = None
        if 200 <= status < 300:
            container, cache, body_error = parse_body(getattr(response, "content", None))
            if body_error and error is None:
                error = BODY_PREFIX + body_error
        ctx = context or {}
        return (start_time if start_time is not None else time.time(), float(response_time),
                ctx.get("session_id"), ctx.get("user_class"), name, status, container, cache,
                error, self.worker_id)

    def _take(self, row: Row) -> None:
        """A row reaches its final home (local or master): counters, then the file."""
        self.recorded += 1
        self.run_recorded += 1
        self.stickiness.add(row[2], row[3], row[5], row[6], row[8])
        if self.writer is not None:
            self.writer.append(row)

    # ### Worker side

    def _queue(self, row: Row) -> None:
        if not self.outbox:
            self._outbox_since = self.clock()
        self.outbox.append(row)
        if len(self.outbox) >= self.batch_rows:
            self._send_outbox()

    def payload(self) -> dict[str, Any]:
        """Take the outbox as a msgpack-friendly payload: column lists, without `worker`."""
        rows, self.outbox = self.outbox, []
        columns = list(zip(*rows, strict=True))[:SHIPPED] if rows else []
        return {"n": len(rows), "cols": [list(c) for c in columns], "done": self.stopped}

    def _send_outbox(self) -> None:
        runner = self.environment.runner if self.environment else None
        if runner is not None and self.outbox:
            runner.send_message(PAYLOAD, self.payload())

    def on_report_to_master(self, *, data: dict[str, Any], **_kwargs: Any) -> None:
        try:
            data[PAYLOAD] = self.payload()
        except Exception:
            self._listener_error()

    def on_worker_test_start(self, **_kwargs: Any) -> None:
        self.stopped = False

    def on_worker_test_stop(self, **_kwargs: Any) -> None:
        self.stopped = True

    # ### Master side

    def on_worker_report(self, *, client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
        if PAYLOAD in data:
            self.ingest(client_id, data[PAYLOAD])

    def on_rows_message(self, *, msg: Any, **_kwargs: Any) -> None:
        self.ingest(msg.node_id, msg.data)

    def ingest(self, worker_id: str, payload: dict[str, Any]) -> None:
        """A worker's payload: its rows, in order, and whether its users had stopped."""
        try:
            n = int(payload["n"])
            ledger = self.workers.setdefault(worker_id, WorkerLedger())
            now = self.clock()
            if ledger.payloads and now > ledger.last_payload_at:
                ledger.rate = n / (now - ledger.last_payload_at)
            ledger.payloads += 1
            ledger.rows += n
            ledger.done = bool(payload["done"])
            ledger.last_payload_at = now
            if n:
                for row in zip(*payload["cols"], itertools.repeat(worker_id, n), strict=True):
                    self._take(row)
        except Exception:
            self._listener_error()

    def lost_tails(self) -> list[str]:
        """One line per worker that ended without its final batch."""
        lines = []
        for worker_id, ledger in sorted(self.workers.items()):
            if not ledger.done:
                estimate = min(self.batch_rows, round(ledger.rate * self.flush_s) + 1)
                lines.append(f"worker {worker_id}: at most {self.batch_rows} requests not "
                             f"recorded (no final batch; about {estimate} at its last rate); "
                             "Locust's statistics lose its last report too")
        runner = self.environment.runner if self.environment else None
        for node in getattr(getattr(runner, "clients", None), "missing", []):
            if node.id not in self.workers:
                lines.append(f"worker {node.id}: went missing before sending any rows: at most "
                             f"{self.batch_rows} requests not recorded")
        return lines

    # ### Both

    def on_reset(self, **_kwargs: Any) -> None:
        """A new test or the web UI's Reset Stats: the summary restarts, as Locust's stats do."""
        self.stickiness.reset()
        self.run_recorded = 0

    def _tick(self) -> None:
        while not self.closed:
            gevent.sleep(self.flush_s)
            try:
                if self.role == "worker":
                    if self.outbox and self.clock() - self._outbox_since >= self.flush_s:
                        self._send_outbox()
                elif self.writer is not None:
                    self.writer.flush()
            except Exception:
                self._listener_error()

    def _listener_error(self) -> None:
        self.listener_errors += 1
        if self.listener_errors <= 3:
            logger.exception("recorder: unexpected error (the run goes on)")

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
            self.stopped = True
            self._ship_last(runner)
        elif self.writer is not None:
            self.writer.close()

    def _ship_last(self, runner: Any) -> None:
        """The worker's last payload, in a last statistics report: after a Ctrl-C of its own
        Locust would not send one, and its last requests would be missing from both. (After
        the master's quit message Locust has sent it: this one is then empty.)"""
        if runner is None:
            return
        send_stats = getattr(runner, "_send_stats", None)
        if callable(send_stats):
            send_stats()
        else:
            self._send_outbox()

    def report_lines(self) -> list[str]:
        lines = summary_mod.render(self.stickiness.summarise())
        runner = self.environment.runner if self.environment else None
        counted = runner.stats.total.num_requests if runner is not None else 0
        where = f" to {self.writer.path}" if self.writer is not None else " (no --csv: no file)"
        lines.append(f"  recorder: {self.run_recorded} requests recorded{where}; Locust counted "
                     f"{counted}")
        if self.listener_errors:
            lines.append(f"  recorder: {self.listener_errors} unexpected errors (see the log)")
        lines.extend("  " + line for line in self.lost_tails())
        verdict = self.verdict()
        if verdict:
            lines.append("  " + verdict)
        return lines

    def tab_rows(self, limit: int) -> list[dict[str, object]]:
        """The web tab's rows: the verdict and any lost tail first, then the table."""
        notes = [self.verdict(), *self.lost_tails()]
        blank = dict.fromkeys(key["key"] for key in summary_mod.TABLE_STRUCTURE)
        rows: list[dict[str, object]] = [{**blank, "session": note} for note in notes if note]
        return rows + self.stickiness.table(limit)

    def max_multi(self) -> int:
        options = self.environment.parsed_options if self.environment else None
        return int(getattr(options, "max_multi_container_sessions", 0) or 0)

    def verdict(self) -> str:
        """The stickiness check's one-line result ("" when no user sends the header)."""
        summary = self.stickiness.summarise()
        if not any(c.sticky for c in summary.classes):
            return ""
        multi, allowed = summary.sticky_multi_container, self.max_multi()
        if multi > allowed:
            return (f"FAIL: {multi} sticky sessions saw more than one container "
                    f"(--max-multi-container-sessions {allowed}): exit code {STICKINESS_EXIT_CODE}")
        return f"PASS: {multi} sticky sessions saw more than one container (allowed {allowed})"

    def set_exit_code(self, environment: Environment) -> None:
        """Make the exit code worse on a stickiness violation, never better."""
        if self.verdict().startswith("FAIL") and locust_exit_code(environment) == 0:
            environment.process_exit_code = STICKINESS_EXIT_CODE


# ## Addenda


# The replica's answer as FastAPI writes it (compact JSON): matched in ~0.6 us where json.loads
# takes ~3 us on our machine; anything else, other key orders included, goes to json.loads.
REPLICA_ANSWER = re.compile(
    rb'\{"CONTAINER_ID":"([A-Za-z0-9_.:-]{1,200})"(?:,"cache":"(hit|miss)")?\}')


def parse_body(content: bytes | str | None) -> tuple[str | None, str | None, str | None]:
    """(container id, cache, error) from the replica's answer, never raising."""
    if not content:
        return None, None, "empty body"
    if isinstance(content, bytes) and (match := REPLICA_ANSWER.fullmatch(content)):
        container, cache = match.groups()
        return container.decode(), cache.decode() if cache else None, None
    try:
        data = json.loads(content)
    except ValueError:
        return None, None, "not JSON"
    container = data.get("CONTAINER_ID") if isinstance(data, dict) else None
    if not isinstance(container, str):
        return None, None, "no CONTAINER_ID"
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


def locust_exit_code(environment: Environment) -> int:
    """The exit code Locust would use now (main.shutdown's rules)."""
    from locust import log

    if environment.process_exit_code is not None:
        return environment.process_exit_code
    runner = environment.runner
    if runner is not None and (runner.errors or runner.exceptions):
        return int(getattr(environment.parsed_options, "exit_code_on_error", 1))
    return 2 if log.unhandled_greenlet_exception else 0


def install(events: Events, recorder: Recorder | None = None) -> Recorder:
    """Hook a recorder on Locust's module-level events; call it when the locustfile is imported."""
    recorder = recorder or Recorder()
    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(recorder.on_init)
    events.quitting.add_listener(recorder.on_quitting)
    return recorder
