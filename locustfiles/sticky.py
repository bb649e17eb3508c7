"""Load that carries sessions: the Locust file users run against a Modal HTTP Server.

    locust -f locustfiles/sticky.py                       # web UI: pick users, host, options
    locust -f locustfiles/sticky.py StickyUser --headless -u 50 -r 10 -t 60s \\
        --host https://...modal.run --csv results/run     # CI: exit code 3 if not sticky

- `StickyUser` sends one `Modal-Session-Id` for its whole life: a uuid4, so unique across all
  users, processes and workers. Modal routes it by rendezvous hashing: it should see one
  container.
- `NonStickyUser` sends no header: the control. It still has a session id, for the record.
- `SessionedUser`, for `@modal.sessioned()` servers, is in `locustfiles/sessioned.py`.

What a user asks for is recorded with each request (`context()`: session_id, user_class and
`affinity`), from the headers it actually sends: "session" with `Modal-Session-Id`, "strict"
with a strict session's `Modal-Authorization` bearer token, "none" otherwise (a control).

Every class sends `Modal-Key`/`Modal-Secret` when MODAL_PROXY_KEY/MODAL_PROXY_SECRET are set
(proxy auth of the GA form); they are never printed or recorded.

Each user POSTs `{}` to `/` (the replica answers `{"CONTAINER_ID": ...}`); `--work-ms N` sends
`{"work_ms": N}` instead. `--stream-tokens N` makes it POST `/generate` and read the streamed
answer instead (`locustfiles/streaming.py`). `--pace-rps X` paces each user at X requests/s
(constant throughput); 0, the default, sends as fast as the answers come.

Before load starts the target is probed until a live replica answers (`locustfiles/target.py`:
the probe sends the run's credentials, and a strict session for SessionedUser), with backoff,
for at most `--wait-timeout` seconds; a headless run waits before the `-t` clock starts. The
recorder (`recorder.py`) records every request, prints the stickiness summary at the end, sets
the exit code and adds the web UI's Stickiness tab.

This file is what Locust runs: it names the user classes (from `locustfiles/users.py`, the
library to import from) and wires the harness's plugin (`locustfiles/plugin.py`).
"""


from __future__ import annotations

from locust import events

from locustfiles.plugin import install
from locustfiles.users import NonStickyUser, StickyUser

__all__ = ["RECORDER", "NonStickyUser", "StickyUser"]

PLUGIN = install(events)
RECORDER = PLUGIN.recorder  # for a Locust file built on this one (e.g. one reading its rows)
