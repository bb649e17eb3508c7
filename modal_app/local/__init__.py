"""A local emulator of Modal's HTTP Server proxy: replica processes behind a sticky router.

    python -m modal_app.local --replicas 3 --port 8000 [--host 127.0.0.1] [--events PATH]

See `router.py` for the routing rules, `control.py` for the control API and `events.py` for
the event log. It needs no Modal account and does not import the modal SDK.
"""
