"""Atomic output: every file is written to a temporary file beside it, then renamed into place,
so that an error leaves no half-written report behind (and any earlier report intact)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

MODE = 0o644


def write_all(files: dict[Path, bytes]) -> None:
    """Write every file, or none: temporaries first, then one rename each."""
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            fd, tmp = tempfile.mkstemp(dir=path.parent or Path("."), prefix=f".{path.name}.",
                                       suffix=".tmp")
            temps.append((tmp, path))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, MODE)
        for tmp, path in temps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
