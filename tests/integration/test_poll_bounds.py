"""A poll takes many received items at once, but never more than the process's intake slots —
so a burst of arrivals stays within the database pool instead of opening (and closing again) an
overflow connection per item, a new PostgreSQL backend each time. Real packages, signed and
verified, stored in a real database (each test runs on SQLite and on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from integration_support import EXAMPLES, RECIPIENT, SENDER
from sqlalchemy import event

from connectors.base import RemoteItem
from envelopes.building import build_document_bytes
from envelopes.metadata import parse_metadata
from envelopes.model import DocumentCode, document_id_for
from gateway.bootstrap import Gateway, intake_slots
from gateway.store.tables import messages
from gateway.usecases.polling import poll_channel

POOL_SIZE = 4
PACKAGES = 24


class ListedPackages:
    """A pollable channel serving prepared packages; it notes how many items were in hand at
    once, from the start of a fetch to the end of its acknowledgement."""

    name = "axis"

    def __init__(self, packages: list[bytes]) -> None:
        self.packages = packages
        self.in_hand = 0
        self.most_in_hand = 0
        self.acknowledged: dict[str, bool] = {}

    async def pending(self, kind: str) -> list[RemoteItem]:
        if kind != "document":
            return []
        return [RemoteItem(remote_id=str(i), kind=kind) for i in range(len(self.packages))]

    async def fetch(self, item: RemoteItem) -> bytes:
        self.in_hand += 1
        self.most_in_hand = max(self.most_in_hand, self.in_hand)
        await asyncio.sleep(0.005)  # the network: let the other items start
        return self.packages[int(item.remote_id)]

    async def acknowledge(self, item: RemoteItem, *, ok: bool, reason: str = "") -> None:
        self.acknowledged[item.remote_id] = ok
        self.in_hand -= 1


def documents_for_recipient(gateway: Gateway, count: int) -> list[bytes]:
    """``count`` distinct documents from SENDER to RECIPIENT, signed with SENDER's key."""
    request = parse_metadata(
        (EXAMPLES / "new-document.json").read_bytes(), today=gateway.clock().date()
    )
    packages = []
    for number in range(count):
        code = DocumentCode(number=str(9000 + number), notation=request.header.code.notation)
        header = dataclasses.replace(
            request.header,
            code=code,
            document_id=document_id_for(SENDER, request.header.promulgation.date, code),
        )
        data, _ = build_document_bytes(
            header, business=request.business, signer=gateway.signer(SENDER)
        )
        packages.append(data)
    return packages


def test_intake_slots_leave_half_the_pool_to_the_rest() -> None:
    assert [intake_slots(size) for size in (1, 2, 4, 20, 32, 100)] == [1, 1, 2, 10, 16, 16]


def test_a_burst_of_arrivals_stays_within_the_pool(make_gateway: Any, tmp_path: Path) -> None:
    async def scenario() -> None:
        # SENDER's key is here too, to sign what "arrives"; RECIPIENT is the unit that receives.
        async with make_gateway(local_units=(SENDER, RECIPIENT), pool_size=POOL_SIZE) as gateway:
            channel = ListedPackages(documents_for_recipient(gateway, PACKAGES))
            opened: list[object] = []
            event.listen(gateway.engine.sync_engine, "connect", lambda *_: opened.append(1))

            report = await poll_channel(gateway, "axis", channel)

            assert report.stored == PACKAGES, report
            assert channel.acknowledged == {str(i): True for i in range(PACKAGES)}
            assert 1 < channel.most_in_hand <= intake_slots(POOL_SIZE)
            # Within the pool: no connection beyond its size was opened for the burst (the old
            # 16 items per poll against this pool opened overflow connections item after item).
            assert len(opened) <= POOL_SIZE
            async with gateway.engine.connect() as conn:
                received = await conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(messages)
                    .where(messages.c.direction == "in", messages.c.kind == "document")
                )
            assert received == PACKAGES

    asyncio.run(scenario())
