# # Sticky routing on Modal: the replica-identifying HTTP Server
#
# This is the server that the harness measures. It is Modal's sticky-routing example
# (`http_server_sticky.py`) with the replica's FastAPI app moved into `modal_app/whoami.py`,
# so that the very same app also runs behind the local emulator (`python -m modal_app.local`).
#
# Deploy it with
#
#     modal deploy modal_app/server.py
#
# and print its URL with `python scripts/modal_url.py` (one URL per proxy region).

from __future__ import annotations

import modal
import modal.experimental

# ## Configuration
#
# `CONTAINERS` replicas stay up (`min_containers`), so that sticky routing has more than one
# replica to choose from. The proxy that routes by `Modal-Session-Id` runs in `PROXY_REGIONS`.
# `TARGET_INPUTS` is the number of requests in flight per replica that the autoscaler aims at.

APP_NAME = "sticky-locust-whoami"
PORT = 8000
CONTAINERS = 2
PROXY_REGIONS = ["us-west"]
TARGET_INPUTS = 100
STARTUP_TIMEOUT_S = 30
EXIT_GRACE_PERIOD_S = 5

app = modal.App(APP_NAME)

# The image carries the replica's dependencies and our `modal_app` package, whose `whoami`
# module is the FastAPI app.

image = (
    modal.Image.debian_slim(python_version="3.11")
    .uv_pip_install("fastapi[standard]==0.115.4", "uvicorn[standard]>=0.30")
    .add_local_python_source("modal_app")
)

# ## The HTTP Server
#
# An HTTP Server is a Modal Cls whose `@modal.enter` method starts a process or thread that
# listens on `PORT`. Modal's proxy forwards requests to it, and routes the ones that carry a
# `Modal-Session-Id` header to the same replica by rendezvous hashing over the live replicas.
# Each container knows its own id from the `MODAL_TASK_ID` environment variable; whoami
# answers every `POST /` with it, which is how a client sees where it was routed.


@app.cls(image=image, min_containers=CONTAINERS)
@modal.experimental.http_server(
    port=PORT,
    proxy_regions=PROXY_REGIONS,
    startup_timeout=STARTUP_TIMEOUT_S,
    exit_grace_period=EXIT_GRACE_PERIOD_S,
)
@modal.concurrent(target_inputs=TARGET_INPUTS)
class Server:
    @modal.enter()
    def start(self) -> None:
        import threading

        import uvicorn

        self.thread = threading.Thread(
            target=uvicorn.run,
            kwargs={
                "app": "modal_app.whoami:app",
                "host": "0.0.0.0",
                "port": PORT,
                "access_log": False,
            },
            daemon=True,
        )
        self.thread.start()


# ## Addenda
#
# `urls()` is what `scripts/modal_url.py` calls: the deployed class's proxy URLs, through the
# SDK (it needs a Modal token).


def urls(app_name: str = APP_NAME) -> list[str]:
    cls = modal.Cls.from_name(app_name, "Server")
    return list(cls._experimental_get_flash_urls() or [])
