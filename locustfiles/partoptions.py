"""The request file's parts: the Locust options that rotate it by size or time.

    --request-file-part-mb N        (LOCUST_REQUEST_FILE_PART_MB)       a new part every N MB
    --request-file-part-minutes M   (LOCUST_REQUEST_FILE_PART_MINUTES)  ... or every M minutes

Default (neither): one file, as always. The writer (requestwriter.py) does the rotation; the
layout is in docs/request-file.md#parts. This module only reads the options, so that the
recorder registers them with one call and a run without them imports nothing.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

MB = 1_000_000


def positive(text: str) -> float:
    """An option's value: a positive finite number (argparse prints the error in one line)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--request-file-part-mb", type=positive, default=None,
        env_var="LOCUST_REQUEST_FILE_PART_MB", include_in_web_ui=False,
        help="Write the request file as parts: a new part once the part being written holds "
             "this many MB (of its stream form; its Parquet part is about a fifth of it). "
             "Default: one file")
    parser.add_argument(
        "--request-file-part-minutes", type=positive, default=None,
        env_var="LOCUST_REQUEST_FILE_PART_MINUTES", include_in_web_ui=False,
        help="Write the request file as parts: a new part every this many minutes. "
             "Default: one file")


def writer_options(options: Any) -> dict[str, Any]:
    """The RequestFileWriter keywords for Locust's parsed options (none set: {})."""
    mb = getattr(options, "request_file_part_mb", None)
    minutes = getattr(options, "request_file_part_minutes", None)
    out: dict[str, Any] = {}
    if mb:
        out["part_bytes"] = max(1, int(mb * MB))
    if minutes:
        out["part_s"] = float(minutes) * 60.0
    return out
