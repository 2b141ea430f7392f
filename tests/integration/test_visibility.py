"""One definition each, in the store (``gateway/store/visibility.py``): who may see a message (a
member token: what its unit sent or is a recipient of) — for one message and for the list alike —
and that a classified message keeps no readable subject (nor its folded search text), whoever
writes its row.

Real databases (SQLite file and PostgreSQL), messages submitted through the use case.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

from integration_support import OTHER, RECIPIENT, SENDER
from secure_peers import send

from gateway.store import blobs, message_queries
from gateway.store.message_queries import MessageFilter


def test_a_member_sees_one_message_as_it_sees_the_list(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with make_gateway() as gw:
            plain = await send(gw, "thuong", "701")  # SENDER → RECIPIENT
            async with gw.engine.connect() as conn:
                for unit, sees in ((SENDER, True), (RECIPIENT, True), (OTHER, False)):
                    one = await message_queries.get_message(conn, plain, visible_to_unit=unit)
                    listed = await message_queries.list_messages(
                        conn, MessageFilter(visible_to_unit=unit)
                    )
                    assert (one is not None) is sees, unit
                    assert ([m.id for m in listed] == [plain]) is sees, unit
                assert await message_queries.get_message(conn, plain) is not None  # staff: no unit

    asyncio.run(scenario())


def test_a_classified_message_keeps_no_readable_subject_whoever_writes_it(
    make_gateway: Any,
) -> None:
    async def scenario() -> None:
        async with make_gateway() as gw:
            plain = await send(gw, "thuong", "702")
            secret = await send(gw, "mat", "703")  # held: no secure channel here
            now = gw.clock()
            written = str(uuid.uuid4())
            async with gw.engine.begin() as conn:
                ref = await blobs.put_bytes(conn, b"<sealed/>", inline_limit=1 << 16, now=now)
                # As any new writer would: the store, not the caller, drops the subject.
                await message_queries.insert_message(
                    conn,
                    id=written,
                    direction="in",
                    kind="document",
                    document_id=f"{OTHER},2026/00/00,1/VT-X",
                    sender=OTHER,
                    classification="toi_mat",
                    subject="V/v nội dung mật",
                    priority=0,
                    package_sha256=ref.sha256,
                    client="test",
                    promulgation_date=dt.date(2026, 1, 2),
                    created_at=now,
                )
            async with gw.engine.connect() as conn:
                stored = [
                    await message_queries.get_message(conn, m) for m in (plain, secret, written)
                ]
                # Nor a folded copy of it to search (messages.search_text): the words are not
                # found, the DocumentId still is.
                searched = await message_queries.list_messages(
                    conn, MessageFilter(text="noi dung mat")
                )
                by_id = await message_queries.list_messages(conn, MessageFilter(text="1/vt-x"))
        assert searched == [] and [m.id for m in by_id] == [written]
        assert [m.subject if m else "missing" for m in stored][1:] == [None, None]
        assert stored[0] is not None and stored[0].subject

    asyncio.run(scenario())
