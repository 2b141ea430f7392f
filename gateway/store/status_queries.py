"""Status events (QCVN 102's business statuses): the document a received status is about,
the events themselves, and a recipient's business status."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from envelopes.reading import PackageKind
from gateway.domain.direction import Direction
from gateway.store.direct import Statement
from gateway.store.records import (
    dicts,
)
from gateway.store.tables import (
    messages,
    recipients,
    status_events,
)

# ---------------------------------------------------------------------------- status events


@dataclass(frozen=True, kw_only=True)
class StatusTarget:
    """The outgoing document a received status is about, and the reporting unit's recipient row
    on it (None when that unit is not one of its recipients)."""

    message_id: str
    recipient_id: int | None
    business_status: str | None


_STATUS_TARGET = Statement(
    sa.select(messages.c.id, recipients.c.id, recipients.c.business_status)
    .select_from(
        messages.outerjoin(
            recipients,
            sa.and_(
                recipients.c.message_id == messages.c.id,
                recipients.c.unit_code == sa.bindparam("reporter"),
            ),
        )
    )
    .where(
        messages.c.direction == Direction.OUT,
        messages.c.kind == PackageKind.DOCUMENT,
        messages.c.document_id == sa.bindparam("document_id"),
    )
    .order_by(messages.c.created_at.desc())
    .limit(1)
)


async def find_document_recipient(
    conn: AsyncConnection, *, document_id: str, reporter: str
) -> StatusTarget | None:
    """The latest outgoing document with this DocumentId and the reporter's recipient row, in one
    statement (a status arrives for every document: this is on the hot path)."""
    params = {"document_id": document_id, "reporter": reporter}
    row = (await _STATUS_TARGET.execute(conn, params)).first()
    if row is None:
        return None
    return StatusTarget(message_id=row[0], recipient_id=row[1], business_status=row[2])


async def find_received_document(
    conn: AsyncConnection, *, document_id: str, sender: str | None = None
) -> str | None:
    query = sa.select(messages.c.id).where(
        messages.c.direction == Direction.IN,
        messages.c.kind == PackageKind.DOCUMENT,
        messages.c.document_id == document_id,
    )
    if sender:
        query = query.where(messages.c.sender == sender)
    return await conn.scalar(query.limit(1))


_INSERT_STATUS_EVENT = Statement(status_events.insert())


async def insert_status_event(conn: AsyncConnection, **values: Any) -> None:
    await _INSERT_STATUS_EVENT.execute(conn, values)


_SET_BUSINESS_STATUS = Statement(
    recipients.update()
    .where(recipients.c.id == sa.bindparam("recipient_id"))
    .values(
        business_status=sa.bindparam("code"),
        business_updated_at=sa.bindparam("at"),
        updated_at=sa.bindparam("at"),
    )
)


async def set_business_status(
    conn: AsyncConnection, recipient_id: int, code: str, *, now: dt.datetime
) -> None:
    params = {"recipient_id": recipient_id, "code": code, "at": now}
    await _SET_BUSINESS_STATUS.execute(conn, params)


async def unmatched_status_events(conn: AsyncConnection, limit: int = 100) -> list[dict[str, Any]]:
    return await dicts(
        conn,
        sa.select(status_events)
        .where(status_events.c.message_id.is_(None))
        .order_by(status_events.c.id.desc())
        .limit(limit),
    )


async def status_event_counts(conn: AsyncConnection) -> list[tuple[str, str, int]]:
    rows = (
        await conn.execute(
            sa.select(
                status_events.c.direction, status_events.c.status_code, sa.func.count()
            ).group_by(status_events.c.direction, status_events.c.status_code)
        )
    ).all()
    return [(row[0], row[1], int(row[2])) for row in rows]
