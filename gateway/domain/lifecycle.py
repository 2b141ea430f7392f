"""The transport lifecycle of each recipient of a message: the one place that says which moves
are allowed. Every move is made through :func:`check_transition`, and the store writes each one
with its audit event in the same transaction.

    queued ──claim──▶ sending ──▶ sent
      │                  ├──▶ retry_scheduled ──claim──▶ sending …
      │                  ├──▶ unconfirmed (outcome unknown; resend SAME package) ──▶ sending …
      │                  ├──▶ failed (dead letter, with the reason)
      │                  └──▶ held (classified: no longer routed at the claim; nothing sent)
      ├──▶ held (no route, e.g. classified without a secure endpoint) ──re-route──▶ queued
      └──▶ cancelled

Operators may resend (failed, sent, unconfirmed, retry_scheduled → queued) and cancel anything
not yet sent, always with a reason. A worker that dies mid-send leaves ``sending`` behind; when its
lease expires the recovery job moves it to ``unconfirmed``, never back to ``queued``, because the
peer may have the package already.
"""

from __future__ import annotations

from enum import StrEnum

from envelopes.errors import GatewayError


class TransportState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    RETRY_SCHEDULED = "retry_scheduled"
    UNCONFIRMED = "unconfirmed"
    FAILED = "failed"
    HELD = "held"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (TransportState.SENT, TransportState.FAILED, TransportState.CANCELLED)


S = TransportState

#: Every allowed move. Anything else raises IllegalTransition.
ALLOWED: dict[TransportState, frozenset[TransportState]] = {
    S.QUEUED: frozenset({S.SENDING, S.HELD, S.CANCELLED}),
    # held: a classified claim the policy no longer routes (re-checked at each claim; nothing sent)
    S.SENDING: frozenset({S.SENT, S.RETRY_SCHEDULED, S.UNCONFIRMED, S.FAILED, S.HELD}),
    S.RETRY_SCHEDULED: frozenset({S.SENDING, S.QUEUED, S.CANCELLED}),
    S.UNCONFIRMED: frozenset({S.SENDING, S.QUEUED, S.CANCELLED}),
    S.FAILED: frozenset({S.QUEUED, S.CANCELLED}),
    S.HELD: frozenset({S.QUEUED, S.CANCELLED}),
    S.SENT: frozenset({S.QUEUED}),  # an operator's resend (the peer lost it)
    S.CANCELLED: frozenset(),
}

#: States a worker may claim (when due).
CLAIMABLE = (S.QUEUED, S.RETRY_SCHEDULED, S.UNCONFIRMED)
#: States an operator may resend from / cancel from.
RESENDABLE = (S.FAILED, S.SENT, S.UNCONFIRMED, S.RETRY_SCHEDULED, S.HELD)
CANCELLABLE = (S.QUEUED, S.RETRY_SCHEDULED, S.UNCONFIRMED, S.FAILED, S.HELD)


class IllegalTransition(GatewayError):
    code = "ILLEGAL_TRANSITION"


def check_transition(current: TransportState, new: TransportState) -> None:
    if new not in ALLOWED[current]:
        raise IllegalTransition(f"a recipient cannot move from {current.value} to {new.value}")


def summarize(states: list[TransportState]) -> TransportState:
    """A message's state, derived from its recipients': the least advanced one wins, so a message
    is ``sent`` only when every recipient is, and ``failed`` shows while any recipient failed."""
    order = (S.FAILED, S.HELD, S.UNCONFIRMED, S.SENDING, S.RETRY_SCHEDULED, S.QUEUED, S.SENT)
    present = set(states)
    for state in order:
        if state in present:
            return state
    return S.CANCELLED
