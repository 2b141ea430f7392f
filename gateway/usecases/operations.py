"""What operators do to stuck messages: resend, cancel, re-route — always with a reason, each move
checked by the lifecycle and audited in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.bootstrap import Gateway
from gateway.domain.lifecycle import CANCELLABLE, RESENDABLE, TransportState
from gateway.store import queries
from gateway.usecases.errors import Conflict, NotFound, ReasonRequired, UnknownUnit


@dataclass(frozen=True, kw_only=True)
class Changed:
    message_id: str
    recipients: tuple[str, ...]
    new_state: str


def _require_reason(reason: str | None) -> str:
    if not reason or not reason.strip():
        raise ReasonRequired("a reason is required", element="reason")
    return reason.strip()


async def resend(
    gateway: Gateway,
    message_id: str,
    *,
    reason: str | None,
    actor: str,
    recipient: str | None = None,
) -> Changed:
    """Queue again (now) every recipient that is failed, sent, unconfirmed, waiting for a retry,
    or held; the SAME package is sent, so the receiver can deduplicate."""
    return await _move(
        gateway, message_id, RESENDABLE, TransportState.QUEUED, "resend", reason, actor, recipient
    )


async def cancel(
    gateway: Gateway,
    message_id: str,
    *,
    reason: str | None,
    actor: str,
    recipient: str | None = None,
) -> Changed:
    return await _move(
        gateway,
        message_id,
        CANCELLABLE,
        TransportState.CANCELLED,
        "cancel",
        reason,
        actor,
        recipient,
    )


async def reroute(
    gateway: Gateway, message_id: str, *, channel: str, reason: str | None, actor: str
) -> Changed:
    """Send held or failed recipients through another configured channel. Classified messages
    cannot be re-routed to an axis or any non-secure channel."""
    info = gateway.channels.get(channel)
    if info is None:
        raise UnknownUnit(f"no channel named {channel!r} is configured", element="channel")
    async with gateway.engine.connect() as conn:
        message = await queries.get_message(conn, message_id)
    if message is None:
        raise NotFound(f"no message {message_id}")
    if message.classification != "thuong" and (info.is_axis or not info.is_secure):
        raise Conflict(f"a {message.classification} message may only take a secure channel")
    return await _move(
        gateway,
        message_id,
        (TransportState.HELD, TransportState.FAILED),
        TransportState.QUEUED,
        "reroute",
        reason,
        actor,
        None,
        channel=channel,
    )


async def _move(
    gateway: Gateway,
    message_id: str,
    allowed_from: tuple[TransportState, ...],
    to: TransportState,
    action: str,
    reason: str | None,
    actor: str,
    only: str | None,
    **fields: object,
) -> Changed:
    why = _require_reason(reason)
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        message = await queries.get_message(conn, message_id)
        if message is None:
            raise NotFound(f"no message {message_id}")
        if message.direction != "out":
            raise Conflict("only messages this gateway sends can be resent, cancelled or re-routed")
        moved = []
        for recipient in message.recipients:
            if only and recipient.unit_code != only:
                continue
            if recipient.state not in allowed_from:
                continue
            extra = dict(fields)
            if to is TransportState.QUEUED:
                extra.update(next_attempt_at=now, attempt_count=0, last_error=None)
            await queries.transition(
                conn,
                recipient.id,
                recipient.state,
                to,
                now=now,
                actor=actor,
                action=action,
                reason=why,
                message_id=message_id,
                **extra,
            )
            moved.append(recipient.unit_code)
        if not moved:
            states = ", ".join(sorted({r.state.value for r in message.recipients}))
            raise Conflict(f"nothing to {action}: the recipients are {states}")
    if to is TransportState.QUEUED:
        gateway.work_available.set()
    return Changed(message_id=message_id, recipients=tuple(moved), new_state=to.value)
