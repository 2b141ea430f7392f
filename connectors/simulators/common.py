"""What both axis simulators (the VXP axis and its SOAP variant) share beyond the fault model
(:mod:`connectors.simulators.faults`): the connected systems and how they are given on the command
line, the start-time flags ``--systems``, ``--seed`` and ``--max-skew``, and the raw request head
each simulator records beside the body.

One definition each, so that ``docgw axis-sim`` and ``python -m connectors.simulators.soap_axis``
read the same flags the same way, and neither simulator module imports the other's internals.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from aiohttp import web

#: Seconds a request's timestamp may be off by default (both simulators; 0 on the command line:
#: no check).
DEFAULT_MAX_SKEW = 300.0


@dataclass(frozen=True, kw_only=True)
class AxisSystem:
    """A system connected to the axis: its secret and the unit codes it sends and receives for."""

    secret: bytes = field(repr=False)
    units: tuple[str, ...]


def parse_system(text: str) -> tuple[str, bytes, tuple[str, ...]]:
    """``SYSTEM:SECRET:UNIT[,UNIT]`` → (system id, secret, units); the secret may hold colons."""
    system_id, sep, rest = text.partition(":")
    secret, sep2, units = rest.rpartition(":")
    if not (sep and sep2 and system_id and secret and units):
        raise argparse.ArgumentTypeError(f"{text!r} is not SYSTEM:SECRET:UNIT[,UNIT]")
    return system_id, secret.encode("utf-8"), tuple(u.strip() for u in units.split(",") if u)


def add_system_arguments(
    parser: argparse.ArgumentParser, *, seed: int | None, skewed: str, systems_note: str = ""
) -> None:
    """``--systems`` (a list of :func:`parse_system`), ``--seed`` (default ``seed``) and
    ``--max-skew`` (seconds ``skewed`` may be off; read it with :func:`max_skew_from`)."""
    parser.add_argument(
        "--systems", nargs="+", action="extend", type=parse_system, default=[],
        metavar="SYSTEM:SECRET:UNIT[,UNIT]",
        help=f"a connected system, its secret and its units{systems_note}",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=int, default=seed,
        help="seeds the simulator's random choices: a run can be replayed",
    )  # fmt: skip
    parser.add_argument(
        "--max-skew", type=float, default=DEFAULT_MAX_SKEW,
        help=f"seconds {skewed} may be off (0: no check)",
    )  # fmt: skip


def max_skew_from(args: argparse.Namespace) -> float | None:
    """``--max-skew`` in seconds; None when it is 0 or less (no check)."""
    skew: float = args.max_skew
    return skew if skew > 0 else None


def request_head(request: web.Request) -> bytes:
    """The request line and headers as they arrived (raw bytes, in order)."""
    line = (
        f"{request.method} {request.path_qs} HTTP/{request.version.major}.{request.version.minor}"
    )
    return b"\r\n".join(
        [line.encode(), *(name + b": " + value for name, value in request.raw_headers)]
    )
