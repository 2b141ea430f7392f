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

#: Seconds a request's timestamp may be off by default (0 on the command line: no check): the
#: SOAP variant's UsernameToken ``Created`` is fresh for every request.
DEFAULT_MAX_SKEW = 300.0
#: The VXP axis' window, wider: the official SDK stamps ``XroadVnpt-timestamp`` once, when its
#: service object is built, and a client reuses that object (so that timestamp) for every call of
#: a poll or a batch — listing, downloading and acknowledging a backlog takes minutes. 15 minutes
#: is 10 minutes of such reuse plus 5 minutes of clock drift between the client and the axis.
DEFAULT_VXP_MAX_SKEW = 900.0


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
    parser: argparse.ArgumentParser,
    *,
    seed: int | None,
    skewed: str,
    systems_note: str = "",
    max_skew_note: str = f"default {DEFAULT_MAX_SKEW:g}",
) -> None:
    """``--systems`` (a list of :func:`parse_system`), ``--seed`` (default ``seed``) and
    ``--max-skew`` (seconds ``skewed`` may be off; read it with :func:`max_skew_from`, which
    gives each simulator its own default when the flag is not given)."""
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
        "--max-skew", type=float, default=None,
        help=f"seconds {skewed} may be off (0: no check; {max_skew_note})",
    )  # fmt: skip


def max_skew_from(args: argparse.Namespace, default: float = DEFAULT_MAX_SKEW) -> float | None:
    """``--max-skew`` in seconds (``default`` when not given); None when it is 0 or less (no
    check)."""
    skew: float = default if args.max_skew is None else args.max_skew
    return skew if skew > 0 else None


def request_head(request: web.Request) -> bytes:
    """The request line and headers as they arrived (raw bytes, in order)."""
    line = (
        f"{request.method} {request.path_qs} HTTP/{request.version.major}.{request.version.minor}"
    )
    return b"\r\n".join(
        [line.encode(), *(name + b": " + value for name, value in request.raw_headers)]
    )
