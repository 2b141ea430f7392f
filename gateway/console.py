"""The ``docgw`` console script. It imports the command itself, so that Ctrl-C while Python is
still loading docgw's libraries — a second or two on a slow machine — ends as Ctrl-C does once a
command runs (``error: INTERRUPTED``, status 130) instead of with a traceback; it checks that
the installed lxml can run the hardened parser before any command runs; and it sets the event
loop (uvloop)."""

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
    _use_uvloop()
    return run()


def _use_uvloop() -> None:
    """Every ``asyncio.run`` of the command gets uvloop's event loop where uvloop is installed (a
    dependency everywhere but Windows). Measured: 25 % less CPU per small HTTP request (client
    and server, aiohttp on loopback), 5-15 % per 140 KB one; in the exchange benchmark 3-7 % less
    CPU per document in each process, in three interleaved pairs out of three
    (docs/performance.md)."""
    # Imported here, not at the top: this module's own import must stay inside main()'s
    # KeyboardInterrupt guard's reach (Ctrl-C during ``import asyncio`` gave a traceback).
    import asyncio

    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows, or an install without it
        return
    # The policy (not uvloop.install(), deprecated from Python 3.12): one line for every entry.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
