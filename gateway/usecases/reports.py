"""Reports: documents sent and received per period, for one unit or the whole gateway.

:func:`build_report` counts over the database (``gateway.store.reports``) and returns a typed
:class:`Report`; the renderers (``gateway.usecases.report_files``) turn it into CSV and PDF, and
:func:`produce_due_reports`, the scheduled job, makes each closed period's reports once.

What is counted (the period is ``gateway.domain.periods``; "now" is when the report is made):

* documents sent — outgoing documents *accepted* in the period (by their sender unit), and their
  deliveries (one per recipient, cancelled ones left out) by channel: delivered, failed, held;
* documents received — incoming documents *received* in the period (by a local recipient unit),
  by the channel they came through;
* deadlines (Decision 28/2018, ``gateway.domain.deadlines``; the due moments are those stored when
  the document was accepted and delivered): each delivery sent on time / late / still unsent
  past its deadline / not yet due; the receiver's arrival notice (its first status) on time /
  late / missing past its deadline / not yet due;
* our own arrival notices (01) on received documents, against the same-day deadline computed
  from the moment each was received;
* rejected (02) deliveries, documents we retracted (13) or rejected, documents their senders
  retracted, sent deliveries still awaiting any status;
* failed deliveries and held ones, by reason, as they stand now;
* delivery time (accepted → sent) of the sent deliveries: median and p95 (nearest rank);
* the documents' own signatures: documents sent and received that carry a PDF, by their PDFs'
  verdict (valid signatures, unsigned, failing; ``docs/reference/document-signatures.md``).
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from dataclasses import dataclass
from typing import Protocol

from envelopes.errors import GatewayError
from envelopes.unit_codes import parse_strict
from gateway.domain import periods
from gateway.domain.deadlines import (
    Breach,
    DeadlinePolicy,
    DeadlineStatus,
    arrival_notice_deadline,
)
from gateway.domain.lifecycle import TransportState
from gateway.domain.periods import Period, PeriodKind
from gateway.store import reports as counts
from gateway.store import unit_queries
from gateway.store.database import is_sqlite
from gateway.usecases.errors import Forbidden, UnknownUnit
from gateway.usecases.ports import Config, Deadlines, Store


class Reporting(Store, Config, Deadlines, Protocol):
    """What a report is built from: the store, the settings (the closing day), the deadlines."""


class ReportPeriodInvalid(GatewayError):
    code = "REPORT_PERIOD_INVALID"


@dataclass(frozen=True, kw_only=True)
class SentChannel:
    channel: str
    documents: int
    deliveries: int
    delivered: int
    failed: int
    held: int


@dataclass(frozen=True, kw_only=True)
class ReceivedChannel:
    channel: str
    documents: int


@dataclass(frozen=True, kw_only=True)
class DeadlineFigures:
    """Deliveries against one deadline: met on time, met late, unmet and past due, not yet due."""

    on_time: int
    late: int
    overdue: int
    pending: int


@dataclass(frozen=True, kw_only=True)
class SignatureFigures:
    """Documents carrying a PDF, by the verdict of their PDFs' own signatures (the worst PDF's)."""

    valid: int
    unsigned: int
    failing: int


@dataclass(frozen=True, kw_only=True)
class ReasonCount:
    reason: str
    deliveries: int


@dataclass(frozen=True, kw_only=True)
class Report:
    kind: PeriodKind
    period: str
    start: dt.datetime
    end: dt.datetime
    #: None: the whole gateway.
    unit: str | None
    generated_at: dt.datetime
    sent_documents: int
    sent_deliveries: int
    sent_by_channel: tuple[SentChannel, ...]
    received_documents: int
    received_by_channel: tuple[ReceivedChannel, ...]
    send_deadline: DeadlineFigures
    arrival_notice: DeadlineFigures
    #: Our own arrival notices (01) on the received documents, one per local recipient unit.
    received_notice: DeadlineFigures
    rejected_by_receivers: int
    rejected_by_us: int
    retracted_by_us: int
    retracted_by_senders: int
    awaiting_status: int
    failed: tuple[ReasonCount, ...]
    held: tuple[ReasonCount, ...]
    delivered: int
    median_seconds: float | None
    p95_seconds: float | None
    sent_signatures: SignatureFigures
    received_signatures: SignatureFigures


def period_of(gateway: Reporting, kind: PeriodKind, name: str) -> Period:
    """The named period under the configured closing day, in the deadlines' local time."""
    try:
        return periods.parse(
            kind,
            name,
            closing_day=gateway.settings.reports.closing_day,
            tz=gateway.deadlines.calendar.tz,
        )
    except ValueError as exc:
        raise ReportPeriodInvalid(str(exc), element="period") from exc


def nearest_rank(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile: the smallest value with ``fraction`` of them at or below."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


async def report_for(
    gateway: Reporting, kind: PeriodKind, name: str, unit: str | None, *, member_unit: str | None
) -> Report:
    """A report asked for by name (``2026-11``, ``2026-W48``): a member token (``member_unit``)
    sees only its own unit's, which it must name; staff any unit's or the whole gateway's."""
    if member_unit is not None and unit != member_unit:
        raise Forbidden(
            f"a member token of {member_unit} sees only its own unit's report", element="unit"
        )
    return await build_report(gateway, period_of(gateway, kind, name), unit)


async def build_report(gateway: Reporting, period: Period, unit: str | None) -> Report:
    now = gateway.clock()
    async with gateway.engine.connect() as conn:
        if not is_sqlite(gateway.engine):
            # One snapshot for every figure, so that they add up while documents keep flowing.
            await conn.execution_options(isolation_level="REPEATABLE READ")
        if unit is not None:
            parse_strict(unit, field="unit")
            if await unit_queries.get_unit(conn, unit) is None:
                raise UnknownUnit(f"no unit {unit}", element="unit")
        window = counts.Window(start=period.start, end=period.end, unit=unit, as_of=now)
        sent = [
            SentChannel(**dict(zip(_SENT_FIELDS, row, strict=True)))
            for row in await counts.sent_by_channel(conn, window)
        ]
        received = tuple(
            ReceivedChannel(channel=str(channel), documents=int(n))
            for channel, n in await counts.received_by_channel(conn, window)
        )
        outcome = await counts.sent_outcomes(conn, window)
        with_status = counts.documents_with_status
        durations = [
            (sent_at - accepted).total_seconds()
            for accepted, sent_at in await counts.delivery_moments(conn, window)
        ]
        return Report(
            kind=period.kind,
            period=period.name,
            start=period.start,
            end=period.end,
            unit=unit,
            generated_at=now,
            sent_documents=await counts.document_count(conn, window, "out"),
            sent_deliveries=sum(c.deliveries for c in sent),
            sent_by_channel=tuple(sent),
            received_documents=await counts.document_count(conn, window, "in"),
            received_by_channel=received,
            send_deadline=_deadline(outcome, "send"),
            arrival_notice=_deadline(outcome, "notice"),
            received_notice=_judge_notices(
                await counts.received_notices(conn, window), gateway.deadlines, now
            ),
            rejected_by_receivers=outcome["rejected"],
            rejected_by_us=await with_status(conn, window, "in", counts.REJECTED, "out"),
            retracted_by_us=await with_status(conn, window, "out", counts.RETRACT, "out"),
            retracted_by_senders=await with_status(conn, window, "in", counts.RETRACT, "in"),
            awaiting_status=outcome["awaiting_status"],
            failed=_reasons(await counts.reasons(conn, window, TransportState.FAILED)),
            held=_reasons(await counts.reasons(conn, window, TransportState.HELD)),
            delivered=len(durations),
            median_seconds=statistics.median(durations) if durations else None,
            p95_seconds=nearest_rank(durations, 0.95),
            sent_signatures=SignatureFigures(
                **await counts.document_signatures(conn, window, "out")
            ),
            received_signatures=SignatureFigures(
                **await counts.document_signatures(conn, window, "in")
            ),
        )


_SENT_FIELDS = ("channel", "documents", "deliveries", "delivered", "failed", "held")


def _deadline(outcome: dict[str, int], prefix: str) -> DeadlineFigures:
    return DeadlineFigures(
        on_time=outcome[f"{prefix}_on_time"],
        late=outcome[f"{prefix}_late"],
        overdue=outcome[f"{prefix}_overdue"],
        pending=outcome[f"{prefix}_pending"],
    )


def _judge_notices(
    rows: list[tuple[dt.datetime, dt.datetime | None]], policy: DeadlinePolicy, now: dt.datetime
) -> DeadlineFigures:
    """Each received document's arrival notice against its deadline (not stored: computed here
    from the moment it was received, by the deadline rules)."""
    tally = dict.fromkeys(("on_time", "late", "overdue", "pending"), 0)
    for received, notified in rows:
        due = arrival_notice_deadline(delivered_at=received, policy=policy)
        status = DeadlineStatus(kind=Breach.ARRIVAL_NOTICE, due_at=due, met_at=notified)
        if notified is not None:
            tally["late" if status.is_breached(now) else "on_time"] += 1
        else:
            tally["overdue" if status.is_breached(now) else "pending"] += 1
    return DeadlineFigures(**tally)


def _reasons(rows: list[tuple[str, int]]) -> tuple[ReasonCount, ...]:
    return tuple(ReasonCount(reason=reason, deliveries=n) for reason, n in rows)
