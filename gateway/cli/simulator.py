"""``docgw axis-sim``: the axis simulator (VXP, and the SOAP variant) on loopback. It parses its
own options (``docgw axis-sim --help``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from connectors.simulators import axis

COMMAND = "axis-sim"


def run(argv: Sequence[str]) -> int:
    return axis.main(argv)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # Listed for --help; main() hands "docgw axis-sim …" to the simulator before parsing.
    commands.add_parser(
        COMMAND,
        help="run a VXP-compatible axis (and the SOAP variant) on loopback, with fault injection",
    )
