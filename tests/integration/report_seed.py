"""A known mix of documents for the report tests, written straight into the tables (with the
moments chosen, which the use cases would take from the clock), and an independent count of it in
hand-written SQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from integration_support import OTHER, RECIPIENT, SENDER
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.deadlines import DeadlinePolicy, arrival_notice_deadline
from gateway.store.tables import (
    TS,
    audit_events,
    blobs,
    messages,
    recipients,
    status_events,
)

VN = ZoneInfo("Asia/Ho_Chi_Minh")
#: When the reports are made: after every due moment of the mix.
NOW = dt.datetime(2026, 12, 7, 9, 0, tzinfo=VN)
BLOB = hashlib.sha256(b"report-seed").hexdigest()


def vn(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, second, tzinfo=VN)


class Seeder:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def message(
        self,
        direction: str,
        sender: str,
        at: dt.datetime,
        *,
        due: dt.datetime | None = None,
        kind: str = "document",
        route: str | None = None,
        priority: int = 0,
        status_code: str | None = None,
        about: str | None = None,
    ) -> str:
        message_id = str(uuid.uuid4())
        await self.conn.execute(
            messages.insert().values(
                id=message_id, direction=direction, kind=kind,
                document_id=f"{sender},2026/{message_id[:8]}", sender=sender,
                classification="thuong", priority=priority, package_sha256=BLOB, client="seed",
                dedup_key=f"{sender}|{message_id}" if direction == "in" else None,
                route=route, send_due_at=due, created_at=at, status_code=status_code,
                related_message_id=about,
            )
        )  # fmt: skip
        return message_id

    async def recipient(
        self,
        message_id: str,
        unit: str,
        *,
        channel: str | None,
        state: str = "sent",
        sent: dt.datetime | None = None,
        arrival_due: dt.datetime | None = None,
        business: str | None = None,
        last_error: str | None = None,
    ) -> int:
        result = await self.conn.execute(
            recipients.insert().values(
                message_id=message_id, unit_code=unit, channel=channel, state=state,
                attempt_count=1, sent_at=sent, arrival_due_at=arrival_due,
                business_status=business, last_error=last_error, updated_at=NOW,
            ).returning(recipients.c.id)
        )  # fmt: skip
        return int(result.scalar_one())

    async def status(
        self,
        direction: str,
        code: str,
        at: dt.datetime,
        *,
        message_id: str,
        recipient_id: int | None = None,
        reporter: str = RECIPIENT,
    ) -> None:
        await self.conn.execute(
            status_events.insert().values(
                direction=direction, message_id=message_id, recipient_id=recipient_id,
                reporter=reporter, status_code=code, recorded_at=at, out_of_order=False,
            )
        )  # fmt: skip

    async def held_reason(self, message_id: str, recipient_id: int, reason: str) -> None:
        await self.conn.execute(
            audit_events.insert().values(
                at=NOW, actor="seed", action="created", message_id=message_id,
                recipient_id=recipient_id, to_state="held", reason=reason,
            )
        )  # fmt: skip


async def seed(conn: AsyncConnection) -> None:
    """Period 2026-11 (closing day 25) is 2026-10-25 00:00 … 2026-11-24 24:00 Vietnam time."""
    await conn.execute(blobs.insert().values(sha256=BLOB, size=1, data=b"x", created_at=NOW))
    s = Seeder(conn)
    # D1: the first instant of the period; one delivery on time and notified on time, one late,
    # notified late, and rejected (02).
    d1 = await s.message("out", SENDER, vn(10, 25), due=vn(10, 26, 12), route="axis")
    r = await s.recipient(d1, RECIPIENT, channel="axis", sent=vn(10, 25, 9),
                          arrival_due=vn(10, 25, 17), business="01")  # fmt: skip
    await s.status("in", "01", vn(10, 25, 10), message_id=d1, recipient_id=r)
    r = await s.recipient(d1, OTHER, channel="axis", sent=vn(10, 27, 8),
                          arrival_due=vn(10, 27, 17), business="02")  # fmt: skip
    await s.status("in", "02", vn(10, 28, 9), message_id=d1, recipient_id=r, reporter=OTHER)
    # D2: one delivery failed, one held; both unsent past the deadline.
    d2 = await s.message("out", SENDER, vn(11, 10, 9), due=vn(11, 11, 12))
    await s.recipient(d2, RECIPIENT, channel="secure", state="failed",
                      last_error="peer refused: HTTP 500")  # fmt: skip
    r = await s.recipient(d2, OTHER, channel=None, state="held")
    await s.held_reason(d2, r, "classified: no secure route to 000.00.00.H14")
    # D3: urgent, the last second of the period; sent on time, no status at all; we retract it.
    d3 = await s.message("out", SENDER, vn(11, 24, 23, 59, 59), due=vn(11, 25, 0, 29, 59),
                         priority=1)  # fmt: skip
    await s.recipient(d3, RECIPIENT, channel="axis", sent=vn(11, 25, 0, 10),
                      arrival_due=vn(11, 25, 17))  # fmt: skip
    await s.status("out", "13", vn(11, 25, 8), message_id=d3, reporter=SENDER)
    # D4 and D5 lie just outside the period.
    for at in (vn(10, 24, 23, 59, 59), vn(11, 25)):
        d = await s.message("out", SENDER, at, due=at + dt.timedelta(hours=30))
        await s.recipient(d, RECIPIENT, channel="axis", sent=at + dt.timedelta(minutes=1))
    # D6: another unit's document (in the gateway's report only); one cancelled delivery.
    d6 = await s.message("out", OTHER, vn(11, 5, 10), due=vn(11, 6, 12))
    r = await s.recipient(d6, RECIPIENT, channel="axis", sent=vn(11, 5, 10, 0, 30),
                          arrival_due=vn(11, 5, 17), business="03")  # fmt: skip
    await s.status("in", "01", vn(11, 5, 11), message_id=d6, recipient_id=r)
    await s.recipient(d6, SENDER, channel="axis", state="cancelled")
    await s.recipient(d6, OTHER, channel="axis", sent=vn(11, 6, 12))  # at the deadline: on time
    # A status package is no document.
    st = await s.message("out", SENDER, vn(11, 6), kind="status")
    await s.recipient(st, RECIPIENT, channel="axis", sent=vn(11, 6, 0, 1))
    # Received: I1 rejected by us, I2 retracted by its sender, I3 after the period, I4 for OTHER.
    i1 = await s.message("in", RECIPIENT, vn(11, 2, 8), route="axis")
    await s.recipient(i1, SENDER, channel=None, business="02")
    await s.status("out", "02", vn(11, 2, 9), message_id=i1, reporter=SENDER)
    i2 = await s.message("in", OTHER, vn(11, 3, 8), route="secure")
    await s.recipient(i2, SENDER, channel=None, business="01")
    await s.status("in", "13", vn(11, 3, 15), message_id=i2, reporter=OTHER)
    i3 = await s.message("in", RECIPIENT, vn(11, 26), route="axis")
    await s.recipient(i3, SENDER, channel=None, business="01")
    i4 = await s.message("in", RECIPIENT, vn(11, 4), route="axis")
    await s.recipient(i4, OTHER, channel=None, business="01")
    # Our arrival notices (01): I1's the same morning (on time), I2's the next day (late); I4's
    # never went out (overdue).
    for doc, to, received, sent in ((i1, RECIPIENT, vn(11, 2, 8), vn(11, 2, 9, 5)),
                                    (i2, OTHER, vn(11, 3, 8), vn(11, 4, 9))):  # fmt: skip
        notice = await s.message("out", SENDER, received, kind="status", status_code="01",
                                 about=doc)  # fmt: skip
        await s.recipient(notice, to, channel="axis", sent=sent)


# ------------------------------------------------------------------- the independent count

_OUT = "direction = 'out' AND kind = 'document' AND created_at >= :start AND created_at < :end"
_IN = "direction = 'in' AND kind = 'document' AND created_at >= :start AND created_at < :end"


async def independent_count(
    conn: AsyncConnection,
    start: dt.datetime,
    end: dt.datetime,
    unit: str | None,
    as_of: dt.datetime = NOW,
) -> dict[str, Any]:
    """The report's figures, counted by hand: plain SQL, and Python for the arithmetic."""
    out_unit = " AND sender = :unit" if unit else ""
    in_unit = (
        " AND id IN (SELECT message_id FROM recipients WHERE unit_code = :unit)" if unit else ""
    )
    params: dict[str, Any] = {"start": start, "end": end, "unit": unit}

    async def scalar(sql: str) -> int:
        statement = sa.text(sql).bindparams(
            sa.bindparam("start", type_=TS), sa.bindparam("end", type_=TS)
        )
        used = {k: v for k, v in params.items() if f":{k}" in sql}
        return int((await conn.execute(statement, used)).scalar_one())

    deliveries = (
        await conn.execute(
            sa.text(
                "SELECT r.id, r.channel, r.state, r.sent_at, r.arrival_due_at, r.business_status,"
                " r.last_error, m.id, m.created_at, m.send_due_at FROM recipients r"
                " JOIN messages m ON m.id = r.message_id WHERE r.state <> 'cancelled' AND m."
                + _OUT.replace(" AND ", " AND m.") + out_unit.replace("sender", "m.sender")
            )
            .bindparams(sa.bindparam("start", type_=TS), sa.bindparam("end", type_=TS))
            .columns(
                sa.column("rid"), sa.column("channel"), sa.column("state"),
                sa.column("sent_at", TS), sa.column("arrival_due_at", TS),
                sa.column("business"), sa.column("last_error"), sa.column("mid"),
                sa.column("created_at", TS), sa.column("due", TS),
            ),
            {k: v for k, v in params.items() if v is not None},
        )
    ).all()  # fmt: skip
    notices = dict(
        (
            await conn.execute(
                sa.text(
                    "SELECT recipient_id, min(recorded_at) FROM status_events"
                    " WHERE direction = 'in' AND recipient_id IS NOT NULL GROUP BY recipient_id"
                ).columns(sa.column("rid"), sa.column("first", TS))
            )
        ).all()
    )
    rejected = {
        row[0]
        for row in await conn.execute(
            sa.text(
                "SELECT recipient_id FROM status_events WHERE direction = 'in'"
                " AND status_code = '02'"
            )
        )
    }
    channels: Counter[str] = Counter(d.channel or "" for d in deliveries)
    send = Counter(_judge(d.sent_at, d.due, as_of) for d in deliveries)
    notice = Counter(
        _judge(notices.get(d.rid), d.arrival_due_at, as_of) for d in deliveries if d.arrival_due_at
    )
    notices_sent = (
        await conn.execute(
            sa.text(
                "SELECT d.created_at, (SELECT min(nr.sent_at) FROM messages n JOIN recipients nr"
                " ON nr.message_id = n.id WHERE n.related_message_id = d.id AND n.kind = 'status'"
                " AND n.direction = 'out' AND n.status_code = '01' AND n.sender = r.unit_code)"
                " FROM messages d JOIN recipients r ON r.message_id = d.id WHERE d."
                + _IN.replace(" AND ", " AND d.")
                + (" AND r.unit_code = :unit" if unit else "")
            )
            .bindparams(sa.bindparam("start", type_=TS), sa.bindparam("end", type_=TS))
            .columns(sa.column("received", TS), sa.column("notified", TS)),
            {k: v for k, v in params.items() if v is not None},
        )
    ).all()
    policy = DeadlinePolicy()
    received_notice = Counter(
        _judge(notified, arrival_notice_deadline(delivered_at=received, policy=policy), as_of)
        for received, notified in notices_sent
    )
    durations = sorted((d.sent_at - d.created_at).total_seconds() for d in deliveries if d.sent_at)
    return {
        "sent_documents": await scalar(f"SELECT count(*) FROM messages WHERE {_OUT}{out_unit}"),
        "received_documents": await scalar(f"SELECT count(*) FROM messages WHERE {_IN}{in_unit}"),
        "sent_deliveries": len(deliveries),
        "deliveries_by_channel": dict(channels),
        "send": dict(send),
        "notice": dict(notice),
        "received_notice": dict(received_notice),
        "rejected_by_receivers": sum(1 for d in deliveries if d.rid in rejected),
        "awaiting_status": sum(1 for d in deliveries if d.sent_at and d.business is None),
        "failed": Counter(d.last_error for d in deliveries if d.state == "failed"),
        "held": sum(1 for d in deliveries if d.state == "held"),
        "durations": durations,
        "rejected_by_us": await scalar(
            f"SELECT count(*) FROM messages WHERE {_IN}{in_unit} AND id IN (SELECT message_id"
            " FROM status_events WHERE direction = 'out' AND status_code = '02')"
        ),
        "retracted_by_us": await scalar(
            f"SELECT count(*) FROM messages WHERE {_OUT}{out_unit} AND id IN (SELECT message_id"
            " FROM status_events WHERE direction = 'out' AND status_code = '13')"
        ),
        "retracted_by_senders": await scalar(
            f"SELECT count(*) FROM messages WHERE {_IN}{in_unit} AND id IN (SELECT message_id"
            " FROM status_events WHERE direction = 'in' AND status_code = '13')"
        ),
    }


def _judge(met: dt.datetime | None, due: dt.datetime | None, as_of: dt.datetime) -> str:
    if met is not None and due is not None:
        return "on_time" if met <= due else "late"
    assert due is not None
    return "overdue" if due < as_of else "pending"
