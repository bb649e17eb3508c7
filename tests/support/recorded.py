"""Two short real runs, recorded once per test session and read by several test modules (the
report's real-run tests, the capacity-review notebook): one emulator with 3 replicas, each with
a KV cache for its share of the conversations; a StickyUser run with `--cache-key` during which
the emulator scales up to 4 and then loses one of its first replicas (replaced); then a
NonStickyUser run, the reference, at the same load."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modal_app.local.launch import emulator
from tests.support.http import emulator_control as control
from tests.support.http import wait_for_live
from tests.support.locust import LocustProcess, headless, locust_process

USERS = 40  # sessions enough that each replica has several (one alone may move and leave it silent)
PACE_RPS = 12.5  # per user, both runs: 500 req/s, plenty to judge, light on a shared machine
LOAD_S = 60  # at most: the run is ended AFTER_KILL_S after the kill
AFTER_KILL_S = 4.0
CONTROL_S = 3
SCALE_AT_S = 2.0
KILL_AT_S = 4.0
HOLD_S = 1.5  # at least this long with 4 live replicas
# a replica's cache holds the conversations its share of the users brings (half as much
# again, as scripts/demo sizes it): sticky sessions hit, the control's spread does not
CACHE = ("--cache-sessions", str(USERS // 2), "--cache-miss-ms", "20", "--cache-hit-ms", "2")
EXIT_NOT_STICKY = 3  # the harness's own verdict when a sticky session saw several containers


@dataclass(frozen=True)
class RecordedPair:
    directory: Path
    sticky: str  # the candidate's prefix
    control: str  # the reference's prefix
    events: Path  # the emulator's own event log
    killed: str  # the replica killed during the sticky run


def shared_pair(base: Path) -> RecordedPair:
    """The pair recorded once for the whole test session, even when pytest-xdist runs the
    modules that read it on several workers: BASE is the directory the workers share (the
    parent of each one's base temp); the first to come records under a lock, the others wait
    for it and read what it wrote."""
    directory = base / "recorded-pair"
    known = base / "recorded-pair.json"
    with (base / "recorded-pair.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even on error
        if not known.exists():
            directory.mkdir(exist_ok=True)
            pair = record_pair(directory)
            known.write_text(json.dumps(dataclasses.asdict(pair), default=str))
    fields = json.loads(known.read_text())
    return RecordedPair(Path(fields["directory"]), fields["sticky"], fields["control"],
                        Path(fields["events"]), fields["killed"])


def wait_for_load(url: str, deadline_s: float = 60.0) -> None:
    """Until a replica has a request in flight: Locust's users have started."""
    deadline = time.monotonic() + deadline_s
    while not any(r["in_flight"] for r in control(url, "/replicas")):
        if time.monotonic() > deadline:
            raise AssertionError("the Locust run never sent a request")
        time.sleep(0.05)


def churn(url: str) -> str:
    """Once the load is on: a scale-up to 4, then a kill of one of the first replicas
    (replaced); returns its id."""
    first = [r["container_id"] for r in control(url, "/replicas")]
    wait_for_load(url)
    start = time.monotonic()
    time.sleep(SCALE_AT_S)
    control(url, "/scale", {"replicas": 4})
    wait_for_live(url, 4)  # a new replica takes a while to be live on a busy machine
    # 4 live for a while (the timeline samples each second's middle), then the kill
    time.sleep(max(HOLD_S, KILL_AT_S - (time.monotonic() - start)))
    control(url, f"/replicas/{first[0]}/kill", {})
    return str(first[0])


def ended(run: LocustProcess, timeout: float) -> None:
    code = run.wait(timeout)
    assert code in (0, EXIT_NOT_STICKY), run.output()[-3000:]


def record_pair(directory: Path) -> RecordedPair:
    events = directory / "emulator_events.jsonl"
    common: Any = {"users": USERS, "extra": ("--cache-key", "--pace-rps", str(PACE_RPS),
                                             "--loglevel", "WARNING",
                                             "--exit-code-on-error", "0")}
    with emulator(3, *CACHE, events=events) as emu:
        with locust_process(*headless(emu.url, "StickyUser", seconds=LOAD_S, **common),
                            tmp=directory, name="sticky", json_file=False) as run:
            killed = churn(emu.url)
            time.sleep(AFTER_KILL_S)  # the sessions of the killed replica settle elsewhere
            run.signal_group(signal.SIGINT)  # as a Ctrl-C: the run ends, every row kept
            ended(run, 90)
        control_only = {**common, "extra": (*common["extra"], "--no-judgement")}  # no verdict
        with locust_process(*headless(emu.url, "NonStickyUser", seconds=CONTROL_S,
                                      **control_only),
                            tmp=directory, name="control", json_file=False) as run:
            ended(run, CONTROL_S + 90)
    return RecordedPair(directory, str(directory / "sticky"), str(directory / "control"),
                        events, killed)
