"""Turns a recorded run into stickiness, remaps, errors and latency: `python -m reports PREFIX`."""
