"""Webhook endpoints and their delivery state (one row each: delivery follows the feed)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.tables import events, webhook_endpoints


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    id: str
    url: str
    unit_code: str | None
    secret: str
    #: The last event delivered (a feed cursor).
    position: int
    failures: int
    next_attempt_at: dt.datetime | None
    last_error: str | None
    last_attempt_at: dt.datetime | None
    last_delivered_at: dt.datetime | None
    created_at: dt.datetime
    created_by: str
    #: Events after ``position`` for it (known to the feed): what waits.
    pending: int = 0


def _endpoint(row: Any, pending: int = 0) -> Endpoint:
    return Endpoint(
        id=row.id,
        url=row.url,
        unit_code=row.unit_code,
        secret=row.secret,
        position=row.position,
        failures=row.failures,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        last_attempt_at=row.last_attempt_at,
        last_delivered_at=row.last_delivered_at,
        created_at=row.created_at,
        created_by=row.created_by,
        pending=pending,
    )


async def insert(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(webhook_endpoints.insert().values(failures=0, **values))


async def delete(conn: AsyncConnection, endpoint_id: str) -> bool:
    result = await conn.execute(
        webhook_endpoints.delete().where(webhook_endpoints.c.id == endpoint_id)
    )
    return bool(result.rowcount)


def _for_endpoint(position: Any, unit_code: Any) -> Any:
    """Events after ``position`` that an endpoint of ``unit_code`` (NULL: all) receives."""
    return sa.and_(
        events.c.position > position,
        sa.or_(unit_code.is_(None), events.c.unit_code == unit_code),
    )


async def listing(conn: AsyncConnection) -> list[Endpoint]:
    pending = (
        sa.select(sa.func.count())
        .where(_for_endpoint(webhook_endpoints.c.position, webhook_endpoints.c.unit_code))
        .scalar_subquery()
    )
    rows = await conn.execute(
        sa.select(webhook_endpoints, pending.label("pending")).order_by(
            webhook_endpoints.c.created_at, webhook_endpoints.c.id
        )
    )
    return [_endpoint(row, row.pending) for row in rows]


async def get(conn: AsyncConnection, endpoint_id: str) -> Endpoint | None:
    row = (
        await conn.execute(
            sa.select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
        )
    ).one_or_none()
    return None if row is None else _endpoint(row)


async def due(conn: AsyncConnection, *, now: dt.datetime) -> list[Endpoint]:
    rows = await conn.execute(
        sa.select(webhook_endpoints)
        .where(
            sa.or_(
                webhook_endpoints.c.next_attempt_at.is_(None),
                webhook_endpoints.c.next_attempt_at <= now,
            )
        )
        .order_by(webhook_endpoints.c.id)
    )
    return [_endpoint(row) for row in rows]


async def delivered(
    conn: AsyncConnection, endpoint_id: str, position: int, *, now: dt.datetime
) -> None:
    await conn.execute(
        webhook_endpoints.update()
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(
            position=position,
            failures=0,
            next_attempt_at=None,
            last_error=None,
            last_attempt_at=now,
            last_delivered_at=now,
        )
    )


async def failed(
    conn: AsyncConnection,
    endpoint_id: str,
    *,
    failures: int,
    error: str,
    retry_at: dt.datetime,
    now: dt.datetime,
) -> None:
    await conn.execute(
        webhook_endpoints.update()
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(failures=failures, last_error=error, next_attempt_at=retry_at, last_attempt_at=now)
    )


async def rewind(conn: AsyncConnection, endpoint_id: str, position: int) -> bool:
    """Deliver again every event after ``position`` (at once: any backoff is cleared)."""
    result = await conn.execute(
        webhook_endpoints.update()
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(position=position, next_attempt_at=None, failures=0)
    )
    return bool(result.rowcount)
