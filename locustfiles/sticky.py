"""Load that carries sessions: the Locust file users run against a Modal HTTP Server.

    locust -f locustfiles/sticky.py                       # web UI: pick users, host, options
    locust -f locustfiles/sticky.py StickyUser --headless -u 50 -r 10 -t 60s \\
        --host https://...modal.run --csv results/run     # CI: exit code 3 if not sticky

- `StickyUser` sends one `Modal-Session-Id` for its whole life; `NonStickyUser` sends none
  (the control). What they send and record, and their options: `locustfiles/users.py`.
- `SessionedUser`, for `@modal.sessioned()` servers, is in `locustfiles/sessioned.py`.

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
