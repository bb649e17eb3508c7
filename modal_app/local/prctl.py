"""Linux process controls (prctl(2)) for the emulator's processes; elsewhere they do nothing."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

LINUX = sys.platform.startswith("linux")
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(option, value, 0, 0, 0)) == 0


def die_with_parent(parent: int, sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send `sig` to this process when its parent dies, even by SIGKILL. False when
    `parent` is no longer its parent (it died before the request took effect)."""
    if LINUX:
        _prctl(PR_SET_PDEATHSIG, sig)
    return os.getppid() == parent


def become_subreaper(on: bool = True) -> bool:
    """Orphaned descendants of this process become its children (and it reaps them), instead of
    init's (`on=False`: no longer). False where Linux refuses or is not there."""
    return LINUX and _prctl(PR_SET_CHILD_SUBREAPER, int(on))
