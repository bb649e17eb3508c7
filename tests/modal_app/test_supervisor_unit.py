"""The replica group in process: real child processes (not replicas), no router."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from modal_app.local.config import EmulatorConfig
from modal_app.local.events import EventLog
from modal_app.local.supervisor import LIVE, Replica, ReplicaSet


def test_a_refusal_from_a_dying_process_is_a_crash_then_its_exit(tmp_path: Path) -> None:
    """One cause per removal, from what the process did: a replica SIGKILLed whose death the
    reaper has not handled yet is removed as a crash, even when a refusal is seen first."""
    async def scenario() -> list[dict[str, Any]]:
        events = EventLog(tmp_path / "events.jsonl")
        replicas = ReplicaSet(EmulatorConfig(replicas=0, replace=False), events)
        dying, alive = Replica("ta-dying"), Replica("ta-alive")
        for replica in (dying, alive):
            replica.process = await asyncio.create_subprocess_exec("sleep", "60")
            replicas.replicas[replica.container_id] = replica
            replicas._set_state(replica, LIVE, "ready")
        try:
            assert dying.process is not None
            os.kill(dying.process.pid, signal.SIGKILL)
            time.sleep(0.2)  # the loop does not run: nobody handled the death yet
            assert dying.process.returncode is None
            replicas.mark_refused(dying)  # the router's refused connection comes first
            replicas.mark_refused(alive)  # a live process that refuses: "refused"
            await replicas._reap(dying)
        finally:
            await replicas.close()
        return [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]

    log = asyncio.run(scenario())
    dying = [(e["event"], e.get("cause")) for e in log if e.get("container_id") == "ta-dying"]
    assert dying == [("added", "ready"), ("removed", "crash"), ("exited", "crash")]
    alive = [(e["event"], e.get("cause")) for e in log if e.get("container_id") == "ta-alive"]
    assert alive[:2] == [("added", "ready"), ("removed", "refused")]
