"""The ``docgw`` console script. It imports the command itself, so that Ctrl-C while Python is
still loading docgw's libraries — a second or two on a slow machine — ends as Ctrl-C does once a
command runs (``error: INTERRUPTED``, status 130) instead of with a traceback; and it checks that
the installed lxml can run the hardened parser before any command runs."""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from envelopes.errors import GatewayError
        from envelopes.xmlsafe import check_parser
        from gateway.cli import main as run
    except KeyboardInterrupt:
        print("error: INTERRUPTED", file=sys.stderr)
        return 130
    try:
        check_parser()
    except GatewayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return run()
