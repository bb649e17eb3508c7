"""Any affinity mechanism, any instance id: the options that point the harness at a router.

    locust -f locustfiles/sticky.py StickyUser ... --session-header X-Session-Id
    locust -f locustfiles/sticky.py StickyUser ... --session-cookie SERVERID \\
        --instance-header X-Served-By          # HAProxy `cookie SERVERID insert indirect nocache`

- `--session-header NAME` (default `Modal-Session-Id`): the header StickyUser sends its session
  id in (HAProxy `balance hdr(NAME)`, nginx `hash $http_NAME consistent`, Caddy `lb_policy
  header NAME`).
- `--session-cookie NAME`: cookie affinity instead. StickyUser sends no session header; it keeps
  the cookies the router sets (HAProxy `cookie NAME insert`, nginx `sticky cookie`, ingress
  cookies) and sends them back, as a browser does. The session is the user (its conversation),
  not the cookie's value: the request file records the user's own id, affinity "session".
  NonStickyUser (the control) drops every cookie before each request.
- `--instance-header NAME`: the serving instance is read from this response header (a router's
  `X-Served-By`), not from the body; `--instance-field NAME` (default `CONTAINER_ID`): the
  JSON field of the answer that names it. Streams (`/generate`) name it in their first event,
  or by the header when `--instance-header` is given.

A wrong setting is one line at the readiness probe (`locustfiles/target.py`): "no instance id
in the answers: ...", before any load, never a run of body errors. The settings are recorded
in the run's metadata, `PREFIX_run.json` beside the request file (`write_metadata`), which the
report shows.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from reports.columns import BODY_PREFIX

DEFAULT_SESSION_HEADER = "Modal-Session-Id"
DEFAULT_INSTANCE_FIELD = "CONTAINER_ID"
NO_INSTANCE = "no instance id in the answers"
METADATA_SUFFIX = "_run.json"
logger = logging.getLogger(__name__)
TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ")

Answer = tuple[str | None, str | None, str | None]  # container id, cache, error


@dataclass(frozen=True, slots=True)
class Affinity:
    """How sessions are carried and instances named: the parsed options."""

    session_header: str = DEFAULT_SESSION_HEADER
    session_cookie: str = ""
    instance_header: str = ""
    instance_field: str = DEFAULT_INSTANCE_FIELD

    @property
    def default_instance(self) -> bool:
        """The recorder's own reader (the body's CONTAINER_ID) applies."""
        return not self.instance_header and self.instance_field == DEFAULT_INSTANCE_FIELD

    def where(self) -> str:
        """Where the instance id is read, in words (for messages)."""
        if self.instance_header:
            return f"the response header {self.instance_header} (--instance-header)"
        return f"the answer's JSON field {self.instance_field} (--instance-field)"

    def reader(self) -> InstanceReader | None:
        """The recorder's reader, or None for the default (the recorder's own, cheapest)."""
        return None if self.default_instance else InstanceReader(self)


def of(options: Any) -> Affinity:
    """The settings from Locust's parsed options (the web form may hand over blanks)."""
    return Affinity(
        session_header=str(getattr(options, "session_header", "") or DEFAULT_SESSION_HEADER),
        session_cookie=str(getattr(options, "session_cookie", "") or ""),
        instance_header=str(getattr(options, "instance_header", "") or ""),
        instance_field=str(getattr(options, "instance_field", "") or DEFAULT_INSTANCE_FIELD))


def bad_setting(options: Any) -> str | None:
    """What is wrong with these settings (a header or cookie name that is no HTTP token)."""
    settings = of(options)
    for option, value in (("--session-header", settings.session_header),
                          ("--session-cookie", settings.session_cookie),
                          ("--instance-header", settings.instance_header)):
        if value and not set(value) <= TOKEN_CHARS:
            return f"{option} must be a header or cookie name, not {value!r}"
    return None


def token(option: str) -> Any:
    """argparse `type=`: a header or cookie name, else a one-line usage error."""
    def parse(text: str) -> str:
        if text and not set(text) <= TOKEN_CHARS:
            raise argparse.ArgumentTypeError(
                f"{option} must be a header or cookie name, not {text!r}")
        return text

    return parse


def add_arguments(parser: Any) -> None:
    """The affinity options, on the command line, as LOCUST_* variables and in the web form."""
    parser.add_argument(
        "--session-header", type=token("--session-header"), default=DEFAULT_SESSION_HEADER,
        env_var="LOCUST_SESSION_HEADER", include_in_web_ui=True,
        help=f"The header StickyUser sends its session id in (default {DEFAULT_SESSION_HEADER})")
    parser.add_argument(
        "--session-cookie", type=token("--session-cookie"), default="",
        env_var="LOCUST_SESSION_COOKIE", include_in_web_ui=True,
        help="Cookie affinity: StickyUser sends no session header and keeps the cookies the "
             "router sets (e.g. HAProxy `cookie NAME insert`); NonStickyUser drops them")
    parser.add_argument(
        "--instance-header", type=token("--instance-header"), default="",
        env_var="LOCUST_INSTANCE_HEADER", include_in_web_ui=True,
        help="Read the serving instance from this response header (e.g. X-Served-By set by "
             "the router) instead of the answer's body")
    parser.add_argument(
        "--instance-field", default=DEFAULT_INSTANCE_FIELD, env_var="LOCUST_INSTANCE_FIELD",
        include_in_web_ui=True,
        help=f"The answer's JSON field that names the instance (default "
             f"{DEFAULT_INSTANCE_FIELD})")


# ## Reading the instance


class InstanceReader:
    """(container, cache, error) of a 2xx answer, from a header or a JSON field.

    The body is parsed once per distinct body (a bounded memo, as the recorder's `Bodies`):
    the answers repeat. With a header, the body is read for a "cache" field only, and a body
    that is not JSON is no error (the router's upstream may answer anything)."""

    def __init__(self, settings: Affinity, limit: int = 4096, max_bytes: int = 512) -> None:
        self.header = settings.instance_header
        self.field = settings.instance_field
        self.known: dict[bytes, Answer] = {}
        self.limit = limit
        self.max_bytes = max_bytes
        self.missing = BODY_PREFIX + (f"no {self.header} header" if self.header
                                      else f"no {self.field}")

    def read(self, response: Any) -> Answer:
        content = getattr(response, "content", None)
        if not self.header:
            return self.body(content)
        container = header_value(getattr(response, "headers", None), self.header)
        _, cache, _ = self.body(content)
        return (container, cache, None) if container else (None, cache, self.missing)

    def stream(self, response: Any, container: str | None) -> str | None:
        """A stream's container: the header's when one is read, else the stream's own."""
        if not self.header:
            return container
        return header_value(getattr(response, "headers", None), self.header)

    def body(self, content: Any) -> Answer:
        if isinstance(content, bytes):
            known = self.known.get(content)
            if known is not None:
                return known
        result = self.parse(content)
        if (isinstance(content, bytes) and len(self.known) < self.limit
                and len(content) <= self.max_bytes):
            self.known[content] = result
        return result

    def parse(self, content: Any) -> Answer:
        data: Any = None
        if content:
            try:
                data = json.loads(content)
            except ValueError:
                data = None
        if not isinstance(data, dict):
            if self.header:
                return None, None, None
            return None, None, BODY_PREFIX + ("empty body" if not content else "not JSON")
        cache = data.get("cache")
        cache = cache if isinstance(cache, str) else None
        if self.header:
            return None, cache, None
        container = data.get(self.field)
        if isinstance(container, int | float) and not isinstance(container, bool):
            container = str(container)
        if not isinstance(container, str) or not container:
            return None, cache, self.missing
        return container, cache, None


def header_value(headers: Any, name: str) -> str | None:
    """A response header's value (case-insensitive; the first of repeated ones), or None."""
    if headers is None:
        return None
    value = headers.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value).strip() or None if value is not None else None


def probe_answer(settings: Affinity, status: int, body: bytes,
                 headers: Mapping[str, str]) -> tuple[str | None, str]:
    """The readiness probe's reading of a 2xx answer: (instance id, "") or (None, the one-line
    reason, starting with NO_INSTANCE)."""
    reader = InstanceReader(settings)
    lowered = {k.lower(): v for k, v in headers.items()}
    if settings.instance_header:
        value = lowered.get(settings.instance_header.lower(), "").strip()
        if value:
            return value, ""
        names = ", ".join(sorted(headers)) or "none"
        return None, (f"{NO_INSTANCE}: a {status} answer has no header "
                      f"{settings.instance_header} (--instance-header); its headers: {names}")
    container, _, error = reader.parse(body)
    if container:
        return container, ""
    try:
        data: Any = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        fields = ", ".join(sorted(map(str, data))[:12]) or "none"
        return None, (f"{NO_INSTANCE}: a {status} answer has no JSON field "
                      f"{settings.instance_field} (--instance-field); its fields: {fields}")
    return None, (f"{NO_INSTANCE}: a {status} answer is not JSON ({error}); name the instance "
                  f"with --instance-header or --instance-field")


# ## The run's metadata


def metadata(options: Any, user_classes: list[str]) -> dict[str, Any]:
    """What the run was asked to do, as the report shows it."""
    from locustfiles import conversation

    settings = of(options)
    turns = conversation.turns_of(options)
    return {"harness": "modal-sticky-locust", **asdict(settings),
            "turns": turns.text if turns is not None else None,
            "stream_tokens": int(getattr(options, "stream_tokens", 0) or 0),
            "users": getattr(options, "num_users", None), "user_classes": user_classes}


def write_metadata(prefix: str, data: Mapping[str, Any]) -> str:
    """`PREFIX_run.json`, written whole (a temporary file renamed): never half a file."""
    path = prefix + METADATA_SUFFIX
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(temporary, path)
    return path


def reader_for(environment: Any) -> InstanceReader | None:
    """The recorder's instance reader for this environment's options (None: the default)."""
    options = getattr(environment, "parsed_options", None) if environment is not None else None
    return of(options).reader()


def record(environment: Any, prefix: str) -> None:
    """Write the run's metadata beside the request file; a failure is one logged line (the
    request file, what the run measured, goes on)."""
    classes = sorted({c.__name__ for c in (environment.user_classes or [])})
    try:
        write_metadata(prefix, metadata(environment.parsed_options, classes))
    except OSError as exc:
        logger.error("affinity: cannot write %s%s: %s", prefix, METADATA_SUFFIX,
                     exc.strerror or exc)
