"""The ``docgw`` command. Entry points stay thin: parse arguments, call a use case, print.

Every expected failure prints one line ``error: CODE: message [element]`` on stderr and exits 1
(2 for a command-line usage error, from argparse); never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from envelopes.errors import GatewayError
from gateway.cli import (
    alerts,
    archive,
    backup,
    demo,
    directory,
    importing,
    jobs,
    operations,
    packages,
    queue,
    reports,
    service,
    simulator,
    users,
    webhooks,
)
from gateway.logs import configure_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docgw", description="docgw: edXML document gateway")
    parser.add_argument("--config", help="configuration file (default: ./docgw.toml when present)")
    commands = parser.add_subparsers(dest="command", required=True)
    packages.register(commands)
    service.register(commands)
    operations.register(commands)
    queue.register(commands)
    simulator.register(commands)
    demo.register(commands)
    webhooks.register(commands)
    reports.register(commands)
    backup.register(commands)
    importing.register(commands)
    archive.register(commands)
    jobs.register(commands)
    directory.register(commands)
    alerts.register(commands)
    users.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [simulator.COMMAND]:  # the simulator parses its own options
        return simulator.run(argv[1:])
    args = build_parser().parse_args(argv)
    configure_logging(None, service=False)  # until the command reads its configuration
    try:
        result: int = args.handler(args)
        return result
    except BrokenPipeError:
        # The reader went away (`docgw queue list | head -1`): stop quietly, and keep Python's
        # last flush of stdout from failing again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except GatewayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: IO_ERROR: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: INTERRUPTED", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
