"""The routers of the shoot-out, each started in front of whoami replicas, and each told of a
membership change through its own runtime interface.

- the emulator (`python -m modal_app.local`) runs its own replicas: `POST /_emulator/scale`
  adds one, `POST /_emulator/replicas/{id}/kill` SIGKILLs one; it logs the changes itself and
  the harness writes them beside the run;
- HAProxy: every server is declared at start, the spare one `disabled`; the runtime API on a
  stats socket (`set server replicas/rK state ready|maint`) adds and removes them;
- nginx: the upstream block is rewritten and `nginx -s reload` run (its own -p prefix, pid file
  and error log in a temporary directory);
- Caddy: the admin API on a loopback port; `PATCH .../upstreams` sets the upstream list.

For the routers in front of our replicas (all but the emulator), a kill is a SIGKILL of the
replica's process, then the router is told; each change is returned as an event of the
emulator's log format (`{"ts", "event", "container_id", "cause", "live"}`).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psutil
from benchlib import Replica, emulator, haproxy, http_json, stop_process, wait_answers

SESSION_HEADER = "Modal-Session-Id"
T = TypeVar("T")
Event = dict[str, Any]


@dataclass(frozen=True)
class Router:
    """One contestant: how it routes and what it promises when membership changes."""

    name: str  # the runs' prefix
    title: str  # what runs, in a few words
    binary: str | None  # the executable it needs (None: the emulator, always there)
    package: str  # Debian's package
    promise: str  # "rendezvous", "consistent" or "none"
    promise_text: str

    @property
    def install(self) -> str:
        return f"apt-get install {self.package}"


EMULATOR = Router(
    "emulator", "modal_app.local: rendezvous over Modal-Session-Id", None, "",
    "rendezvous", "rendezvous hashing (Modal's rule): no collateral move; on +1 about 1/(N+1) "
    "of the sessions move, on -1 exactly the killed replica's")
HAPROXY = Router(
    "haproxy", "HAProxy: balance hdr(Modal-Session-Id), hash-type consistent", "haproxy",
    "haproxy", "consistent", "consistent-hash ring: no collateral move; on +1 the new "
    "server's arc of the ring moves (not exactly 1/(N+1)), on -1 the removed one's")
NGINX = Router(
    "nginx", "nginx: hash $http_modal_session_id consistent (ketama)", "nginx", "nginx",
    "consistent", "ketama ring (160 points per server): no collateral move; on +1 the new "
    "server's arcs move, on -1 the removed one's")
CADDY = Router(
    "caddy", "Caddy: lb_policy header Modal-Session-Id", "caddy", "caddy", "rendezvous",
    "rendezvous (highest random weight) hashing since Caddy 2.5: no collateral move")
CADDY_MODULO = Router(
    CADDY.name, CADDY.title, CADDY.binary, CADDY.package, "none",
    "before Caddy 2.5, hash modulo the number of upstreams: most sessions move on any change")
FLOOR = Router(
    "random", "nginx: random, request by request (the floor)", "nginx", "nginx", "none",
    "a random replica for every request: no stickiness at all, the floor the instrument must "
    "fail. Round-robin is no floor under paced load: when the users' count is a multiple of "
    "the replicas', each user's requests come round to the same replica")
ROUTERS = (EMULATOR, HAPROXY, NGINX, CADDY, FLOOR)


def find(binary: str) -> str | None:
    """The executable on PATH or in the sbin directories Debian puts servers in."""
    return shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin:/usr/local/sbin")


def caddy_promise(binary: str) -> Router:
    """Caddy hashes by rendezvous since 2.5 (caddyserver/caddy#4724), by modulo before."""
    out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=10,
                         check=False).stdout
    match = re.search(r"v?(\d+)\.(\d+)", out)
    if match and (int(match[1]), int(match[2])) < (2, 5):
        return CADDY_MODULO
    return CADDY


def free_port() -> int:
    """A port the OS picks, released for a server that cannot take an inherited socket (nginx,
    Caddy); another process may take it first: the callers retry on a clash."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Target(Protocol):
    """A router running in front of replicas, during one leg of the shoot-out."""

    url: str
    logs_itself: bool  # the emulator: the harness writes its event log
    events: list[Event]  # the changes made, each logged the moment it was made

    def live(self) -> list[str]: ...
    def add(self) -> None: ...
    def kill(self) -> None: ...


# -- the emulator ------------------------------------------------------------------------------


class EmulatorTarget:
    logs_itself = True

    def __init__(self, url: str, replicas: int) -> None:
        self.url, self.replicas = url, replicas
        self.initial = self.live()
        self.events: list[Event] = []

    def live(self) -> list[str]:
        rows = http_json(self.url + "/_emulator/replicas")
        return [r["container_id"] for r in rows if r["state"] == "live"]

    def add(self) -> None:
        """Scale up by one and wait until the new replica is live (it starts then)."""
        http_json(self.url + "/_emulator/scale", {"replicas": self.replicas + 1})
        deadline = time.monotonic() + 30
        while len(self.live()) < self.replicas + 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the emulator's new replica was not live within 30 s")
            time.sleep(0.05)

    def kill(self) -> None:
        victim = next(c for c in self.live() if c in self.initial)
        http_json(f"{self.url}/_emulator/replicas/{victim}/kill", {"replace": False})


@contextlib.contextmanager
def emulator_target(replicas: int) -> Iterator[EmulatorTarget]:
    with emulator(replicas) as emu:
        yield EmulatorTarget(emu.url, replicas)


# -- routers in front of our replicas ----------------------------------------------------------


class Members(Protocol):
    """A running router whose upstream list can be set."""

    url: str

    def update(self, live: list[Replica]) -> None: ...


class ExternalTarget:
    """Our replicas behind `router`: a spare to add, the oldest replica to kill."""

    logs_itself = False

    def __init__(self, router: Members, live: list[Replica], spare: Replica) -> None:
        self.router, self.url = router, router.url
        self.members, self.spare = list(live), spare
        self.events: list[Event] = []

    def live(self) -> list[str]:
        return [r.container_id for r in self.members]

    def log(self, ts: float, kind: str, replica: Replica, cause: str) -> None:
        self.events.append({"ts": round(ts, 6), "event": kind,
                            "container_id": replica.container_id, "cause": cause,
                            "live": self.live()})

    def add(self) -> None:
        """The spare joins once the router has it (the moment logged)."""
        self.router.update([*self.members, self.spare])
        self.members.append(self.spare)
        self.log(time.time(), "added", self.spare, "scale")

    def kill(self) -> None:
        """SIGKILL the oldest replica (the moment logged), then tell the router."""
        victim = self.members[0]
        at = victim.kill()
        self.members.remove(victim)
        self.log(at, "removed", victim, "kill")
        self.router.update(self.members)


class HAProxyMembers:
    """Servers enabled and put in maintenance through the runtime API."""

    def __init__(self, url: str, stats: Path, declared: list[Replica], live: list[Replica]
                 ) -> None:
        self.url, self.stats, self.declared = url, stats, declared
        self.enabled = {r.container_id for r in live}

    def command(self, line: str) -> None:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(self.stats))
            sock.sendall(line.encode() + b"\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        if answer.strip():
            raise RuntimeError(f"haproxy runtime API: {line!r}: {answer.decode().strip()}")

    def update(self, live: list[Replica]) -> None:
        wanted = {r.container_id for r in live}
        for i, r in enumerate(self.declared):
            if (r.container_id in wanted) != (r.container_id in self.enabled):
                state = "ready" if r.container_id in wanted else "maint"
                self.command(f"set server replicas/r{i} state {state}")
        self.enabled = wanted


@contextlib.contextmanager
def haproxy_members(binary: str, live: list[Replica], spare: Replica, balance: str,
                    hash_type: str) -> Iterator[HAProxyMembers]:
    declared = [*live, spare]
    with tempfile.TemporaryDirectory(prefix="routers-haproxy-") as tmp:
        stats = Path(tmp) / "admin.sock"
        with haproxy(binary, [r.port for r in declared], 1, balance=balance,
                     hash_type=hash_type, disabled={len(live)}, stats_socket=stats) as (url, _):
            yield HAProxyMembers(url, stats, declared, live)


NGINX_CONF = """worker_processes 1;
pid {dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream replicas {{
{hashing}{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://replicas;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


class NginxMembers:
    """The upstream block rewritten, then `nginx -s reload`; returns once the new workers run."""

    def __init__(self, binary: str, directory: Path, port: int, hashing: str) -> None:
        self.binary, self.dir, self.port, self.hashing = binary, directory, port, hashing
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def args(self) -> list[str]:
        return [self.binary, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"), "-e",
                str(self.dir / "error.log")]

    def write(self, live: list[Replica]) -> None:
        servers = "\n".join(f"        server {r.address};" for r in live)
        (self.dir / "nginx.conf").write_text(
            NGINX_CONF.format(dir=self.dir, servers=servers, port=self.port,
                              hashing=f"        {self.hashing};\n" if self.hashing else ""))

    def workers(self) -> set[int]:
        assert self.process is not None
        return {p.pid for p in psutil.Process(self.process.pid).children()}

    def update(self, live: list[Replica]) -> None:
        before = self.workers()
        self.write(live)
        subprocess.run([*self.args(), "-s", "reload"], check=True, capture_output=True,
                       timeout=10)
        deadline = time.monotonic() + 10
        while not self.workers() - before:  # the new configuration's worker is up
            if time.monotonic() > deadline:
                raise RuntimeError("nginx did not start new workers within 10 s of a reload")
            time.sleep(0.01)


@contextlib.contextmanager
def nginx_members(binary: str, live: list[Replica], hashing: str) -> Iterator[NginxMembers]:
    """nginx in front of `live`; `hashing`: the upstream's balancing line ("" for round-robin)."""
    with tempfile.TemporaryDirectory(prefix="routers-nginx-") as tmp:
        def start() -> tuple[NginxMembers, subprocess.Popen[bytes]]:
            members = NginxMembers(binary, Path(tmp), free_port(), hashing)
            members.write(live)
            return members, started([*members.args(), "-g", "daemon off;"],
                                    Path(tmp) / "error.log", members.url, "nginx")

        members, proc = on_free_ports(start)
        members.process = proc
        try:
            yield members
        finally:
            stop_process(proc)


class CaddyMembers:
    """The reverse proxy's upstream list set through the admin API."""

    def __init__(self, url: str, admin: str) -> None:
        self.url, self.admin = url, admin

    def update(self, live: list[Replica]) -> None:
        http_json(self.admin + "/config/apps/http/servers/shootout/routes/0/handle/0/upstreams",
                  [{"dial": r.address} for r in live], method="PATCH")


def caddy_config(port: int, admin_port: int, live: list[Replica]) -> dict[str, Any]:
    proxy = {"handler": "reverse_proxy", "upstreams": [{"dial": r.address} for r in live],
             "load_balancing": {"selection_policy": {"policy": "header",
                                                     "field": SESSION_HEADER}}}
    return {"admin": {"listen": f"127.0.0.1:{admin_port}", "config": {"persist": False}},
            "logging": {"logs": {"default": {"level": "ERROR"}}},
            "apps": {"http": {"servers": {"shootout": {
                "listen": [f"127.0.0.1:{port}"], "automatic_https": {"disable": True},
                "routes": [{"handle": [proxy]}]}}}}}


@contextlib.contextmanager
def caddy_members(binary: str, live: list[Replica]) -> Iterator[CaddyMembers]:
    with tempfile.TemporaryDirectory(prefix="routers-caddy-") as tmp:
        directory = Path(tmp)
        env = {"HOME": tmp, "XDG_DATA_HOME": tmp, "XDG_CONFIG_HOME": tmp,
               "PATH": "/usr/bin:/bin"}

        def start() -> tuple[CaddyMembers, subprocess.Popen[bytes]]:
            port, admin_port = free_port(), free_port()
            config = directory / "caddy.json"
            config.write_text(json.dumps(caddy_config(port, admin_port, live)))
            proc = started([binary, "run", "--config", str(config)], directory / "caddy.log",
                           f"http://127.0.0.1:{port}", "caddy", env=env, cwd=directory)
            return CaddyMembers(f"http://127.0.0.1:{port}",
                                f"http://127.0.0.1:{admin_port}"), proc

        members, proc = on_free_ports(start)
        try:
            yield members
        finally:
            stop_process(proc)


def on_free_ports(start: Callable[[], T], attempts: int = 3) -> T:
    """`start()`, again with new ports when another process took one first."""
    for attempt in range(attempts):
        try:
            return start()
        except RuntimeError as exc:
            if "in use" not in str(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def started(cmd: list[str], log: Path, url: str, name: str, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """A server started with its output in `log`, once it answers at `url`; on failure it is
    stopped and RuntimeError carries the end of its log."""
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    try:
        wait_answers(url, proc, name=name)
        time.sleep(0.05)
        if proc.poll() is not None:  # another server answered on the port it could not bind
            raise RuntimeError(f"{name} exited")
    except RuntimeError:
        stop_process(proc)
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{name} did not answer at {url}: {' | '.join(tail)}") from None
    return proc


@contextlib.contextmanager
def external_target(router: Router, binary: str, live: list[Replica], spare: Replica
                    ) -> Iterator[ExternalTarget]:
    """`router` in front of `live`, `spare` ready to be added."""
    members: contextlib.AbstractContextManager[Members]
    if router.name == HAPROXY.name:
        members = haproxy_members(binary, live, spare, f"hdr({SESSION_HEADER})", "consistent")
    elif router.name == FLOOR.name:
        members = nginx_members(binary, live, "random")
    elif router.name == NGINX.name:
        members = nginx_members(binary, live, "hash $http_modal_session_id consistent")
    elif router.name == CADDY.name:
        members = caddy_members(binary, live)
    else:
        raise ValueError(f"no router {router.name!r}")
    with members as running:
        yield ExternalTarget(running, live, spare)
