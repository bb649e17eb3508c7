"""The Modal apps, imported offline: no token, no network. Their configuration is what Modal
gets, read by spying on the SDK while the module defines its class."""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import modal._functions
import pytest

from modal_app.local.launch import stop_process
from tests.support.emulated import wait_for

ROOT = Path(__file__).resolve().parents[2]
FORMS = ["modal_app.server", "modal_app.server_ga", "modal_app.server_sessioned"]


def define(module: str, monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, dict[str, Any]]:
    """(the module, the keyword arguments the SDK received for its class)."""
    seen: dict[str, Any] = {}
    original = modal._functions._Function._from_local

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(modal._functions._Function, "_from_local", staticmethod(spy))
    return importlib.reload(importlib.import_module(module)), seen


@pytest.mark.parametrize("module", FORMS)
def test_imports_offline_with_no_token(tmp_path: Path, module: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODAL_")}
    env["HOME"] = str(tmp_path)
    code = f"import {module} as s; print(s.app.name)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.strip().startswith("sticky-locust-whoami")


def test_seed_form_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    server, seen = define("modal_app.server", monkeypatch)
    http = seen["http_config"]
    assert http.port == server.PORT == 8000
    assert list(http.proxy_regions) == ["us-west"]
    assert http.startup_timeout == server.STARTUP_TIMEOUT_S
    assert http.exit_grace_period == server.EXIT_GRACE_PERIOD_S
    assert seen["min_containers"] == server.CONTAINERS >= 2  # more than one to route to
    assert seen["target_concurrent_inputs"] == 100
    assert not seen.get("is_server")
    assert set(server.Server._get_partial_functions()) == {"start"}


@pytest.mark.parametrize("module,sessioned", [
    ("modal_app.server_ga", False), ("modal_app.server_sessioned", True)])
def test_ga_form_configuration(monkeypatch: pytest.MonkeyPatch, module: str,
                               sessioned: bool) -> None:
    server, seen = define(module, monkeypatch)
    http = seen["http_config"]
    assert seen["is_server"] is True
    assert bool(seen.get("is_sessioned")) is sessioned
    assert http.port == 8000 and list(http.proxy_regions) == [server.ROUTING_REGION]
    assert http.unauthenticated is False  # proxy auth on: clients send Modal-Key/Secret
    assert seen["max_concurrent_inputs"] == server.MAX_CONCURRENCY  # 429 above it
    assert seen["target_concurrent_inputs"] == server.TARGET_CONCURRENCY
    assert seen["min_containers"] == server.CONTAINERS >= 2


def test_every_form_serves_whoami() -> None:
    from modal_app import common

    assert common.WHOAMI == "modal_app.whoami:app"
    assert importlib.import_module("modal_app.whoami").app is not None
    for module in FORMS:
        source = Path(importlib.import_module(module).__file__ or "").read_text()
        assert "start_whoami(PORT)" in source


def test_bad_configuration_is_refused_at_import_time() -> None:
    import modal
    import modal.experimental

    with pytest.raises(modal.exception.InvalidError):
        modal.experimental.http_server(port=8000, proxy_regions=["us-west"], startup_timeout=-1)
    app = modal.App("bad")
    with pytest.raises(modal.exception.InvalidError):
        app.server(port=8000, target_concurrency=10, max_concurrency=5)(type("S", (), {}))


def test_replica_settings_come_from_the_deploying_shell_and_are_checked_there() -> None:
    from modal_app.common import whoami_settings

    env = {"WHOAMI_CACHE_SESSIONS": "64", "WHOAMI_TOKEN_MS": "20", "HOME": "/root"}
    assert whoami_settings(env) == {"WHOAMI_CACHE_SESSIONS": "64", "WHOAMI_TOKEN_MS": "20"}
    assert whoami_settings({}) == {}
    for bad in ({"WHOAMI_TOKEN_MS": "-1"}, {"WHOAMI_CACHE_SESSIONS": "many"},
                {"WHOAMI_PREFILL_MS_PER_TOKEN": "nan"}):
        with pytest.raises(SystemExit, match="whoami: "):
            whoami_settings(bad)


def test_the_settings_are_baked_into_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    import modal

    from modal_app.common import build_image

    layers: list[dict[str, str]] = []
    original = modal.Image.env

    def spy(self: modal.Image, vars: dict[str, str]) -> modal.Image:
        layers.append(dict(vars))
        return original(self, vars)

    monkeypatch.setattr(modal.Image, "env", spy)
    build_image({})
    assert layers == []  # unset: the image stays as it was
    build_image({"WHOAMI_TOKEN_MS": "20"})
    assert layers == [{"WHOAMI_TOKEN_MS": "20"}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_container_start_serves_the_stream(tmp_path: Path) -> None:
    """What a Modal container runs: `start_whoami` (uvicorn in a daemon thread, as the
    `@modal.enter()` methods call it), here on 127.0.0.1, streaming POST /generate."""
    port = free_port()
    code = ("from modal_app.common import start_whoami; "
            f"start_whoami({port}, host='127.0.0.1').join()")
    env = {**os.environ, "MODAL_TASK_ID": "ta-01MODALSTART", "HOME": str(tmp_path),
           "WHOAMI_CACHE_SESSIONS": "4", "WHOAMI_TOKEN_MS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    try:
        def ready() -> bool:
            assert proc.poll() is None, "the container's server exited"
            return port_open(port)

        wait_for(ready, what="the container's port")
        url = f"http://127.0.0.1:{port}"
        body = {"max_tokens": 4, "cache_key": "c"}
        for cache in ("miss", "hit"):
            events = read_stream(url, body)
            assert events[0] == {"CONTAINER_ID": "ta-01MODALSTART", "cache": cache}
            assert [e["index"] for e in events[1:-1]] == [0, 1, 2, 3]
            assert events[-1] == "[DONE]"
    finally:
        stop_process(proc)


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def read_stream(url: str, body: dict[str, Any]) -> list[Any]:
    request = urllib.request.Request(url + "/generate", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    events: list[Any] = []
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response:
            if line.startswith(b"data: "):
                data = line[len(b"data: "):].strip()
                events.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return events
