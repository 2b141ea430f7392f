"""Status packages: sending them (the local system's replies, and 01 on arrival) and applying the
ones received to the right recipient of the right message."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from contextlib import ExitStack
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from envelopes.building import build_status
from envelopes.model import (
    Classification,
    Organization,
    ResponseFor,
    StaffInfo,
    StatusCode,
    StatusPackage,
)
from envelopes.reading import PackageKind
from gateway.domain import business
from gateway.domain.direction import Direction
from gateway.domain.lifecycle import TransportState
from gateway.domain.routing import route_recipient, strictest
from gateway.store import blobs, message_queries, status_queries, unit_queries
from gateway.store.records import UnitRecord
from gateway.store.visibility import readable_text
from gateway.usecases.classified_copies import ClassifiedCopies, Spools, no_certificate
from gateway.usecases.errors import Conflict, NotFound, ReasonRequired, UnknownUnit
from gateway.usecases.naming import named_classifications
from gateway.usecases.packages import current_certificate
from gateway.usecases.ports import Channels, Config, Signing, Store, Waker
from gateway.usecases.submit import recipient_entry

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


class StatusSender(Store, Config, Channels, Signing, Waker, Protocol):
    """What sending a status uses: the store, the settings, the channels (its route), the
    reporter's key, and the workers' wake-up."""


async def enqueue_status(
    gateway: StatusSender,
    conn: AsyncConnection,
    *,
    reporter: str,
    to: str,
    about: ResponseFor,
    code: StatusCode,
    description: str | None,
    staff: StaffInfo | None,
    related_message_id: str | None,
    classification: Classification,
    actor: str,
    now: dt.datetime,
    audit_rows: list[dict[str, Any]] | None = None,
) -> str:
    """Build, sign and queue one status package from a local unit to another unit, inside the
    caller's transaction. Returns the new message id. ``audit_rows``: as for
    :func:`gateway.store.message_queries.insert_recipient`.

    ``classification`` is the related document's: a status about a classified document names it
    (DocumentId, số/ký hiệu), so it travels under that classification — over a secure channel,
    sealed — or is held. Every stored document with the DocumentId it names counts, whatever the
    caller passed (:func:`~gateway.domain.routing.strictest`): a status is never less classified
    than what it names. A status about no stored document is ``thuong``.
    """
    if code.requires_reason and not (description or "").strip():
        raise ReasonRequired(f"status {code.value} needs a reason", element="description")
    if about.document_id and classification is not Classification.TUYET_MAT:
        named = await named_classifications(conn, [about.document_id])
        classification = strictest(classification, named)
    units = await unit_queries.get_units(conn, {to, reporter})
    unit = units.get(to)
    if unit is None:
        raise UnknownUnit(f"unit {to} is not in the registry", element="to")
    route = route_recipient(classification, recipient_entry(unit, gateway), gateway.channels)
    reporter_unit = units.get(reporter)
    package = build_status(
        _status(reporter, reporter_unit, about, code, description, staff, now),
        signer=gateway.signer(reporter),
    )
    inline = gateway.settings.gateway.inline_blob_bytes
    recipient_copy, held_reason = None, None if route.channel else route.reason
    if classification.is_classified:
        # A status package is small: sealed here, in the caller's transaction.
        with ExitStack() as stack:
            sealed = ClassifiedCopies(Spools({to: io.BytesIO(package)}), stack, inline_limit=inline)
            own_copy = await sealed.store(conn, to, gateway.signer(reporter).certificate, now=now)
            cert = await current_certificate(conn, to, now)
            if cert is None:
                held_reason = held_reason or no_certificate(to)
            else:
                recipient_copy = await sealed.store(conn, to, cert, now=now)
    else:
        own_copy = (await blobs.put_bytes(conn, package, inline_limit=inline, now=now)).sha256
    message_id = str(uuid.uuid4())
    await message_queries.insert_message(
        conn,
        id=message_id,
        direction=Direction.OUT,
        kind=PackageKind.STATUS,
        document_id=about.document_id or "",
        sender=reporter,
        classification=classification.value,
        # A classified document's statuses keep their wording only inside the sealed package.
        subject=description,
        priority=0,
        status_code=code.value,
        related_message_id=related_message_id,
        package_sha256=own_copy,
        client=actor,
        route=route.channel,
        created_at=now,
    )
    await message_queries.insert_recipient(
        conn,
        message_id=message_id,
        unit_code=to,
        channel=route.channel,
        state=TransportState.HELD if held_reason else TransportState.QUEUED,
        now=now,
        actor=actor,
        reason=held_reason or f"status {code.value}: {route.reason}",
        package_sha256=recipient_copy,
        audit_rows=audit_rows,
    )
    await status_queries.insert_status_event(
        conn,
        direction="out",
        status_message_id=message_id,
        message_id=related_message_id,
        reporter=reporter,
        document_id=about.document_id,
        status_code=code.value,
        description=readable_text(classification, description),
        reported_at=now,
        recorded_at=now,
        out_of_order=False,
    )
    return message_id


def _status(
    reporter: str,
    unit: UnitRecord | None,
    about: ResponseFor,
    code: StatusCode,
    description: str | None,
    staff: StaffInfo | None,
    now: dt.datetime,
) -> StatusPackage:
    return StatusPackage(
        from_=Organization(organ_id=reporter, organ_name=unit.name if unit else None),
        response_for=about,
        status_code=code,
        timestamp=now.astimezone(VIETNAM).replace(tzinfo=None, microsecond=0),
        description=description,
        staff_info=staff,
    )


async def reply(
    gateway: StatusSender,
    message_id: str,
    *,
    code: StatusCode,
    description: str | None,
    staff: StaffInfo | None,
    actor: str,
    member_unit: str | None = None,
) -> list[str]:
    """The local system's status about a message: 02–06, 15, 16 on a received document (from
    each local recipient unit to the sender), 13 on a sent one (to each of its recipients)."""
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        # A member's unit: 404 before any state check (store.visibility): a 409 naming the
        # message's direction would tell a member that a message it may not see exists.
        message = await message_queries.get_message(conn, message_id, visible_to_unit=member_unit)
        if message is None or message.kind != "document":
            raise NotFound(f"no document message {message_id}")
        about = ResponseFor(
            organ_id=message.sender,
            code=message.code,
            promulgation_date=None,
            document_id=message.document_id,
        )
        if message.direction == "in":
            if code.sent_by_sender:
                raise Conflict(f"status {code.value} is the sender's; this document was received")
            pairs = [(r.unit_code, message.sender) for r in message.recipients]
        else:
            if not code.sent_by_sender:
                raise Conflict(f"status {code.value} is a receiver's; this document was sent")
            pairs = [(message.sender, r.unit_code) for r in message.recipients]
        if member_unit is not None:
            pairs = [p for p in pairs if p[0] == member_unit]
            if not pairs:
                raise NotFound(f"no document message {message_id}")
        queued = [
            await enqueue_status(
                gateway,
                conn,
                reporter=reporter,
                to=to,
                about=about,
                code=code,
                description=description,
                staff=staff,
                related_message_id=message.id,
                classification=Classification(message.classification),
                actor=actor,
                now=now,
            )
            for reporter, to in pairs
        ]
    gateway.work_available.set()
    return queued


async def find_status_target(
    conn: AsyncConnection, *, reporter: str, document_id: str | None, code: StatusCode
) -> status_queries.StatusTarget | None:
    """The document a received status is about (None when unknown: the status is still kept)."""
    if not document_id:
        return None
    found = await status_queries.find_document_recipient(
        conn, document_id=document_id, reporter=reporter
    )
    if found is None and code is StatusCode.RETRACT_REQUESTED:
        # 13 comes from the sender about a document we received.
        received = await status_queries.find_received_document(conn, document_id=document_id)
        if received is not None:
            return status_queries.StatusTarget(
                message_id=received, recipient_id=None, business_status=None
            )
    return found


async def move_business_status(
    conn: AsyncConnection,
    recipient_id: int,
    current: str | None,
    code: StatusCode,
    *,
    now: dt.datetime,
) -> bool:
    """Make ``code`` the recipient's current business status (``current`` until now), unless it
    comes out of order — behind the current one, it is kept in the timeline only. Returns whether
    it came out of order."""
    out_of_order = business.apply(StatusCode(current) if current else None, code).out_of_order
    if not out_of_order:
        await status_queries.set_business_status(conn, recipient_id, code.value, now=now)
    return out_of_order


async def apply_received_status(
    conn: AsyncConnection,
    target: status_queries.StatusTarget | None,
    *,
    reporter: str,
    document_id: str | None,
    code: StatusCode,
    description: str | None,
    reported_at: dt.datetime | None,
    status_message_id: str,
    now: dt.datetime,
) -> bool:
    """Attach a received status to the recipient that reported it (``target``, from
    :func:`find_status_target`). Returns whether it came out of order. Nothing is dropped:
    unknown ones are kept."""
    message_id = target.message_id if target else None
    recipient_id = target.recipient_id if target else None
    out_of_order = False
    if target is not None and recipient_id is not None:
        out_of_order = await move_business_status(
            conn, recipient_id, target.business_status, code, now=now
        )
    await status_queries.insert_status_event(
        conn,
        direction=Direction.IN,
        status_message_id=status_message_id,
        message_id=message_id,
        recipient_id=recipient_id,
        reporter=reporter,
        document_id=document_id,
        status_code=code.value,
        description=description,
        reported_at=reported_at,
        recorded_at=now,
        out_of_order=out_of_order,
    )
    return out_of_order
