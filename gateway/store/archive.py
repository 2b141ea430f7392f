"""SQL of the archive: which messages need a container, archive items, legal hold, retention."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.lifecycle import TransportState
from gateway.store.tables import archive_items, blob_chunks, blobs, messages, recipients

#: Transport states a sent message may still leave: it is archived once none is left.
UNSETTLED = (
    TransportState.QUEUED,
    TransportState.SENDING,
    TransportState.RETRY_SCHEDULED,
    TransportState.UNCONFIRMED,
)


@dataclass(frozen=True, kw_only=True)
class ArchiveItem:
    message_id: str
    container_sha256: str | None
    status_count: int
    timestamped: bool
    archived_at: dt.datetime
    legal_hold: bool
    hold_reason: str | None
    purged_at: dt.datetime | None


def _status_count(message_id: sa.ColumnElement[str]) -> sa.ScalarSelect[int]:
    status = messages.alias("status")
    return (
        sa.select(sa.func.count())
        .where(status.c.related_message_id == message_id, status.c.kind == "status")
        .scalar_subquery()
    )


def _out_of_date() -> sa.ColumnElement[bool]:
    """The item no longer shows the message as it is: a status arrived, or a recipient moved
    (a transition, a business status) since the container was made."""
    moved = sa.exists().where(
        recipients.c.message_id == messages.c.id,
        recipients.c.updated_at > archive_items.c.archived_at,
    )
    return sa.or_(archive_items.c.status_count < _status_count(messages.c.id), moved)


async def due(conn: AsyncConnection, limit: int) -> list[tuple[str, int]]:
    """(message id, its status count) of documents to archive: settled (received, or sent with
    no recipient left in an unsettled state), never archived or out of date, not purged."""
    count = _status_count(messages.c.id)
    unsettled = sa.exists().where(
        recipients.c.message_id == messages.c.id,
        recipients.c.state.in_([s.value for s in UNSETTLED]),
    )
    query = (
        sa.select(messages.c.id, count)
        .select_from(messages.outerjoin(archive_items, archive_items.c.message_id == messages.c.id))
        .where(
            messages.c.kind == "document",
            sa.or_(messages.c.direction == "in", ~unsettled),
            sa.or_(
                archive_items.c.message_id.is_(None),
                sa.and_(archive_items.c.purged_at.is_(None), _out_of_date()),
            ),
        )
        .order_by(messages.c.created_at)
        .limit(limit)
    )
    return [(row[0], int(row[1])) for row in await conn.execute(query)]


async def status_packages(conn: AsyncConnection, message_id: str) -> list[Any]:
    """The status messages about a document, oldest first."""
    rows = await conn.execute(
        sa.select(
            messages.c.id,
            messages.c.direction,
            messages.c.sender,
            messages.c.status_code,
            messages.c.package_sha256,
        )
        .where(messages.c.related_message_id == message_id, messages.c.kind == "status")
        .order_by(messages.c.created_at, messages.c.id)
    )
    return list(rows.all())


async def get(conn: AsyncConnection, message_id: str) -> ArchiveItem | None:
    row = (
        await conn.execute(sa.select(archive_items).where(archive_items.c.message_id == message_id))
    ).first()
    return None if row is None else ArchiveItem(**row._mapping)


async def items(conn: AsyncConnection, *, held_only: bool, limit: int) -> list[ArchiveItem]:
    query = sa.select(archive_items).order_by(archive_items.c.archived_at.desc()).limit(limit)
    if held_only:
        query = query.where(archive_items.c.legal_hold.is_(True))
    return [ArchiveItem(**row._mapping) for row in await conn.execute(query)]


async def store(
    conn: AsyncConnection,
    *,
    message_id: str,
    container_sha256: str,
    status_count: int,
    timestamped: bool,
    now: dt.datetime,
) -> str | None:
    """Insert or replace the message's container; returns the container it replaced."""
    previous = await get(conn, message_id)
    values = {
        "container_sha256": container_sha256,
        "status_count": status_count,
        "timestamped": timestamped,
        "archived_at": now,
    }
    if previous is None:
        await conn.execute(
            archive_items.insert().values(message_id=message_id, legal_hold=False, **values)
        )
        return None
    await conn.execute(
        archive_items.update().where(archive_items.c.message_id == message_id).values(**values)
    )
    replaced = previous.container_sha256
    return replaced if replaced != container_sha256 else None


async def set_hold(
    conn: AsyncConnection, message_id: str, *, hold: bool, reason: str | None
) -> bool:
    result = await conn.execute(
        archive_items.update()
        .where(archive_items.c.message_id == message_id)
        .values(legal_hold=hold, hold_reason=reason)
    )
    return bool(result.rowcount)


async def purgeable(conn: AsyncConnection, *, before: dt.datetime, limit: int) -> list[str]:
    """Containers past retention: of messages created before ``before``, not under legal hold,
    not purged, and current (what changed since archiving is not archived yet)."""
    query = (
        sa.select(archive_items.c.message_id)
        .join(messages, messages.c.id == archive_items.c.message_id)
        .where(
            messages.c.created_at < before,
            archive_items.c.legal_hold.is_(False),
            archive_items.c.purged_at.is_(None),
            archive_items.c.container_sha256.is_not(None),
            ~_out_of_date(),
        )
        .order_by(messages.c.created_at)
        .limit(limit)
    )
    return list(await conn.scalars(query))


async def mark_purged(conn: AsyncConnection, message_id: str, now: dt.datetime) -> str | None:
    """Mark the item purged (guarded: never one under hold); returns its container's blob."""
    item = await get(conn, message_id)
    if item is None or item.legal_hold or item.purged_at is not None:
        return None
    result = await conn.execute(
        archive_items.update()
        .where(
            archive_items.c.message_id == message_id,
            archive_items.c.legal_hold.is_(False),
            archive_items.c.purged_at.is_(None),
        )
        .values(container_sha256=None, purged_at=now)
    )
    return item.container_sha256 if result.rowcount else None


async def delete_container_blob(conn: AsyncConnection, sha256: str) -> None:
    """Delete a container's blob unless anything else still refers to those bytes."""
    referenced = sa.or_(
        sa.exists().where(messages.c.package_sha256 == sha256),
        sa.exists().where(recipients.c.package_sha256 == sha256),
        sa.exists().where(archive_items.c.container_sha256 == sha256),
    )
    if await conn.scalar(sa.select(referenced)):
        return
    chunk_key = await conn.scalar(sa.select(blobs.c.chunk_key).where(blobs.c.sha256 == sha256))
    await conn.execute(blobs.delete().where(blobs.c.sha256 == sha256))
    if chunk_key is not None:
        await conn.execute(blob_chunks.delete().where(blob_chunks.c.chunk_key == chunk_key))
