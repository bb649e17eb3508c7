"""What every Modal form of the server shares: the image and how a container starts whoami.

The image carries the replica's dependencies and our `modal_app` package, whose `whoami` module
is the FastAPI app (`POST /`, and the streaming `POST /generate`). `start_whoami()` runs uvicorn
in a daemon thread, from a `@modal.enter()` method; Modal's proxy sends requests to `PORT` once
it accepts connections.

The replica's settings (the KV-cache simulation and the streaming timing: `WHOAMI_CACHE_*`,
`WHOAMI_PREFILL_MS_PER_TOKEN`, `WHOAMI_TOKEN_MS`) are the `WHOAMI_*` variables of the shell that
runs `modal deploy`, checked there and baked into the image:

    WHOAMI_CACHE_SESSIONS=64 WHOAMI_TOKEN_MS=20 modal deploy modal_app/server.py

Unset, the replica's defaults apply (no cache simulation; 0.2 ms per prompt token, 10 ms per
token).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

import modal

PORT = 8000
WHOAMI = "modal_app.whoami:app"
SETTINGS = ("WHOAMI_CACHE_SESSIONS", "WHOAMI_CACHE_MISS_MS", "WHOAMI_CACHE_HIT_MS",
            "WHOAMI_PREFILL_MS_PER_TOKEN", "WHOAMI_TOKEN_MS")


def whoami_settings(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The replica settings found in `environ`, refused (SystemExit, one line) when bad, so
    that a bad value stops `modal deploy` rather than every container."""
    from modal_app.whoami import CacheConfig, StreamConfig

    settings = {name: environ[name] for name in SETTINGS if name in environ}
    CacheConfig.from_env(settings)
    StreamConfig.from_env(settings)
    return settings


def build_image(settings: dict[str, str]) -> modal.Image:
    image = modal.Image.debian_slim(python_version="3.11").uv_pip_install(
        "fastapi[standard]==0.115.4", "uvicorn[standard]>=0.30")
    if settings:  # a build step: it must come before the local files are added
        image = image.env(settings)
    return image.add_local_python_source("modal_app")


image = build_image(whoami_settings())


def start_whoami(port: int = PORT, host: str = "0.0.0.0") -> threading.Thread:
    import uvicorn

    thread = threading.Thread(
        target=uvicorn.run,
        kwargs={"app": WHOAMI, "host": host, "port": port, "access_log": False},
        daemon=True,
    )
    thread.start()
    return thread
