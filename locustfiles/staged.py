"""Staged load: ramp, steady, spike, as a Locust `LoadTestShape`.

Add it beside the user classes (Locust uses the first shape class of its locustfiles):

    locust -f locustfiles/sticky.py,locustfiles/staged.py StickyUser --headless \\
        --host http://127.0.0.1:8000 --stages "10s:20,30s:20,10s:100,20s:20"

`--stages` lists `DURATION:USERS` steps, comma-separated: during each step the user count
goes (at `--stage-rate` users/s at most) to USERS and stays there until DURATION has passed.
The default is a ramp to 20 users over 10 s, 30 s steady, a 10 s spike to 100, 20 s back at
20: 70 s in all, then the run stops. `-u`, `-r` and `-t` have no effect with a shape.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from locust import LoadTestShape, events

from locustfiles.membership import ChurnError, parse_offset

DEFAULT_STAGES = "10s:20,30s:20,10s:100,20s:20"


@dataclass(frozen=True)
class Stage:
    duration_s: float
    users: int


def parse_stages(spec: str) -> list[Stage]:
    stages = []
    for item in (i.strip() for i in spec.split(",") if i.strip()):
        duration, sep, users = item.partition(":")
        try:
            stage = Stage(parse_offset(duration), int(users))
        except (ChurnError, ValueError):
            raise ValueError(f"bad stage {item!r}: use DURATION:USERS, e.g. 30s:50") from None
        if not sep or stage.users < 0 or stage.duration_s <= 0:
            raise ValueError(f"bad stage {item!r}: use DURATION:USERS, e.g. 30s:50")
        stages.append(stage)
    if not stages:
        raise ValueError("--stages is empty")
    return stages


def checked_stages(spec: str) -> str:
    """argparse `type=`: bad stages are a usage error at once."""
    try:
        parse_stages(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return spec


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any, **_kwargs: Any) -> None:
    parser.add_argument("--stages", default=DEFAULT_STAGES, type=checked_stages,
                        env_var="LOCUST_STAGES",
                        include_in_web_ui=True,
                        help=f"Staged load, DURATION:USERS steps (default {DEFAULT_STAGES})")
    parser.add_argument("--stage-rate", type=float, default=50.0, env_var="LOCUST_STAGE_RATE",
                        include_in_web_ui=True,
                        help="Users started or stopped per second between stages (default 50)")


class StagedShape(LoadTestShape):
    """Ramp, steady, spike: the user count follows `--stages`, then the run stops."""

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        spec = getattr(options, "stages", DEFAULT_STAGES) or DEFAULT_STAGES
        rate = float(getattr(options, "stage_rate", 50.0) or 50.0)
        try:
            stages = parse_stages(spec)
        except ValueError:
            return None
        elapsed = self.get_run_time()
        for stage in stages:
            if elapsed < stage.duration_s:
                return stage.users, rate
            elapsed -= stage.duration_s
        return None
