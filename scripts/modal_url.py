#!/usr/bin/env python3
"""Print the deployed server's URL, through the Modal SDK (one line per proxy region).

    modal deploy modal_app/server.py
    python scripts/modal_url.py            # https://...modal.run
    locust -f locustfiles/sticky.py --host "$(python scripts/modal_url.py | head -1)"

It needs a Modal token (`modal setup`, or MODAL_TOKEN_ID / MODAL_TOKEN_SECRET in the
environment); without one, or before a deploy, it says so in one line and exits 2.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from modal_app.server import APP_NAME

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", default=APP_NAME, help=f"deployed app name ({APP_NAME})")
    args = parser.parse_args(argv)
    try:
        from modal_app.server import urls

        found = urls(args.app)
    except Exception as exc:  # the SDK's errors (auth, not found, network) become one line
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"modal_url: cannot get the URL of app {args.app!r}: {message}", file=sys.stderr)
        return 2
    if not found:
        print(f"modal_url: app {args.app!r} has no proxy URL yet (is it deployed?)",
              file=sys.stderr)
        return 2
    print("\n".join(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
