"""The audit trail's writes: every state change and operator action leaves an event, in the
transaction of the change, appended to the hash chain (``audit_chain``) and, for the outcomes the
local system hears of, to the feed (``events``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store import audit_chain
from gateway.store import events as feed_events
from gateway.store.tables import audit_events

# ------------------------------------------------------------------------------------ audit


def audit_row(
    *,
    now: dt.datetime,
    actor: str,
    action: str,
    message_id: str | None = None,
    recipient_id: int | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """One audit event's columns, for :func:`audit` or :func:`insert_audit_rows`."""
    return {
        "at": now,
        "actor": actor,
        "action": action,
        "message_id": message_id,
        "recipient_id": recipient_id,
        "from_state": from_state,
        "to_state": to_state,
        "reason": reason,
    }


async def audit(
    conn: AsyncConnection,
    *,
    now: dt.datetime,
    actor: str,
    action: str,
    message_id: str | None = None,
    recipient_id: int | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
) -> None:
    row = audit_row(
        now=now,
        actor=actor,
        action=action,
        message_id=message_id,
        recipient_id=recipient_id,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
    )
    await audit_chain.append(conn, [row])
    await feed_events.record_transport_outcomes(conn, [row])


async def insert_audit_rows(conn: AsyncConnection, events: Sequence[Mapping[str, Any]]) -> None:
    # executemany: one statement prepared, the rows sent together, chained in this order.
    if events:
        await audit_chain.append(conn, events)
        await feed_events.record_transport_outcomes(conn, events)


async def recent_actions(
    conn: AsyncConnection, actions: Sequence[str], *, limit: int
) -> list[dict[str, Any]]:
    """The latest events of these actions (operators' actions on no message: a channel paused,
    a job run, an alert acknowledged), newest first."""
    query = (
        sa.select(
            audit_events.c.at,
            audit_events.c.actor,
            audit_events.c.action,
            audit_events.c.reason,
        )
        .where(audit_events.c.action.in_(list(actions)))
        .order_by(audit_events.c.id.desc())
        .limit(limit)
    )
    return [dict(row._mapping) for row in await conn.execute(query)]
