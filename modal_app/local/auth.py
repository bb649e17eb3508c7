"""Auth and limits: who may send a request, and how many may run on one replica.

Proxy auth, as Modal Servers have it by default (`unauthenticated=False`): with `--auth`, every
request must carry `Modal-Key` and `Modal-Secret` equal to the environment variables
`MODAL_PROXY_KEY` and `MODAL_PROXY_SECRET` of the emulator; otherwise 401. The values are
compared in constant time, never logged, and never forwarded to a replica.

The control API (`/_emulator/...`) can kill replicas, so it refuses what a web page could make
a browser on this machine send (cross-site request forgery, DNS rebinding), checked in this
order (`ControlGuard`):
- a Host header that does not name a loopback address (`localhost`, 127.0.0.0/8, `[::1]`) or
  the `--host` address itself: 403;
- an Origin header other than the emulator's own (`http://` + that Host): 403;
- with a control token set (`--control-token` or `$MODAL_EMULATOR_CONTROL_TOKEN`), a call
  without `Authorization: Bearer <token>`: 401; with `--auth`, a call without the proxy
  credentials (`Modal-Key`, `Modal-Secret`): 401;
- a POST whose Content-Type is not `application/json` (what no form can send without a CORS
  preflight, which the emulator never allows): 415.
Without a token the emulator refuses to start on an address other than loopback (config.py).

`--max-concurrency N` (GA `max_concurrency`): a request that would be the N+1-th in flight on
its replica gets 429. Requests count from the moment the router chooses their replica.
"""

from __future__ import annotations

import hmac
import os

from modal_app.local.config import is_loopback

MISSING = "missing credentials for proxy authorization"
INVALID = "invalid credentials for proxy authorization"


class ProxyAuth:
    def __init__(self, key: str, secret: str) -> None:
        self._key = key.encode()
        self._secret = secret.encode()

    def __repr__(self) -> str:
        return "ProxyAuth(<redacted>)"

    @classmethod
    def from_env(cls) -> ProxyAuth:
        key, secret = os.environ.get("MODAL_PROXY_KEY"), os.environ.get("MODAL_PROXY_SECRET")
        if not key or not secret:
            raise ValueError("--auth needs MODAL_PROXY_KEY and MODAL_PROXY_SECRET in the "
                             "environment")
        return cls(key, secret)

    def check(self, key: bytes | None, secret: bytes | None) -> str | None:
        """None when the credentials match, else the reason for the 401."""
        if not key or not secret:
            return MISSING
        ok_key = hmac.compare_digest(key, self._key)
        ok_secret = hmac.compare_digest(secret, self._secret)
        return None if ok_key and ok_secret else INVALID


class ControlToken:
    """The bearer token of the control API; None means open (loopback only)."""

    def __init__(self, token: str | None) -> None:
        self._expected = b"bearer " + token.encode() if token else None

    def __repr__(self) -> str:
        return "ControlToken(<redacted>)" if self._expected else "ControlToken(open)"

    def check(self, authorization: bytes | None) -> str | None:
        """None when the call may go on, else the reason for the 401."""
        if self._expected is None:
            return None
        if not authorization:
            return "the control API needs Authorization: Bearer <control token>"
        scheme, _, token = authorization.strip().partition(b" ")
        given = scheme.lower() + b" " + token.strip()
        if not hmac.compare_digest(given, self._expected):
            return "invalid control token"
        return None


def host_name(host: bytes) -> str:
    """The name part of a Host header (`127.0.0.1:8000`, `[::1]:8000`, `localhost`)."""
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    name, _, port = text.rpartition(":")
    return name if name and port.isdigit() else text


class ControlGuard:
    """Who may call the control API (the rules above); `check` gives the refusal or None."""

    def __init__(self, token: str | None, bind_host: str, proxy: ProxyAuth | None) -> None:
        self.token = ControlToken(token)
        self.bind_host = bind_host.lower()
        self.proxy = proxy

    def check(self, method: bytes, host: bytes | None, origin: bytes | None,
              content_type: bytes | None, authorization: bytes | None,
              key: bytes | None, secret: bytes | None) -> tuple[int, str] | None:
        if host is None:
            return 403, "the control API needs a Host header"
        name = host_name(host)
        if not (is_loopback(name) or name == self.bind_host):
            return 403, "the control API answers only to a loopback Host (localhost, 127.0.0.1)"
        if origin is not None and origin.strip().lower() != b"http://" + host.strip().lower():
            return 403, "the control API refuses calls from another origin"
        denied = self.token.check(authorization)
        if denied:
            return 401, denied
        if self.proxy is not None:
            denied = self.proxy.check(key, secret)
            if denied:
                return 401, denied
        if method == b"POST":
            media = (content_type or b"").split(b";", 1)[0].strip().lower()
            if media != b"application/json":
                return 415, "the control API accepts only Content-Type: application/json"
        return None


def over_limit(in_flight: int, limit: int) -> bool:
    """True when one more request would exceed `limit` in flight (0 = no limit)."""
    return bool(limit) and in_flight >= limit
