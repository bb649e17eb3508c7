"""What every Modal form of the server shares: the image and how a container starts whoami.

The image carries the replica's dependencies and our `modal_app` package, whose `whoami` module
is the FastAPI app. `start_whoami()` runs uvicorn in a daemon thread, from a `@modal.enter()`
method; Modal's proxy sends requests to `PORT` once it accepts connections.
"""

from __future__ import annotations

import threading

import modal

PORT = 8000
WHOAMI = "modal_app.whoami:app"

image = (
    modal.Image.debian_slim(python_version="3.11")
    .uv_pip_install("fastapi[standard]==0.115.4", "uvicorn[standard]>=0.30")
    .add_local_python_source("modal_app")
)


def start_whoami(port: int = PORT) -> threading.Thread:
    import uvicorn

    thread = threading.Thread(
        target=uvicorn.run,
        kwargs={"app": WHOAMI, "host": "0.0.0.0", "port": port, "access_log": False},
        daemon=True,
    )
    thread.start()
    return thread
