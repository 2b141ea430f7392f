"""What operators do to stuck messages: resend, cancel, re-route — always with a reason, each move
checked by the lifecycle and audited in the same transaction.

A re-route names a channel but does not bend the routing policy (DOMAIN.md §6): a classified
recipient is re-routed only where its first routing could have sent it — a secure channel to its
registered secure endpoint, and for tuyet_mat its explicit permission. Otherwise the whole re-route
is refused (REROUTE_REFUSED) and nothing changes: the recipients stay held, visible to operators.

A resend is checked the same way. Whatever its state (held, failed, sent, unconfirmed, waiting for
a retry), a classified recipient is queued again only if the policy, run anew against the registry
as it is NOW, still gives it a secure route: a unit since deactivated, whose secure endpoint was
removed or whose Tuyệt mật permission was revoked is not sent to again on the strength of an old
routing decision. Otherwise the whole resend is refused (RESEND_REFUSED), nothing changed. An
accepted requeue goes to the unit's current secure endpoint (delivery reads it from the registry
at each claim) and, if the unit's certificate changed, with a copy sealed anew for the current one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import cast

from cryptography import x509
from sqlalchemy.ext.asyncio import AsyncConnection

from envelopes import sealing
from envelopes.errors import SealError
from envelopes.model import Classification
from gateway.bootstrap import Gateway
from gateway.domain.lifecycle import CANCELLABLE, RESENDABLE, TransportState
from gateway.domain.routing import RecipientEntry, Route, route_recipient, route_through
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


class ResendRefused(Conflict):
    """An operator's resend of a classified recipient that the routing policy, run anew against
    the current registry, no longer allows (the unit deactivated or gone, its secure endpoint
    removed, tuyet_mat no longer allowed, no current certificate to seal for): refused as a whole,
    nothing changed."""

    code = "RESEND_REFUSED"


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
    or held; the SAME package is sent, so the receiver can deduplicate. A classified message only
    where the routing policy, run again against the current registry, still routes every one of
    them (else :class:`ResendRefused`, nothing changed); its copy is sealed anew only if the
    recipient's certificate changed."""
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
    """What a recipient needs to be sent again, or a refusal that changes nothing.

    A channel: an operator's (re-route) is checked by the policy; a held recipient is routed anew
    (the operator may have registered a secure endpoint or allowed Tuyệt mật since); a classified
    recipient being resent from any other state is checked anew too — it keeps its channel while
    the policy still allows it there, else takes the policy's route, else the resend is refused.
    And, for a classified message, a copy sealed for the recipient's current certificate (the
    stored copy if it already is)."""
    classification = Classification(message.classification)
    rerouting = "channel" in fields
    refused = RerouteRefused if rerouting else ResendRefused
    verb = "re-route" if rerouting else "resend"
    updates: dict[str, object] = {}
    if rerouting or classification.is_classified or recipient.state is TransportState.HELD:
        unit = await queries.get_unit(conn, recipient.unit_code)
        if unit is None:
            raise refused(
                f"cannot {verb} {recipient.unit_code}: the unit is no longer in the registry",
                element="channel" if rerouting else None,
            )
        route = _route_again(
            gateway, classification, recipient_entry(unit, gateway), recipient, fields
        )
        if route.is_held:
            raise refused(
                f"cannot {verb} {recipient.unit_code}: {route.reason}; nothing was queued",
                element="channel" if rerouting else None,
            )
        if not rerouting and route.channel != recipient.channel:
            updates["channel"] = route.channel
    if classification.is_classified:
        cert = await current_certificate(conn, recipient.unit_code, now)
        if cert is None:
            raise refused(
                f"cannot {verb} {recipient.unit_code}: no current (registered, unrevoked, "
                "unexpired) certificate to seal its copy for; nothing was queued",
                element="channel" if rerouting else None,
            )
        if not await _sealed_for(conn, recipient.package_sha256, cert):
            updates["package_sha256"] = await _seal_for_recipient(gateway, conn, message, cert, now)
    return updates


def _route_again(
    gateway: Gateway,
    classification: Classification,
    entry: RecipientEntry,
    recipient: RecipientRecord,
    fields: dict[str, object],
) -> Route:
    """The policy's answer for one recipient being queued again, from the registry as it is now.

    A re-route: the operator's channel, under the policy's rules. A held recipient: routed anew. A
    classified one being resent: its own channel while the policy still allows it there (an
    operator may have re-routed it to one of several secure channels), else the policy's route."""
    channels = gateway.channels
    if "channel" in fields:
        return route_through(classification, entry, str(fields["channel"]), channels)
    if recipient.state is not TransportState.HELD and recipient.channel in channels:
        kept = route_through(classification, entry, str(recipient.channel), channels)
        if not kept.is_held:
            return kept
    return route_recipient(classification, entry, channels)


async def _sealed_for(conn: AsyncConnection, sha256: str | None, cert: x509.Certificate) -> bool:
    """Whether the stored copy ``sha256`` is sealed for ``cert`` (read from its first chunk: the
    seal header is a few hundred bytes)."""
    if sha256 is None:
        return False
    # read_chunks is an async generator (typed as an iterator): closed at once, not drained.
    reader = cast(AsyncGenerator[bytes, None], blobs.read_chunks(conn, sha256))
    async with aclosing(reader) as chunks:
        first = await anext(chunks, b"")
    try:
        return sealing.read_seal_header(first).is_for(cert)
    except SealError:
        return False


async def _seal_for_recipient(
    gateway: Gateway,
    conn: AsyncConnection,
    message: MessageRecord,
    cert: x509.Certificate,
    now: dt.datetime,
) -> str:
    """A new copy of the message sealed for ``cert``; its blob's sha256."""
    # The message keeps only a copy sealed for its sender: open it, seal it for the recipient.
    sender_key = gateway.signer(message.sender).private_key
    with await load_to_spool(conn, message.package_sha256) as own, spool() as plain:
        sealing.open_stream(own, plain, sender_key)  # type: ignore[arg-type]
        with seal_copy(plain, cert) as sealed:
            ref = await blobs.put_stream(
                conn, sealed, inline_limit=gateway.settings.gateway.inline_blob_bytes, now=now
            )
    return ref.sha256
