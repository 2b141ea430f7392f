"""The national directory: how a sync asks for the units."""

from __future__ import annotations

from enum import StrEnum


class SyncMode(StrEnum):
    #: The whole listing.
    FULL = "full"
    #: The changes since a moment.
    INCREMENTAL = "incremental"
