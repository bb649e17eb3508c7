"""HAProxy in front of real whoami replicas, with cookie affinity and the serving server named
in a response header: the router the affinity options (`--session-cookie`,
`--instance-header`) are tested against. Every process is stopped by its own id."""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import benchlib  # noqa: E402

COOKIE = "SERVERID"
SERVED_BY = "X-Served-By"
HAPROXY = "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").is_file() else shutil.which("haproxy")


@contextlib.contextmanager
def haproxy_cookie(replicas: int = 3, *, cookie: bool = True) -> Iterator[str]:
    """The URL of HAProxy, round-robin over `replicas` replicas, naming the server that
    answered in X-Served-By; with `cookie`, `cookie SERVERID insert indirect nocache` (the
    sticky setting), without it the broken one (round robin: not sticky)."""
    if HAPROXY is None:
        raise RuntimeError("no haproxy: apt-get install haproxy")
    with benchlib.Replicas() as started:
        ports = [r.port for r in started.start(replicas)]
        with benchlib.haproxy(HAPROXY, ports, balance="roundrobin", hash_type="",
                              cookie=COOKIE if cookie else "", served_by=SERVED_BY) as (url, _):
            yield url
