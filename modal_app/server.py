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
# `server_ga.py` and `server_sessioned.py` serve the same app with the GA `@app.server` form.

from __future__ import annotations

import threading

import modal
import modal.experimental

from modal_app.common import PORT, image, start_whoami

# ## Configuration
#
# `CONTAINERS` replicas stay up (`min_containers`), so that sticky routing has more than one
# replica to choose from. The proxy that routes by `Modal-Session-Id` runs in `PROXY_REGIONS`.
# `TARGET_INPUTS` is the number of requests in flight per replica that the autoscaler aims at.
# The image (`modal_app/common.py`) carries FastAPI, uvicorn and our `modal_app` package.

APP_NAME = "sticky-locust-whoami"
CONTAINERS = 2
PROXY_REGIONS = ["us-west"]
TARGET_INPUTS = 100
STARTUP_TIMEOUT_S = 30
EXIT_GRACE_PERIOD_S = 5

app = modal.App(APP_NAME)

# ## The HTTP Server
#
# An HTTP Server is a Modal Cls whose `@modal.enter` method starts a process or thread that
# listens on `PORT`. Modal's proxy forwards requests to it, and routes the ones that carry a
# `Modal-Session-Id` header to the same replica by rendezvous hashing over the live replicas.
# Each container knows its own id from the `MODAL_TASK_ID` environment variable; whoami
# answers every `POST /` with it, which is how a client sees where it was routed.
# The endpoint is open: this form has no proxy auth.
#
# `POST /generate` streams an LLM-style answer as server-sent events (`text/event-stream`):
# first the container id and the cache state, then one event per token, then `data: [DONE]`
# (see `docs/streaming.md`). A stream holds one of the `TARGET_INPUTS` slots until its last
# token. The replica's settings (KV-cache simulation, prefill and token delays) are the
# `WHOAMI_*` variables of the shell that deploys, baked into the image (`modal_app/common.py`):
#
#     WHOAMI_CACHE_SESSIONS=64 modal deploy modal_app/server.py


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
        self.thread: threading.Thread = start_whoami(PORT)


# ## Addenda
#
# `urls()` is what `scripts/modal_url.py` calls: the deployed class's proxy URLs, through the
# SDK (it needs a Modal token).


def urls(app_name: str = APP_NAME) -> list[str]:
    cls = modal.Cls.from_name(app_name, "Server")
    return list(cls._experimental_get_flash_urls() or [])
