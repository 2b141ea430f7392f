"""What operators do to stuck messages: resend, cancel, re-route — always with a reason, each move
checked by the lifecycle and audited in the same transaction.

A re-route names a channel but does not bend the routing policy (DOMAIN.md §6): a classified
recipient is re-routed only where its first routing could have sent it — a secure channel to its
registered secure endpoint, and for tuyet_mat its explicit permission. Otherwise the whole re-route
is refused (REROUTE_REFUSED) and nothing changes: the recipients stay held, visible to operators.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from envelopes import sealing
from envelopes.model import Classification
from gateway.bootstrap import Gateway
from gateway.domain.lifecycle import CANCELLABLE, RESENDABLE, TransportState
from gateway.domain.routing import route_recipient, route_through
from gateway.store import blobs, queries
from gateway.store.records import MessageRecord, RecipientRecord
from gateway.usecases.errors import Conflict, NotFound, ReasonRequired, UnknownUnit
from gateway.usecases.packages import current_certificate, load_to_spool, seal_copy, spool
from gateway.usecases.submit import recipient_entry


class RerouteRefused(Conflict):
    """An operator's re-route that the routing policy does not allow (a classified message to a
    channel that is not secure or is an axis, a recipient without a registered secure endpoint,
    tuyet_mat not allowed on its route): refused as a whole, nothing changed."""

    code = "REROUTE_REFUSED"


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
    """Send held or failed recipients through another configured channel. A classified message
    takes it only where the routing policy allows (:func:`route_through`): never an axis or a
    non-secure channel, only to a recipient's registered secure endpoint, tuyet_mat only where
    allowed — else :class:`RerouteRefused`, nothing changed."""
    if channel not in gateway.channels:
        raise UnknownUnit(f"no channel named {channel!r} is configured", element="channel")
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
                extra.update(await _requeue_fields(gateway, conn, message, recipient, extra, now))
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


async def _requeue_fields(
    gateway: Gateway,
    conn: AsyncConnection,
    message: MessageRecord,
    recipient: RecipientRecord,
    fields: dict[str, object],
    now: dt.datetime,
) -> dict[str, object]:
    """What a recipient needs to be sent again: a channel — a held one is routed anew by the
    policy (the operator may have registered a secure endpoint or allowed Tuyệt mật since), an
    operator's channel is checked by the same policy — and, for a classified message, a copy
    sealed for the recipient's current certificate."""
    classification = Classification(message.classification)
    channel = fields.get("channel") or recipient.channel
    updates: dict[str, object] = {}
    if "channel" in fields:
        unit = await queries.get_unit(conn, recipient.unit_code)
        if unit is None:
            raise Conflict(f"unit {recipient.unit_code} is no longer in the registry")
        entry = recipient_entry(unit, gateway)
        route = route_through(classification, entry, str(fields["channel"]), gateway.channels)
        if route.is_held:
            raise RerouteRefused(
                f"cannot re-route {recipient.unit_code}: {route.reason}", element="channel"
            )
    elif recipient.state is TransportState.HELD:
        unit = await queries.get_unit(conn, recipient.unit_code)
        if unit is None:
            raise Conflict(f"unit {recipient.unit_code} is no longer in the registry")
        route = route_recipient(classification, recipient_entry(unit, gateway), gateway.channels)
        if route.is_held:
            raise Conflict(f"{recipient.unit_code} has still no route: {route.reason}")
        channel = updates["channel"] = route.channel
    if classification.is_classified and (
        recipient.package_sha256 is None or channel != recipient.channel
    ):
        cert = await current_certificate(conn, recipient.unit_code, now)
        if cert is None:
            raise Conflict(f"no current certificate of {recipient.unit_code} to seal for")
        # The message keeps only a copy sealed for its sender: open it, seal it for the recipient.
        sender_key = gateway.signer(message.sender).private_key
        with await load_to_spool(conn, message.package_sha256) as own, spool() as plain:
            sealing.open_stream(own, plain, sender_key)  # type: ignore[arg-type]
            with seal_copy(plain, cert) as sealed:
                ref = await blobs.put_stream(
                    conn, sealed, inline_limit=gateway.settings.gateway.inline_blob_bytes, now=now
                )
        updates["package_sha256"] = ref.sha256
    return updates
