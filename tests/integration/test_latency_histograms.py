"""The latency histograms of /metrics, read from stored rows on both databases: submit → sent (by
channel), submit → the recipient's first status 01, receive → handed over."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from gateway.store import latency
from gateway.store.tables import blobs, messages, recipients, status_events

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def message(id: str, direction: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": id,
        "direction": direction,
        "kind": "document",
        "document_id": f"doc-{id}",
        "sender": "000.00.00.G22",
        "classification": "thuong",
        "priority": 0,
        "package_sha256": "a" * 64,
        "client": "test",
        "created_at": T0,
        "handed_off_at": None,
        **fields,
    }


def test_histograms_count_what_was_stored(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with make_gateway() as gateway, gateway.engine.begin() as conn:
            await conn.execute(blobs.insert().values(sha256="a" * 64, size=1, created_at=T0))
            await conn.execute(
                messages.insert(),
                [
                    message("out-1", "out"),
                    message("out-2", "out"),
                    message("in-1", "in", handed_off_at=at(0.2)),
                    message("in-2", "in", handed_off_at=at(45)),
                    message("in-3", "in"),  # not handed over yet: not counted
                ],
            )
            recipient = {"state": "sent", "attempt_count": 1, "updated_at": T0}
            await conn.execute(
                recipients.insert(),
                [
                    {**recipient, "message_id": "out-1", "unit_code": "A", "channel": "axis",
                     "sent_at": at(0.4)},
                    {**recipient, "message_id": "out-1", "unit_code": "B", "channel": "secure",
                     "sent_at": at(3)},
                    {**recipient, "message_id": "out-2", "unit_code": "A", "channel": "axis",
                     "sent_at": at(20)},
                    {**recipient, "message_id": "out-2", "unit_code": "C", "channel": "axis",
                     "state": "queued", "sent_at": None},
                ],
            )  # fmt: skip
            status = {"direction": "in", "status_code": "01", "out_of_order": False,
                      "verified": True}  # fmt: skip
            await conn.execute(
                status_events.insert(),
                [
                    {**status, "message_id": "out-1", "reporter": "A", "recorded_at": at(120)},
                    {**status, "message_id": "out-1", "reporter": "A", "recorded_at": at(9000)},
                    {**status, "message_id": "out-1", "reporter": "B", "recorded_at": at(7200)},
                    {**status, "message_id": "out-2", "reporter": "A", "status_code": "03",
                     "recorded_at": at(60)},
                ],
            )  # fmt: skip

            sent = {h.labels["channel"]: h for h in await latency.submit_to_sent(conn)}
            assert sent.keys() == {"axis", "secure"}
            axis = dict(zip(sent["axis"].bounds, sent["axis"].buckets, strict=True))
            assert sent["axis"].count == 2 and sent["axis"].total_seconds == 20.4
            assert (axis[0.25], axis[0.5], axis[10.0], axis[30.0]) == (0, 1, 1, 2)
            assert sent["secure"].count == 1

            # Each recipient's first 01 (A at 120 s, B at 7200 s); a 03 is not a 01.
            [received] = await latency.submit_to_received(conn)
            assert received.count == 2 and received.total_seconds == 7320
            by_bound = dict(zip(received.bounds, received.buckets, strict=True))
            assert (by_bound[60.0], by_bound[300.0], by_bound[3600.0], by_bound[4 * 3600.0]) == (
                0,
                1,
                1,
                2,
            )

            [handed] = await latency.receive_to_handover(conn)
            assert handed.count == 2 and handed.total_seconds == 45.2
            by_bound = dict(zip(handed.bounds, handed.buckets, strict=True))
            assert (by_bound[0.1], by_bound[0.25], by_bound[30.0], by_bound[60.0]) == (0, 1, 1, 2)

    asyncio.run(scenario())
