"""Strict sessions: the Locust file for `@modal.sessioned()` servers (Modal Servers, GA form).

    locust -f locustfiles/sessioned.py --headless -u 50 -t 60s --csv results/run \\
        --host https://...modal.run --modal-app sticky-locust-whoami-sessioned
    locust -f locustfiles/sessioned.py --headless -u 50 -t 60s --csv results/run \\
        --host http://127.0.0.1:8000            # the emulator, run with --sessioned

`SessionedUser` starts one session before its first request (through the SDK with
`--modal-app APP[:CLASS]`, else over HTTP at the host, as the emulator's `--sessioned` serves
it), sends `Modal-Authorization: Bearer <token>` on every request, and terminates the session
when it stops. It should see exactly one container, even across scale events: the exit code
and the report judge it strictly. The recorder, the summary, the options and the Stickiness
tab are those of `sticky.py` (the plugin, `locustfiles/plugin.py`, wired here too).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from locust import events
from locust.exception import StopUser

from locustfiles import streaming
from locustfiles.modal_sessions import Credentials, SessionError, sessions_for
from locustfiles.plugin import install
from locustfiles.users import STRICT_HEADER, SessionUser, request_body

logger = logging.getLogger(__name__)


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any, **_kwargs: Any) -> None:
    parser.add_argument(
        "--modal-app", default="", env_var="LOCUST_MODAL_APP", include_in_web_ui=True,
        help="On Modal: APP[:CLASS] of the deployed @modal.sessioned() server, whose sessions "
             "the SDK starts (default: start them over HTTP at the host, as the local "
             "emulator's --sessioned serves them)")
    parser.add_argument(
        "--idle-timeout", type=int, default=600, env_var="LOCUST_IDLE_TIMEOUT",
        include_in_web_ui=True, help="The sessions' idle timeout, s (default 600)")


class SessionedUser(SessionUser):
    """A strict session of a `@modal.sessioned()` server: started before the first request,
    its token sent on every request, terminated when the user stops. It should see exactly one
    container, even across scale events. The recorded session id is Modal's (`se-...`)."""

    credentials: Credentials | None = None
    expects_one_container = True  # judged as StickyUser is, by the summary and the exit code
    starts_sessions = True  # the readiness probe starts a session too (locustfiles/target.py)

    def on_start(self) -> None:
        super().on_start()
        options = self.environment.parsed_options
        self.sessions = sessions_for(self.host or "", getattr(options, "modal_app", "") or "")
        deadline = time.monotonic() + float(getattr(options, "wait_timeout", 60.0))
        delay = 0.1
        while True:
            try:
                self.credentials = self.sessions.start(int(getattr(options, "idle_timeout", 600)))
                break
            except SessionError as exc:
                if time.monotonic() + delay > deadline:
                    logger.error("SessionedUser: %s; this user stops", exc)
                    raise StopUser() from None
                gevent.sleep(delay)
                delay = min(delay * 2, 2.0)
        self.session_id = self.credentials.session_id
        self.body = request_body(options, self.session_id)
        self.stream_body = streaming.request_body(options, self.session_id)
        self.headers[STRICT_HEADER] = f"Bearer {self.credentials.token}"
        self.update_context()  # affinity "strict": it sends the session's bearer token
        self.start_phase()

    def on_stop(self) -> None:
        if self.credentials is not None:
            try:
                self.sessions.terminate(self.credentials.token)
            except Exception as exc:  # the run's data matter more than a tidy end
                logger.warning("SessionedUser: terminate failed: %s", type(exc).__name__)
            self.credentials = None


PLUGIN = install(events)  # the recorder, the options, the wait for the target, the churn
