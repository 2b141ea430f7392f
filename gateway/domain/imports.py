"""``docgw import``: what became of each file."""

from __future__ import annotations

from enum import StrEnum


class ImportOutcome(StrEnum):
    IMPORTED = "imported"
    #: Already there (the same file, or a package docgw holds already).
    SKIPPED = "skipped"
    REFUSED = "refused"
