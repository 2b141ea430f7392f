"""The alerts table and the channels' circuit breakers: the store's side of
gateway/usecases/alerts.py and gateway/usecases/breakers.py, plus the reads their rules need."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.lifecycle import TransportState
from gateway.store import message_queries
from gateway.store.records import aware
from gateway.store.tables import (
    alerts,
    channel_breakers,
    messages,
    recipients,
    unit_certificates,
    units,
)

# ---------------------------------------------------------------------------------------- alerts


@dataclass(frozen=True, kw_only=True)
class AlertRecord:
    id: str
    rule: str
    subject: str
    severity: str
    text_vi: str
    text_en: str
    raised_at: dt.datetime
    last_seen_at: dt.datetime
    resolved_at: dt.datetime | None
    acked_at: dt.datetime | None
    acked_by: str | None
    mail_told: str | None
    webhook_told: str | None
    notify_error: str | None

    @property
    def state(self) -> str:
        return "open" if self.resolved_at is None else "resolved"


def _alert(row: Any) -> AlertRecord:
    return AlertRecord(**{name: getattr(row, name) for name in AlertRecord.__dataclass_fields__})


def open_key(rule: str, subject: str) -> str:
    return f"{rule}|{subject}"


async def open_alerts(conn: AsyncConnection) -> list[AlertRecord]:
    rows = await conn.execute(alerts.select().where(alerts.c.open_key.is_not(None)))
    return [_alert(row) for row in rows]


async def raise_alert(
    conn: AsyncConnection,
    *,
    rule: str,
    subject: str,
    severity: str,
    text_vi: str,
    text_en: str,
    now: dt.datetime,
) -> None:
    """A new open alert (the caller checked there is none open for this rule and subject; the
    unique open_key refuses a second one raised concurrently)."""
    await conn.execute(
        alerts.insert().values(
            id=str(uuid.uuid4()),
            rule=rule,
            subject=subject,
            severity=severity,
            text_vi=text_vi,
            text_en=text_en,
            open_key=open_key(rule, subject),
            raised_at=now,
            last_seen_at=now,
        )
    )


async def still_open(
    conn: AsyncConnection, alert_id: str, *, text_vi: str, text_en: str, now: dt.datetime
) -> None:
    await conn.execute(
        alerts.update()
        .where(alerts.c.id == alert_id)
        .values(last_seen_at=now, text_vi=text_vi, text_en=text_en)
    )


async def resolve(conn: AsyncConnection, alert_id: str, *, now: dt.datetime) -> None:
    await conn.execute(
        alerts.update()
        .where(alerts.c.id == alert_id, alerts.c.open_key.is_not(None))
        .values(open_key=None, resolved_at=now)
    )


async def acknowledge(conn: AsyncConnection, alert_id: str, *, by: str, now: dt.datetime) -> bool:
    result = await conn.execute(
        alerts.update().where(alerts.c.id == alert_id).values(acked_at=now, acked_by=by)
    )
    return bool(result.rowcount)


async def listing(conn: AsyncConnection, *, state: str | None, limit: int) -> list[AlertRecord]:
    """Newest first; ``state``: "open" or "resolved" only."""
    query = alerts.select()
    if state == "open":
        query = query.where(alerts.c.resolved_at.is_(None))
    elif state == "resolved":
        query = query.where(alerts.c.resolved_at.is_not(None))
    rows = await conn.execute(query.order_by(alerts.c.raised_at.desc(), alerts.c.id).limit(limit))
    return [_alert(row) for row in rows]


async def untold(conn: AsyncConnection, column: str, *, limit: int = 100) -> list[AlertRecord]:
    """Alerts whose current state ``column`` (mail_told | webhook_told) has not delivered yet."""
    told = alerts.c[column]
    state = sa.case((alerts.c.resolved_at.is_(None), "open"), else_="resolved")
    rows = await conn.execute(
        alerts.select()
        .where(sa.or_(told.is_(None), told != state))
        .order_by(alerts.c.raised_at, alerts.c.id)
        .limit(limit)
    )
    return [_alert(row) for row in rows]


async def told(
    conn: AsyncConnection, alert_id: str, column: str, state: str, error: str | None
) -> None:
    values: dict[str, Any] = {"notify_error": error}
    if error is None:
        values[column] = state
    await conn.execute(alerts.update().where(alerts.c.id == alert_id).values(**values))


# ----------------------------------------------------------------------- what the rules read


async def recipients_needing_a_person(conn: AsyncConnection) -> dict[str, tuple[int, str]]:
    """failed / held → (how many recipients, the oldest one's message id)."""
    found: dict[str, tuple[int, str]] = {}
    for state in (TransportState.FAILED, TransportState.HELD):
        count = int(
            await conn.scalar(sa.select(sa.func.count()).where(recipients.c.state == state.value))
            or 0
        )
        if count:
            oldest = await conn.scalar(
                sa.select(recipients.c.message_id)
                .where(recipients.c.state == state.value)
                .order_by(recipients.c.updated_at)
                .limit(1)
            )
            found[state.value] = (count, str(oldest))
    return found


async def deadline_breaches(conn: AsyncConnection, *, now: dt.datetime) -> int:
    """Messages with a QĐ 28 deadline passed and not met: the API's ``breached`` filter."""
    conditions = message_queries._conditions(message_queries.MessageFilter(breached_before=now))
    return int(
        await conn.scalar(sa.select(sa.func.count()).select_from(messages).where(*conditions)) or 0
    )


async def partner_certificates_expiring(
    conn: AsyncConnection, *, before: dt.datetime
) -> list[tuple[str, dt.datetime]]:
    """(unit code, not_after) of the registered, unrevoked certificates of active partner units
    that expire before ``before`` — each unit's latest only (an older one may lapse unseen)."""
    latest = (
        sa.select(
            unit_certificates.c.unit_code,
            sa.func.max(unit_certificates.c.not_after).label("not_after"),
        )
        .join(units, units.c.code == unit_certificates.c.unit_code)
        .where(
            unit_certificates.c.revoked_at.is_(None),
            units.c.active.is_(True),
            units.c.is_local.is_(False),
        )
        .group_by(unit_certificates.c.unit_code)
        .subquery()
    )
    rows = await conn.execute(
        sa.select(latest.c.unit_code, latest.c.not_after)
        .where(latest.c.not_after < before)
        .order_by(latest.c.unit_code)
    )
    return [(row.unit_code, aware(row.not_after)) for row in rows]


# -------------------------------------------------------------------------------------- breakers


@dataclass(frozen=True, kw_only=True)
class BreakerRecord:
    channel: str
    unit_code: str
    state: str
    failures: int
    next_at: dt.datetime | None
    opened_at: dt.datetime | None
    last_error: str | None
    changed_by: str | None
    updated_at: dt.datetime


def _breaker(row: Any) -> BreakerRecord:
    fields = BreakerRecord.__dataclass_fields__
    return BreakerRecord(**{name: getattr(row, name) for name in fields})


async def breakers(conn: AsyncConnection) -> list[BreakerRecord]:
    rows = await conn.execute(
        channel_breakers.select().order_by(channel_breakers.c.channel, channel_breakers.c.unit_code)
    )
    return [_breaker(row) for row in rows]


async def breaker_for_update(
    conn: AsyncConnection, channel: str, unit_code: str
) -> BreakerRecord | None:
    row = (
        await conn.execute(
            channel_breakers.select()
            .where(channel_breakers.c.channel == channel, channel_breakers.c.unit_code == unit_code)
            .with_for_update()
        )
    ).one_or_none()
    return None if row is None else _breaker(row)


async def save_breaker(conn: AsyncConnection, channel: str, unit_code: str, **values: Any) -> None:
    """Insert or update the breaker's row with ``values`` (every column but the key)."""
    where = (channel_breakers.c.channel == channel, channel_breakers.c.unit_code == unit_code)
    result = await conn.execute(channel_breakers.update().where(*where).values(**values))
    if not result.rowcount:
        await conn.execute(
            channel_breakers.insert().values(channel=channel, unit_code=unit_code, **values)
        )


async def forget_breaker(conn: AsyncConnection, channel: str, unit_code: str) -> None:
    """Closed with no failure counted: no row (the workers' usual round reads none)."""
    await conn.execute(
        channel_breakers.delete().where(
            channel_breakers.c.channel == channel, channel_breakers.c.unit_code == unit_code
        )
    )


async def take_slot(
    conn: AsyncConnection,
    channel: str,
    unit_code: str,
    *,
    states: Sequence[str],
    now: dt.datetime,
    next_at: dt.datetime,
) -> bool:
    """Move a breaker's ``next_at`` on to ``next_at`` if it has come (and the breaker is in one
    of ``states``): whoever moves it takes the slot (a probe, a drain slice), once across
    processes — a concurrent taker waits for the row, then finds ``next_at`` moved."""
    result = await conn.execute(
        channel_breakers.update()
        .where(
            channel_breakers.c.channel == channel,
            channel_breakers.c.unit_code == unit_code,
            channel_breakers.c.state.in_(list(states)),
            channel_breakers.c.next_at <= now,
        )
        .values(next_at=next_at, updated_at=now)
    )
    return bool(result.rowcount)
