"""The emulator's control API, for tests and scenarios (served by the router under /_emulator/).

    GET  /_emulator/replicas                          [{"container_id", "port", "state", ...}]
    GET  /_emulator/events?since=TS                   {"since", "live": [...], "events": [...]}
    POST /_emulator/scale            {"replicas": N}  start or gracefully stop replicas
    POST /_emulator/replicas/{id}/stop  [{"replace": bool}]  leave the live set, drain, exit
    POST /_emulator/replicas/{id}/kill  [{"replace": bool}]  SIGKILL

A stopped or killed replica is replaced by a new one (a new container id), as Modal keeps
`min_containers` running, unless the body says `{"replace": false}` or the emulator runs with
`--no-replace`; then the target count goes down by one.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from typing import Any

from modal_app.local.supervisor import DRAINING, EXITED, ReplicaSet

MAX_REPLICAS = 64


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def describe(replicas: ReplicaSet) -> list[dict[str, Any]]:
    return [
        {"container_id": r.container_id, "port": r.port, "state": r.state, "pid": r.pid,
         "in_flight": r.in_flight, "sessions": replicas.holds(r)}
        for r in replicas.replicas.values() if r.state != EXITED
    ]


def parse_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ControlError(400, f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ControlError(422, "body must be a JSON object")
    return data


def replace_flag(data: dict[str, Any]) -> bool | None:
    value = data.get("replace")
    if value is not None and not isinstance(value, bool):
        raise ControlError(422, "'replace' must be true or false")
    return value


def since_param(query: str) -> float:
    values = urllib.parse.parse_qs(query).get("since", ["0"])
    try:
        since = float(values[-1])
    except ValueError:
        raise ControlError(422, "'since' must be a Unix time in seconds") from None
    if not math.isfinite(since):
        raise ControlError(422, "'since' must be a Unix time in seconds")
    return since


class Control:
    def __init__(self, replicas: ReplicaSet) -> None:
        self.replicas = replicas

    async def __call__(self, request: Any) -> tuple[int, Any]:
        try:
            return await self.handle(request.method, request.url, request.body)
        except ControlError as exc:
            return exc.status, {"error": str(exc)}

    async def handle(self, method: bytes, url: bytes, body: bytes) -> tuple[int, Any]:
        path, _, query = url.decode("latin-1").partition("?")
        parts = path.strip("/").split("/")[1:]
        if parts == ["replicas"]:
            self._allow(method, b"GET")
            return 200, describe(self.replicas)
        if parts == ["events"]:
            self._allow(method, b"GET")
            return 200, self.replicas.events.since(since_param(query))
        if parts == ["scale"]:
            self._allow(method, b"POST")
            count = parse_body(body).get("replicas")
            if not isinstance(count, int) or isinstance(count, bool) or not (
                    0 <= count <= MAX_REPLICAS):
                raise ControlError(422, f"'replicas' must be an integer 0..{MAX_REPLICAS}")
            await self.replicas.scale(count)
            return 200, {"target": count, "replicas": describe(self.replicas)}
        if len(parts) == 3 and parts[0] == "replicas" and parts[2] in ("stop", "kill"):
            self._allow(method, b"POST")
            replica = self.replicas.replicas.get(parts[1])
            if replica is None or replica.state == EXITED:
                raise ControlError(404, f"no replica {parts[1]!r}")
            if replica.state == DRAINING:
                raise ControlError(409, f"replica {parts[1]!r} is already stopping")
            replace = replace_flag(parse_body(body))
            await self.replicas.remove(replica, kill=parts[2] == "kill", replace=replace)
            return 200, {parts[2]: replica.container_id, "replicas": describe(self.replicas)}
        raise ControlError(404, "unknown control path")

    @staticmethod
    def _allow(method: bytes, allowed: bytes) -> None:
        if method != allowed:
            raise ControlError(405, f"use {allowed.decode()}")
