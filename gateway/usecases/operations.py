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

Sealing a copy (opening the sender's copy, building it again with To naming only the recipient when
it names others, sealing it for the recipient) is done by
:mod:`~gateway.usecases.classified_copies`: before the write transaction, off the event loop, with
no connection held. The transaction then checks everything again (the route, the current
certificate) and stores only the copies it needs: a refused resend stores nothing, and a
certificate renewed meanwhile is sealed for there, still off the event loop.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from cryptography import x509
from sqlalchemy.ext.asyncio import AsyncConnection

from connectors.offload import stream_size
from envelopes import sealing
from envelopes.model import Classification
from gateway.domain.lifecycle import CANCELLABLE, RESENDABLE, TransportState
from gateway.domain.routing import RecipientEntry, Route, route_recipient, route_through
from gateway.store import message_queries, unit_queries
from gateway.store.records import MessageRecord, RecipientRecord
from gateway.usecases.classified_copies import ClassifiedCopies
from gateway.usecases.errors import Conflict, NotFound, ReasonRequired, UnknownUnit
from gateway.usecases.packages import (
    current_certificate,
    load_to_spool,
    read_rebuildable,
    sealed_for,
    spool,
)
from gateway.usecases.ports import Channels, Config, Signing, Store, Waker
from gateway.usecases.submit import recipient_entry


class Operations(Store, Config, Channels, Signing, Waker, Protocol):
    """What an operator's action uses: the store, the settings, the channels (a re-route), the
    sender's key (a resealed copy), and the workers' wake-up."""


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


class _SendersCopy:
    """Each recipient's plaintext, from the sender's copy (the only one a classified message
    keeps): opened with the sender's key and built again with To naming only that recipient —
    same DocumentId, signed again by the sender — unless it names no other (then sealed as it is,
    byte for byte). A receiving gateway registers every local unit its To names."""

    def __init__(self, gateway: Operations, message: MessageRecord, stack: ExitStack) -> None:
        self._signer = gateway.signer(message.sender)
        self._message = message
        self._stack = stack
        self._own: IO[bytes] | None = None

    async def load(self, conn: AsyncConnection) -> None:
        if self._own is None:
            own = await load_to_spool(conn, self._message.package_sha256)
            self._own = self._stack.enter_context(own)

    def size(self) -> int | None:
        assert self._own is not None
        self._own.seek(0)
        return stream_size(self._own)

    def opened(self, stack: ExitStack) -> Callable[[str], IO[bytes]]:
        assert self._own is not None
        signer = self._signer
        plain = stack.enter_context(spool())
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="docgw-release-"))
        self._own.seek(0)
        sealing.open_stream(self._own, plain, signer.private_key)  # type: ignore[arg-type]
        package = read_rebuildable(plain, Path(folder))
        everyone = [to.organ_id for to in package.document.header.to]

        def plaintext(unit: str) -> IO[bytes]:
            if everyone == [unit]:
                return plain
            addressed = stack.enter_context(spool())
            package.addressed_to(unit, signer, addressed)
            return addressed

        return plaintext


def _copies(gateway: Operations, message: MessageRecord, stack: ExitStack) -> ClassifiedCopies[str]:
    """The copies of ``message`` for its recipients, by unit, sealed from the sender's copy."""
    return ClassifiedCopies(
        _SendersCopy(gateway, message, stack),
        stack,
        inline_limit=gateway.settings.gateway.inline_blob_bytes,
    )


@dataclass(frozen=True, kw_only=True)
class Changed:
    message_id: str
    recipients: tuple[str, ...]
    new_state: str


def require_reason(reason: str | None) -> str:
    if not reason or not reason.strip():
        raise ReasonRequired("a reason is required", element="reason")
    return reason.strip()


async def resend(
    gateway: Operations,
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
    gateway: Operations,
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
    gateway: Operations, message_id: str, *, channel: str, reason: str | None, actor: str
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
    gateway: Operations,
    message_id: str,
    allowed_from: tuple[TransportState, ...],
    to: TransportState,
    action: str,
    reason: str | None,
    actor: str,
    only: str | None,
    **fields: object,
) -> Changed:
    why = require_reason(reason)
    now = gateway.clock()
    with ExitStack() as stack:
        sealed = None
        if to is TransportState.QUEUED:
            sealed = await _seal_ahead(gateway, message_id, allowed_from, only, now, stack)
        async with gateway.engine.begin() as conn:
            message = await message_queries.get_message(conn, message_id)
            if message is None:
                raise NotFound(f"no message {message_id}")
            if message.direction != "out":
                raise Conflict(
                    "only messages this gateway sends can be resent, cancelled or re-routed"
                )
            if sealed is None:
                sealed = _copies(gateway, message, stack)
            moved = []
            for recipient in _movable(message, allowed_from, only):
                extra = dict(fields)
                if to is TransportState.QUEUED:
                    extra.update(next_attempt_at=now, attempt_count=0, last_error=None)
                    extra.update(
                        await _requeue_fields(gateway, conn, message, recipient, extra, now, sealed)
                    )
                await message_queries.transition(
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


def _movable(
    message: MessageRecord, allowed_from: tuple[TransportState, ...], only: str | None
) -> list[RecipientRecord]:
    """The recipients an operation moves: those in ``allowed_from``, all or only ``only``."""
    return [
        recipient
        for recipient in message.recipients
        if (not only or recipient.unit_code == only) and recipient.state in allowed_from
    ]


async def _seal_ahead(
    gateway: Operations,
    message_id: str,
    allowed_from: tuple[TransportState, ...],
    only: str | None,
    now: dt.datetime,
    stack: ExitStack,
) -> ClassifiedCopies[str] | None:
    """Before the write transaction: the copies a classified message being queued again needs,
    one per recipient whose stored copy (if any) is not sealed for its current certificate. The
    sender's copy is read with a connection; the sealing runs once it is given back. None when
    there is nothing to seal (or the transaction is to refuse the operation anyway)."""
    async with gateway.engine.connect() as conn:
        message = await message_queries.get_message(conn, message_id)
        if message is None or message.direction != "out":
            return None
        if not Classification(message.classification).is_classified:
            return None
        wanted: list[tuple[str, x509.Certificate]] = []
        for recipient in _movable(message, allowed_from, only):
            cert = await current_certificate(conn, recipient.unit_code, now)
            if cert is None:
                continue
            if not await _sealed_for(conn, recipient.package_sha256, cert):
                wanted.append((recipient.unit_code, cert))
        if not wanted:
            return None
        sealed = _copies(gateway, message, stack)
        await sealed.load(conn)
    await sealed.seal(wanted)
    return sealed


async def _requeue_fields(
    gateway: Operations,
    conn: AsyncConnection,
    message: MessageRecord,
    recipient: RecipientRecord,
    fields: dict[str, object],
    now: dt.datetime,
    sealed: ClassifiedCopies[str],
) -> dict[str, object]:
    """What a recipient needs to be sent again, or a refusal that changes nothing.

    A channel: an operator's (re-route) is checked by the policy; a held recipient is routed anew
    (the operator may have registered a secure endpoint or allowed Tuyệt mật since); a classified
    recipient being resent from any other state is checked anew too — it keeps its channel while
    the policy still allows it there, else takes the policy's route, else the resend is refused.
    And, for a classified message, a copy sealed for the recipient's current certificate (the
    stored copy if it already is; ``sealed`` has it ready, or seals it)."""
    classification = Classification(message.classification)
    rerouting = "channel" in fields
    refused = RerouteRefused if rerouting else ResendRefused
    verb = "re-route" if rerouting else "resend"
    updates: dict[str, object] = {}
    if rerouting or classification.is_classified or recipient.state is TransportState.HELD:
        unit = await unit_queries.get_unit(conn, recipient.unit_code)
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
            updates["package_sha256"] = await sealed.store(conn, recipient.unit_code, cert, now=now)
    return updates


def _route_again(
    gateway: Operations,
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
    """Whether the stored copy ``sha256`` is sealed for ``cert``."""
    if sha256 is None:
        return False
    return await sealed_for(conn, sha256, cert)
