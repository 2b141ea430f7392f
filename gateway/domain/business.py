"""Business statuses per recipient (01 … 16) and how a newly received one moves the current one.

Statuses travel as packages of their own and may arrive late or out of order. Every one is kept in
the recipient's timeline; the *current* status only moves forward along the handling progression
01 → 03 → 04 → 05 → 06. A rejection (02) is final for the handling line. The retraction line (13 by
the sender, answered 15 agree / 16 refuse) is tracked beside it: 15 ends the document.
"""

from __future__ import annotations

from dataclasses import dataclass

from envelopes.errors import GatewayError
from envelopes.model import StatusCode

#: The codes the local system sends: every one but 01 (arrived), which docgw sends itself on
#: intake. The API, the CLI and the OpenAPI document take these.
REPLY_CODES = tuple(c.value for c in StatusCode if c is not StatusCode.ARRIVED)
#: Those a receiver sends (13 is the sender's): the answers to a received document.
RECEIVER_REPLY_CODES = tuple(c for c in REPLY_CODES if not StatusCode(c).sent_by_sender)


class StatusCodeInvalid(GatewayError):
    """A business status code the local system may not send (01 is sent by docgw itself)."""

    code = "STATUS_CODE_INVALID"


def reply_code(value: object) -> StatusCode:
    """``value`` as a code the local system may send (:data:`REPLY_CODES`), else
    STATUS_CODE_INVALID: the API's status reply and the console's reply form read it so."""
    if not isinstance(value, str) or value not in REPLY_CODES:
        raise StatusCodeInvalid(
            f"must be one of {', '.join(REPLY_CODES)} (01 is sent by docgw on arrival)",
            element="code",
        )
    return StatusCode(value)


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
