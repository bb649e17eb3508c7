"""Strict sessions of `@modal.sessioned()` servers, for `SessionedUser`, and proxy credentials.

Two ways to start and end a session, chosen by `--modal-app`:
- against Modal: the SDK, `modal.Server.from_name(APP, CLS).sessions.start(idle_timeout=...)`
  and `.terminate(token)`; it needs a Modal token (`modal setup`);
- against anything else (the local emulator's `--sessioned`): HTTP, `POST
  {host}/_modal/sessions/start` and `/terminate` with the headers Modal's proxy expects; the
  function token comes from `MODAL_FUNCTION_TOKEN` (the emulator accepts any non-empty one).

Proxy credentials (`unauthenticated=False`, the GA default): when `MODAL_PROXY_KEY` and
`MODAL_PROXY_SECRET` are set, every request of every user class carries them as `Modal-Key`
and `Modal-Secret`. They are read from the environment only, never from an option (the web UI
would show it), and never printed or recorded.

Session tokens are secrets too: the recorder keeps the session's id (`se-...`), not its token.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

STRICT_HEADER = "Modal-Authorization"  # carries a strict session's (or function's) token

LOCAL_FUNCTION_TOKEN = "local-emulator"


def proxy_headers() -> dict[str, str]:
    key, secret = os.environ.get("MODAL_PROXY_KEY"), os.environ.get("MODAL_PROXY_SECRET")
    return {"Modal-Key": key, "Modal-Secret": secret} if key and secret else {}


@dataclass(frozen=True, repr=False)
class Credentials:
    session_id: str
    token: str

    def __repr__(self) -> str:  # never show the token
        return f"Credentials(session_id={self.session_id!r})"


class SessionError(Exception):
    """A session could not be started; the message is one line, with no secret in it.

    `status` is the HTTP status of the refusal (None: no HTTP answer), `reason` the server's
    own short reason, when it gave one."""

    def __init__(self, message: str, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason or message


class Sessions(Protocol):
    def start(self, idle_timeout: int) -> Credentials: ...

    def terminate(self, token: str) -> None: ...


class HttpSessions:
    """The proxy's session calls over HTTP (the local emulator's `--sessioned`)."""

    def __init__(self, host: str, timeout: float = 10.0) -> None:
        self.host = host.rstrip("/")
        self.timeout = timeout
        self.function_token = os.environ.get("MODAL_FUNCTION_TOKEN") or LOCAL_FUNCTION_TOKEN

    def _post(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.host + path, data=b"", method="POST",
            headers={STRICT_HEADER: f"Bearer {self.function_token}", **proxy_headers(),
                     **headers})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (OSError, ValueError) as exc:  # refused, reset, timeout, bad URL
            raise SessionError(f"session call {path} failed: {type(exc).__name__}: {exc}",
                               None, f"{type(exc).__name__}: {exc}") from None

    def start(self, idle_timeout: int) -> Credentials:
        status, body = self._post("/_modal/sessions/start", {
            "x-idempotency-key": str(uuid.uuid4()),
            "x-modal-timestamp": str(int(time.time())),
            "x-modal-server-session-idle-timeout": str(idle_timeout),
        })
        if status != 200:
            raise SessionError(f"session start answered {status}: {body[:200]!r}", status,
                               short_reason(body))
        try:
            data = json.loads(body)
            return Credentials(str(data["session_id"]), str(data["token"]))
        except (ValueError, KeyError, TypeError):
            raise SessionError("session start answered no session_id and token") from None

    def terminate(self, token: str) -> None:
        status, body = self._post("/_modal/sessions/terminate",
                                  {"x-modal-server-session-token": token})
        if status not in (200, 404):  # 404: it had already ended
            raise SessionError(f"session terminate answered {status}: {body[:200]!r}")


class ModalSessions:
    """The SDK's session calls on a deployed `@modal.sessioned()` server."""

    def __init__(self, app_name: str, class_name: str = "Server") -> None:
        import modal

        self.server: Any = modal.Server.from_name(app_name, class_name)

    def start(self, idle_timeout: int) -> Credentials:
        try:
            session = self.server.sessions.start(idle_timeout=idle_timeout)
        except Exception as exc:
            raise SessionError(f"session start failed: {type(exc).__name__}: {exc}") from None
        return Credentials(session.session_id, session.token)

    def terminate(self, token: str) -> None:
        self.server.sessions.terminate(token)


def short_reason(body: bytes) -> str:
    """A refusal's own words: its JSON "error", else the start of the body."""
    try:
        data: Any = json.loads(body)
        text = str(data.get("error", "")) if isinstance(data, dict) else ""
    except ValueError:
        text = body.decode("utf-8", "replace")
    return " ".join(text.split())[:120]


def sessions_for(host: str, modal_app: str) -> Sessions:
    if modal_app:
        app_name, _, class_name = modal_app.partition(":")
        return ModalSessions(app_name, class_name or "Server")
    return HttpSessions(host)
