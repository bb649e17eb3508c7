"""Auth and limits: who may send a request, and how many may run on one replica.

Proxy auth, as Modal Servers have it by default (`unauthenticated=False`): with `--auth`, every
request must carry `Modal-Key` and `Modal-Secret` equal to the environment variables
`MODAL_PROXY_KEY` and `MODAL_PROXY_SECRET` of the emulator; otherwise 401. The values are
compared in constant time, never logged, and never forwarded to a replica.

The control API (`/_emulator/...`) is not behind the proxy credentials: it has its own token.
With a token set (`--control-token` or `$MODAL_EMULATOR_CONTROL_TOKEN`), every control call
must carry `Authorization: Bearer <token>`, else 401. Without one the control API is open, and
the emulator refuses to start on an address other than loopback (see config.py).

`--max-concurrency N` (GA `max_concurrency`): a request that would be the N+1-th in flight on
its replica gets 429. Requests count from the moment the router chooses their replica.
"""

from __future__ import annotations

import hmac
import os

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


def over_limit(in_flight: int, limit: int) -> bool:
    """True when one more request would exceed `limit` in flight (0 = no limit)."""
    return bool(limit) and in_flight >= limit
