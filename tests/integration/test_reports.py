"""Reports on real databases (SQLite file and PostgreSQL): the report's figures against an
independent, hand-written count over the same database (tests/integration/report_seed.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import statistics
from collections import Counter
from typing import Any

import pytest
from integration_support import EXAMPLES, SENDER
from report_seed import NOW, independent_count, seed

from connectors.fake import FakeConnector, Scripted
from envelopes.attachments import AttachmentSource
from envelopes.metadata import parse_metadata
from envelopes.model import StatusCode
from gateway.domain.periods import PeriodKind
from gateway.usecases import delivery, reports, statuses, submit
from gateway.usecases.reports import Report
from gateway.usecases.statuses import VIETNAM


async def _report(gateway: Any, unit: str | None, period: str = "2026-11") -> Report:
    gateway.clock = lambda: NOW
    async with gateway.engine.begin() as conn:
        await seed(conn)
    return await reports.build_report(
        gateway, reports.period_of(gateway, PeriodKind.MONTHLY, period), unit
    )


def _as_counted(report: Report) -> dict[str, Any]:
    """The report's figures in the independent count's shape."""
    send, notice, ours = report.send_deadline, report.arrival_notice, report.received_notice
    return {
        "sent_documents": report.sent_documents,
        "received_documents": report.received_documents,
        "sent_deliveries": report.sent_deliveries,
        "deliveries_by_channel": {c.channel: c.deliveries for c in report.sent_by_channel},
        "send": {k: v for k, v in vars(send).items() if v},
        "notice": {k: v for k, v in vars(notice).items() if v},
        "received_notice": {k: v for k, v in vars(ours).items() if v},
        "rejected_by_receivers": report.rejected_by_receivers,
        "awaiting_status": report.awaiting_status,
        "failed": Counter({f.reason: f.deliveries for f in report.failed}),
        "held": sum(h.deliveries for h in report.held),
        "rejected_by_us": report.rejected_by_us,
        "retracted_by_us": report.retracted_by_us,
        "retracted_by_senders": report.retracted_by_senders,
    }


@pytest.mark.parametrize("unit", [SENDER, None], ids=["unit", "gateway"])
def test_report_figures_match_an_independent_count(make_gateway: Any, unit: str | None) -> None:
    async def scenario() -> None:
        async with make_gateway() as gateway:
            report = await _report(gateway, unit)
            async with gateway.engine.connect() as conn:
                counted = await independent_count(conn, report.start, report.end, unit)
            durations = counted.pop("durations")
            assert _as_counted(report) == counted
            assert report.delivered == len(durations)
            assert report.median_seconds == statistics.median(durations)
            assert report.p95_seconds == durations[-1]  # nearest rank of ≤ 20 values: the max

    asyncio.run(scenario())


def test_unit_report_figures_are_the_known_mix(make_gateway: Any) -> None:
    """The mix's figures, worked out by hand (report_seed.seed says why each is what it is):
    the period's first and last instants are in, the instants either side are out."""

    async def scenario() -> None:
        async with make_gateway() as gateway:
            report = await _report(gateway, SENDER)
        assert (report.sent_documents, report.sent_deliveries, report.received_documents) == (
            3, 5, 2,
        )  # fmt: skip
        assert {c.channel: (c.documents, c.deliveries, c.delivered, c.failed, c.held)
                for c in report.sent_by_channel} == {
            "": (1, 1, 0, 0, 1), "axis": (2, 3, 3, 0, 0), "secure": (1, 1, 0, 1, 0),
        }  # fmt: skip
        assert {c.channel: c.documents for c in report.received_by_channel} == {
            "axis": 1,
            "secure": 1,
        }
        assert report.send_deadline == reports.DeadlineFigures(
            on_time=2, late=1, overdue=2, pending=0
        )
        assert report.arrival_notice == reports.DeadlineFigures(
            on_time=1, late=1, overdue=1, pending=0
        )
        assert report.received_notice == reports.DeadlineFigures(
            on_time=1, late=1, overdue=0, pending=0
        )
        assert (report.rejected_by_receivers, report.rejected_by_us) == (1, 1)
        assert (report.retracted_by_us, report.retracted_by_senders) == (1, 1)
        assert report.awaiting_status == 1
        assert report.failed == (
            reports.ReasonCount(reason="peer refused: HTTP 500", deliveries=1),
        )
        assert report.held == (
            reports.ReasonCount(
                reason="classified: no secure route to 000.00.00.H14", deliveries=1
            ),
        )
        assert (report.delivered, report.median_seconds, report.p95_seconds) == (
            3, 9 * 3600.0, 56 * 3600.0,
        )  # fmt: skip

    asyncio.run(scenario())


def test_a_report_over_what_the_real_use_cases_wrote_matches_the_independent_count(
    make_gateway: Any,
) -> None:
    """Submitted through the use case, delivered by the fake connector (one refused: failed),
    one classified document held for want of a secure route, one retracted (13) by its sender."""
    fake = FakeConnector(name="axis", script=[Scripted.REFUSED])
    now = dt.datetime.now(dt.UTC)
    meta = json.loads((EXAMPLES / "new-document.json").read_text(encoding="utf-8"))
    today = now.astimezone(VIETNAM).date()

    async def submit_one(gateway: Any, **changes: Any) -> str:
        request = parse_metadata({**meta, **changes}, today=today)
        source = AttachmentSource(name="van-ban.pdf", open=lambda: io.BytesIO(b"%PDF-1.7 x"))
        done = await submit.submit_document(gateway, request, [source], client="test", actor="test")
        return done.message_id

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": fake}) as gateway:
            gateway.clock = lambda: now
            await submit_one(
                gateway, code={"number": "1", "notation": "VPCP-TTĐT"}
            )  # the refused one
            await delivery.deliver_due(gateway, "w")
            sent = await submit_one(gateway, code={"number": "2", "notation": "VPCP-TTĐT"})
            await submit_one(
                gateway, code={"number": "3", "notation": "VPCP-TTĐT"}, classification="mat"
            )
            while await delivery.deliver_due(gateway, "w"):
                pass
            retract = StatusCode.RETRACT_REQUESTED
            await statuses.reply(
                gateway, sent, code=retract, description="Thu hồi", staff=None, actor="test"
            )
            while await delivery.deliver_due(gateway, "w"):
                pass
            year, week, _ = now.astimezone(VIETNAM).isocalendar()
            period = reports.period_of(gateway, PeriodKind.WEEKLY, f"{year}-W{week:02d}")
            report = await reports.build_report(gateway, period, SENDER)
            async with gateway.engine.connect() as conn:
                counted = await independent_count(conn, period.start, period.end, SENDER, now)
        counted.pop("durations")
        assert _as_counted(report) == counted
        assert (report.sent_documents, report.retracted_by_us) == (3, 1)
        assert [(c.channel, c.delivered, c.failed, c.held) for c in report.sent_by_channel] == [
            ("", 0, 0, 1), ("axis", 1, 1, 0),
        ]  # fmt: skip
        assert "refused" in report.failed[0].reason and report.held[0].reason

    asyncio.run(scenario())
