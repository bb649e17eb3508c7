# # Sticky routing on Modal Servers (GA): `@app.server`, proxy auth and max_concurrency
#
# The same whoami app as `server.py`, declared with the GA form of modal 1.6.4. Two things
# differ for a load test:
# - proxy auth is on by default (`unauthenticated=False`): every request carries a workspace
#   proxy token as `Modal-Key: wk-...` and `Modal-Secret: ws-...` (the harness reads them from
#   MODAL_PROXY_KEY / MODAL_PROXY_SECRET), or gets 401;
# - `max_concurrency` caps the requests in flight per container: the ones above it get 429.
#
#     modal deploy modal_app/server_ga.py
#     python scripts/modal_url.py --app sticky-locust-whoami-ga
#
# `Modal-Session-Id` routing is the same as in `server.py`; for strict sessions see
# `server_sessioned.py`.
#
# `POST /generate` streams as in `server.py` (`docs/streaming.md`); a stream counts toward
# `max_concurrency` until its last event.

from __future__ import annotations

import threading

import modal

from modal_app.common import PORT, image, start_whoami

# ## Configuration

APP_NAME = "sticky-locust-whoami-ga"
CONTAINERS = 2
ROUTING_REGION = "us-east"
TARGET_CONCURRENCY = 100
MAX_CONCURRENCY = 200
STARTUP_TIMEOUT_S = 30
EXIT_GRACE_PERIOD_S = 5

app = modal.App(APP_NAME)

# ## The Server


@app.server(
    image=image,
    port=PORT,
    routing_region=ROUTING_REGION,
    min_containers=CONTAINERS,
    target_concurrency=TARGET_CONCURRENCY,
    max_concurrency=MAX_CONCURRENCY,
    startup_timeout=STARTUP_TIMEOUT_S,
    exit_grace_period=EXIT_GRACE_PERIOD_S,
)
class Server:
    @modal.enter()
    def start(self) -> None:
        self.thread: threading.Thread = start_whoami(PORT)


# ## Addenda


def url(app_name: str = APP_NAME) -> str | None:
    return modal.Server.from_name(app_name, "Server").get_url()
