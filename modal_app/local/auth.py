"""Proxy auth, as Modal Servers have it by default (`unauthenticated=False`).

With `--auth`, every request must carry `Modal-Key` and `Modal-Secret` equal to the environment
variables `MODAL_PROXY_KEY` and `MODAL_PROXY_SECRET` of the emulator; otherwise 401. The values
are compared in constant time, never logged, and never forwarded to a replica. The emulator's
own control API (`/_emulator/...`) is not behind it.
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
