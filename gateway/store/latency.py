"""How long the exchange took, as histograms read from what is stored (``/metrics``): every process
of a gateway writes the same tables, so any one process's ``/metrics`` counts them all.

* submit → sent: an outgoing document's recipient, from the message's ``created_at`` to the
  recipient's ``sent_at`` (by channel);
* submit → 01: from ``created_at`` to the first business status 01 (received) that the recipient
  sent back (``status_events``, direction ``in``);
* receive → handed over: a received document, from its ``created_at`` to its ``handed_off_at``
  (the drop folder's inbox, or the local system's acknowledgement).

Each is one scan of its rows, grouped into cumulative buckets by the database; the archive's
retention bounds how many rows there are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.tables import messages, recipients, status_events

#: Bucket upper bounds, in seconds.
SUBMIT_TO_SENT: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
SUBMIT_TO_RECEIVED: Final = (
    10.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 8 * 3600.0, 86_400.0, 3 * 86_400.0, 7 * 86_400.0
)  # fmt: skip
RECEIVE_TO_HANDOVER: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


@dataclass(frozen=True, kw_only=True)
class Histogram:
    """Cumulative counts per upper bound (``buckets[i]`` counts durations ≤ ``bounds[i]``)."""

    bounds: tuple[float, ...]
    buckets: tuple[int, ...]
    count: int
    total_seconds: float
    labels: dict[str, str] = field(default_factory=dict)


def seconds_between(conn: AsyncConnection, start: Any, end: Any) -> Any:
    """``end - start`` in seconds, to the millisecond, in SQL (SQLite keeps timestamps as text;
    its julian days are floating point, so 60 s could come out a hair above a 60 s bound)."""
    if conn.dialect.name == "sqlite":
        seconds = (sa.func.julianday(end) - sa.func.julianday(start)) * 86_400.0
    else:
        seconds = sa.cast(sa.extract("epoch", end - start), sa.Numeric)
    return sa.func.round(seconds, 3)


async def _histograms(
    conn: AsyncConnection,
    durations: sa.Subquery,
    bounds: tuple[float, ...],
    *,
    label: str | None = None,
) -> list[Histogram]:
    seconds = durations.c.seconds
    group = [durations.c.label] if label else []
    columns = [
        *group,
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(seconds), 0.0),
        *(sa.func.sum(sa.case((seconds <= bound, 1), else_=0)) for bound in bounds),
    ]
    rows = (await conn.execute(sa.select(*columns).group_by(*group))).all()
    found = []
    for row in rows:
        values = list(row)
        labels = {label: values.pop(0) or ""} if label else {}
        count, total, *buckets = values
        if not count:
            continue
        found.append(
            Histogram(
                bounds=bounds,
                buckets=tuple(int(b or 0) for b in buckets),
                count=int(count),
                total_seconds=max(float(total or 0.0), 0.0),
                labels=labels,
            )
        )
    return found


async def submit_to_sent(conn: AsyncConnection) -> list[Histogram]:
    """By channel."""
    durations = (
        sa.select(
            recipients.c.channel.label("label"),
            seconds_between(conn, messages.c.created_at, recipients.c.sent_at).label("seconds"),
        )
        .select_from(recipients.join(messages, messages.c.id == recipients.c.message_id))
        .where(
            messages.c.direction == "out",
            messages.c.kind == "document",
            recipients.c.sent_at.is_not(None),
        )
        .subquery()
    )
    return await _histograms(conn, durations, SUBMIT_TO_SENT, label="channel")


async def submit_to_received(conn: AsyncConnection) -> list[Histogram]:
    """To the first status 01 of each recipient (its reporter) of an outgoing document."""
    first = (
        sa.select(
            status_events.c.message_id,
            sa.func.min(status_events.c.recorded_at).label("at"),
        )
        .where(
            status_events.c.direction == "in",
            status_events.c.status_code == "01",
            status_events.c.message_id.is_not(None),
        )
        .group_by(status_events.c.message_id, status_events.c.reporter)
        .subquery()
    )
    durations = (
        sa.select(seconds_between(conn, messages.c.created_at, first.c.at).label("seconds"))
        .select_from(first.join(messages, messages.c.id == first.c.message_id))
        .where(messages.c.direction == "out")
        .subquery()
    )
    return await _histograms(conn, durations, SUBMIT_TO_RECEIVED)


async def receive_to_handover(conn: AsyncConnection) -> list[Histogram]:
    durations = (
        sa.select(
            seconds_between(conn, messages.c.created_at, messages.c.handed_off_at).label("seconds")
        )
        .where(
            messages.c.direction == "in",
            messages.c.kind == "document",
            messages.c.handed_off_at.is_not(None),
        )
        .subquery()
    )
    return await _histograms(conn, durations, RECEIVE_TO_HANDOVER)
