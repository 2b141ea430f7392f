"""The console's "Now" page, read from the database: the backlog by transport state, channel and
age, the recipients that need a person, delivery attempts per hour. A member sees only what its
unit sent or received: the same conditions as the message list (MessageFilter.visible_to_unit)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from envelopes.reading import PackageKind
from gateway.domain.direction import Direction
from gateway.domain.lifecycle import TransportState
from gateway.domain.retry import Outcome
from gateway.store.latency import seconds_between
from gateway.store.message_queries import MessageFilter, message_conditions
from gateway.store.tables import attempts, messages, recipients

#: Recipients not yet done with: the backlog.
OPEN_STATES = tuple(
    s.value for s in TransportState if s not in (TransportState.SENT, TransportState.CANCELLED)
)
#: Recipients a person has to look at.
NEEDS_A_PERSON = (
    TransportState.FAILED.value,
    TransportState.HELD.value,
    TransportState.UNCONFIRMED.value,
)
#: Age buckets of the backlog, by the message's creation: (label, at most this old).
AGE_BUCKETS = (("<1h", dt.timedelta(hours=1)), ("1-24h", dt.timedelta(hours=24)))
OLDEST_BUCKET = ">24h"


@dataclass(frozen=True, kw_only=True)
class StuckRecipient:
    message_id: str
    subject: str | None
    document_id: str
    classification: str
    unit_code: str
    channel: str | None
    state: str
    last_error: str | None
    attempt_count: int
    updated_at: dt.datetime


#: The outer queries read aliases, so that the visibility subquery (on the tables themselves)
#: is not correlated with them.
m = messages.alias("m")
r = recipients.alias("r")
a = attempts.alias("a")


def _visible(unit: str | None) -> list[Any]:
    if unit is None:
        return []
    visible = sa.select(messages.c.id).where(
        *message_conditions(MessageFilter(visible_to_unit=unit))
    )
    return [m.c.id.in_(visible)]


async def backlog(
    conn: AsyncConnection, *, now: dt.datetime, unit: str | None
) -> list[tuple[str, str, str, int]]:
    """(state, channel, age bucket, recipients) of every open recipient."""
    age = sa.case(
        *((m.c.created_at > now - limit, label) for label, limit in AGE_BUCKETS),
        else_=OLDEST_BUCKET,
    ).label("age")
    query = (
        sa.select(r.c.state, r.c.channel, age, sa.func.count())
        .join(m, m.c.id == r.c.message_id)
        .where(r.c.state.in_(OPEN_STATES), *_visible(unit))
        .group_by(r.c.state, r.c.channel, age)
    )
    rows = (await conn.execute(query)).all()
    return [(r[0], r[1] or "", r[2], int(r[3])) for r in rows]


async def stuck_recipients(
    conn: AsyncConnection, *, unit: str | None, limit: int = 50
) -> list[StuckRecipient]:
    """Failed, held and unconfirmed recipients with their reasons, the latest change first."""
    query = (
        sa.select(
            r.c.message_id,
            m.c.subject,
            m.c.document_id,
            m.c.classification,
            r.c.unit_code,
            r.c.channel,
            r.c.state,
            r.c.last_error,
            r.c.attempt_count,
            r.c.updated_at,
        )
        .join(m, m.c.id == r.c.message_id)
        .where(r.c.state.in_(NEEDS_A_PERSON), *_visible(unit))
        .order_by(r.c.updated_at.desc(), r.c.id.desc())
        .limit(limit)
    )
    return [StuckRecipient(**row._asdict()) for row in (await conn.execute(query)).all()]


def _hour_of(conn: AsyncConnection, column: Any) -> Any:
    """A timestamp's hour "YYYY-MM-DDTHH" in UTC (each dialect truncates time its own way)."""
    if conn.dialect.name == "sqlite":
        return sa.func.strftime("%Y-%m-%dT%H", column)
    return sa.func.to_char(sa.func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24')


async def attempts_per_hour(
    conn: AsyncConnection, *, since: dt.datetime, unit: str | None
) -> list[tuple[str, bool, int]]:
    """(hour, whether it succeeded, attempts) since ``since``, counted by the database."""
    hour = _hour_of(conn, a.c.started_at)
    succeeded = (a.c.outcome == Outcome.SENT.value).label("succeeded")
    query = (
        sa.select(hour.label("hour"), succeeded, sa.func.count())
        .join(r, r.c.id == a.c.recipient_id)
        .join(m, m.c.id == r.c.message_id)
        .where(a.c.started_at >= since, *_visible(unit))
        .group_by(hour, succeeded)
    )
    return [(r[0], bool(r[1]), int(r[2])) for r in (await conn.execute(query)).all()]


async def send_latency_per_hour(
    conn: AsyncConnection, *, since: dt.datetime, unit: str | None
) -> list[tuple[str, float, float, int]]:
    """(hour sent, mean and longest seconds from submission to sent, recipients) of the outgoing
    documents' recipients sent since ``since``."""
    hour = _hour_of(conn, r.c.sent_at)
    seconds = seconds_between(conn, m.c.created_at, r.c.sent_at)
    query = (
        sa.select(hour.label("hour"), sa.func.avg(seconds), sa.func.max(seconds), sa.func.count())
        .join(m, m.c.id == r.c.message_id)
        .where(
            r.c.sent_at >= since,
            m.c.direction == Direction.OUT.value,
            m.c.kind == PackageKind.DOCUMENT.value,
            *_visible(unit),
        )
        .group_by(hour)
    )
    return [
        (row[0], max(float(row[1] or 0), 0.0), max(float(row[2] or 0), 0.0), int(row[3]))
        for row in (await conn.execute(query)).all()
    ]
