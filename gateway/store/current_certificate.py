"""The unit's current certificate: its newest registered, unrevoked, unexpired one.

One definition, in SQL: looked up for one unit when a classified copy is sealed
(:func:`current_pem`), and correlated with each claimed recipient when a worker checks that the
copy it is about to send is sealed for it (``queries.claim_due``). "Newest" is one total order —
``added_at``, then the fingerprint for a tie — or a copy sealed for one certificate would be held
at every claim for not being sealed for the other (it happened once, when the two were written
apart).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.tables import unit_certificates


def current(unit_code: Any, now: Any, *columns: Any) -> sa.Select[Any]:
    """``columns`` of ``unit_code``'s current certificate at ``now`` (values, bind parameters or
    columns of an enclosing query to correlate with)."""
    return (
        sa.select(*columns)
        .where(
            unit_certificates.c.unit_code == unit_code,
            unit_certificates.c.revoked_at.is_(None),
            unit_certificates.c.not_after > now,
        )
        .order_by(
            unit_certificates.c.added_at.desc(), unit_certificates.c.fingerprint_sha256.desc()
        )
        .limit(1)
    )


_CURRENT_PEM = current(sa.bindparam("unit_code"), sa.bindparam("now"), unit_certificates.c.pem)


async def current_pem(conn: AsyncConnection, unit_code: str, now: dt.datetime) -> str | None:
    """The PEM of ``unit_code``'s current certificate, or None when it has none."""
    pem: str | None = await conn.scalar(_CURRENT_PEM, {"unit_code": unit_code, "now": now})
    return pem
