"""A locustfile for the tests: the recorder's users, and a user's own listener that asks
pyarrow for pandas in the middle of the run (after the recorder has written batches)."""

from __future__ import annotations

import logging
import sys
from typing import Any

from locust import events

from locustfiles.sticky import RECORDER, StickyUser

__all__ = ["StickyUser"]

logger = logging.getLogger(__name__)
state = {"done": False}


@events.request.add_listener
def on_request(**_kwargs: Any) -> None:
    writer = RECORDER.writer
    if state["done"] or writer is None or writer.batches == 0:  # after the recorder's 1st flush
        return
    state["done"] = True
    import pyarrow as pa

    before = "pandas" in sys.modules
    frame = pa.table({"x": [1, 2, 3]}).to_pandas()
    logger.warning("pandas imported before: %s; to_pandas gave %s rows", before, len(frame))
