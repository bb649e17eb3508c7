"""The Modal app, imported offline: no token, no network. Its configuration is what Modal gets."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import modal._functions
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def recorded(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The arguments the SDK receives when the module defines the class."""
    seen: dict[str, Any] = {}
    original = modal._functions._Function._from_local

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(modal._functions._Function, "_from_local", staticmethod(spy))
    import modal_app.server

    importlib.reload(modal_app.server)
    return seen


def test_imports_offline_with_no_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODAL_")}
    env["HOME"] = str(tmp_path)
    code = "import modal_app.server as s; print(s.app.name, s.PORT)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.split() == ["sticky-locust-whoami", "8000"]


def test_http_server_configuration(recorded: dict[str, Any]) -> None:
    import modal_app.server as server

    http = recorded["http_config"]
    assert http.port == server.PORT == 8000
    assert list(http.proxy_regions) == ["us-west"]
    assert http.startup_timeout == server.STARTUP_TIMEOUT_S
    assert http.exit_grace_period == server.EXIT_GRACE_PERIOD_S
    assert recorded["min_containers"] == server.CONTAINERS >= 2  # more than one to route to
    assert recorded["target_concurrent_inputs"] == 100


def test_the_class_starts_whoami_in_enter() -> None:
    import modal_app.server as server

    assert set(server.Server._get_partial_functions()) == {"start"}  # type: ignore[attr-defined]
    source = Path(server.__file__).read_text()
    assert '"modal_app.whoami:app"' in source
    importlib.import_module("modal_app.whoami")  # the path it serves exists


def test_bad_configuration_is_refused_at_import_time() -> None:
    import modal
    import modal.experimental

    with pytest.raises(modal.exception.InvalidError):
        modal.experimental.http_server(port=8000, proxy_regions=[], startup_timeout=-1)
