"""Which way a message went."""

from __future__ import annotations

from enum import StrEnum


class Direction(StrEnum):
    """A message (and a status event) is one a local unit sent, or one received from a peer."""

    OUT = "out"
    IN = "in"
