"""What Locust loads: user classes (`sticky.py`) and the recorder plugin."""
