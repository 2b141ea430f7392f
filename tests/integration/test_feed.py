"""The feed and acknowledgements over real HTTP on loopback, on SQLite and PostgreSQL: what
arrives becomes an event in the transaction that stores it, the feed hands events out in a total
order with a cursor, a consumer killed mid-way resumes from its cursor with nothing lost or seen
twice, and the order holds with concurrent writers (a later-committed lower id is not skipped)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from integration_support import EXAMPLES, OTHER, RECIPIENT, SENDER

from connectors.fake import FakeConnector
from envelopes.building import build_document_bytes, build_status
from envelopes.metadata import parse_metadata
from envelopes.model import BusinessDocType, Organization, ResponseFor, StatusCode, StatusPackage
from gateway.bootstrap import Gateway, load_signers
from gateway.store import events as store_events
from gateway.store.tables import events, messages, takes
from gateway.usecases import intake, submit, tokens
from gateway.web.app import create_app

FEED = "/api/v1/feed"
Client = TestClient[web.Request, web.Application]
CONSUMER = Path(__file__).with_name("feed_consumer.py")


def run(scenario: Callable[[], Any]) -> Any:
    return asyncio.run(scenario())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def serve(gateway: Gateway) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(gateway))) as client:
        yield client


def package(gateway: Gateway, number: int, doc_type: int = 0, subject: str = "V/v số") -> bytes:
    """A document from SENDER to RECIPIENT, signed; ``number`` makes its DocumentId its own."""
    meta = json.loads((EXAMPLES / "new-document.json").read_bytes())
    meta["code"]["number"] = str(number)
    meta["subject"] = f"{subject} {number}"
    meta["business"]["doc_type"] = doc_type
    if doc_type:
        meta["business"]["document_id"] = "000.00.00.G22,2026/11/20,1/VPCP"
        meta["business"]["reason"] = "Sửa nội dung"
    request = parse_metadata(json.dumps(meta).encode(), today=gateway.clock().date())
    data, _ = build_document_bytes(
        request.header, business=request.business, signer=gateway.signer(SENDER)
    )
    return data


async def receive(gateway: Gateway, data: bytes) -> str:
    return (await intake.receive_package(gateway, io.BytesIO(data), via="test")).message_id


async def feed(client: Client, headers: dict[str, str], after: str = "", limit: int = 50) -> Any:
    response = await client.get(FEED, params={"after": after, "limit": limit}, headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def problem(response: aiohttp.ClientResponse, status: int, code: str, element: str) -> None:
    text = await response.text()
    assert response.status == status, text
    body = json.loads(text)
    assert (body["code"], body["element"]) == (code, element), body


def test_arrivals_statuses_and_held_documents_are_events_for_their_unit(
    make_gateway: Any,
) -> None:
    async def scenario() -> None:
        async with (
            make_gateway(
                local_units=(SENDER, RECIPIENT), connectors={"axis": FakeConnector(name="axis")}
            ) as gateway,
            serve(gateway) as client,
        ):
            admin = bearer(await tokens.create_token(gateway, name="admin", role="admin"))
            h41 = bearer(
                await tokens.create_token(gateway, name="h41", role="member", unit_code=RECIPIENT)
            )
            g22 = bearer(
                await tokens.create_token(gateway, name="g22", role="member", unit_code=SENDER)
            )
            h14 = bearer(
                await tokens.create_token(gateway, name="h14", role="member", unit_code=OTHER)
            )
            received = await receive(gateway, package(gateway, 1))
            revoked = await receive(gateway, package(gateway, 2, BusinessDocType.REVOKE))
            # A classified document with no secure route: held, an event for its sender.
            meta = json.loads((EXAMPLES / "new-document.json").read_bytes())
            meta["classification"] = "mat"
            meta["to"] = [{"organ_id": OTHER}]
            request = parse_metadata(json.dumps(meta).encode(), today=gateway.clock().date())
            submitted = await submit.submit_document(gateway, request, [], client="t", actor="t")
            held = submitted.message_id
            # A status from OTHER about a document G22 sent (the one held, say): 03.
            status = build_status(
                StatusPackage(
                    from_=Organization(organ_id=OTHER),
                    response_for=ResponseFor(
                        organ_id=SENDER, code=str(request.header.code),
                        promulgation_date=None, document_id=submitted.document_id,
                    ),
                    status_code=StatusCode.ACCEPTED,
                    timestamp=gateway.clock().replace(tzinfo=None, microsecond=0),
                    description="Đã tiếp nhận",
                ),
                signer=_other_signer(gateway),
            )  # fmt: skip
            status_id = await receive(gateway, status)

            # A duplicate stores nothing: its transaction, the event with it, is rolled back.
            assert await receive(gateway, package(gateway, 1)) == received

            everything = (await feed(client, admin))["items"]
            kinds = [(e["type"], e["unit"], e["message_id"]) for e in everything]
            assert kinds == [
                ("document.received", RECIPIENT, received),
                ("document.revoked", RECIPIENT, revoked),
                ("transport.held", SENDER, held),
                ("status.received", SENDER, held),
            ], kinds
            first = everything[0]
            assert first["peer"] == SENDER and first["subject"] == "V/v số 1"
            assert first["links"]["package"] == f"/api/v1/messages/{received}/package"
            assert [int(e["cursor"]) for e in everything] == sorted(
                int(e["cursor"]) for e in everything
            )
            assert len({e["event_id"] for e in everything}) == 4
            held_event, status_event = everything[2], everything[3]
            assert held_event["classification"] == "mat" and held_event["subject"] is None
            assert held_event["peer"] == OTHER and held_event["reason"]
            assert status_event["status_code"] == "03" and status_event["peer"] == OTHER
            assert status_event["status_message_id"] == status_id
            assert status_event["subject"] is None  # about a classified document

            # Each member sees its own unit's events; another unit's member sees none.
            assert [e["event_id"] for e in (await feed(client, h41))["items"]] == [
                e["event_id"] for e in everything[:2]
            ]
            assert [e["event_id"] for e in (await feed(client, g22))["items"]] == [
                e["event_id"] for e in everything[2:]
            ]
            assert (await feed(client, h14))["items"] == []

            # The cursor: nothing after the last, and the same cursor back.
            last = everything[-1]["cursor"]
            again = await feed(client, admin, after=last)
            assert again == {"items": [], "next_cursor": last}
            for bad in ("x", "-1", "1.0", "9" * 19):
                await problem(
                    await client.get(FEED, params={"after": bad}, headers=admin),
                    400, "BAD_REQUEST", "after",
                )  # fmt: skip
            await problem(
                await client.get(FEED, params={"since": "1"}, headers=admin),
                400, "BAD_REQUEST", "since",
            )  # fmt: skip
            assert (await client.get(FEED)).status == 401

    run(scenario)


def _other_signer(gateway: Gateway) -> Any:
    """OTHER's own key (not one of this gateway's units): it signs OTHER's status."""
    return load_signers(gateway.settings.resolve(gateway.settings.keys.dir), (OTHER,))[OTHER]


def test_ack_marks_a_received_document_taken_once_per_unit(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with (
            make_gateway(local_units=(SENDER, RECIPIENT)) as gateway,
            serve(gateway) as client,
        ):
            admin = bearer(await tokens.create_token(gateway, name="admin", role="admin"))
            h41 = bearer(
                await tokens.create_token(gateway, name="h41", role="member", unit_code=RECIPIENT)
            )
            g22 = bearer(
                await tokens.create_token(gateway, name="g22", role="member", unit_code=SENDER)
            )
            first = await receive(gateway, package(gateway, 1))
            second = await receive(gateway, package(gateway, 2))
            waiting = await client.get("/api/v1/handover?waiting=true", headers=admin)
            assert [(i["message_id"], i["unit"]) for i in (await waiting.json())["items"]] == [
                (first, RECIPIENT),
                (second, RECIPIENT),
            ]

            response = await client.post(f"/api/v1/messages/{first}/ack", headers=h41)
            assert response.status == 201, await response.text()
            taken = (await response.json())["taken"]
            assert [(t["unit"], t["now"]) for t in taken] == [(RECIPIENT, True)]
            response = await client.post(f"/api/v1/messages/{first}/ack", headers=h41)
            assert response.status == 200
            again = (await response.json())["taken"]
            assert again[0]["now"] is False and again[0]["taken_at"] == taken[0]["taken_at"]

            # Not addressed to G22 (it sent nothing here; a member of another unit): 404.
            await problem(
                await client.post(f"/api/v1/messages/{second}/ack", headers=g22),
                404, "NOT_FOUND", "id",
            )  # fmt: skip
            await problem(
                await client.post(
                    f"/api/v1/messages/{second}/ack", json={"unit": SENDER}, headers=h41
                ),
                403, "FORBIDDEN", "unit",
            )  # fmt: skip
            await problem(
                await client.post(
                    f"/api/v1/messages/{second}/ack", json={"unit": OTHER}, headers=admin
                ),
                404, "NOT_FOUND", "unit",
            )  # fmt: skip
            await problem(
                await client.post(
                    f"/api/v1/messages/{second}/ack", json={"who": 1}, headers=admin
                ),
                400, "BAD_REQUEST", "who",
            )  # fmt: skip
            await problem(
                await client.post("/api/v1/messages/nope/ack", headers=admin),
                404, "NOT_FOUND", "id",
            )  # fmt: skip
            async with gateway.engine.connect() as conn:
                assert await conn.scalar(sa.select(sa.func.count()).select_from(takes)) == 1

            waiting = await client.get("/api/v1/handover?waiting=true", headers=h41)
            assert [i["message_id"] for i in (await waiting.json())["items"]] == [second]
            everything = await client.get("/api/v1/handover?limit=1", headers=admin)
            page = await everything.json()
            assert page["items"][0]["taken_by"] == "h41" and page["next_cursor"]
            rest = await client.get(
                "/api/v1/handover", params={"cursor": page["next_cursor"]}, headers=admin
            )
            assert [i["message_id"] for i in (await rest.json())["items"]] == [second]
            await problem(
                await client.get("/api/v1/handover", params={"cursor": "x"}, headers=admin),
                400, "BAD_REQUEST", "cursor",
            )  # fmt: skip
            # With a reply: refused replies take nothing; a good one goes with the take, once.
            for reply, code in (("13", "STATUS_CODE_INVALID"), ("01", "STATUS_CODE_INVALID")):
                await problem(
                    await client.post(
                        f"/api/v1/messages/{second}/ack", json={"reply": reply}, headers=admin
                    ),
                    422, code, "reply",
                )  # fmt: skip
            response = await client.post(
                f"/api/v1/messages/{second}/ack", json={"reply": "02"}, headers=admin
            )
            assert response.status == 422, await response.text()
            async with gateway.engine.connect() as conn:
                assert await conn.scalar(sa.select(sa.func.count()).select_from(takes)) == 1
            for _ in range(2):
                response = await client.post(
                    f"/api/v1/messages/{second}/ack",
                    json={"reply": "03", "description": "Đã vào sổ"},
                    headers=admin,
                )
                assert [t["unit"] for t in (await response.json())["taken"]] == [RECIPIENT]
            async with gateway.engine.connect() as conn:
                replies = (
                    await conn.execute(
                        sa.select(messages.c.sender, messages.c.status_code).where(
                            messages.c.related_message_id == second,
                            messages.c.status_code == "03",
                        )
                    )
                ).all()
            assert [tuple(r) for r in replies] == [(RECIPIENT, "03")]

    run(scenario)


# ------------------------------------------------------------------ order with concurrent writers


def test_a_later_committed_lower_id_is_not_skipped(make_gateway: Any, database_url: str) -> None:
    """Transaction A writes an event first (the lower id) and commits last; a reader that read
    B's event in between must still get A's after its cursor."""
    if not database_url.startswith("postgresql"):
        pytest.skip("needs two concurrent writers: SQLite has one")

    async def scenario() -> None:
        async with make_gateway() as gateway, serve(gateway) as client:
            admin = bearer(await tokens.create_token(gateway, name="admin", role="admin"))
            now = gateway.clock()
            async with gateway.engine.connect() as a, gateway.engine.connect() as b:
                await a.begin()
                await store_events.record(
                    a, [store_events.event_row(type="document.received", occurred_at=now)]
                )
                await b.begin()
                await store_events.record(
                    b, [store_events.event_row(type="status.received", occurred_at=now)]
                )
                await b.commit()
                page = await feed(client, admin)
                assert [e["type"] for e in page["items"]] == ["status.received"]
                await a.commit()
            later = await feed(client, admin, after=page["next_cursor"])
            assert [e["type"] for e in later["items"]] == ["document.received"]
            async with gateway.engine.connect() as conn:
                rows = (await conn.execute(sa.select(events.c.id, events.c.type))).all()
            ids = {row.type: row.id for row in rows}
            assert ids["document.received"] < ids["status.received"]  # the case in point

    run(scenario)


def test_concurrent_writers_and_readers_lose_and_repeat_nothing(
    make_gateway: Any, database_url: str
) -> None:
    """Writers commit events after random delays while readers follow the feed from their
    cursors: every reader ends with every event, once, in one order."""
    if not database_url.startswith("postgresql"):
        pytest.skip("needs concurrent writers: SQLite has one")
    writers, per_writer = 8, 15

    async def scenario() -> None:
        async with make_gateway() as gateway, serve(gateway) as client:
            admin = bearer(await tokens.create_token(gateway, name="admin", role="admin"))
            written: list[str] = []
            done = asyncio.Event()

            async def writer(seed: int) -> None:
                for index in range(per_writer):
                    row = store_events.event_row(type="document.received", occurred_at=now)
                    async with gateway.engine.begin() as conn:
                        await store_events.record(conn, [row])
                        await asyncio.sleep(((seed * 7 + index * 13) % 17) / 500)
                    written.append(row["event_id"])

            async def reader() -> list[str]:
                seen: list[str] = []
                cursor = ""
                while True:
                    finished = done.is_set()
                    page = await feed(client, admin, after=cursor, limit=7)
                    seen += [e["event_id"] for e in page["items"]]
                    cursor = page["next_cursor"]
                    if finished and not page["items"]:
                        return seen
                    await asyncio.sleep(0.002)

            now = gateway.clock()
            readers = [asyncio.create_task(reader()) for _ in range(3)]
            await asyncio.gather(*(writer(seed) for seed in range(writers)))
            done.set()
            results = await asyncio.gather(*readers)
            assert len(written) == writers * per_writer
            for seen in results:
                assert len(seen) == len(set(seen)) == len(written)
                assert set(seen) == set(written)
                assert seen == results[0]

    run(scenario)


# ----------------------------------------------------------------- a consumer killed mid-way


def test_a_consumer_killed_mid_way_resumes_from_its_cursor(
    make_gateway: Any, tmp_path: Path
) -> None:
    """A real consumer process (feed_consumer.py) keeps its cursor with what it processed; it is
    killed (SIGKILL) while documents keep arriving, started again, and ends with every event
    once, in the feed's order."""
    total = 24
    journal = tmp_path / "journal.jsonl"

    async def scenario() -> None:
        async with (
            make_gateway(
                local_units=(SENDER, RECIPIENT), connectors={"axis": FakeConnector(name="axis")}
            ) as gateway,
            serve(gateway) as client,
        ):
            token = await tokens.create_token(
                gateway, name="h41", role="member", unit_code=RECIPIENT
            )
            url = str(client.make_url(FEED))

            def start() -> subprocess.Popen[bytes]:
                return subprocess.Popen(
                    [sys.executable, str(CONSUMER), url, token, str(journal), str(total)]
                )

            consumer = start()
            try:
                for number in range(1, total + 1):
                    await receive(gateway, package(gateway, number))
                    if number == total // 2:
                        await _wait_for_lines(journal, 2)
                        os.kill(consumer.pid, signal.SIGKILL)
                        await asyncio.to_thread(consumer.wait)
                        consumer = start()
                assert await asyncio.to_thread(consumer.wait, 120) == 0
            finally:
                if consumer.poll() is None:
                    consumer.kill()
                    consumer.wait()
            expected = [e["event_id"] for e in (await feed(client, bearer(token)))["items"]]
            assert len(expected) == total
            assert _journal_events(journal) == expected

    run(scenario)


async def _wait_for_lines(path: Path, count: int) -> None:
    deadline = time.monotonic() + 60
    while not path.exists() or len(path.read_text().splitlines()) < count:
        assert time.monotonic() < deadline, "the consumer processed nothing"
        await asyncio.sleep(0.02)


def _journal_events(path: Path) -> list[str]:
    seen = []
    for line in path.read_text().splitlines():
        if line.endswith("}"):  # a line cut by the kill is not a page processed
            seen += json.loads(line)["events"]
    return seen
