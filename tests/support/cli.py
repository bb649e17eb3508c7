"""The report's command line as a subprocess."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT


def run_reports(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """`python -m reports ARGS` in a subprocess, output captured, with a deadline."""
    return subprocess.run([sys.executable, "-m", "reports", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)
