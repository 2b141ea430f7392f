"""Business statuses per recipient (01 … 16) and how a newly received one moves the current one.

Statuses travel as packages of their own and may arrive late or out of order. Every one is kept in
the recipient's timeline; the *current* status only moves forward along the handling progression
01 → 03 → 04 → 05 → 06. A rejection (02) is final for the handling line. The retraction line (13 by
the sender, answered 15 agree / 16 refuse) is tracked beside it: 15 ends the document.
"""

from __future__ import annotations

from dataclasses import dataclass

from envelopes.model import StatusCode

_RANK = {
    StatusCode.ARRIVED: 1,
    StatusCode.ACCEPTED: 3,
    StatusCode.ASSIGNED: 4,
    StatusCode.IN_PROGRESS: 5,
    StatusCode.COMPLETED: 6,
    StatusCode.REJECTED: 7,  # final for the handling line
    StatusCode.RETRACT_REQUESTED: 8,
    StatusCode.UPDATE_REFUSED: 9,
    StatusCode.UPDATE_AGREED: 10,
}


@dataclass(frozen=True, kw_only=True)
class Applied:
    current: StatusCode
    out_of_order: bool


def apply(current: StatusCode | None, received: StatusCode) -> Applied:
    """The new current status; ``out_of_order`` when the received one is behind the current one
    (it is still kept in the timeline, just not made current)."""
    if current is None or _RANK[received] >= _RANK[current]:
        return Applied(current=received, out_of_order=False)
    return Applied(current=current, out_of_order=True)
