"""The recorder leaves pyarrow's pandas support alone: a user's listener can call to_pandas()
in a Locust process, and the recorder itself never imports pandas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from reports.requestfile import read_request_table
from tests.support import ROOT
from tests.support.locust import finish, locust_process


def test_a_listener_calling_to_pandas_works_in_a_recorded_run(target: str,
                                                              tmp_path: Path) -> None:
    args = ["-f", "tests/locustfiles/pandas_listener.py", "StickyUser", "--headless", "-u", "10",
            "-r", "10", "-t", "6s", "--host", target]
    with locust_process(*args, tmp=tmp_path) as run:
        result = finish(run)
    assert result.code == 0, result.output[-3000:]
    assert "pandas imported before: False; to_pandas gave 3 rows" in result.output, \
        result.output[-3000:]
    assert "Uncaught exception" not in result.output
    assert read_request_table(str(run.prefix)).table.num_rows == result.locust_requests


def test_writing_the_request_file_does_not_import_pandas(tmp_path: Path) -> None:
    code = f"""
import sys
from locustfiles.requestwriter import RequestFileWriter
w = RequestFileWriter({str(tmp_path / 'run')!r}, batch_rows=10)
for i in range(25):
    w.buffer.add((1.0, 2.0, f"s{{i}}", "U", "/", 200, "ta-1", None, "session", None, 1.5,
                  None, 3, None))
    if len(w.buffer) >= 10:
        w.flush()
w.close()
print("pandas" in sys.modules, w.written, w.failure)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "25", "None"]
