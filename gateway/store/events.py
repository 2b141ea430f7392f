"""Events for the local system: written in the transaction of the change they report, ordered
afterwards by the sequencer, read by the feed; and what local units have taken.

The feed's order. An autoincrement id is no cursor on PostgreSQL: ids are drawn when a row is
inserted, not when its transaction commits, so an event with a lower id can become visible after
a reader has passed a higher one — and the reader, resuming from the higher one, would miss it.
Events are therefore written without a position, and :func:`sequence` gives positions to the
events it can see, in one transaction under a lock (PostgreSQL: a transaction-level advisory
lock; SQLite has one writer anyway), each above every position given before. A reader sees a
sequencer's positions all at once (its commit) and only after those of every earlier sequencer
(which committed before this one took the lock), so positions become visible in increasing
order and never behind a cursor already handed out: a consumer resuming from its last cursor
misses nothing and sees nothing twice. An event becomes readable at the first sequencer run
after its commit (the feed runs one before it reads).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.database import insert_or_ignore
from gateway.store.tables import events, messages, recipients, takes

#: pg_advisory_xact_lock key of the sequencer ("docgwseq" read as a number, kept small).
SEQUENCER_LOCK = 0x646F6367_7773
#: Events positioned per sequencer transaction (the next run takes the rest).
SEQUENCE_BATCH = 5000

#: Transport states an operator must look at; a recipient entering one is an event.
NEEDS_A_PERSON = {"failed": "transport.failed", "held": "transport.held"}


@dataclass(frozen=True, kw_only=True)
class EventRecord:
    position: int
    event_id: str
    type: str
    message_id: str | None
    document_id: str | None
    unit_code: str | None
    peer: str | None
    status_code: str | None
    status_message_id: str | None
    reason: str | None
    occurred_at: dt.datetime
    #: The message's readable subject: NULL for a classified one (it is never stored).
    subject: str | None
    classification: str | None


def event_row(
    *,
    type: str,
    occurred_at: dt.datetime,
    message_id: str | None = None,
    document_id: str | None = None,
    unit_code: str | None = None,
    peer: str | None = None,
    status_code: str | None = None,
    status_message_id: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "position": None,
        "type": type,
        "message_id": message_id,
        "document_id": document_id,
        "unit_code": unit_code,
        "peer": peer,
        "status_code": status_code,
        "status_message_id": status_message_id,
        "reason": reason,
        "occurred_at": occurred_at,
    }


async def record(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert events (from :func:`event_row`) in the caller's transaction."""
    if rows:
        await conn.execute(events.insert(), list(rows))


async def record_transport_outcomes(
    conn: AsyncConnection, audit_rows: Iterable[Mapping[str, Any]]
) -> None:
    """An event for each audit row that puts a recipient in a state needing a person (failed,
    held), for the unit that sent the message (ours); called wherever audit rows are written, so
    that every way into those states reports it."""
    moved = [
        row
        for row in audit_rows
        if row.get("to_state") in NEEDS_A_PERSON and row.get("recipient_id") is not None
    ]
    if not moved:
        return
    found = await conn.execute(
        sa.select(
            recipients.c.id, recipients.c.unit_code, messages.c.sender, messages.c.document_id
        )
        .join(messages, messages.c.id == recipients.c.message_id)
        .where(recipients.c.id.in_({row["recipient_id"] for row in moved}))
    )
    by_id = {row.id: row for row in found}
    await record(
        conn,
        [
            event_row(
                type=NEEDS_A_PERSON[row["to_state"]],
                occurred_at=row["at"],
                message_id=row["message_id"],
                document_id=by_id[row["recipient_id"]].document_id,
                unit_code=by_id[row["recipient_id"]].sender,
                peer=by_id[row["recipient_id"]].unit_code,
                reason=row.get("reason"),
            )
            for row in moved
            if row["recipient_id"] in by_id
        ],
    )


async def units_concerned(conn: AsyncConnection, message_id: str) -> list[str]:
    """The local units a document message concerns: its sender when we sent it, its local
    recipients when we received it."""
    row = (
        await conn.execute(
            sa.select(messages.c.direction, messages.c.sender).where(messages.c.id == message_id)
        )
    ).one_or_none()
    if row is None:
        return []
    if row.direction == "out":
        return [row.sender]
    return list(
        (
            await conn.execute(
                sa.select(recipients.c.unit_code)
                .where(recipients.c.message_id == message_id)
                .order_by(recipients.c.unit_code)
            )
        ).scalars()
    )


# ----------------------------------------------------------------------------------- sequencer


async def sequence(conn: AsyncConnection) -> int:
    """Give feed positions to the events committed without one, in id order, above every position
    given before; returns how many. Run it in a transaction of its own (see the module
    docstring): the positions become visible when it commits."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(SEQUENCER_LOCK)))
    waiting = list(
        (
            await conn.execute(
                sa.select(events.c.id)
                .where(events.c.position.is_(None))
                .order_by(events.c.id)
                .limit(SEQUENCE_BATCH)
            )
        ).scalars()
    )
    if not waiting:
        return 0
    top = int(await conn.scalar(sa.select(sa.func.max(events.c.position))) or 0)
    await conn.execute(
        events.update()
        .where(events.c.id == sa.bindparam("event_row_id"))
        .values(position=sa.bindparam("new_position")),
        [
            {"event_row_id": row_id, "new_position": top + index}
            for index, row_id in enumerate(waiting, start=1)
        ],
    )
    return len(waiting)


# ---------------------------------------------------------------------------------------- feed


async def feed(
    conn: AsyncConnection, *, after: int, limit: int, unit_code: str | None = None
) -> list[EventRecord]:
    """Positioned events after ``after``, in order; ``unit_code``: only that unit's."""
    query = (
        sa.select(events, messages.c.subject, messages.c.classification)
        .outerjoin(messages, messages.c.id == events.c.message_id)
        .where(events.c.position > after)
    )
    if unit_code is not None:
        query = query.where(events.c.unit_code == unit_code)
    rows = await conn.execute(query.order_by(events.c.position).limit(limit))
    return [
        EventRecord(
            position=row.position,
            event_id=row.event_id,
            type=row.type,
            message_id=row.message_id,
            document_id=row.document_id,
            unit_code=row.unit_code,
            peer=row.peer,
            status_code=row.status_code,
            status_message_id=row.status_message_id,
            reason=row.reason,
            occurred_at=row.occurred_at,
            subject=row.subject,
            classification=row.classification,
        )
        for row in rows
    ]


async def last_position(conn: AsyncConnection) -> int:
    return int(await conn.scalar(sa.select(sa.func.max(events.c.position))) or 0)


# --------------------------------------------------------------------------------------- takes


async def take(
    conn: AsyncConnection, message_id: str, unit_code: str, *, now: dt.datetime, actor: str
) -> tuple[dt.datetime, bool]:
    """Record that ``unit_code``'s system took the message; (when it was taken, whether it was
    taken now). A repeat keeps the first."""
    values = {"message_id": message_id, "unit_code": unit_code, "taken_at": now, "taken_by": actor}
    inserted = await insert_or_ignore(conn, takes, takes.c.message_id, takes.c.unit_code).execute(
        conn, values
    )
    if inserted.rowcount:
        return now, True
    taken_at = (
        await conn.execute(
            sa.select(takes.c.taken_at).where(
                takes.c.message_id == message_id, takes.c.unit_code == unit_code
            )
        )
    ).scalar_one()
    return taken_at, False


@dataclass(frozen=True, kw_only=True)
class Waiting:
    message_id: str
    unit_code: str
    document_id: str
    sender: str
    received_at: dt.datetime
    taken_at: dt.datetime | None
    taken_by: str | None


async def handed(
    conn: AsyncConnection,
    *,
    waiting_only: bool,
    unit_code: str | None,
    after: tuple[dt.datetime, str, str] | None,
    limit: int,
) -> list[Waiting]:
    """Received documents per local unit, oldest first, with whether and when each unit's system
    took it; ``after``: the (received_at, message id, unit) of the previous page's last."""
    query = (
        sa.select(
            messages.c.id,
            recipients.c.unit_code,
            messages.c.document_id,
            messages.c.sender,
            messages.c.created_at,
            takes.c.taken_at,
            takes.c.taken_by,
        )
        .join(recipients, recipients.c.message_id == messages.c.id)
        .outerjoin(
            takes,
            sa.and_(
                takes.c.message_id == messages.c.id, takes.c.unit_code == recipients.c.unit_code
            ),
        )
        .where(messages.c.direction == "in", messages.c.kind == "document")
    )
    if waiting_only:
        query = query.where(takes.c.taken_at.is_(None))
    if unit_code is not None:
        query = query.where(recipients.c.unit_code == unit_code)
    if after is not None:
        query = query.where(
            sa.tuple_(messages.c.created_at, messages.c.id, recipients.c.unit_code) > after
        )
    rows = await conn.execute(
        query.order_by(messages.c.created_at, messages.c.id, recipients.c.unit_code).limit(limit)
    )
    return [
        Waiting(
            message_id=row.id,
            unit_code=row.unit_code,
            document_id=row.document_id,
            sender=row.sender,
            received_at=row.created_at,
            taken_at=row.taken_at,
            taken_by=row.taken_by,
        )
        for row in rows
    ]
