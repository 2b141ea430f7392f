"""``docgw demo``: the README's main job — the axis simulator and four gateways in one process,
exchanging documents and statuses, told as it happens (:mod:`gateway.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway import demo


def cmd_demo(args: argparse.Namespace) -> int:
    return demo.run(Path(args.dir) if args.dir else None, once=args.once)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the axis simulator and four gateways on loopback and exchange documents",
        description="Starts the VXP axis simulator and four gateways in this process (SQLite, "
        "loopback ports), exchanges unclassified and classified documents and their statuses, "
        "prints what happens and where to look, then runs until Ctrl-C.",
    )
    parser.add_argument(
        "--dir", help="keep keys, configurations and databases here (default: a temporary folder)"
    )
    parser.add_argument(
        "--once", action="store_true", help="exit after the exchange instead of running on"
    )
    parser.set_defaults(handler=cmd_demo)
