"""TLS contexts kept for the life of the process, so that a new connection is only a new
connection.

A user renews its connection (`--reconnect-every`, locustfiles/users.py) by closing its
client: Locust's FastHttpSession then makes a new client, whose https pool makes a new TLS
context with the given factory, loading the trusted certificates again (about 20 ms of CPU
each time here, against about 30 us for the rest of the new client). `kept_context(factory,
insecure)` is a factory that makes each context once per (factory, insecure, CA file) and hands
the same one out again: an `ssl.SSLContext` serves any number of connections (the handshake
and the session are per connection, not per context).

geventhttpclient sets `check_hostname` and `verify_mode` on the context it is handed, from the
user class's `insecure`: `insecure` is part of the key, so that classes that differ in it never
share a context.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

Factory = Callable[..., ssl.SSLContext]

_kept: dict[tuple[Any, bool, str | None], ssl.SSLContext] = {}


def kept_context(factory: Factory, insecure: bool) -> Factory:
    """A factory (as geventhttpclient calls it: `factory(cafile=...)`) that makes each context
    with `factory` once and then returns it again."""

    # a factory a user class defines as a method is bound anew to each user: its function is
    # the key, so that users come and go without a context each kept for ever
    maker = getattr(factory, "__func__", factory)

    def make(cafile: str | None = None) -> ssl.SSLContext:
        key = (maker, insecure, cafile)
        context = _kept.get(key)
        if context is None:
            try:
                context = factory(cafile=cafile)
            except TypeError:  # a factory without `cafile`, as geventhttpclient handles it
                context = factory()
                if cafile is not None:
                    context.load_verify_locations(cafile=cafile)
            _kept[key] = context
        return context

    make.kept = True  # type: ignore[attr-defined]
    return make
