"""What a report page carries: its gzip + base64 payloads (plotly.js, the figures)."""

from __future__ import annotations

import base64
import gzip
import json
import re
from typing import Any


def unpacked(page: str, name: str) -> str:
    """One of the page's payloads (`plotly-js`, `figures`), as text."""
    (blob,) = re.findall(rf'<script type="application/octet-stream" id="{name}">([^<]*)</script>',
                         page)
    return gzip.decompress(base64.b64decode(blob)).decode()


def figures(page: str) -> list[dict[str, Any]]:
    """The page's plotly figures (data, layout), in the order it shows them."""
    found: list[dict[str, Any]] = json.loads(unpacked(page, "figures"))
    return found
