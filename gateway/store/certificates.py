"""The CRLs docgw holds, the registered certificates a CRL refresh checks, and the expiry list."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store import current_certificate
from gateway.store.records import CertificateRecord, aware
from gateway.store.tables import crls, unit_certificates, units


async def keep_crl(
    conn: AsyncConnection,
    *,
    source: str,
    issuer: str,
    this_update: dt.datetime,
    next_update: dt.datetime | None,
    der: bytes,
    now: dt.datetime,
) -> None:
    """Keep ``source``'s latest CRL (an older one read again replaces nothing newer)."""
    values = {
        "issuer": issuer[:500],
        "this_update": this_update,
        "next_update": next_update,
        "der": der,
        "fetched_at": now,
    }
    held = await conn.scalar(sa.select(crls.c.this_update).where(crls.c.source == source))
    if held is None:
        await conn.execute(crls.insert().values(source=source, **values))
    elif aware(held) <= this_update:
        await conn.execute(crls.update().where(crls.c.source == source).values(**values))


async def crl_ders(conn: AsyncConnection) -> list[bytes]:
    return [bytes(der) for der in (await conn.scalars(sa.select(crls.c.der))).all()]


@dataclass(frozen=True, kw_only=True)
class HeldCrl:
    source: str
    issuer: str
    this_update: dt.datetime
    next_update: dt.datetime | None
    fetched_at: dt.datetime


async def held_crls(conn: AsyncConnection) -> list[HeldCrl]:
    rows = await conn.execute(
        sa.select(
            crls.c.source, crls.c.issuer, crls.c.this_update, crls.c.next_update, crls.c.fetched_at
        ).order_by(crls.c.source)
    )
    return [
        HeldCrl(
            source=row.source,
            issuer=row.issuer,
            this_update=aware(row.this_update),
            next_update=aware(row.next_update),
            fetched_at=aware(row.fetched_at),
        )
        for row in rows
    ]


async def unrevoked_certificates(conn: AsyncConnection) -> list[CertificateRecord]:
    """Every registered certificate not revoked yet (what a CRL may revoke)."""
    rows = await conn.execute(
        sa.select(unit_certificates)
        .where(unit_certificates.c.revoked_at.is_(None))
        .order_by(unit_certificates.c.unit_code, unit_certificates.c.added_at)
    )
    return [
        CertificateRecord(
            fingerprint_sha256=row.fingerprint_sha256,
            unit_code=row.unit_code,
            pem=row.pem,
            subject=row.subject,
            not_after=aware(row.not_after),
        )
        for row in rows
    ]


@dataclass(frozen=True, kw_only=True)
class ExpiringRow:
    unit_code: str
    is_local: bool
    fingerprint_sha256: str
    subject: str
    not_after: dt.datetime


async def expiring(
    conn: AsyncConnection, *, now: dt.datetime, before: dt.datetime, overlap: dt.timedelta
) -> list[ExpiringRow]:
    """The certificates of active units that still verify (unrevoked, unexpired, not retired:
    :mod:`gateway.store.current_certificate`) and expire before ``before``, soonest first."""
    rows = await conn.execute(
        sa.select(
            unit_certificates.c.unit_code,
            units.c.is_local,
            unit_certificates.c.fingerprint_sha256,
            unit_certificates.c.subject,
            unit_certificates.c.not_after,
        )
        .join(units, units.c.code == unit_certificates.c.unit_code)
        .where(
            units.c.active.is_(True),
            unit_certificates.c.revoked_at.is_(None),
            unit_certificates.c.not_after > now,
            unit_certificates.c.not_after <= before,
            ~current_certificate.retired(unit_certificates, now, now - overlap),
        )
        .order_by(unit_certificates.c.not_after, unit_certificates.c.unit_code)
    )
    return [
        ExpiringRow(
            unit_code=row.unit_code,
            is_local=bool(row.is_local),
            fingerprint_sha256=row.fingerprint_sha256,
            subject=row.subject,
            not_after=aware(row.not_after),
        )
        for row in rows
    ]
