"""What the local system hears of, and what it says it has taken.

Events are recorded in the transaction of the change they report (intake calls
:func:`record_document_received` and :func:`record_status_received`; every transport move into
``failed`` or ``held`` is recorded by the store where its audit row is written). The feed hands
them out in the sequencer's total order (store/events.py explains why not by id).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from envelopes.model import (
    BusinessDocType,
    Classification,
    DocumentPackage,
    ResponseFor,
    StaffInfo,
    StatusCode,
)
from gateway.store import audit_queries, message_queries
from gateway.store import events as store
from gateway.store.events import EventRecord, Waiting
from gateway.usecases.errors import Conflict, Forbidden, NotFound
from gateway.usecases.ports import Store
from gateway.usecases.statuses import StatusSender, enqueue_status

#: A received document's event type by its Bussiness doc type (a revocation or an update of a
#: document sent before travels as a document of its own).
DOCUMENT_EVENT = {
    BusinessDocType.NEW: "document.received",
    BusinessDocType.REVOKE: "document.revoked",
    BusinessDocType.UPDATE: "document.updated",
    BusinessDocType.REPLACE: "document.replaced",
}
STATUS_EVENT = "status.received"
#: Every event type, for the reference and the OpenAPI document.
EVENT_TYPES = (*DOCUMENT_EVENT.values(), STATUS_EVENT, *store.NEEDS_A_PERSON.values())


async def record_document_received(
    conn: AsyncConnection,
    document: DocumentPackage,
    *,
    message_id: str,
    local_units: list[str],
    now: dt.datetime,
) -> None:
    """One event per local unit the received document is addressed to."""
    doc_type = document.business.doc_type if document.business else BusinessDocType.NEW
    header = document.header
    await store.record(
        conn,
        [
            store.event_row(
                type=DOCUMENT_EVENT[doc_type],
                occurred_at=now,
                message_id=message_id,
                document_id=header.document_id,
                unit_code=unit,
                peer=header.from_.organ_id,
            )
            for unit in local_units
        ],
    )


async def record_status_received(
    conn: AsyncConnection,
    *,
    status_message_id: str,
    about_message_id: str | None,
    reporter: str,
    document_id: str | None,
    code: StatusCode,
    now: dt.datetime,
) -> None:
    """One event per local unit the document it is about concerns (none known: one event for
    staff only)."""
    units: list[str | None] = []
    if about_message_id is not None:
        units.extend(await store.units_concerned(conn, about_message_id))
    await store.record(
        conn,
        [
            store.event_row(
                type=STATUS_EVENT,
                occurred_at=now,
                message_id=about_message_id or status_message_id,
                document_id=document_id,
                unit_code=unit,
                peer=reporter,
                status_code=code.value,
                status_message_id=status_message_id,
            )
            for unit in units or [None]
        ],
    )


#: The API's message paths, for an event's links (the feed's items and webhook bodies alike).
MESSAGES_PATH = "/api/v1/messages"


def event_document(event: EventRecord) -> dict[str, object]:
    """An event as the feed and webhooks carry it: ids, what happened, links; no content. The
    subject is the stored one: NULL for a classified message (the API's rule, not a copy)."""
    links = {}
    if event.message_id is not None:
        links["message"] = f"{MESSAGES_PATH}/{event.message_id}"
        links["package"] = f"{MESSAGES_PATH}/{event.message_id}/package"
    if event.status_message_id is not None:
        links["status_message"] = f"{MESSAGES_PATH}/{event.status_message_id}"
    return {
        "cursor": str(event.position),
        "event_id": event.event_id,
        "type": event.type,
        "message_id": event.message_id,
        "document_id": event.document_id,
        "unit": event.unit_code,
        "peer": event.peer,
        "status_code": event.status_code,
        "status_message_id": event.status_message_id,
        "reason": event.reason,
        "occurred_at": event.occurred_at.astimezone(dt.UTC).isoformat(),
        "classification": event.classification,
        "subject": event.subject,
        "links": links,
    }


@dataclass(frozen=True, kw_only=True)
class FeedPage:
    items: list[EventRecord]
    #: Where to resume: the last item's position, or ``after`` when there was none.
    cursor: int


async def read_feed(gateway: Store, *, after: int, limit: int, unit_code: str | None) -> FeedPage:
    """Events after the cursor ``after``, in order; a member's (``unit_code``) only."""
    async with gateway.engine.begin() as conn:
        await store.sequence(conn)
    async with gateway.engine.connect() as conn:
        items = await store.feed(conn, after=after, limit=limit, unit_code=unit_code)
    return FeedPage(items=items, cursor=items[-1].position if items else after)


@dataclass(frozen=True, kw_only=True)
class Taken:
    unit_code: str
    taken_at: dt.datetime
    #: False: taken before (the first time stands).
    now: bool


@dataclass(frozen=True, kw_only=True)
class Reply:
    """The status the local system sends with its acknowledgement (03 "registered", say)."""

    code: StatusCode
    description: str | None = None
    staff: StaffInfo | None = None


async def acknowledge(
    gateway: StatusSender,
    message_id: str,
    *,
    actor: str,
    member_unit: str | None,
    unit: str | None = None,
    reply: Reply | None = None,
) -> list[Taken]:
    """Mark a received document taken by the system of each local unit it is addressed to (a
    member: its own unit; staff: ``unit``, or every local recipient). Idempotent. ``reply``: a
    status queued to the sender from each unit that takes it NOW, in the same transaction (a
    repeated ack sends none)."""
    if member_unit is not None and unit not in (None, member_unit):
        raise Forbidden(
            f"a member token of {member_unit} acknowledges for {member_unit} only", element="unit"
        )
    if reply is not None and reply.code.sent_by_sender:
        raise Conflict(
            f"{reply.code.value} is the sender's status, not a reply to a received document",
            element="reply",
        )
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        message = await message_queries.get_message(conn, message_id)
        if message is None or message.direction != "in" or message.kind != "document":
            raise NotFound(f"no received document {message_id}", element="id")
        units = [r.unit_code for r in message.recipients]
        wanted = member_unit or unit
        if wanted is not None:
            if wanted not in units:
                raise NotFound(
                    f"received document {message_id} is not addressed to {wanted}",
                    element="id" if member_unit else "unit",
                )
            units = [wanted]
        taken = []
        for code in units:
            taken_at, first = await store.take(conn, message_id, code, now=now, actor=actor)
            taken.append(Taken(unit_code=code, taken_at=taken_at, now=first))
            if first and reply is not None:
                await enqueue_status(
                    gateway,
                    conn,
                    reporter=code,
                    to=message.sender,
                    about=ResponseFor(
                        organ_id=message.sender,
                        code=message.code,
                        promulgation_date=None,
                        document_id=message.document_id,
                    ),
                    code=reply.code,
                    description=reply.description,
                    staff=reply.staff,
                    related_message_id=message.id,
                    classification=Classification(message.classification),
                    actor=actor,
                    now=now,
                )
        await audit_queries.insert_audit_rows(
            conn,
            [
                audit_queries.audit_row(
                    now=now,
                    actor=actor,
                    action="taken",
                    message_id=message_id,
                    reason=f"taken by the system of {t.unit_code}",
                )
                for t in taken
                if t.now
            ],
        )
    if reply is not None and any(t.now for t in taken):
        gateway.work_available.set()  # after the commit: a worker woken now finds the replies
    return taken


async def handed_over(
    gateway: Store,
    *,
    waiting_only: bool,
    unit_code: str | None,
    after: tuple[dt.datetime, str, str] | None,
    limit: int,
) -> list[Waiting]:
    async with gateway.reader.connect() as conn:
        return await store.handed(
            conn, waiting_only=waiting_only, unit_code=unit_code, after=after, limit=limit
        )
