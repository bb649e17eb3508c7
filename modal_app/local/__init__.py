"""A local emulator of Modal's HTTP Server proxy: replica processes behind a sticky router.

    python -m modal_app.local --replicas 3 --port 8000 [--host 127.0.0.1] [--events PATH]

`router.py` decides where each request goes (routing rules, retry rule), `transport.py` moves
its bytes, `policy.py` holds the routing policy, `sessions.py` strict sessions, `auth.py`
auth and limits, `supervisor.py` the replica processes, `control.py` the control API and
`events.py` the event log. Users' guide: docs/emulator.md. It needs no Modal account and does
not import the modal SDK.
"""
