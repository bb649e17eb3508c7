"""The emulator's configuration: one frozen object, filled 1:1 by the command line."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

POLICIES = ("rendezvous", "modulo")
CONTROL_TOKEN_ENV = "MODAL_EMULATOR_CONTROL_TOKEN"
REPLICA_APP = "modal_app.whoami:app"


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True)
class EmulatorConfig:
    replicas: int = 3
    host: str = "127.0.0.1"
    port: int = 8000
    events: Path | None = None
    # Health: every replica gets `GET /health` this often (Modal's proxy checks once a second);
    # it is live while it answers (any status below 500) within `health_timeout_s`.
    health_interval_s: float = 1.0
    health_timeout_s: float = 2.0
    startup_timeout_s: float = 30.0
    # A stopped replica leaves the live set, waits this long at most for its in-flight
    # requests, then exits (Modal's exit_grace_period).
    exit_grace_period_s: float = 5.0
    # A replica that dies or is killed is replaced, as Modal keeps min_containers running.
    replace: bool = True
    # Crash-loop backoff: the n-th death in a row is restarted after restart_backoff_s * 2^(n-1)
    # (at most restart_backoff_max_s), except a first death of a replica that had answered,
    # replaced at once. Deaths are in a row unless the replica lived restart_backoff_reset_s.
    restart_backoff_s: float = 0.5
    restart_backoff_max_s: float = 30.0
    restart_backoff_reset_s: float = 10.0
    # Limits that protect the router from bad or slow clients.
    max_header_bytes: int = 32 * 1024
    max_body_bytes: int = 16 * 1024 * 1024
    # Request body bytes all client connections together may hold (see transport.py).
    max_buffered_bytes: int = 256 * 1024 * 1024
    header_timeout_s: float = 10.0
    keepalive_timeout_s: float = 75.0
    # Pipelined requests queued on one client connection before the router stops reading it.
    max_pipeline: int = 16
    # Pending connections the listening socket holds (uvicorn's default, not asyncio's 100).
    backlog: int = 2048
    # Upstream: connecting to a replica, waiting for its answer, idle pooled connections
    # (closed before the replica's own keep-alive timeout of 120 s closes them under us).
    connect_timeout_s: float = 5.0
    upstream_timeout_s: float = 300.0
    # Once an answer started: the longest silence between two of its bytes before it is cut.
    response_idle_timeout_s: float = 60.0
    pool_idle_s: float = 60.0
    # Routing: how sessions map onto live replicas ("modulo" is for tests only), and how late
    # the router learns of a membership change (0 = at once, as a perfect proxy).
    policy: str = "rendezvous"
    membership_delay_ms: float = 0.0
    # The control API (/_emulator/...) needs `Authorization: Bearer <token>` when a token is
    # set; one is required when --host is not a loopback address.
    control_token: str | None = field(default=None, repr=False)
    # Modal Servers (GA): proxy auth (credentials from the environment, never here), a limit
    # of requests in flight per replica (429 above it, 0 = none), strict sessions.
    auth: bool = False
    max_concurrency: int = 0
    sessioned: bool = False
    # The timing of the replicas' streaming answers (POST /generate), ms.
    prefill_ms_per_token: float = 0.2
    token_ms: float = 10.0
    # The replicas' KV-cache simulation (see modal_app/whoami.py); 0 sessions = off.
    cache_sessions: int = 0
    cache_miss_ms: float = 50.0
    cache_hit_ms: float = 5.0
    # The ASGI app each replica serves (module:attribute); another one for tests only.
    replica_app: str = REPLICA_APP
    # Fork replicas from a zygote that imported uvicorn and the app once (Linux), instead of
    # starting a fresh interpreter for each.
    zygote: bool = True

    def replica_env(self) -> dict[str, str]:
        """What each replica gets in its environment besides its container id."""
        env = {"WHOAMI_PREFILL_MS_PER_TOKEN": str(self.prefill_ms_per_token),
               "WHOAMI_TOKEN_MS": str(self.token_ms)}
        if self.cache_sessions:
            env.update({"WHOAMI_CACHE_SESSIONS": str(self.cache_sessions),
                        "WHOAMI_CACHE_MISS_MS": str(self.cache_miss_ms),
                        "WHOAMI_CACHE_HIT_MS": str(self.cache_hit_ms)})
        return env

    def __post_init__(self) -> None:
        if not 0 <= self.replicas <= 64:
            raise ValueError(f"--replicas must be between 0 and 64, not {self.replicas}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port must be between 0 and 65535, not {self.port}")
        for name in ("health_interval_s", "startup_timeout_s", "header_timeout_s",
                     "keepalive_timeout_s", "upstream_timeout_s", "connect_timeout_s",
                     "pool_idle_s", "restart_backoff_s", "restart_backoff_max_s",
                     "restart_backoff_reset_s", "health_timeout_s", "response_idle_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.exit_grace_period_s < 0:
            raise ValueError("exit_grace_period_s must not be negative")
        if self.max_concurrency < 0:
            raise ValueError("--max-concurrency must not be negative")
        if not (0 <= self.prefill_ms_per_token <= 1000 and 0 <= self.token_ms <= 1000):
            raise ValueError("--prefill-ms-per-token and --token-ms must be between 0 and 1000")
        if self.cache_sessions < 0 or self.cache_miss_ms < 0 or self.cache_hit_ms < 0:
            raise ValueError("the --cache-* settings must not be negative")
        if not 1 <= self.backlog <= 65535:
            raise ValueError(f"--backlog must be between 1 and 65535, not {self.backlog}")
        if self.max_body_bytes < 0 or self.max_header_bytes < 1:
            raise ValueError("--max-body-bytes must not be negative")
        if self.max_buffered_bytes < self.max_body_bytes:
            raise ValueError("--max-buffered-bytes must be at least --max-body-bytes")
        if self.max_pipeline < 1:
            raise ValueError("--max-pipeline must be at least 1")
        if self.policy not in POLICIES:
            raise ValueError(f"--policy must be one of {', '.join(POLICIES)}")
        if not 0 <= self.membership_delay_ms <= 600_000:
            raise ValueError("--membership-delay-ms must be between 0 and 600000")
        if ":" not in self.replica_app:
            raise ValueError("--replica-app must look like module:attribute")
        if self.control_token is not None and len(self.control_token) < 16:
            raise ValueError("the control token must be at least 16 characters")
        if not is_loopback(self.host) and not self.control_token:
            raise ValueError(
                f"--host {self.host} is reachable from other machines: set a control token "
                f"(--control-token or ${CONTROL_TOKEN_ENV}) so that they cannot scale or kill "
                "replicas")
