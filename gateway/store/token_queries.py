"""API tokens: stored by the SHA-256 of their value, revoked in place."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.direct import Statement
from gateway.store.tables import (
    tokens,
)

# ---------------------------------------------------------------------------------- tokens


async def insert_token(
    conn: AsyncConnection,
    *,
    name: str,
    role: str,
    unit_code: str | None,
    token_sha256: str,
    now: dt.datetime,
    expires_at: dt.datetime | None = None,
) -> None:
    await conn.execute(
        tokens.insert().values(
            name=name,
            role=role,
            unit_code=unit_code,
            token_sha256=token_sha256,
            created_at=now,
            expires_at=expires_at,
        )
    )


#: Not revoked, not expired (compared in SQL: the driver's rows carry no time zone on SQLite).
_LIVE_TOKEN = Statement(
    sa.select(tokens).where(
        tokens.c.token_sha256 == sa.bindparam("sha256"),
        tokens.c.revoked_at.is_(None),
        sa.or_(tokens.c.expires_at.is_(None), tokens.c.expires_at > sa.bindparam("now")),
    )
)


async def token_by_hash(conn: AsyncConnection, token_sha256: str, *, now: dt.datetime) -> Any:
    """The live token with this hash: not revoked, and not expired at ``now``."""
    query = {"sha256": token_sha256, "now": now}
    return (await _LIVE_TOKEN.execute(conn, query)).one_or_none()


async def revoke_token(conn: AsyncConnection, name: str, *, now: dt.datetime) -> bool:
    result = await conn.execute(
        tokens.update()
        .where(tokens.c.name == name, tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)


async def list_tokens(conn: AsyncConnection) -> list[Any]:
    """Every token, live ones first, by name (never the hash)."""
    query = sa.select(
        tokens.c.name,
        tokens.c.role,
        tokens.c.unit_code,
        tokens.c.created_at,
        tokens.c.revoked_at,
        tokens.c.expires_at,
    ).order_by(tokens.c.revoked_at.is_not(None), tokens.c.name)
    return list((await conn.execute(query)).all())
