"""Membership changes during a run: a churn schedule, and the run's own event log.

    locust -f locustfiles/sticky.py StickyUser --headless -u 50 -t 80s \\
        --host http://127.0.0.1:8000 --csv out/run --churn "20s:scale=4,40s:kill=1,60s:scale=2"

`--churn` takes steps `OFFSET:ACTION=N`, comma-separated, or `@FILE` with one step per line
(`#` starts a comment). OFFSET counts from the start of the load (`20s`, `1m30s`, `90`):
- `scale=N`: the target keeps N replicas (new ones start; the newest are stopped gracefully);
- `kill=K`: SIGKILL K live replicas, chosen at random (they are replaced, as Modal does);
- `stop=K`: stop K live replicas gracefully (drain, then exit; also replaced).
The steps go to the emulator's control API (`/_emulator/...` on the target), with
`Authorization: Bearer $MODAL_EMULATOR_CONTROL_TOKEN` when that is set; they need the local
emulator. On Modal, replicas come and go by themselves (scale-ups, pre-emption), and the
report infers the changes from the containers it saw.

With `--csv PREFIX` against the emulator, the membership events of the run (its live set at the
start, then every change: `GET /_emulator/events?since=START`) are written to
`PREFIX_events.jsonl` at the end, beside the request file, for `python -m reports PREFIX`.
Its first line is `{"event": "snapshot", "ts": START, "live": [...]}`; the others are the
emulator's events (`added`, `removed`, `control`, `exited`; see modal_app/local/events.py).

This module talks HTTP only; it imports nothing of the emulator.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.event import Events
from locust.runners import WorkerRunner

from locustfiles.modal_sessions import proxy_headers

logger = logging.getLogger(__name__)

ACTIONS = ("scale", "kill", "stop")
STEP = re.compile(r"^\s*(?P<offset>[0-9hms.]+)\s*:\s*(?P<action>[a-z]+)\s*=\s*(?P<n>\d+)\s*$")
OFFSET = re.compile(r"^(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?"
                    r"(?:(?P<s>\d+(?:\.\d+)?)s?)?$")
MAX_REPLICAS = 64
CONTROL_TOKEN_ENV = "MODAL_EMULATOR_CONTROL_TOKEN"  # the emulator's, when it requires one


class ChurnError(ValueError):
    """A schedule that cannot be run; the message is one line for the user."""


@dataclass(frozen=True)
class Step:
    at_s: float
    action: str
    n: int

    def __str__(self) -> str:
        return f"{self.at_s:g}s:{self.action}={self.n}"


def parse_offset(text: str) -> float:
    match = OFFSET.match(text.strip())
    if not text.strip() or not match or not any(match.groupdict().values()):
        raise ChurnError(f"bad offset {text!r}: use e.g. 20s, 1m30s or 90")
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    return parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)


def parse_churn(spec: str) -> list[Step]:
    """`20s:scale=4,40s:kill=1` or `@path` to a file of such steps, one per line."""
    spec = spec.strip()
    if spec.startswith("@"):
        path = Path(spec[1:])
        try:
            text = path.read_text()
        except OSError as exc:
            raise ChurnError(f"cannot read churn file {path}: {exc.strerror}") from None
        items = [line.split("#", 1)[0] for line in text.splitlines()]
    else:
        items = spec.split(",")
    steps = []
    for item in (i for i in items if i.strip()):
        match = STEP.match(item)
        if not match:
            raise ChurnError(f"bad churn step {item.strip()!r}: use OFFSET:ACTION=N, "
                             "e.g. 20s:scale=4")
        action, n = match["action"], int(match["n"])
        if action not in ACTIONS:
            raise ChurnError(f"unknown churn action {action!r}: use one of {', '.join(ACTIONS)}")
        if action == "scale" and n > MAX_REPLICAS:
            raise ChurnError(f"scale={n} is over {MAX_REPLICAS} replicas")
        if action != "scale" and n < 1:
            raise ChurnError(f"{action}={n}: give at least 1")
        steps.append(Step(parse_offset(match["offset"]), action, n))
    return sorted(steps, key=lambda s: s.at_s)


def checked_churn(spec: str) -> str:
    """argparse `type=`: a bad schedule is a usage error at once, before any waiting."""
    if spec.strip():
        try:
            parse_churn(spec)
        except ChurnError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return spec


class Control:
    """The emulator's control API at `host`."""

    def __init__(self, host: str, timeout: float = 10.0) -> None:
        self.base = host.rstrip("/") + "/_emulator"
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        # the proxy credentials too: an emulator run with --auth asks them of its control API
        headers = {"content-type": "application/json", **proxy_headers()}
        token = os.environ.get(CONTROL_TOKEN_ENV)
        if token:  # an emulator run with a control token (never printed)
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers=headers)
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read())

    def live(self) -> list[str]:
        return [r["container_id"] for r in self.call("GET", "/replicas") if r["state"] == "live"]

    def apply(self, step: Step, rng: random.Random) -> str:
        if step.action == "scale":
            self.call("POST", "/scale", {"replicas": step.n})
            return f"scale to {step.n}"
        live = self.live()
        victims = rng.sample(live, min(step.n, len(live)))
        for container_id in victims:
            self.call("POST", f"/replicas/{container_id}/{step.action}")
        return f"{step.action} {', '.join(victims) or 'nothing (no live replica)'}"

    def events_since(self, since: float) -> dict[str, Any]:
        return dict(self.call("GET", f"/events?since={since:.6f}"))


def describe_failure(exc: Exception, host: str) -> str:
    if isinstance(exc, urllib.error.HTTPError) and exc.code in (401, 404, 405):
        return (f"{host} has no emulator control API (/_emulator/ answered {exc.code}): "
                "--churn needs the local emulator (python -m modal_app.local)")
    return f"control API call failed: {exc}"


class Churn:
    """Runs the churn schedule on the master (or the local runner) and writes the event log."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.started: float | None = None
        self.greenlet: gevent.Greenlet | None = None
        self.applied: list[tuple[float, str]] = []
        self.rng = random.Random()

    def register(self, events: Events) -> None:
        events.init_command_line_parser.add_listener(self.add_arguments)
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)

    @staticmethod
    def add_arguments(parser: Any, **_kwargs: Any) -> None:
        parser.add_argument(
            "--churn", default="", type=checked_churn, env_var="LOCUST_CHURN",
            include_in_web_ui=True,
            help='Membership changes during the run, against the emulator: "20s:scale=4,'
                 '40s:kill=1,60s:stop=1", or @FILE with one step per line')

    def on_test_start(self, environment: Environment, **_kwargs: Any) -> None:
        if isinstance(environment.runner, WorkerRunner):
            return
        if self.started is None:
            self.started = time.time()
        spec = getattr(environment.parsed_options, "churn", "") or ""
        try:
            self.steps = parse_churn(spec) if spec else []
        except ChurnError as exc:  # changed in the web UI
            logger.error("--churn: %s; the run goes on without churn", exc)
            self.steps = []
        if self.steps and environment.host:
            self.greenlet = gevent.spawn(self.run, environment.host, time.monotonic())

    def run(self, host: str, t0: float) -> None:
        control = Control(host)
        for step in self.steps:
            gevent.sleep(max(0.0, t0 + step.at_s - time.monotonic()))
            try:
                done = control.apply(step, self.rng)
            except Exception as exc:  # never take the run down
                logger.error("churn %s: %s", step, describe_failure(exc, host))
                return
            self.applied.append((time.time(), done))
            logger.info("churn %s: %s", step, done)

    def on_test_stop(self, environment: Environment, **_kwargs: Any) -> None:
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
            self.greenlet = None

    def on_quitting(self, environment: Environment, **_kwargs: Any) -> None:
        if isinstance(environment.runner, WorkerRunner) or self.started is None:
            return
        prefix = getattr(environment.parsed_options, "csv_prefix", None)
        if not prefix or not environment.host:
            return
        try:
            path = Path(f"{prefix}_events.jsonl")
            self.write_events(Control(environment.host, timeout=5.0), path)
        except Exception as exc:
            if self.steps:  # only worth a word when churn was asked for
                logger.warning("no event log written: %s", describe_failure(exc, environment.host))

    def write_events(self, control: Control, path: Path) -> None:
        assert self.started is not None
        answer = control.events_since(self.started)
        lines = [{"ts": answer["since"], "event": "snapshot", "live": answer["live"]},
                 *answer["events"]]
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text("".join(json.dumps(line) + "\n" for line in lines))
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # no half-written file left behind
            raise
        logger.info("membership events: %s (%d changes)", path,
                    sum(1 for e in answer["events"] if e["event"] in ("added", "removed")))


def install(events: Events) -> Churn:
    churn = Churn()
    churn.register(events)
    return churn
