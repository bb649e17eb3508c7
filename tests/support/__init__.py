"""Helpers shared by the tests, defined once (tests import them from here, never from a
conftest file or from another test module).

    http.py     free_port, address, status_of, a keep-alive client, the emulator's control API
    locust.py   a Locust command line, Locust processes stopped group-wide, their results
    rows.py     synthetic runs in the real request-file format, with known answers
    summaries.py  typed summaries with chosen figures (a real analysis of a synthetic run)
    cli.py      `python -m reports` as a subprocess
    browser.py  a headless chromium that draws a page and refuses every network request
    pages.py, recorded.py   the report pages' checks; real runs recorded once per session
    emulated.py the emulator's replicas and events as the tests read them; wait_for
    replica_app.py  a replica app that crashes, stalls and streams on demand (emulator tests)
    fakes.py    in-process fakes (transport, hub) for byte-level tests of the emulator
    liars.py    broken routers for the gallery (tests/test_gallery.py)
    haproxy_cookie.py   HAProxy with cookie affinity and X-Served-By
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
