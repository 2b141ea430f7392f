"""The report's figures, counted in the database (SQLAlchemy Core: the same SQL on SQLite and
PostgreSQL). Each function answers one part of a report over the documents *accepted or received*
in ``[start, end)`` (``messages.created_at``), for one unit or, with ``unit=None``, the whole
gateway. Transport states and statuses are as they stand when the report is made (``as_of``).

Delivery times are the one figure not aggregated here: percentiles have no common SQL form on
both databases (PostgreSQL's ``percentile_cont`` has no SQLite counterpart), so the sent
deliveries' two timestamps are read and the use case computes median and p95.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.lifecycle import TransportState
from gateway.store import document_signatures as signature_rows
from gateway.store.database import insert_or_ignore
from gateway.store.tables import TS, audit_events, job_ticks, messages, recipients, status_events

S = TransportState
REJECTED, RETRACT = "02", "13"


@dataclass(frozen=True, kw_only=True)
class Window:
    start: dt.datetime
    end: dt.datetime
    unit: str | None
    as_of: dt.datetime


def _documents(
    window: Window, direction: str, *, by_unit: bool = True
) -> list[sa.ColumnElement[bool]]:
    """The window's documents of ``direction``; ``by_unit``: only the window unit's (its sent
    documents; the received ones it is a recipient of)."""
    conditions = [
        messages.c.direction == direction,
        messages.c.kind == "document",
        messages.c.created_at >= sa.bindparam("start", window.start, type_=TS),
        messages.c.created_at < sa.bindparam("end", window.end, type_=TS),
    ]
    if by_unit and window.unit is not None:
        if direction == "out":
            conditions.append(messages.c.sender == window.unit)
        else:
            conditions.append(
                sa.exists().where(
                    recipients.c.message_id == messages.c.id, recipients.c.unit_code == window.unit
                )
            )
    return conditions


def _count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _deliveries(window: Window) -> sa.Select[Any]:
    """Outgoing documents' recipients (the deliveries) in the window, cancelled ones left out."""
    return (
        sa.select()
        .select_from(recipients.join(messages, recipients.c.message_id == messages.c.id))
        .where(*_documents(window, "out"), recipients.c.state != S.CANCELLED.value)
    )


async def sent_by_channel(conn: AsyncConnection, window: Window) -> list[tuple[Any, ...]]:
    """(channel or "", documents, deliveries, delivered, failed, held) per channel."""
    channel = sa.func.coalesce(recipients.c.channel, "")
    query = (
        _deliveries(window)
        .add_columns(
            channel,
            sa.func.count(sa.distinct(messages.c.id)),
            sa.func.count(recipients.c.id),
            _count_if(recipients.c.sent_at.is_not(None)),
            _count_if(recipients.c.state == S.FAILED.value),
            _count_if(recipients.c.state == S.HELD.value),
        )
        .group_by(channel)
        .order_by(channel)
    )
    return [tuple(row) for row in await conn.execute(query)]


async def document_count(conn: AsyncConnection, window: Window, direction: str) -> int:
    query = sa.select(sa.func.count()).select_from(messages).where(*_documents(window, direction))
    return int((await conn.execute(query)).scalar_one())


async def document_signatures(
    conn: AsyncConnection, window: Window, direction: str
) -> dict[str, int]:
    """The window's documents of ``direction`` that carry a PDF, by their documents' verdict
    (valid, unsigned, failing: the worst of their PDFs')."""
    verdict = signature_rows.document_verdict()
    query = (
        sa.select(verdict.label("verdict"), sa.func.count())
        .select_from(messages)
        .where(*_documents(window, direction), verdict.is_not(None))
        .group_by(verdict)
    )
    found = {str(v): int(n) for v, n in await conn.execute(query)}
    return {name: found.get(name, 0) for name in signature_rows.VERDICTS}


async def received_by_channel(conn: AsyncConnection, window: Window) -> list[tuple[Any, ...]]:
    """(channel or "", documents) per channel the documents came through."""
    channel = sa.func.coalesce(messages.c.route, "")
    query = (
        sa.select(channel, sa.func.count())
        .where(*_documents(window, "in"))
        .group_by(channel)
        .order_by(channel)
    )
    return [tuple(row) for row in await conn.execute(query)]


def _first_notice() -> sa.ScalarSelect[Any]:
    """When the receiver's first status about a delivery reached us (the arrival notice)."""
    return (
        sa.select(sa.func.min(status_events.c.recorded_at))
        .where(status_events.c.recipient_id == recipients.c.id, status_events.c.direction == "in")
        .scalar_subquery()
    )


def _has_status(code: str, direction: str, *, per_recipient: bool) -> sa.Exists:
    about = (
        status_events.c.recipient_id == recipients.c.id
        if per_recipient
        else status_events.c.message_id == messages.c.id
    )
    return sa.exists().where(
        about, status_events.c.status_code == code, status_events.c.direction == direction
    )


async def sent_outcomes(conn: AsyncConnection, window: Window) -> dict[str, int]:
    """Deadlines (Decision 28/2018: send; arrival notice) and business outcomes of deliveries."""
    due, sent = messages.c.send_due_at, recipients.c.sent_at
    arrival_due, notice = recipients.c.arrival_due_at, _first_notice()
    as_of = sa.bindparam("as_of", window.as_of, type_=TS)
    columns = {
        "send_on_time": _count_if(sa.and_(sent.is_not(None), sent <= due)),
        "send_late": _count_if(sa.and_(sent.is_not(None), sent > due)),
        "send_overdue": _count_if(sa.and_(sent.is_(None), due < as_of)),
        "send_pending": _count_if(sa.and_(sent.is_(None), due >= as_of)),
        "notice_on_time": _count_if(notice <= arrival_due),
        "notice_late": _count_if(notice > arrival_due),
        "notice_overdue": _count_if(sa.and_(notice.is_(None), arrival_due < as_of)),
        "notice_pending": _count_if(sa.and_(notice.is_(None), arrival_due >= as_of)),
        "rejected": _count_if(_has_status(REJECTED, "in", per_recipient=True)),
        "awaiting_status": _count_if(
            sa.and_(sent.is_not(None), recipients.c.business_status.is_(None))
        ),
    }
    query = _deliveries(window).add_columns(*(c.label(k) for k, c in columns.items()))
    row = (await conn.execute(query)).one()
    return {key: int(value) for key, value in row._mapping.items()}


async def documents_with_status(
    conn: AsyncConnection, window: Window, direction: str, code: str, status_direction: str
) -> int:
    """Documents of ``direction`` in the window with a status ``code`` that travelled
    ``status_direction`` (e.g. sent documents we retracted: out / 13 / out)."""
    query = (
        sa.select(sa.func.count())
        .select_from(messages)
        .where(
            *_documents(window, direction),
            _has_status(code, status_direction, per_recipient=False),
        )
    )
    return int((await conn.execute(query)).scalar_one())


def _held_reason() -> sa.ScalarSelect[Any]:
    """A held recipient's reason: the last audit event that moved it to held (submit records it
    there, not in ``last_error``)."""
    return (
        sa.select(audit_events.c.reason)
        .where(
            audit_events.c.recipient_id == recipients.c.id,
            audit_events.c.to_state == S.HELD.value,
        )
        .order_by(audit_events.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


async def reasons(
    conn: AsyncConnection, window: Window, state: TransportState
) -> list[tuple[str, int]]:
    """(reason, deliveries) for the deliveries now in ``state`` (failed or held)."""
    reason = sa.func.coalesce(recipients.c.last_error, _held_reason(), "")
    query = (
        _deliveries(window)
        .add_columns(reason.label("reason"), sa.func.count())
        .where(recipients.c.state == state.value)
        .group_by(reason)
        .order_by(sa.func.count().desc(), reason)
    )
    return [(str(r), int(n)) for r, n in await conn.execute(query)]


async def delivery_moments(
    conn: AsyncConnection, window: Window
) -> list[tuple[dt.datetime, dt.datetime]]:
    """(accepted, sent) of every sent delivery in the window."""
    query = (
        _deliveries(window)
        .add_columns(messages.c.created_at, recipients.c.sent_at)
        .where(recipients.c.sent_at.is_not(None))
    )
    return [(accepted, sent) for accepted, sent in await conn.execute(query)]


async def received_notices(
    conn: AsyncConnection, window: Window
) -> list[tuple[dt.datetime, dt.datetime | None]]:
    """(received, our arrival notice sent) per local recipient of the received documents: the
    notice is the 01 status message that recipient unit sent back about the document (None while
    it has not gone out)."""
    notice, notice_to = messages.alias("notice"), recipients.alias("notice_to")
    sent = (
        sa.select(sa.func.min(notice_to.c.sent_at))
        .select_from(notice.join(notice_to, notice_to.c.message_id == notice.c.id))
        .where(
            notice.c.related_message_id == messages.c.id,
            notice.c.direction == "out",
            notice.c.kind == "status",
            notice.c.status_code == "01",
            notice.c.sender == recipients.c.unit_code,
        )
        .scalar_subquery()
    )
    query = (
        sa.select(messages.c.created_at, sent.label("notice_sent_at"))
        .select_from(recipients.join(messages, recipients.c.message_id == messages.c.id))
        .where(*_documents(window, "in", by_unit=False))
    )
    if window.unit is not None:
        query = query.where(recipients.c.unit_code == window.unit)
    return [(received, notified) for received, notified in await conn.execute(query)]


async def was_produced(conn: AsyncConnection, key: str) -> bool:
    """Whether the scheduled job recorded ``key`` (a produced report) in ``job_ticks``."""
    query = sa.select(job_ticks.c.job).where(job_ticks.c.job == key)
    return (await conn.execute(query)).first() is not None


async def record_produced(
    conn: AsyncConnection, key: str, *, period_end: dt.datetime, by: str, now: dt.datetime
) -> None:
    """Record a produced report once (a second record of the same key is ignored)."""
    await insert_or_ignore(conn, job_ticks, job_ticks.c.job).execute(
        conn, {"job": key, "tick_at": period_end, "claimed_by": by, "claimed_at": now}
    )
