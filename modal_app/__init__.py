"""What runs on Modal (`server.py`, `whoami.py`) and its local stand-in (`local/`)."""
