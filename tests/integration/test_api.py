"""The HTTP API over real HTTP on loopback (aiohttp's TestServer), on SQLite and PostgreSQL.

Every bad request must come back as a problem (application/problem+json with its stable code) and
change nothing: each one is checked against a count of every table before and after.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from integration_support import EXAMPLES, OTHER, RECIPIENT, SENDER

from connectors.base import Delivery, PeerRefused
from connectors.fake import FakeConnector, Scripted
from connectors.http_push import HttpPushConnector
from envelopes.model import Classification
from envelopes.reading import read_package
from gateway.bootstrap import Gateway
from gateway.keystore import create_ca, issue_unit_certificate
from gateway.store import job_queries, message_queries
from gateway.store.database import create_engine
from gateway.store.tables import (
    attempts,
    audit_events,
    blobs,
    messages,
    recipients,
    status_events,
    unit_certificates,
    units,
)
from gateway.usecases import delivery, tokens
from gateway.usecases.monitoring import Counters
from gateway.usecases.statuses import VIETNAM
from gateway.web.app import create_app
from gateway.web.health import render_metrics

UPLOAD_LIMIT = 256 * 1024
API_SETTINGS = f"[api]\nmax_upload_bytes = {UPLOAD_LIMIT}\npage_size = 2\n"
MESSAGES = "/api/v1/messages"
PROBLEM_TYPE = "https://docgw.invalid/errors/"
Client = TestClient[web.Request, web.Application]


# ------------------------------------------------------------------------------------ helpers


def run(scenario: Callable[[], Any]) -> Any:
    return asyncio.run(scenario())


def metadata(*, to: tuple[str, ...] = (RECIPIENT,), number: str = "7816", **changes: Any) -> Any:
    meta = json.loads((EXAMPLES / "new-document.json").read_text(encoding="utf-8"))
    meta["to"] = [{"organ_id": code} for code in to]
    meta["code"] = {"number": number, "notation": "VPCP-TTĐT"}
    meta.update(changes)
    return meta


PDF = ("van-ban.pdf", b"%PDF-1.7 noi dung van ban", "application/pdf")


def form(meta: Any, *files: tuple[str, bytes, str]) -> aiohttp.FormData:
    data = aiohttp.FormData()
    raw = meta.decode() if isinstance(meta, bytes) else json.dumps(meta, ensure_ascii=False)
    data.add_field("metadata", raw, content_type="application/json")
    for name, content, content_type in files:
        data.add_field("attachment", content, filename=name, content_type=content_type)
    return data


def multipart(*parts: tuple[str, str | None, bytes], boundary: str = "b0undary") -> bytes:
    """A hand-made multipart body, for what aiohttp's FormData will not produce."""
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += content + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


MULTIPART = {"Content-Type": "multipart/form-data; boundary=b0undary"}


async def chunked(data: bytes) -> AsyncIterator[bytes]:
    """A body without Content-Length (chunked transfer encoding)."""
    for start in range(0, len(data), 32768):
        yield data[start : start + 32768]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def serve(gateway: Gateway) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(gateway))) as client:
        yield client


async def make_tokens(gateway: Gateway) -> dict[str, dict[str, str]]:
    """Authorization headers by role: admin, operator, a member of SENDER, a member of OTHER."""
    return {
        "admin": bearer(await tokens.create_token(gateway, name="admin", role="admin")),
        "operator": bearer(await tokens.create_token(gateway, name="operator", role="operator")),
        "sender": bearer(
            await tokens.create_token(gateway, name="vpcp", role="member", unit_code=SENDER)
        ),
        "other": bearer(
            await tokens.create_token(gateway, name="h14", role="member", unit_code=OTHER)
        ),
    }


TABLES = (messages, recipients, attempts, audit_events, status_events, blobs, units)
TABLES += (unit_certificates,)


async def snapshot(gateway: Gateway) -> dict[str, int]:
    async with gateway.engine.connect() as conn:
        return {
            table.name: int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
            for table in TABLES
        }


async def expect_problem(
    response: aiohttp.ClientResponse, status: int, code: str, element: str | None = None
) -> dict[str, Any]:
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/problem+json", text
    body = json.loads(text)
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["type"] == PROBLEM_TYPE + code
    assert body["title"] and body["detail"]
    assert "element" in body
    if element is not None:
        assert body["element"] == element, body
    assert "Traceback" not in text
    return body


async def submit(
    client: Client, headers: Mapping[str, str], meta: Any = None, key: str | None = None
) -> dict[str, Any]:
    extra = {"Idempotency-Key": key} if key else {}
    response = await client.post(
        MESSAGES, data=form(meta or metadata(), PDF), headers={**headers, **extra}
    )
    assert response.status == 201, await response.text()
    return await response.json()  # type: ignore[no-any-return]


async def ok(response: aiohttp.ClientResponse, status: int = 200) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


# -------------------------------------------------------------------------------- submitting


def test_submit_is_201_and_a_repeated_idempotency_key_is_200_with_the_same_message(
    make_gateway: Any,
) -> None:
    fake = FakeConnector(name="axis")

    async def scenario() -> None:
        async with (
            make_gateway(connectors={"axis": fake}, extra=API_SETTINGS) as gateway,
            serve(gateway) as client,
        ):
            who = await make_tokens(gateway)
            headers = {**who["operator"], "Idempotency-Key": "ke-toan/2026/0001"}
            meta = metadata(to=(RECIPIENT, OTHER))
            first = await client.post(MESSAGES, data=form(meta, PDF), headers=headers)
            body = await ok(first, 201)
            assert first.headers["Location"] == f"{MESSAGES}/{body['id']}"
            assert body["document_id"] == "000.00.00.G22,2026/11/23,7816/VPCP-TTĐT"
            assert body["state"] == "queued" and body["created"] is True
            assert [(r["recipient"], r["channel"]) for r in body["routes"]] == [
                (RECIPIENT, "axis"),
                (OTHER, "axis"),
            ]
            before = await snapshot(gateway)
            again = await ok(
                await client.post(MESSAGES, data=form(meta, PDF), headers=headers), 200
            )
            assert again["id"] == body["id"] and again["created"] is False
            assert again["document_id"] == body["document_id"]
            assert await snapshot(gateway) == before

            # The attachment reached the package with its name and content type.
            assert await delivery.deliver_due(gateway, "w") == 2
            [attachment] = read_package(io.BytesIO(fake.packages[0])).document().attachments
            assert (attachment.name, attachment.content_type) == ("van-ban.pdf", "application/pdf")
            assert attachment.size == len(PDF[1])

            # Without a key, another document is a new message (the same one is refused:
            # DOCUMENT_ID_REUSED, test_exchange_semantics.py).
            other = await submit(client, who["operator"], metadata(to=(RECIPIENT,), number="7817"))
            assert other["id"] != body["id"]

    run(scenario)


def test_attachment_names_as_browsers_and_libraries_send_them(make_gateway: Any) -> None:
    """Quoted UTF-8, RFC 2231 ``filename*`` and an escaped quote: each becomes the attachment's
    name in the package. (A Windows path is refused: test_api_hardening.py.)"""
    fake = FakeConnector(name="axis")
    meta = json.dumps(metadata(), ensure_ascii=False).encode()
    dispositions = [
        'form-data; name="attachment"; filename="Phụ lục số 1.pdf"',
        "form-data; name=\"attachment\"; filename*=UTF-8''T%E1%BB%9D%20tr%C3%ACnh.pdf",
        'form-data; name="attachment"; filename="bao \\"cao\\".pdf"',
    ]
    body = b"--b0undary\r\nContent-Disposition: form-data; name=metadata\r\n\r\n" + meta
    for number, disposition in enumerate(dispositions):
        body += f"\r\n--b0undary\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += b"%PDF-1.7 " + str(number).encode()
    body += b"\r\n--b0undary--\r\n"

    async def scenario() -> list[str]:
        async with (
            make_gateway(connectors={"axis": fake}, extra=API_SETTINGS) as gateway,
            serve(gateway) as client,
        ):
            who = await make_tokens(gateway)
            response = await client.post(
                MESSAGES, data=body, headers={**who["operator"], **MULTIPART}
            )
            await ok(response, 201)
            assert await delivery.deliver_due(gateway, "w") == 1
            package = read_package(io.BytesIO(fake.packages[0])).document()
            return [attachment.name for attachment in package.attachments]

    assert run(scenario) == ["Phụ lục số 1.pdf", "Tờ trình.pdf", 'bao "cao".pdf']


# ---------------------------------------------------------------------------------- listing


def test_list_filters_and_cursor_paging(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with (
            make_gateway(connectors={"axis": FakeConnector(name="axis")}, extra=API_SETTINGS) as gw,
            serve(gw) as client,
        ):
            who = await make_tokens(gw)
            op = who["operator"]
            alpha = (await submit(client, op, metadata(number="1", subject="Alpha")))["id"]
            beta = (
                await submit(client, op, metadata(to=(OTHER,), number="2", subject="Kế hoạch Beta"))
            )["id"]
            gamma = (
                await submit(client, op, metadata(to=(RECIPIENT, OTHER), number="3", subject="G"))
            )["id"]

            async def ids(query: str = "") -> list[str]:
                body = await ok(await client.get(f"{MESSAGES}?{query}", headers=op))
                return [item["id"] for item in body["items"]]

            # Default page size from settings (2), newest first, then the cursor.
            page = await ok(await client.get(MESSAGES, headers=op))
            assert [i["id"] for i in page["items"]] == [gamma, beta]
            assert page["next_cursor"]
            rest = await ok(
                await client.get(MESSAGES, params={"cursor": page["next_cursor"]}, headers=op)
            )
            assert [i["id"] for i in rest["items"]] == [alpha] and rest["next_cursor"] is None

            # One by one: every message once, in order.
            seen, cursor = [], None
            while True:
                params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
                body = await ok(await client.get(MESSAGES, params=params, headers=op))
                seen += [i["id"] for i in body["items"]]
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            assert seen == [gamma, beta, alpha]

            item = page["items"][0]
            assert item["state"] == "queued" and item["direction"] == "out"
            assert item["kind"] == "document" and item["classification"] == "thuong"
            assert item["subject"] == "G" and item["sender"] == SENDER
            assert item["created_at"].endswith("+00:00") and item["send_due_at"]
            assert item["recipients"] == [
                {"unit_code": RECIPIENT, "state": "queued", "business_status": None},
                {"unit_code": OTHER, "state": "queued", "business_status": None},
            ]

            assert set(await ids(f"recipient={OTHER}&limit=10")) == {beta, gamma}
            assert await ids("text=Alpha") == [alpha]
            # Every word, in any order, accents and case aside; a typed % is no wildcard.
            assert await ids("text=beta KE hoach") == [beta]
            assert await ids("text=hoach alpha") == [] and await ids("text=%25") == []
            assert await ids(f"sender={SENDER}&classification=thuong&limit=10") == [
                gamma,
                beta,
                alpha,
            ]
            assert await ids("direction=in") == []
            assert await ids("classification=mat") == []
            today = gw.clock().astimezone(VIETNAM).date().isoformat()  # a date is a Vietnam day
            assert len(await ids(f"from={today}&to={today}&limit=10")) == 3
            assert await ids("to=2020-01-01") == []
            assert await ids("from=2999-01-01T00:00:00Z") == []

            # States move with delivery; the deadline filter follows the gateway's clock.
            assert len(await ids("state=queued&limit=10")) == 3
            await delivery.deliver_due(gw, "w")
            assert await ids("state=queued") == [] and len(await ids("state=sent&limit=9")) == 3
            assert await ids("breached=true") == []
            gamma_now = await ok(await client.get(f"{MESSAGES}/{gamma}", headers=op))
            assert gamma_now["state"] == "sent"
            real_clock = gw.clock
            gw.clock = lambda: real_clock() + dt.timedelta(days=30)
            # Sent, but no arrival notice (01) within its deadline: every one is breached.
            assert len(await ids("breached=true&limit=10")) == 3

    run(scenario)


# ----------------------------------------------------------------------------------- detail


def test_detail_has_recipients_and_timelines_after_delivery(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with (
            make_gateway(connectors={"axis": FakeConnector(name="axis")}, extra=API_SETTINGS) as gw,
            serve(gw) as client,
        ):
            who = await make_tokens(gw)
            sent = await submit(client, who["operator"])
            assert await delivery.deliver_due(gw, "w") == 1
            detail = await ok(await client.get(f"{MESSAGES}/{sent['id']}", headers=who["admin"]))
            assert detail["id"] == sent["id"] and detail["state"] == "sent"
            assert detail["code"] == "7816/VPCP-TTĐT" and detail["client"] == "operator"
            [recipient] = detail["recipients"]
            assert recipient["unit_code"] == RECIPIENT and recipient["state"] == "sent"
            assert recipient["attempt_count"] == 1 and recipient["channel"] == "axis"
            assert recipient["sent_at"] and recipient["arrival_due_at"]
            assert recipient["remote_id"] == "axis-1" and recipient["last_error"] is None
            [attempt] = detail["attempts"]
            assert attempt["outcome"] == "sent" and attempt["worker"] == "w"
            assert attempt["finished_at"].endswith("+00:00")
            assert [e["action"] for e in detail["audit"]] == ["created", "claimed", "attempt_sent"]
            assert detail["audit"][0]["actor"] == "operator"
            assert detail["status_events"] == []

            await expect_problem(
                await client.get(f"{MESSAGES}/no-such-id", headers=who["admin"]), 404, "NOT_FOUND"
            )

    run(scenario)


# ------------------------------------------------------------------------------- operations


def test_resend_cancel_and_reroute_need_a_reason(make_gateway: Any) -> None:
    axis = FakeConnector(name="axis", script=[Scripted.REFUSED])
    backup = FakeConnector(name="backup")

    async def scenario() -> None:
        async with (
            make_gateway(connectors={"axis": axis, "backup": backup}, extra=API_SETTINGS) as gw,
            serve(gw) as client,
        ):
            who = await make_tokens(gw)
            op = who["operator"]
            refused = (await submit(client, op, metadata(number="1")))["id"]
            await delivery.deliver_due(gw, "w")  # the axis refuses it for good: failed
            queued = (await submit(client, op, metadata(number="2")))["id"]

            async def act(message_id: str, action: str, body: Any, headers: Any = op) -> Any:
                return await client.post(
                    f"{MESSAGES}/{message_id}/{action}", json=body, headers=headers
                )

            for action in ("cancel", "resend"):
                for body in ({}, {"reason": "   "}):
                    before = await snapshot(gw)
                    await expect_problem(
                        await act(queued, action, body), 422, "REASON_REQUIRED", "reason"
                    )
                    assert await snapshot(gw) == before

            cancelled = await ok(await act(queued, "cancel", {"reason": "gửi nhầm"}))
            assert cancelled == {
                "message_id": queued,
                "recipients": [RECIPIENT],
                "new_state": "cancelled",
            }
            await expect_problem(
                await act(queued, "cancel", {"reason": "lần nữa"}), 409, "CONFLICT"
            )
            await expect_problem(
                await act(queued, "resend", {"reason": "x"}, who["other"]), 403, "FORBIDDEN"
            )

            await expect_problem(
                await act(refused, "reroute", {"channel": "nowhere", "reason": "x"}),
                422,
                "UNKNOWN_UNIT",
                "channel",
            )
            rerouted = await ok(
                await act(refused, "reroute", {"channel": "backup", "reason": "trục từ chối"})
            )
            assert rerouted["new_state"] == "queued" and rerouted["recipients"] == [RECIPIENT]
            await delivery.deliver_due(gw, "w")
            assert len(backup.deliveries) == 1

            resent = await ok(
                await act(refused, "resend", {"reason": "bên nhận mất", "recipient": RECIPIENT})
            )
            assert resent["new_state"] == "queued"
            detail = await ok(await client.get(f"{MESSAGES}/{refused}", headers=op))
            assert detail["recipients"][0]["channel"] == "backup"
            moves = [(e["action"], e["actor"], e["reason"]) for e in detail["audit"]]
            assert ("reroute", "operator", "trục từ chối") in moves
            assert ("resend", "operator", "bên nhận mất") in moves

    run(scenario)


# --------------------------------------------------------------------------------- statuses


def test_status_replies(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with (
            make_gateway(connectors={"axis": FakeConnector(name="axis")}, extra=API_SETTINGS) as gw,
            serve(gw) as client,
        ):
            who = await make_tokens(gw)
            sent = (await submit(client, who["operator"], metadata(to=(RECIPIENT, OTHER))))["id"]
            url = f"{MESSAGES}/{sent}/status"

            bad = [
                ({"code": "99", "description": "x"}, 422, "STATUS_CODE_INVALID"),
                ({"code": "01", "description": "x"}, 422, "STATUS_CODE_INVALID"),
                ({"code": 13, "description": "x"}, 422, "STATUS_CODE_INVALID"),
                ({"description": "x"}, 422, "STATUS_CODE_INVALID"),
                ({"code": "13"}, 422, "REASON_REQUIRED"),
                ({"code": "03"}, 409, "CONFLICT"),  # a receiver's status on a sent document
                (
                    {"code": "13", "description": "x", "staff_info": {"ten": "A"}},
                    400,
                    "BAD_REQUEST",
                ),
            ]
            for body, status, code in bad:
                before = await snapshot(gw)
                await expect_problem(
                    await client.post(url, json=body, headers=who["operator"]), status, code
                )
                assert await snapshot(gw) == before
            # A member of a unit that is not this document's sender cannot speak for it.
            await expect_problem(
                await client.post(
                    url, json={"code": "13", "description": "x"}, headers=who["other"]
                ),
                404,
                "NOT_FOUND",
            )

            body = {
                "code": "13",
                "description": "Đề nghị thu hồi văn bản",
                "staff_info": {"department": "Văn thư", "staff": "Trần Thị B"},
            }
            replied = await ok(await client.post(url, json=body, headers=who["sender"]), 201)
            assert len(replied["status_messages"]) == 2
            detail = await ok(await client.get(f"{MESSAGES}/{sent}", headers=who["operator"]))
            assert [(e["direction"], e["status_code"]) for e in detail["status_events"]] == [
                ("out", "13"),
                ("out", "13"),
            ]
            status_message = await ok(
                await client.get(
                    f"{MESSAGES}/{replied['status_messages'][0]}", headers=who["operator"]
                )
            )
            assert status_message["kind"] == "status" and status_message["status_code"] == "13"
            assert status_message["state"] == "queued"

    run(scenario)


# ------------------------------------------------------------------------------------ inbox


def test_inbox_takes_a_delivered_package_once_and_answers_01(
    make_gateway: Any, databases: Callable[[], str]
) -> None:
    fake = FakeConnector(name="axis")
    second_database = databases()  # outside the event loop: it may create a PostgreSQL database

    async def scenario() -> None:
        async with (
            make_gateway(connectors={"axis": fake}, extra=API_SETTINGS) as sender,
            make_gateway(
                local_units=(RECIPIENT,),
                url=second_database,
                connectors={"axis": FakeConnector(name="axis")},
                extra=API_SETTINGS,
            ) as receiver,
            serve(sender) as sender_api,
            serve(receiver) as receiver_api,
        ):
            who = await make_tokens(sender)
            peer = bearer(await tokens.create_token(receiver, name="peer", role="operator"))
            member = bearer(
                await tokens.create_token(
                    receiver, name="nghe-an", role="member", unit_code=RECIPIENT
                )
            )
            sent = await submit(sender_api, who["operator"], metadata(subject="V/v kết nối"))
            await delivery.deliver_due(sender, "w")
            package = fake.packages[0]
            xml = {**peer, "Content-Type": "application/xml"}

            tampered = package.replace("kết nối".encode(), "kết thúc".encode(), 1)
            assert tampered != package
            bad = [
                (tampered, xml, 422, "SIGNED_HEADER_CHANGED"),
                (b"\x00 not xml at all", xml, 422, "XML_MALFORMED"),
                (package, {**member, "Content-Type": "application/xml"}, 403, "FORBIDDEN"),
                (
                    package,
                    {**peer, "Content-Type": "application/json"},
                    415,
                    "UNSUPPORTED_MEDIA_TYPE",
                ),
                (b"<" * (UPLOAD_LIMIT + 1), xml, 413, "PAYLOAD_TOO_LARGE"),
                (package, {"Content-Type": "application/xml"}, 401, "UNAUTHORIZED"),
            ]
            for data, headers, status, code in bad:
                before = await snapshot(receiver)
                response = await receiver_api.post("/api/v1/inbox", data=data, headers=headers)
                await expect_problem(response, status, code)
                assert await snapshot(receiver) == before

            first = await receiver_api.post("/api/v1/inbox", data=package, headers=xml)
            received = await ok(first, 201)
            assert received["kind"] == "document" and received["duplicate"] is False
            assert received["document_id"] == sent["document_id"]
            assert received["sender"] == SENDER and len(received["answers"]) == 1
            before = await snapshot(receiver)
            again = await ok(
                await receiver_api.post("/api/v1/inbox", data=package, headers=xml), 200
            )
            assert again["id"] == received["id"] and again["duplicate"] is True
            assert await snapshot(receiver) == before

            # The received document, and its automatic 01 answer queued for the sender.
            document = await ok(
                await receiver_api.get(f"{MESSAGES}/{received['id']}", headers=peer)
            )
            assert document["direction"] == "in" and document["subject"] == "V/v kết nối"
            assert document["recipients"][0]["business_status"] == "01"
            answer = await ok(
                await receiver_api.get(f"{MESSAGES}/{received['answers'][0]}", headers=peer)
            )
            assert answer["kind"] == "status" and answer["status_code"] == "01"
            assert answer["recipients"][0]["unit_code"] == SENDER
            assert answer["recipients"][0]["state"] == "queued"

            # The receiving unit's own system answers through the API.
            replied = await receiver_api.post(
                f"{MESSAGES}/{received['id']}/status",
                json={"code": "03", "description": "Đã tiếp nhận"},
                headers=member,
            )
            assert len((await ok(replied, 201))["status_messages"]) == 1

            # What connectors/http_push.py reads back from this endpoint.
            async with aiohttp.ClientSession() as session:
                push = HttpPushConnector(
                    name="peer",
                    endpoint=str(receiver_api.make_url("/api/v1/inbox")),
                    session=session,
                    headers=peer,
                )
                delivered = dataclasses.replace(
                    fake.deliveries[0], open_package=lambda: io.BytesIO(package)
                )
                receipt = await push.deliver(delivered)
            assert receipt.remote_id == received["id"] and receipt.duplicate is True

    run(scenario)


def test_http_push_sees_a_refusal_as_final(make_gateway: Any) -> None:
    """The inbox's 422 for a package that does not verify is a business error for the pusher."""

    async def scenario() -> None:
        async with (
            make_gateway(local_units=(RECIPIENT,), extra=API_SETTINGS) as receiver,
            serve(receiver) as api,
        ):
            peer = bearer(await tokens.create_token(receiver, name="peer", role="operator"))
            async with aiohttp.ClientSession() as session:
                push = HttpPushConnector(
                    name="peer",
                    endpoint=str(api.make_url("/api/v1/inbox")),
                    session=session,
                    headers=peer,
                )
                garbage = b"<edXMLEnvelope/>"
                with pytest.raises(PeerRefused, match="HTTP 422"):
                    await push.deliver(
                        Delivery(
                            message_id="m",
                            document_id="d",
                            kind="document",
                            sender=SENDER,
                            recipients=(RECIPIENT,),
                            classification=Classification.THUONG,
                            open_package=lambda: io.BytesIO(garbage),
                            package_size=len(garbage),
                            package_sha256="0" * 64,
                            attempt=1,
                        )
                    )

    run(scenario)


# ---------------------------------------------------------------------------------- members


def test_a_member_sees_and_acts_only_for_its_unit(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with (
            make_gateway(connectors={"axis": FakeConnector(name="axis")}, extra=API_SETTINGS) as gw,
            serve(gw) as client,
        ):
            who = await make_tokens(gw)
            to_recipient = (await submit(client, who["operator"], metadata(number="1")))["id"]
            to_other = (await submit(client, who["operator"], metadata(to=(OTHER,), number="2")))[
                "id"
            ]

            listed = await ok(await client.get(f"{MESSAGES}?limit=10", headers=who["other"]))
            assert [i["id"] for i in listed["items"]] == [to_other]
            scoped = await ok(
                await client.get(f"{MESSAGES}?recipient={RECIPIENT}", headers=who["other"])
            )
            assert scoped["items"] == []
            await ok(await client.get(f"{MESSAGES}/{to_other}", headers=who["other"]))
            await expect_problem(
                await client.get(f"{MESSAGES}/{to_recipient}", headers=who["other"]),
                404,
                "NOT_FOUND",
            )

            # It cannot send for the gateway's unit, nor act as an operator.
            before = await snapshot(gw)
            response = await client.post(MESSAGES, data=form(metadata(), PDF), headers=who["other"])
            await expect_problem(response, 403, "FORBIDDEN")
            await expect_problem(
                await client.post(
                    f"{MESSAGES}/{to_other}/cancel", json={"reason": "x"}, headers=who["other"]
                ),
                403,
                "FORBIDDEN",
            )
            await expect_problem(
                await client.post("/api/v1/inbox", data=b"<x/>", headers=who["other"]),
                403,
                "FORBIDDEN",
            )
            assert await snapshot(gw) == before

            # The sender's own member token sends for it, and sees everything its unit sent.
            await submit(client, who["sender"], metadata(number="3"))
            mine = await ok(await client.get(f"{MESSAGES}?limit=10", headers=who["sender"]))
            assert len(mine["items"]) == 3

            # Units: its own name and certificates, nothing else.
            renamed = await ok(
                await client.post(
                    "/api/v1/units", json={"code": OTHER, "name": "Sở mới"}, headers=who["other"]
                )
            )
            assert renamed["name"] == "Sở mới" and renamed["channel"] == "axis"
            for body, element in (
                ({"code": OTHER, "channel": "backup"}, "channel"),
                ({"code": OTHER, "secure_endpoint": "https://x.invalid"}, "secure_endpoint"),
                ({"code": RECIPIENT, "name": "Không phải tôi"}, "code"),
            ):
                before = await snapshot(gw)
                await expect_problem(
                    await client.post("/api/v1/units", json=body, headers=who["other"]),
                    403,
                    "FORBIDDEN",
                    element,
                )
                assert await snapshot(gw) == before
            # Sending the current routing values back unchanged is no change.
            await ok(
                await client.post(
                    "/api/v1/units",
                    json={"code": OTHER, "name": "Sở mới", "channel": "axis"},
                    headers=who["other"],
                )
            )

    run(scenario)


def test_units_register_list_and_show(make_gateway: Any) -> None:
    certificate = issue_unit_certificate(create_ca(), "000.00.00.H99").cert_pem.decode()

    async def scenario() -> None:
        async with make_gateway(extra=API_SETTINGS) as gw, serve(gw) as client:
            who = await make_tokens(gw)
            new = {
                "code": "000.00.00.H99",
                "name": "UBND tỉnh Thử",
                "parent_code": "000.00.00.H41",
                "channel": "axis",
                "certificate_pem": certificate,
            }
            created = await client.post("/api/v1/units", json=new, headers=who["admin"])
            body = await ok(created, 201)
            assert created.headers["Location"] == "/api/v1/units/000.00.00.H99"
            assert body["parent_code"] == RECIPIENT and body["is_local"] is False
            [cert] = body["certificates"]
            assert "000.00.00.H99" in cert["subject"]
            assert cert["revoked"] is False and len(cert["fingerprint_sha256"]) == 64

            # An update keeps what it does not name (is_local stays as the registry has it).
            updated = await ok(
                await client.post(
                    "/api/v1/units", json={"code": SENDER, "name": "VPCP"}, headers=who["admin"]
                )
            )
            assert updated["is_local"] is True and updated["channel"] == "axis"

            shown = await ok(await client.get("/api/v1/units/000.00.00.H99", headers=who["other"]))
            assert shown["name"] == "UBND tỉnh Thử"
            page = await ok(await client.get("/api/v1/units?limit=2", headers=who["operator"]))
            assert [u["code"] for u in page["items"]] == ["000.00.00.G22", "000.00.00.H14"]
            assert page["next_after"] == "000.00.00.H14"
            rest = await ok(
                await client.get(
                    "/api/v1/units", params={"after": page["next_after"]}, headers=who["operator"]
                )
            )
            assert [u["code"] for u in rest["items"]] == ["000.00.00.H41", "000.00.00.H99"]
            found = await ok(await client.get("/api/v1/units?q=Thử", headers=who["operator"]))
            assert [u["code"] for u in found["items"]] == ["000.00.00.H99"]

            bad = [
                ({"code": "not a code", "name": "x"}, who["admin"], 422, "UNIT_CODE_INVALID"),
                ({"code": "000.00.00.H98", "name": "x", "certificate_pem": "no"}, who["admin"],
                 422, "CERT_INVALID"),
                ({"code": "000.00.00.H98", "name": "x"}, who["operator"], 403, "FORBIDDEN"),
                ({"code": "000.00.00.H98", "name": 5}, who["admin"], 400, "BAD_REQUEST"),
                ({"code": "000.00.00.H98", "nam": "x"}, who["admin"], 400, "BAD_REQUEST"),
                ({"name": "x"}, who["admin"], 400, "BAD_REQUEST"),
            ]  # fmt: skip
            for body, headers, status, code in bad:
                before = await snapshot(gw)
                response = await client.post("/api/v1/units", json=body, headers=headers)
                await expect_problem(response, status, code)
                assert await snapshot(gw) == before
            await expect_problem(
                await client.get("/api/v1/units/000.00.00.H98", headers=who["admin"]),
                404,
                "NOT_FOUND",
            )

    run(scenario)


# -------------------------------------------------------------------------------- bad input


def test_every_bad_request_is_a_problem_and_changes_nothing(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with (
            make_gateway(connectors={"axis": FakeConnector(name="axis")}, extra=API_SETTINGS) as gw,
            serve(gw) as client,
        ):
            who = await make_tokens(gw)
            revoked = bearer(await tokens.create_token(gw, name="old", role="admin"))
            await tokens.revoke_token(gw, "old")
            existing = (await submit(client, who["operator"]))["id"]
            op = who["operator"]
            good = json.dumps(metadata()).encode()
            big = ("lon.pdf", b"%PDF" + b"x" * UPLOAD_LIMIT, "application/pdf")
            oversized = multipart(("metadata", None, good), ("attachment", "a.pdf", big[1]))

            one = f"{MESSAGES}/{existing}"
            form_op = {**op, **MULTIPART}
            cases = [
                # (method, path, status, code, element, request arguments)
                ("POST", MESSAGES, 401, "UNAUTHORIZED", None, {"headers": {}}),
                ("POST", MESSAGES, 401, "UNAUTHORIZED", None, {"headers": bearer("dgw_nope")}),
                ("POST", MESSAGES, 401, "UNAUTHORIZED", None, {"headers": revoked}),
                ("POST", MESSAGES, 401, "UNAUTHORIZED", None,
                 {"headers": {"Authorization": "Basic eDp5"}}),
                ("POST", MESSAGES, 400, "BAD_REQUEST", "metadata",
                 {"data": multipart(("attachment", "a.pdf", b"%PDF")), "headers": form_op}),
                ("POST", MESSAGES, 400, "BAD_REQUEST", "extra",
                 {"data": multipart(("metadata", None, good), ("extra", None, b"x")),
                  "headers": form_op}),
                ("POST", MESSAGES, 400, "BAD_REQUEST", "attachment",
                 {"data": multipart(("metadata", None, good), ("attachment", None, b"%PDF")),
                  "headers": form_op}),
                ("POST", MESSAGES, 400, "BAD_REQUEST", None,
                 {"data": b"--b0undary\r\ngarbage", "headers": form_op}),
                ("POST", MESSAGES, 422, "METADATA_INVALID", None,
                 {"data": form(b"{not json"), "headers": op}),
                ("POST", MESSAGES, 422, "METADATA_INVALID", None,
                 {"data": form(b"[" * 100_000), "headers": op}),
                ("POST", MESSAGES, 422, "UNKNOWN_UNIT", "to",
                 {"data": form(metadata(to=("000.00.00.H99",)), PDF), "headers": op}),
                ("POST", MESSAGES, 422, "METADATA_INVALID", "to[0].organ_id",
                 {"data": form(metadata(to=("not a code",)), PDF), "headers": op}),
                ("POST", MESSAGES, 422, "METADATA_INVALID", "subjekt",
                 {"data": form({**metadata(), "subjekt": "x"}), "headers": op}),
                ("POST", MESSAGES, 415, "UNSUPPORTED_MEDIA_TYPE", None,
                 {"json": metadata(), "headers": op}),
                ("POST", MESSAGES, 413, "PAYLOAD_TOO_LARGE", None,
                 {"data": form(metadata(), big), "headers": op}),
                ("POST", MESSAGES, 413, "PAYLOAD_TOO_LARGE", None,
                 {"data": chunked(oversized), "headers": form_op}),
                ("POST", MESSAGES, 400, "BAD_REQUEST", "Idempotency-Key",
                 {"data": form(metadata(), PDF), "headers": {**op, "Idempotency-Key": "k" * 201}}),
                ("GET", MESSAGES, 400, "BAD_REQUEST", "limit", {"params": {"limit": "500"}}),
                ("GET", MESSAGES, 400, "BAD_REQUEST", "limit", {"params": {"limit": "0"}}),
                ("GET", MESSAGES, 400, "BAD_REQUEST", "cursor", {"params": {"cursor": "garbage"}}),
                ("GET", MESSAGES, 400, "BAD_REQUEST", "state", {"params": {"state": "lost"}}),
                ("GET", MESSAGES, 400, "BAD_REQUEST", "from", {"params": {"from": "yesterday"}}),
                ("GET", MESSAGES, 400, "BAD_REQUEST", "breached", {"params": {"breached": "?"}}),
                ("GET", MESSAGES, 400, "BAD_REQUEST", "stat", {"params": {"stat": "queued"}}),
                ("GET", f"{MESSAGES}/nope", 404, "NOT_FOUND", None, {}),
                ("POST", f"{MESSAGES}/nope/resend", 404, "NOT_FOUND", None,
                 {"json": {"reason": "x"}}),
                ("POST", f"{one}/resend", 400, "BAD_REQUEST", None, {"data": b"{"}),
                ("POST", f"{one}/cancel", 400, "BAD_REQUEST", None, {"data": b""}),
                ("POST", f"{one}/cancel", 400, "BAD_REQUEST", None, {"json": ["reason"]}),
                ("POST", f"{one}/cancel", 400, "BAD_REQUEST", "reason", {"json": {"reason": 5}}),
                ("POST", f"{one}/cancel", 400, "BAD_REQUEST", "raison", {"json": {"raison": "x"}}),
                ("POST", f"{one}/cancel", 400, "BAD_REQUEST", None, {"data": b"[" * 100_000}),
                ("POST", f"{one}/cancel", 413, "PAYLOAD_TOO_LARGE", None,
                 {"json": {"reason": "x" * (UPLOAD_LIMIT + 1)}}),
                ("POST", f"{one}/reroute", 400, "BAD_REQUEST", "channel", {"json": {"reason": ""}}),
                ("POST", f"{one}/status", 422, "STATUS_CODE_INVALID", "code",
                 {"json": {"code": "42"}}),
                ("POST", f"{one}/cancel", 403, "FORBIDDEN", None,
                 {"json": {"reason": "x"}, "headers": who["sender"]}),
                ("POST", "/api/v1/units", 403, "FORBIDDEN", None,
                 {"json": {"code": OTHER, "name": "x"}}),
                ("GET", "/api/v1/nothing-here", 404, "NOT_FOUND", None, {"headers": {}}),
                ("DELETE", MESSAGES, 405, "METHOD_NOT_ALLOWED", None, {}),
            ]  # fmt: skip
            for method, path, status, code, element, arguments in cases:
                arguments = {"headers": op, **arguments}
                before = await snapshot(gw)
                response = await client.request(method, path, **arguments)
                body = await expect_problem(response, status, code, element)
                assert await snapshot(gw) == before, (method, path, code)
                if status == 401:
                    assert response.headers["WWW-Authenticate"].startswith("Bearer")
                if status == 413:
                    assert str(UPLOAD_LIMIT) in body["detail"] or "1048576" in body["detail"]
            # Nothing above reached the queue: the one good message is still alone.
            listed = await ok(await client.get(MESSAGES, headers=op))
            assert [i["id"] for i in listed["items"]] == [existing]

    run(scenario)


def test_an_unexpected_error_is_500_without_details(
    make_gateway: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("password=hunter2 in /etc/docgw/secret.toml")

    async def scenario() -> None:
        async with make_gateway(extra=API_SETTINGS) as gw, serve(gw) as client:
            who = await make_tokens(gw)
            monkeypatch.setattr(message_queries, "list_messages", broken)
            with caplog.at_level(logging.ERROR, logger="docgw.web"):
                response = await client.get(MESSAGES, headers=who["admin"])
                body = await expect_problem(response, 500, "INTERNAL_ERROR")
            assert "hunter2" not in json.dumps(body) and "secret" not in json.dumps(body)
            assert "incident" in body["detail"]
            [record] = [r for r in caplog.records if r.getMessage() == "api_internal_error"]
            assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])

    run(scenario)


# ------------------------------------------------------------------------- openapi, health


def test_the_openapi_document_lists_every_route(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with make_gateway(extra=API_SETTINGS) as gw, serve(gw) as client:
            response = await client.get("/api/v1/openapi.json")  # no token
            document = await ok(response)
            assert document["openapi"].startswith("3.1")
            routes = {
                (route.resource.canonical, route.method.lower())
                for route in client.app.router.routes()  # type: ignore[union-attr]
                if route.method != "HEAD"
                and route.resource is not None
                # The operator console (HTML for people, docs/howto/console.md) is not the API.
                and not route.resource.canonical.startswith("/console")
            }
            # main's 36, the jobs' two (web/jobs.py), alerts' five, certificates' three
            assert len(routes) == 46
            documented = {
                (path, method) for path, item in document["paths"].items() for method in item
            }
            assert routes == documented

            def refs(node: Any) -> list[str]:
                if isinstance(node, dict):
                    own = [node["$ref"]] if "$ref" in node else []
                    return own + [r for value in node.values() for r in refs(value)]
                if isinstance(node, list):
                    return [r for value in node for r in refs(value)]
                return []

            for ref in refs(document):
                target: Any = document
                for part in ref.removeprefix("#/").split("/"):
                    target = target[part]
            components = document["components"]
            assert components["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
            assert "code" in components["schemas"]["Problem"]["properties"]
            upload = document["paths"]["/api/v1/messages"]["post"]["requestBody"]["content"]
            assert "multipart/form-data" in upload
            assert (
                str(UPLOAD_LIMIT)
                in document["paths"]["/api/v1/messages"]["post"]["requestBody"]["description"]
            )
            for path in ("/healthz", "/metrics", "/api/v1/openapi.json"):
                assert document["paths"][path]["get"]["security"] == []

    run(scenario)


def test_healthz_and_metrics_reflect_the_queue(make_gateway: Any) -> None:
    fake = FakeConnector(name="axis", script=[Scripted.OK, Scripted.REFUSED])
    start = dt.datetime.now(dt.UTC)
    now = [start]

    async def scenario() -> None:
        async with (
            make_gateway(connectors={"axis": fake}, extra=API_SETTINGS) as gw,
            serve(gw) as client,
        ):
            gw.clock = lambda: now[0]
            who = await make_tokens(gw)

            degraded = await client.get("/healthz")
            assert degraded.status == 503
            body = await degraded.json()
            assert body["reasons"] == [
                {
                    "code": "NO_WORKER_ALIVE",
                    "subject": "workers",
                    "vi": "Không có tiến trình gửi nào đang chạy.",
                    "en": "No delivery worker is alive.",
                }
            ]
            assert body == {
                "status": "degraded",
                "database": True,
                "workers_alive": 0,
                "queue_lag_seconds": 0.0,
                "reasons": body["reasons"],
                "channels": [],
            }

            await submit(client, who["operator"], metadata(number="1"))
            await submit(client, who["operator"], metadata(number="2"))
            now[0] = start + dt.timedelta(seconds=60)
            async with gw.engine.begin() as conn:
                await job_queries.heartbeat(conn, "w1", now=now[0])
            healthy = await ok(await client.get("/healthz"))
            assert healthy == {
                "status": "ok",
                "database": True,
                "workers_alive": 1,
                "queue_lag_seconds": pytest.approx(60, abs=1),
                "reasons": [],
                "channels": [],
            }

            def sample(text: str, name: str, labels: str = "") -> float:
                return metric_sample(text, name, labels)

            response = await client.get("/metrics")
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await response.text()
            for line in text.splitlines():
                assert line.startswith("# ") or re.match(r"^[a-z_]+(\{[^}]*\})? \S+$", line), line
            assert sample(text, "docgw_recipients", '{state="queued",channel="axis"}') == 2
            assert sample(text, "docgw_recipients", '{state="sent",channel="axis"}') == 0
            assert sample(text, "docgw_oldest_due_age_seconds") == pytest.approx(60, abs=1)
            assert sample(text, "docgw_workers_alive") == 1
            assert "# TYPE docgw_attempts_total counter" in text

            await delivery.deliver_due(gw, "w")  # one sent, one refused for good
            await client.post(
                f"{MESSAGES}/{(await submit(client, who['operator'], metadata(number='3')))['id']}"
                "/status",
                json={"code": "13", "description": "thu hồi"},
                headers=who["operator"],
            )
            text = await (await client.get("/metrics")).text()
            assert sample(text, "docgw_recipients", '{state="sent",channel="axis"}') == 1
            assert sample(text, "docgw_recipients", '{state="failed",channel="axis"}') == 1
            assert sample(text, "docgw_attempts_total", '{channel="axis",outcome="sent"}') == 1
            assert (
                sample(text, "docgw_attempts_total", '{channel="axis",outcome="business_error"}')
                == 1
            )
            assert sample(text, "docgw_failures_total", '{channel="axis"}') == 1
            assert sample(text, "docgw_status_events_total", '{direction="out",code="13"}') == 1
            # Submitted at start, sent a minute later (the clock moved): one observation of 60 s.
            axis = '{channel="axis"}'
            assert sample(text, "docgw_submit_to_sent_seconds_count", axis) == 1
            assert sample(text, "docgw_submit_to_sent_seconds_sum", axis) == pytest.approx(60)
            bucket = "docgw_submit_to_sent_seconds_bucket"
            assert sample(text, bucket, '{channel="axis",le="30.0"}') == 0
            assert sample(text, bucket, '{channel="axis",le="60.0"}') == 1
            assert "# TYPE docgw_submit_to_received_seconds histogram" in text
            assert sample(text, "docgw_job_failures_total", '{job="recover_expired"}') == 0

            # The database unreachable: degraded, and the answer still comes.
            unreachable = create_engine("postgresql+asyncpg://docgw@127.0.0.1:9/none")
            try:
                async with serve(dataclasses.replace(gw, engine=unreachable)) as down:
                    response = await down.get("/healthz")
                    assert response.status == 503
                    body = await response.json()
                    assert body["status"] == "degraded" and body["database"] is False
                    assert [r["code"] for r in body["reasons"]] == ["DATABASE_UNREACHABLE"]
            finally:
                await unreachable.dispose()

    run(scenario)


def metric_sample(text: str, name: str, labels: str = "") -> float:
    """The value of ``name{labels}`` in a Prometheus text exposition (labels in any order)."""
    wanted = set(re.findall(r'\w+="(?:[^"\\]|\\.)*"', labels))
    for match in re.finditer(rf"^{re.escape(name)}(\{{.*\}})? (\S+)$", text, re.MULTILINE):
        if set(re.findall(r'\w+="(?:[^"\\]|\\.)*"', match.group(1) or "")) == wanted:
            return float(match.group(2))
    raise AssertionError((name, labels, text))


def test_metric_label_values_are_escaped() -> None:
    odd = 'a"b\\c\nd'
    text = render_metrics(
        Counters(
            channels=[odd],
            recipients=[("queued", odd, 3)],
            oldest_due_age=1.5,
            attempts=[(odd, "transport_error", 2)],
            status_events=[("in", "01", 4)],
            workers_alive=2,
        )
    ).decode()
    escaped = 'a\\"b\\\\c\\nd'
    assert metric_sample(text, "docgw_recipients", f'{{state="queued",channel="{escaped}"}}') == 3
    assert metric_sample(text, "docgw_failures_total", f'{{channel="{escaped}"}}') == 2
    assert metric_sample(text, "docgw_oldest_due_age_seconds") == 1.5
    assert metric_sample(text, "docgw_status_events_total", '{direction="in",code="01"}') == 4
    assert all("\n" not in line for line in text.splitlines())


def test_route_explain_says_where_and_why_without_storing(make_gateway: Any) -> None:
    async def scenario() -> None:
        axis = {"axis": FakeConnector(name="axis", is_axis=True)}
        async with make_gateway(extra=API_SETTINGS, connectors=axis) as gw, serve(gw) as client:
            token = await tokens.create_token(gw, name="ops-route", role="operator")
            meta = json.loads((EXAMPLES / "new-document.json").read_text(encoding="utf-8"))
            headers = {"Authorization": f"Bearer {token}"}
            for classification, channel in (("thuong", "axis"), ("mat", None)):
                body = json.dumps({**meta, "classification": classification})
                response = await client.post("/api/v1/route/explain", data=body, headers=headers)
                [route] = (await ok(response))["routes"]
                assert route["recipient"] == RECIPIENT and route["channel"] == channel
                assert route["reason"]
            async with gw.engine.connect() as conn:
                count = await conn.scalar(sa.select(sa.func.count()).select_from(messages))
            assert count == 0

    asyncio.run(scenario())
