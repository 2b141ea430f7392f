"""SQL of ``docgw import``: file outcomes by content hash, look-ups for deduplication, and the
statuses waiting for their document (status events with no message yet)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.imports import ImportOutcome
from gateway.store.tables import import_files, messages, recipients, status_events, units


@dataclass(frozen=True, kw_only=True)
class PendingStatus:
    """A status event recorded before the document it is about was held."""

    event_id: int
    status_message_id: str | None
    direction: str
    reporter: str
    status_code: str


async def file_outcome(conn: AsyncConnection, sha256: str) -> tuple[str, str | None] | None:
    """(outcome, reason) of a file an earlier run processed, or None."""
    row = (
        await conn.execute(
            sa.select(import_files.c.outcome, import_files.c.reason).where(
                import_files.c.sha256 == sha256
            )
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def record_file(
    conn: AsyncConnection,
    *,
    sha256: str,
    name: str,
    outcome: ImportOutcome,
    reason: str | None,
    message_id: str | None,
    now: dt.datetime,
) -> None:
    await conn.execute(
        import_files.insert().values(
            sha256=sha256,
            name=name[:1000],
            outcome=outcome,
            reason=reason,
            message_id=message_id,
            imported_at=now,
        )
    )


async def local_unit_codes(conn: AsyncConnection) -> set[str]:
    found = await conn.scalars(sa.select(units.c.code).where(units.c.is_local.is_(True)))
    return set(found)


async def find_document(
    conn: AsyncConnection, *, direction: str, sender: str, document_id: str
) -> str | None:
    """A document message already held (sent or received, imported or not)."""
    return await conn.scalar(
        sa.select(messages.c.id)
        .where(
            messages.c.direction == direction,
            messages.c.kind == "document",
            messages.c.sender == sender,
            messages.c.document_id == document_id,
        )
        .limit(1)
    )


async def find_status(
    conn: AsyncConnection,
    *,
    direction: str,
    reporter: str,
    document_id: str,
    code: str,
    reported_at: dt.datetime,
) -> str | None:
    """A status already held. Statuses docgw sent itself carry their time to the microsecond,
    their package to the second: the same second matches."""
    return await conn.scalar(
        sa.select(status_events.c.status_message_id)
        .where(
            status_events.c.direction == direction,
            status_events.c.reporter == reporter,
            status_events.c.document_id == document_id,
            status_events.c.status_code == code,
            status_events.c.reported_at >= reported_at,
            status_events.c.reported_at < reported_at + dt.timedelta(seconds=1),
        )
        .limit(1)
    )


async def document_for_status(
    conn: AsyncConnection, *, document_id: str, reporter: str
) -> str | None:
    """The latest document with this DocumentId that ``reporter`` sent or is a recipient of:
    two senders' documents may share a DocumentId (the real samples do)."""
    involved = sa.or_(
        messages.c.sender == reporter,
        sa.exists().where(
            recipients.c.message_id == messages.c.id, recipients.c.unit_code == reporter
        ),
    )
    found: str | None = await conn.scalar(
        sa.select(messages.c.id)
        .where(messages.c.kind == "document", messages.c.document_id == document_id, involved)
        .order_by(messages.c.created_at.desc())
        .limit(1)
    )
    return found


async def recipient_of(
    conn: AsyncConnection, message_id: str, unit_code: str
) -> tuple[int, str | None] | None:
    """(id, business status) of a message's recipient row for one unit."""
    row = (
        await conn.execute(
            sa.select(recipients.c.id, recipients.c.business_status).where(
                recipients.c.message_id == message_id, recipients.c.unit_code == unit_code
            )
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def pending_statuses(conn: AsyncConnection, document_id: str) -> list[PendingStatus]:
    """Status events about this DocumentId that no document held yet, oldest report first."""
    rows = await conn.execute(
        sa.select(
            status_events.c.id,
            status_events.c.status_message_id,
            status_events.c.direction,
            status_events.c.reporter,
            status_events.c.status_code,
        )
        .where(status_events.c.document_id == document_id, status_events.c.message_id.is_(None))
        .order_by(status_events.c.reported_at, status_events.c.id)
    )
    return [
        PendingStatus(
            event_id=r[0],
            status_message_id=r[1],
            direction=r[2],
            reporter=r[3],
            status_code=r[4],
        )
        for r in rows
    ]


async def attach_status(conn: AsyncConnection, pending: PendingStatus, **values: Any) -> None:
    """Point a pending status event (and its status message) at the document now held."""
    await conn.execute(
        status_events.update().where(status_events.c.id == pending.event_id).values(**values)
    )
    if pending.status_message_id is not None:
        await conn.execute(
            messages.update()
            .where(messages.c.id == pending.status_message_id)
            .values(related_message_id=values["message_id"])
        )
