"""Wait until a live replica answers the run's own kind of request, with backoff and a deadline.

Modal's proxy answers 503 while no replica is live (a cold start, a fresh deploy); the seed
example polls until it stops doing so. Here the probe measures readiness, not auth: it sends
what the run's requests send, and waits for a 2xx that names a container:

- the proxy credentials (`Modal-Key`/`Modal-Secret` from MODAL_PROXY_KEY/MODAL_PROXY_SECRET,
  as every user sends them; `modal_sessions.proxy_headers()`);
- for runs of strict-session users (SessionedUser), a real session start through the same path
  the users take (`modal_sessions.sessions_for`), then a request with its bearer token, then
  the session's end.

    wait_until_ready("https://...modal.run", WaitConfig(timeout_s=60), probe=probe)  # -> s
    # TargetNotReady: target https://... answered 503 for 60s: no live replica
    # TargetRefused:  target https://... refused the proxy credentials (401: ...): check ...

A 401 or 403 ends the wait at once (waiting does not fix credentials). The probes are plain
HTTP (urllib, cooperative under Locust's gevent), not Locust requests, so they never show in
Locust's statistics or in the request file.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from locustfiles import affinity
from locustfiles.modal_sessions import (
    STRICT_HEADER,
    SessionError,
    Sessions,
    proxy_headers,
    sessions_for,
)

NO_REPLICA = 503
REFUSED = (401, 403)


class TargetNotReady(Exception):
    """No live replica answered before the deadline; the message is one line."""


class TargetRefused(TargetNotReady):
    """The target refused the probe's credentials (401/403): not ready, and waiting won't help."""


@dataclass(frozen=True, kw_only=True)
class WaitConfig:
    timeout_s: float = 60.0
    first_delay_s: float = 0.1
    max_delay_s: float = 2.0
    probe_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.timeout_s < 0 or self.first_delay_s <= 0 or self.max_delay_s < self.first_delay_s:
            raise ValueError(f"bad wait settings: {self}")


@dataclass(frozen=True, slots=True)
class Probe:
    status: int | None  # None: no HTTP answer at all
    container: str | None = None  # the CONTAINER_ID a 2xx named
    error: str = ""  # why not: the server's error text, or the client's exception

    @property
    def ready(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and bool(self.container)


class Prober(Protocol):
    credentials: bool  # whether it sends proxy credentials (for the message on a 401)

    def __call__(self, url: str, timeout: float) -> Probe: ...


def post_whoami(url: str, headers: Mapping[str, str], timeout: float,
                settings: affinity.Affinity | None = None) -> Probe:
    """POST `{}` to the target's root, as the load does (and as the seed's wait_available);
    the instance id is read where `settings` say (--instance-header/--instance-field)."""
    request = urllib.request.Request(url.rstrip("/") + "/", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if settings is not None:
                instance, why = affinity.probe_answer(settings, response.status,
                                                      response.read(), dict(response.headers))
                return Probe(response.status, instance, why)
            return answer(response.status, response.read())
    except urllib.error.HTTPError as e:
        return Probe(e.code, None, error_text(e.read()))
    except (OSError, ValueError) as e:  # refused, reset, timeout, DNS, bad URL
        return Probe(None, None, f"{type(e).__name__}: {e}")


def answer(status: int, body: bytes) -> Probe:
    try:
        data: Any = json.loads(body)
    except ValueError:
        return Probe(status, None, "the answer is not JSON")
    container = data.get("CONTAINER_ID") if isinstance(data, dict) else None
    if not isinstance(container, str) or not container:
        return Probe(status, None, "the answer names no CONTAINER_ID")
    return Probe(status, container)


def error_text(body: bytes) -> str:
    """The server's short reason: a JSON body's "error", else the start of the text."""
    try:
        data: Any = json.loads(body)
        text = str(data.get("error") or data.get("detail") or "") if isinstance(data, dict) else ""
    except ValueError:
        text = body.decode("utf-8", "replace")
    return " ".join(text.split())[:120]


class HeaderProbe:
    """The run's headers on a plain request (proxy credentials when set)."""

    def __init__(self, headers: Mapping[str, str],
                 settings: affinity.Affinity | None = None) -> None:
        self.headers = dict(headers)
        self.credentials = "Modal-Key" in self.headers
        self.settings = settings

    def __call__(self, url: str, timeout: float) -> Probe:
        return post_whoami(url, self.headers, timeout, self.settings)


class SessionProbe:
    """A strict session started as SessionedUser starts one, one request with its token, then
    its end: the container it names is live and routed to."""

    def __init__(self, sessions: Sessions, idle_timeout: int = 60) -> None:
        self.sessions = sessions
        self.idle_timeout = idle_timeout
        self.credentials = bool(proxy_headers())

    def __call__(self, url: str, timeout: float) -> Probe:
        try:
            credentials = self.sessions.start(self.idle_timeout)
        except SessionError as exc:
            return Probe(exc.status, None, exc.reason)
        try:
            headers = {**proxy_headers(), STRICT_HEADER: f"Bearer {credentials.token}"}
            return post_whoami(url, headers, timeout)
        finally:
            # a probe session left behind ends at its idle timeout
            with contextlib.suppress(Exception):
                self.sessions.terminate(credentials.token)


def probe_for(host: str, user_classes: Iterable[type], options: Any) -> Prober:
    """The probe that sends what these user classes send."""
    if any(getattr(c, "starts_sessions", False) for c in user_classes):
        return SessionProbe(sessions_for(host, getattr(options, "modal_app", "") or ""))
    return HeaderProbe(proxy_headers(), affinity.of(options))


def wait_until_ready(url: str, config: WaitConfig, *,
                     probe: Callable[[str, float], Probe] | None = None,
                     sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.monotonic) -> float:
    """Probe until a live replica answers (a 2xx naming a container); returns seconds waited.

    Delays double from `first_delay_s` up to `max_delay_s`; raises TargetRefused at the first
    401/403, TargetNotReady once `timeout_s` has passed (a timeout of 0 means a single probe).
    """
    probe = probe if probe is not None else HeaderProbe(proxy_headers())
    start = clock()
    delay = config.first_delay_s
    while True:
        # never past the deadline: a probe's own timeout is cut to the time left (at least 1 s)
        left = config.timeout_s - (clock() - start)
        result = probe(url, max(1.0, min(config.probe_timeout_s, left)))
        if result.ready:
            return clock() - start
        if result.error.startswith(affinity.NO_INSTANCE):  # a wrong setting: waiting won't help
            raise TargetNotReady(f"target {url}: {result.error}")
        if result.status in REFUSED:
            raise TargetRefused(refused_message(url, result, getattr(probe, "credentials", False)))
        waited = clock() - start
        if waited >= config.timeout_s:
            raise TargetNotReady(not_ready_message(url, result, config.timeout_s))
        sleep(min(delay, config.timeout_s - waited))
        delay = min(delay * 2, config.max_delay_s)


def refused_message(url: str, last: Probe, credentials: bool) -> str:
    why = f"{last.status}: {last.error}" if last.error else str(last.status)
    if "session token" in last.error:  # the emulator's words for a strict-session server
        return (f"target {url} requires a strict session ({why}): not ready; a "
                f"@modal.sessioned() server takes SessionedUser (locustfiles/sessioned.py)")
    if credentials:
        return (f"target {url} refused the proxy credentials ({why}): not ready; check "
                f"MODAL_PROXY_KEY and MODAL_PROXY_SECRET")
    return (f"target {url} requires proxy credentials ({why}): not ready; set "
            f"MODAL_PROXY_KEY and MODAL_PROXY_SECRET")


def not_ready_message(url: str, last: Probe, timeout_s: float) -> str:
    if last.status == NO_REPLICA:
        return f"target {url} answered 503 for {timeout_s:g}s: no live replica"
    if last.status is None:
        return f"target {url} did not answer for {timeout_s:g}s ({last.error or 'no answer'})"
    why = f" ({last.error})" if last.error else ""
    return (f"target {url} answered {last.status}{why} for {timeout_s:g}s: no live replica "
            f"answered")
