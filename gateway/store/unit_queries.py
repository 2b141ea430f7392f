"""Units and their certificates: the registry (``docgw unit``, the API) and the channel's
directory (its sync: store/directory.py). Functions take an open connection (the caller owns the
transaction) and return records."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.text_search import LIKE_ESCAPE, code_prefix_pattern, fold, like_patterns
from gateway.store import current_certificate
from gateway.store.direct import Statement
from gateway.store.records import (
    CertificateRecord,
    UnitRecord,
    aware,
)
from gateway.store.tables import (
    unit_certificates,
    units,
)

# ------------------------------------------------------------------------------------ units


def _unit(row: Any) -> UnitRecord:
    return UnitRecord(
        code=row.code,
        name=row.name,
        code_qd20=row.code_qd20,
        parent_code=row.parent_code,
        channel=row.channel,
        secure_endpoint=row.secure_endpoint,
        allows_tuyet_mat=row.allows_tuyet_mat,
        is_local=row.is_local,
        active=row.active,
        replaced_by=row.replaced_by,
    )


async def upsert_unit(
    conn: AsyncConnection,
    unit: UnitRecord,
    *,
    now: dt.datetime,
    only: Iterable[str] | None = None,
) -> bool:
    """Insert or update; True when the unit is new. ``only``: the columns an update writes (None:
    all of them), so that an update leaves what it was not given — and what another transaction
    changed meanwhile — as it is. A new unit is inserted whole."""
    values = {
        "name": unit.name,
        "name_folded": fold(unit.name),
        "code_qd20": unit.code_qd20,
        "parent_code": unit.parent_code,
        "channel": unit.channel,
        "secure_endpoint": unit.secure_endpoint,
        "allows_tuyet_mat": unit.allows_tuyet_mat,
        "is_local": unit.is_local,
        "active": unit.active,
        "updated_at": now,
    }
    changes = values
    if only is not None:
        wanted = {*only, "updated_at"}
        if "name" in wanted:
            wanted.add("name_folded")
        if not wanted <= values.keys():
            raise ValueError(f"not unit columns: {sorted(wanted - values.keys())}")
        changes = {name: value for name, value in values.items() if name in wanted}
    result = await conn.execute(units.update().where(units.c.code == unit.code).values(**changes))
    if result.rowcount:
        return False
    await conn.execute(units.insert().values(code=unit.code, created_at=now, **values))
    return True


_UNIT = Statement(sa.select(units).where(units.c.code == sa.bindparam("code")))
_UNITS = sa.select(units).where(units.c.code.in_(sa.bindparam("codes", expanding=True)))
#: Up to this many units are read one statement each (a document's usual recipients, a status's
#: one): a direct statement costs a fraction of SQLAlchemy's one IN-list statement.
_UNITS_ONE_BY_ONE = 4


async def get_unit(conn: AsyncConnection, code: str) -> UnitRecord | None:
    row = (await _UNIT.execute(conn, {"code": code})).one_or_none()
    return _unit(row) if row is not None else None


async def get_units(conn: AsyncConnection, codes: Iterable[str]) -> dict[str, UnitRecord]:
    wanted = set(codes)
    if len(wanted) > _UNITS_ONE_BY_ONE:
        rows = (await conn.execute(_UNITS, {"codes": sorted(wanted)})).all()
        return {row.code: _unit(row) for row in rows}
    found = [await get_unit(conn, code) for code in sorted(wanted)]
    return {unit.code: unit for unit in found if unit is not None}


async def list_units(
    conn: AsyncConnection,
    *,
    text: str | None,
    after: str | None,
    limit: int,
    parent: str | None = None,
) -> list[UnitRecord]:
    """Units by code. ``text``: a code that starts with it (any case) or a name that holds each
    of its words, accents and case aside (``lao cai`` finds ``Lào Cai``); ``parent``: that
    unit's children."""
    query = sa.select(units).order_by(units.c.code).limit(limit)
    if text and text.strip():
        prefix = code_prefix_pattern(text)
        matches: list[sa.ColumnElement[bool]] = [
            units.c.code.ilike(prefix, escape=LIKE_ESCAPE),
            units.c.code_qd20.ilike(prefix, escape=LIKE_ESCAPE),
        ]
        words = like_patterns(text)  # none when the text is only marks
        if words:
            matches.append(
                sa.and_(*(units.c.name_folded.like(word, escape=LIKE_ESCAPE) for word in words))
            )
        query = query.where(sa.or_(*matches))
    if parent:
        query = query.where(units.c.parent_code == parent)
    if after:
        query = query.where(units.c.code > after)
    return [_unit(row) for row in (await conn.execute(query)).all()]


async def add_certificate(
    conn: AsyncConnection, record: CertificateRecord, *, now: dt.datetime
) -> bool:
    exists = await conn.scalar(
        sa.select(unit_certificates.c.fingerprint_sha256).where(
            unit_certificates.c.fingerprint_sha256 == record.fingerprint_sha256
        )
    )
    if exists:
        return False
    await conn.execute(
        unit_certificates.insert().values(
            fingerprint_sha256=record.fingerprint_sha256,
            unit_code=record.unit_code,
            pem=record.pem,
            subject=record.subject,
            not_after=record.not_after,
            added_at=now,
        )
    )
    return True


async def certificate_owner(conn: AsyncConnection, fingerprint_sha256: str) -> str | None:
    return await conn.scalar(
        sa.select(unit_certificates.c.unit_code).where(
            unit_certificates.c.fingerprint_sha256 == fingerprint_sha256
        )
    )


#: Oldest first, in the total order of :mod:`gateway.store.current_certificate` (the fingerprint
#: breaks a tie of ``added_at``); each marked retired or not (rollover).
_CERTIFICATES = (
    sa.select(
        unit_certificates,
        current_certificate.retired(
            unit_certificates, sa.bindparam("now"), sa.bindparam("retire_before")
        ).label("retired"),
    )
    .where(unit_certificates.c.unit_code == sa.bindparam("unit_code"))
    .order_by(unit_certificates.c.added_at, unit_certificates.c.fingerprint_sha256)
)


def _at(now: dt.datetime, overlap: dt.timedelta) -> dict[str, dt.datetime]:
    return {"now": now, "retire_before": now - overlap}


async def certificates(
    conn: AsyncConnection,
    unit_code: str,
    *,
    now: dt.datetime | None = None,
    overlap: dt.timedelta = dt.timedelta(0),
) -> list[CertificateRecord]:
    """A unit's certificates, oldest first; ``retired`` as at ``now`` (None: the present) with
    the rollover ``overlap``."""
    at = _at(now or dt.datetime.now(dt.UTC), overlap)
    rows = (await conn.execute(_CERTIFICATES, {"unit_code": unit_code, **at})).all()
    return [_certificate(row) for row in rows]


def _certificate(row: Any) -> CertificateRecord:
    return CertificateRecord(
        fingerprint_sha256=row.fingerprint_sha256,
        unit_code=row.unit_code,
        pem=row.pem,
        subject=row.subject,
        not_after=aware(row.not_after),
        revoked=row.revoked_at is not None,
        revoked_reason=row.revoked_reason,
        added_at=aware(row.added_at),
        retired=bool(row.retired),
    )


_SENDER_CERTIFICATES = Statement(
    sa.select(
        units.c.active,
        unit_certificates,
        current_certificate.retired(
            unit_certificates, sa.bindparam("now"), sa.bindparam("retire_before")
        ).label("retired"),
    )
    .select_from(units.outerjoin(unit_certificates, unit_certificates.c.unit_code == units.c.code))
    .where(units.c.code == sa.bindparam("code"))
    .order_by(unit_certificates.c.added_at)
)


@dataclass(frozen=True, kw_only=True)
class SenderCertificates:
    """A sender's registry entry as intake needs it: whether it is a known, active unit, and
    its registered certificates (revoked and retired ones included, marked)."""

    active: bool
    certificates: tuple[CertificateRecord, ...]


async def sender_certificates(
    conn: AsyncConnection, code: str, *, now: dt.datetime, overlap: dt.timedelta
) -> SenderCertificates | None:
    """None when the unit is not in the registry. One statement: this runs for every package."""
    rows = (await _SENDER_CERTIFICATES.execute(conn, {"code": code, **_at(now, overlap)})).all()
    if not rows:
        return None
    return SenderCertificates(
        active=bool(rows[0].active),
        certificates=tuple(_certificate(row) for row in rows if row.fingerprint_sha256),
    )
