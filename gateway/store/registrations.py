"""Unit requests (registration with approval), the registry's version history, and the
registry's own switches: a unit's active flag and a certificate's revocation."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.records import UnitRecord
from gateway.store.tables import unit_certificates, unit_requests, unit_versions, units

PENDING, APPROVED, REFUSED = "pending", "approved", "refused"


async def insert_request(conn: AsyncConnection, **values: Any) -> int:
    result = await conn.execute(unit_requests.insert().values(state=PENDING, **values))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def get_request(conn: AsyncConnection, request_id: int) -> Mapping[str, Any] | None:
    row = (
        await conn.execute(sa.select(unit_requests).where(unit_requests.c.id == request_id))
    ).first()
    return dict(row._mapping) if row is not None else None


async def list_requests(
    conn: AsyncConnection, *, state: str | None, requested_for: str | None, limit: int
) -> list[Mapping[str, Any]]:
    """Newest first; ``requested_for``: only the requests a member made for that unit."""
    query = sa.select(unit_requests).order_by(unit_requests.c.id.desc()).limit(limit)
    if state is not None:
        query = query.where(unit_requests.c.state == state)
    if requested_for is not None:
        query = query.where(unit_requests.c.requested_for == requested_for)
    return [dict(row._mapping) for row in (await conn.execute(query)).all()]


async def decide_request(
    conn: AsyncConnection,
    request_id: int,
    *,
    state: str,
    decided_by: str,
    reason: str,
    now: dt.datetime,
) -> bool:
    """Approve or refuse a pending request; False when it was not pending (another admin decided
    it first: one UPDATE guarded by the state, so two decisions at once decide once)."""
    result = await conn.execute(
        unit_requests.update()
        .where(unit_requests.c.id == request_id, unit_requests.c.state == PENDING)
        .values(state=state, decided_by=decided_by, decided_at=now, reason=reason)
    )
    return bool(result.rowcount)


async def set_axis_outcome(conn: AsyncConnection, request_id: int, outcome: str) -> None:
    await conn.execute(
        unit_requests.update().where(unit_requests.c.id == request_id).values(axis_outcome=outcome)
    )


async def add_version(
    conn: AsyncConnection,
    unit: UnitRecord,
    *,
    action: str,
    changed_by: str,
    reason: str | None,
    now: dt.datetime,
) -> int:
    """Record the unit as it is after a change. Called in the transaction that wrote the unit's
    row (which holds that row's lock on PostgreSQL), so the next number is this one's alone."""
    latest = await conn.scalar(
        sa.select(sa.func.max(unit_versions.c.version)).where(unit_versions.c.code == unit.code)
    )
    version = int(latest or 0) + 1
    await conn.execute(
        unit_versions.insert().values(
            code=unit.code,
            version=version,
            action=action,
            unit=dataclasses.asdict(unit),
            changed_by=changed_by,
            changed_at=now,
            reason=reason,
        )
    )
    return version


async def unit_history(conn: AsyncConnection, code: str) -> list[Mapping[str, Any]]:
    """Every recorded version of a unit, newest first."""
    query = (
        sa.select(unit_versions)
        .where(unit_versions.c.code == code)
        .order_by(unit_versions.c.version.desc())
    )
    return [dict(row._mapping) for row in (await conn.execute(query)).all()]


async def set_active(conn: AsyncConnection, code: str, *, active: bool, now: dt.datetime) -> bool:
    """Deactivate or reactivate a unit; False when it already was so (or does not exist)."""
    result = await conn.execute(
        units.update()
        .where(units.c.code == code, units.c.active.is_(not active))
        .values(active=active, updated_at=now)
    )
    return bool(result.rowcount)


async def revoke_certificate(
    conn: AsyncConnection, fingerprint_sha256: str, *, reason: str, now: dt.datetime
) -> str | None:
    """Revoke a certificate (``reason``: why, kept beside it); the unit it belongs to, or None
    when it is unknown or already revoked."""
    unit_code = await conn.scalar(
        sa.select(unit_certificates.c.unit_code).where(
            unit_certificates.c.fingerprint_sha256 == fingerprint_sha256,
            unit_certificates.c.revoked_at.is_(None),
        )
    )
    if unit_code is None:
        return None
    await conn.execute(
        unit_certificates.update()
        .where(unit_certificates.c.fingerprint_sha256 == fingerprint_sha256)
        .values(revoked_at=now, revoked_reason=reason[:500])
    )
    return str(unit_code)
