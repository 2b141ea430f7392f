"""Named queries of the console's people (``users``) and their sessions (``console_sessions``).
The caller owns the transaction, as in the other query modules."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.tables import console_sessions, users


@dataclass(frozen=True, kw_only=True)
class UserRecord:
    name: str
    role: str
    units: tuple[str, ...]
    password_hash: str
    language: str
    failed_logins: int
    locked_until: dt.datetime | None
    must_change_password: bool
    created_at: dt.datetime
    disabled_at: dt.datetime | None


@dataclass(frozen=True, kw_only=True)
class SessionRecord:
    user: UserRecord
    csrf_token: str
    unit_code: str | None
    created_at: dt.datetime
    expires_at: dt.datetime
    seen_at: dt.datetime


def _user(row: Any) -> UserRecord:
    return UserRecord(
        name=row.name,
        role=row.role,
        units=tuple(row.units or ()),
        password_hash=row.password_hash,
        language=row.language,
        failed_logins=row.failed_logins,
        locked_until=row.locked_until,
        must_change_password=bool(row.must_change_password),
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


async def insert_user(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(users.insert().values(failed_logins=0, **values))


async def get_user(conn: AsyncConnection, name: str) -> UserRecord | None:
    row = (await conn.execute(sa.select(users).where(users.c.name == name))).one_or_none()
    return None if row is None else _user(row)


async def list_users(conn: AsyncConnection) -> list[UserRecord]:
    return [_user(r) for r in (await conn.execute(sa.select(users).order_by(users.c.name))).all()]


async def update_user(conn: AsyncConnection, name: str, **values: Any) -> bool:
    result = await conn.execute(users.update().where(users.c.name == name).values(**values))
    return bool(result.rowcount)


async def record_failed_login(
    conn: AsyncConnection, name: str, *, lock_after: int, locked_until: dt.datetime
) -> None:
    """One more failure in a row; the account locks (until ``locked_until``) at ``lock_after``."""
    await conn.execute(
        users.update()
        .where(users.c.name == name)
        .values(
            failed_logins=users.c.failed_logins + 1,
            locked_until=sa.case(
                (users.c.failed_logins + 1 >= lock_after, locked_until),
                else_=users.c.locked_until,
            ),
        )
    )


async def insert_session(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(console_sessions.insert().values(**values))


async def get_session(conn: AsyncConnection, id_sha256: str) -> SessionRecord | None:
    row = (
        await conn.execute(
            sa.select(
                console_sessions.c.csrf_token,
                console_sessions.c.unit_code,
                console_sessions.c.created_at.label("session_created_at"),
                console_sessions.c.expires_at,
                console_sessions.c.seen_at,
                users,
            )
            .join(users, users.c.name == console_sessions.c.user_name)
            .where(console_sessions.c.id_sha256 == id_sha256)
        )
    ).one_or_none()
    if row is None:
        return None
    return SessionRecord(
        user=_user(row),
        csrf_token=row.csrf_token,
        unit_code=row.unit_code,
        created_at=row.session_created_at,
        expires_at=row.expires_at,
        seen_at=row.seen_at,
    )


async def touch_session(conn: AsyncConnection, id_sha256: str, **values: Any) -> None:
    await conn.execute(
        console_sessions.update().where(console_sessions.c.id_sha256 == id_sha256).values(**values)
    )


async def delete_session(conn: AsyncConnection, id_sha256: str) -> None:
    await conn.execute(console_sessions.delete().where(console_sessions.c.id_sha256 == id_sha256))


async def delete_sessions_of(conn: AsyncConnection, name: str, *, keep: str | None = None) -> None:
    """Every session of a person (but ``keep``): on disable, password reset or change."""
    query = console_sessions.delete().where(console_sessions.c.user_name == name)
    if keep is not None:
        query = query.where(console_sessions.c.id_sha256 != keep)
    await conn.execute(query)


async def delete_expired_sessions(conn: AsyncConnection, *, now: dt.datetime) -> int:
    result = await conn.execute(
        console_sessions.delete().where(console_sessions.c.expires_at <= now)
    )
    return int(result.rowcount or 0)
