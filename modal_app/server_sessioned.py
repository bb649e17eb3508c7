# # Strict sessions on Modal Servers (GA): `@modal.sessioned()`
#
# The same whoami app, with strict sessions: a client starts a session
# (`server.sessions.start(idle_timeout=600)` through the SDK, which answers a token), sends
# `Modal-Authorization: Bearer <token>` on every request, and reaches the same container for as
# long as the session lives, even across scale events; a container holding a live session is
# not scaled down. Proxy auth and max_concurrency are as in `server_ga.py`.
#
#     modal deploy modal_app/server_sessioned.py
#
# The harness's `SessionedUser` starts, uses and terminates one session per simulated user.
#
# `POST /generate` streams as in `server.py` (`docs/streaming.md`); a stream counts toward
# `max_concurrency` until its last event.

from __future__ import annotations

import threading

import modal

from modal_app.common import PORT, image, start_whoami

# ## Configuration

APP_NAME = "sticky-locust-whoami-sessioned"
CONTAINERS = 2
ROUTING_REGION = "us-east"
TARGET_CONCURRENCY = 100
MAX_CONCURRENCY = 200
IDLE_TIMEOUT_S = 600

app = modal.App(APP_NAME)

# ## The Server


@app.server(
    image=image,
    port=PORT,
    routing_region=ROUTING_REGION,
    min_containers=CONTAINERS,
    target_concurrency=TARGET_CONCURRENCY,
    max_concurrency=MAX_CONCURRENCY,
)
@modal.sessioned()
class Server:
    @modal.enter()
    def start(self) -> None:
        self.thread: threading.Thread = start_whoami(PORT)


# ## Addenda


def server(app_name: str = APP_NAME) -> modal.Server:
    return modal.Server.from_name(app_name, "Server")
