"""The emulator's configuration: one frozen object, filled 1:1 by the command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class EmulatorConfig:
    replicas: int = 3
    host: str = "127.0.0.1"
    port: int = 8000
    events: Path | None = None
    # A replica joins the live set once its port accepts a connection; every replica is
    # re-checked this often (Modal's proxy checks once a second).
    health_interval_s: float = 1.0
    startup_timeout_s: float = 30.0
    # A stopped replica leaves the live set, waits this long at most for its in-flight
    # requests, then exits (Modal's exit_grace_period).
    exit_grace_period_s: float = 5.0
    # A replica that dies or is killed is replaced, as Modal keeps min_containers running.
    replace: bool = True
    # Limits that protect the router from bad or slow clients.
    max_header_bytes: int = 32 * 1024
    max_body_bytes: int = 16 * 1024 * 1024
    header_timeout_s: float = 10.0
    keepalive_timeout_s: float = 75.0
    upstream_timeout_s: float = 300.0
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
                     "keepalive_timeout_s", "upstream_timeout_s"):
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
