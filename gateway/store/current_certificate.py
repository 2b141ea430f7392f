"""Which of a unit's certificates count: the *current* one (sealing for the unit) and the
*verifying* ones (the unit's packages verify against them).

One definition, in SQL: looked up for one unit when a classified copy is sealed
(:func:`current_pem`), and correlated with each claimed recipient when a worker checks that the
copy it is about to send is sealed for it (``queries.claim_due``). "Newest" is one total order —
``added_at``, then the fingerprint for a tie — or a copy sealed for one certificate would be held
at every claim for not being sealed for the other (it happened once, when the two were written
apart).

Rollover: a unit may register a new certificate before the old one expires. The newest
unrevoked, unexpired certificate is current at once; an older unrevoked one still *verifies* until
a newer one has been registered for ``overlap`` (``[certificates] overlap_days``), then it is
*retired* (:func:`retired`, read by ``unit_queries.sender_certificates`` for every package). The
current certificate is never retired: nothing newer counts.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.tables import unit_certificates


def _counts(table: Any, now: Any) -> sa.ColumnElement[bool]:
    """Unrevoked and unexpired at ``now``."""
    return sa.and_(table.c.revoked_at.is_(None), table.c.not_after > now)


def _newer(table: Any, than: Any) -> sa.ColumnElement[bool]:
    """``table``'s row comes before ``than``'s in the order of :func:`current` (newest first)."""
    return sa.or_(
        table.c.added_at > than.c.added_at,
        sa.and_(
            table.c.added_at == than.c.added_at,
            table.c.fingerprint_sha256 > than.c.fingerprint_sha256,
        ),
    )


def current(unit_code: Any, now: Any, *columns: Any) -> sa.Select[Any]:
    """``columns`` of ``unit_code``'s current certificate at ``now`` (values, bind parameters or
    columns of an enclosing query to correlate with)."""
    return (
        sa.select(*columns)
        .where(unit_certificates.c.unit_code == unit_code, _counts(unit_certificates, now))
        .order_by(
            unit_certificates.c.added_at.desc(), unit_certificates.c.fingerprint_sha256.desc()
        )
        .limit(1)
    )


def retired(certificate: Any, now: Any, retire_before: Any) -> sa.ColumnElement[bool]:
    """``certificate`` (a table or alias of ``unit_certificates``) is retired at ``now``: a newer
    certificate of its unit that counts was added at or before ``retire_before`` (= ``now`` minus
    the overlap)."""
    newer = unit_certificates.alias("newer")
    return sa.exists().where(
        newer.c.unit_code == certificate.c.unit_code,
        _counts(newer, now),
        _newer(newer, certificate),
        newer.c.added_at <= retire_before,
    )


_CURRENT_PEM = current(sa.bindparam("unit_code"), sa.bindparam("now"), unit_certificates.c.pem)


async def current_pem(conn: AsyncConnection, unit_code: str, now: dt.datetime) -> str | None:
    """The PEM of ``unit_code``'s current certificate, or None when it has none."""
    pem: str | None = await conn.scalar(_CURRENT_PEM, {"unit_code": unit_code, "now": now})
    return pem
