"""Locust on Modal (`modal_app/loadtest.py`): its configuration offline, and its job for real
on this machine against the emulator."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import modal._functions
import pytest

from modal_app.local.launch import ROOT, emulator


def test_function_configuration_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    original = modal._functions._Function._from_local

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(modal._functions._Function, "_from_local", staticmethod(spy))
    monkeypatch.delenv("MODAL_PROXY_KEY", raising=False)
    loadtest = importlib.reload(importlib.import_module("modal_app.loadtest"))
    config = calls[-1]  # the import, when first, defines it once more
    assert list(config["volumes"]) == [str(loadtest.REPORTS)]  # reports kept on a Volume
    assert config["cpu"] == loadtest.PROCESSES + 1  # a core per Locust process, and the master
    assert config["secrets"] == []  # no credentials set, none sent


def test_the_command_is_headless_distributed_and_recorded() -> None:
    from modal_app.loadtest import locust_command

    cmd = locust_command("https://x.modal.run", Path("/reports/r1/run"), user_class="StickyUser",
                         users=400, spawn_rate=50, run_time="2m", processes=4, extra=["--x"])
    assert cmd[1:5] == ["-m", "locust", "-f", "locustfiles/sticky.py"]
    joined = " ".join(cmd)
    for part in ("StickyUser", "--headless", "--processes 4", "--csv /reports/r1/run",
                 "-u 400", "-t 2m", "--host https://x.modal.run", "--x"):
        assert part in joined


def test_the_job_runs_here_against_the_emulator(tmp_path: Path) -> None:
    from modal_app.loadtest import headless

    with emulator(3) as emu:
        result = headless(emu.url, tmp_path / "r1" / "run", users=10, spawn_rate=10,
                          run_time="3s", processes=2, cwd=ROOT)
    assert result["locust_exit"] == 0 and result["report_exit"] == 0
    summary = json.loads((tmp_path / "r1" / "run_summary.json").read_text())
    assert summary["requests"] > 0 and summary["sessions_multi_container"] == 0
    assert "run_report.html" in result["files"]  # type: ignore[operator]
