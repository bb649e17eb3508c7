"""The user classes are a library (locustfiles/users.py): importing them wires nothing; the
Locust files (sticky.py, sessioned.py) wire the harness's plugin, once per process."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT

CHECK = """
import os
os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"
from locust import events
def wired():
    return sum(len(getattr(events, name)._handlers) for name in dir(events)
               if not name.startswith("_") and hasattr(getattr(events, name), "_handlers"))
before = wired()
import locustfiles.users
assert wired() == before, "importing locustfiles.users registered listeners"
import locustfiles.sticky
once = wired()
assert once > before, "locustfiles/sticky.py wired nothing"
import locustfiles.sessioned
assert wired() == once + 1, "sessioned.py wired the plugin again"  # only its own options
from locustfiles.plugin import install
assert locustfiles.sticky.PLUGIN is locustfiles.sessioned.PLUGIN is install(events)
print("ok")
"""


def test_the_library_wires_nothing_and_the_locust_files_wire_the_plugin_once() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
