"""A gateway with something on every console page: a failed message (its subject has accents),
two queued ones to cancel in bulk, one with a hostile subject, a received document to answer,
and people of each role. Shared by the console's HTTP and browser tests."""

from __future__ import annotations

import json
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient
from integration_support import EXAMPLES, OTHER, RECIPIENT, SENDER

from connectors.fake import FakeConnector, Scripted
from gateway.bootstrap import Gateway
from gateway.usecases import delivery, tokens, users

Client = TestClient[web.Request, web.Application]
PASSWORD = "mat-khau-du-dai-12"
FAILED_SUBJECT = "V/v kết nối Liên thông văn bản điện tử"
BULK_SUBJECT = "Bảo trì hệ thống đường truyền"
HOSTILE_SUBJECT = '<script>window.__pwned = 1</script><img src=x id="pwned">'
RECEIVED_SUBJECT = "Kế hoạch tiếp nhận hồ sơ"
LOCAL_UNITS = (SENDER, RECIPIENT)
MANY_SUBJECT = "Hồ sơ nhiều tệp đính kèm"
#: A 1×1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
#: A document's attachments: a PDF, an image and a file a browser must not show inline.
MANY_FILES = (
    ("to-trinh.pdf", b"%PDF-1.7 to trinh", "application/pdf"),
    ("so-do.png", PNG, "image/png"),
    ("ghi-chu.txt", b"<script>alert(1)</script>", "text/html"),
)


def axis() -> FakeConnector:
    """The axis refuses the first package for good (failed), then takes everything."""
    return FakeConnector(name="axis", script=[Scripted.REFUSED])


@dataclass
class Seeded:
    failed: str
    bulk: tuple[str, str]
    hostile: str
    received: str
    operator_token: dict[str, str]


def _metadata(subject: str, number: str, to: str = RECIPIENT) -> str:
    meta = json.loads((EXAMPLES / "new-document.json").read_text(encoding="utf-8"))
    meta["to"] = [{"organ_id": to}]
    meta["code"] = {"number": number, "notation": "VPCP-TTĐT"}
    meta["subject"] = subject
    return json.dumps(meta, ensure_ascii=False)


async def _submit(client: Client, headers: dict[str, str], subject: str, number: str) -> str:
    data = aiohttp.FormData()
    data.add_field("metadata", _metadata(subject, number), content_type="application/json")
    data.add_field("attachment", b"%PDF-1.7 van ban", filename="van-ban.pdf",
                   content_type="application/pdf")  # fmt: skip
    response = await client.post("/api/v1/messages", data=data, headers=headers)
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def submit_many(client: Client, headers: dict[str, str]) -> str:
    """A document with every file of MANY_FILES, in that order."""
    data = aiohttp.FormData()
    data.add_field("metadata", _metadata(MANY_SUBJECT, "106"), content_type="application/json")
    for name, content, content_type in MANY_FILES:
        data.add_field("attachment", content, filename=name, content_type=content_type)
    response = await client.post("/api/v1/messages", data=data, headers=headers)
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def seed(gateway: Gateway, client: Client, connector: FakeConnector) -> Seeded:
    token = await tokens.create_token(gateway, name="seed-operator", role="operator")
    op = {"Authorization": f"Bearer {token}"}
    failed = await _submit(client, op, FAILED_SUBJECT, "101")
    await delivery.deliver_due(gateway, "w")  # the axis refuses it for good
    outgoing = await _submit(client, op, RECEIVED_SUBJECT, "102")
    await delivery.deliver_due(gateway, "w")
    inbox = await client.post(
        "/api/v1/inbox",
        data=connector.packages[-1],
        headers={**op, "Content-Type": "application/xml"},
    )
    assert inbox.status == 201, await inbox.text()
    received = str((await inbox.json())["id"])
    assert received != outgoing
    bulk = (
        await _submit(client, op, BULK_SUBJECT + " 1", "103"),
        await _submit(client, op, BULK_SUBJECT + " 2", "104"),
    )
    hostile = await _submit(client, op, HOSTILE_SUBJECT, "105")
    return Seeded(failed=failed, bulk=bulk, hostile=hostile, received=received,
                  operator_token=op)  # fmt: skip


async def add_people(gateway: Gateway) -> None:
    await users.add_user(gateway, name="quan-tri", role="admin", password=PASSWORD, actor="t")
    await users.add_user(gateway, name="van-hanh", role="operator", password=PASSWORD, actor="t")
    await users.add_user(
        gateway, name="h14", role="member", units=[OTHER], password=PASSWORD, actor="t"
    )
    await users.add_user(
        gateway, name="nghe-an", role="member", units=[RECIPIENT], password=PASSWORD, actor="t",
        language="en",
    )  # fmt: skip
