"""API tokens: stored by the SHA-256 of their value, revoked in place."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
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
) -> None:
    await conn.execute(
        tokens.insert().values(
            name=name, role=role, unit_code=unit_code, token_sha256=token_sha256, created_at=now
        )
    )


_LIVE_TOKEN = Statement(
    sa.select(tokens).where(
        tokens.c.token_sha256 == sa.bindparam("sha256"), tokens.c.revoked_at.is_(None)
    )
)


async def token_by_hash(conn: AsyncConnection, token_sha256: str) -> Any:
    return (await _LIVE_TOKEN.execute(conn, {"sha256": token_sha256})).one_or_none()


async def revoke_token(conn: AsyncConnection, name: str, *, now: dt.datetime) -> bool:
    result = await conn.execute(
        tokens.update()
        .where(tokens.c.name == name, tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)


@dataclass(frozen=True, kw_only=True)
class TokenRecord:
    """An API token as the admin page lists it (never its hash)."""

    name: str
    role: str
    unit_code: str | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None


async def list_tokens(conn: AsyncConnection) -> list[TokenRecord]:
    query = sa.select(
        tokens.c.name, tokens.c.role, tokens.c.unit_code, tokens.c.created_at, tokens.c.revoked_at
    ).order_by(tokens.c.revoked_at.is_not(None), tokens.c.name)
    return [TokenRecord(**row._asdict()) for row in (await conn.execute(query)).all()]
