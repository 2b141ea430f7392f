"""Downloads over real HTTP on loopback (aiohttp's TestServer), on SQLite and PostgreSQL: the
package as stored and an attachment decoded from it, with the member and classified rules."""

from __future__ import annotations

import asyncio
import io
import json
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from integration_support import EXAMPLES, OTHER, RECIPIENT, SENDER

from connectors.fake import FakeConnector
from envelopes import sealing
from envelopes.reading import read_package
from gateway.bootstrap import Gateway
from gateway.store import blobs, message_queries
from gateway.usecases import delivery, tokens
from gateway.web.app import create_app

MESSAGES = "/api/v1/messages"
Client = TestClient[web.Request, web.Application]
PDF = ("Công văn số 7816.pdf", b"%PDF-1.7 noi dung van ban " * 100, "application/pdf")
DOCX = ("phu-luc.docx", b"PK\x03\x04 phu luc", "application/octet-stream")


def run(scenario: Callable[[], Any]) -> Any:
    return asyncio.run(scenario())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def serve(gateway: Gateway) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(gateway))) as client:
        yield client


def metadata(classification: str = "thuong", to: str = RECIPIENT) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((EXAMPLES / "new-document.json").read_text("utf-8"))
    meta["to"] = [{"organ_id": to}]
    meta["classification"] = classification
    return meta


async def submit(
    client: Client,
    headers: dict[str, str],
    meta: dict[str, Any],
    files: tuple[tuple[str, bytes, str], ...] = (PDF, DOCX),
) -> str:
    # Built by hand: aiohttp's FormData percent-encodes a non-ASCII filename inside the quotes,
    # which is not what browsers send (quoted UTF-8).
    body = b"--b0undary\r\nContent-Disposition: form-data; name=metadata\r\n\r\n"
    body += json.dumps(meta, ensure_ascii=False).encode()
    for name, content, media_type in files:
        body += (
            f'\r\n--b0undary\r\nContent-Disposition: form-data; name="attachment"; '
            f'filename="{name}"\r\nContent-Type: {media_type}\r\n\r\n'
        ).encode()
        body += content
    body += b"\r\n--b0undary--\r\n"
    multipart = {"Content-Type": "multipart/form-data; boundary=b0undary"}
    response = await client.post(MESSAGES, data=io.BytesIO(body), headers={**headers, **multipart})
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def problem(response: aiohttp.ClientResponse, status: int, code: str, element: str) -> None:
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/problem+json", text
    body = json.loads(text)
    assert (body["code"], body["element"]) == (code, element), body


def filename_of(response: aiohttp.ClientResponse) -> str:
    disposition = response.headers["Content-Disposition"]
    encoded = disposition.split("filename*=UTF-8''", 1)[1]
    return urllib.parse.unquote(encoded)


def test_package_and_attachments_download_with_the_member_rules(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with make_gateway() as gateway, serve(gateway) as client:
            admin = bearer(await tokens.create_token(gateway, name="admin", role="admin"))
            own = bearer(
                await tokens.create_token(gateway, name="g22", role="member", unit_code=SENDER)
            )
            other = bearer(
                await tokens.create_token(gateway, name="h14", role="member", unit_code=OTHER)
            )
            message_id = await submit(client, own, metadata())
            async with gateway.engine.connect() as conn:
                message = await message_queries.get_message(conn, message_id)
                assert message is not None
                stored = await blobs.read_bytes(conn, message.package_sha256)

            for who in (admin, own):
                response = await client.get(f"{MESSAGES}/{message_id}/package", headers=who)
                assert response.status == 200, await response.text()
                assert response.content_type == "application/xml"
                assert response.content_length == len(stored)
                assert await response.read() == stored
                assert filename_of(response) == f"{message_id}.xml"

            for number, (name, content, media_type) in enumerate((PDF, DOCX), start=1):
                response = await client.get(
                    f"{MESSAGES}/{message_id}/attachments/{number}", headers=own
                )
                assert response.status == 200, await response.text()
                assert await response.read() == content
                assert filename_of(response) == name
                assert response.content_length == len(content)
                # The type the signed manifest gives: what the submitter said (or sniffed).
                described = read_package(stored).document().attachments[number - 1]
                assert response.content_type == described.content_type
                assert media_type == "application/octet-stream" or response.content_type == (
                    media_type
                )

            # Another unit's member: as if the message did not exist.
            for path in ("package", "attachments/1"):
                response = await client.get(f"{MESSAGES}/{message_id}/{path}", headers=other)
                await problem(response, 404, "NOT_FOUND", "id")
            await problem(
                await client.get(f"{MESSAGES}/{message_id}/attachments/3", headers=own),
                404, "NOT_FOUND", "n",
            )  # fmt: skip
            for bad in ("0", "x", "1.5", "-1", "１"):
                response = await client.get(
                    f"{MESSAGES}/{message_id}/attachments/{bad}", headers=own
                )
                await problem(response, 400, "BAD_REQUEST", "n")
            await problem(
                await client.get(f"{MESSAGES}/nope/package", headers=admin), 404, "NOT_FOUND", "id"
            )
            response = await client.get(f"{MESSAGES}/{message_id}/package")
            assert response.status == 401

    run(scenario)


def test_a_received_document_is_downloaded_by_its_unit(
    make_gateway: Any, databases: Callable[[], str]
) -> None:
    fake = FakeConnector(name="axis")
    second = databases()

    async def scenario() -> None:
        async with (
            make_gateway(connectors={"axis": fake}) as sender,
            make_gateway(local_units=(RECIPIENT,), url=second) as receiver,
            serve(sender) as sender_api,
            serve(receiver) as receiver_api,
        ):
            own = bearer(
                await tokens.create_token(sender, name="g22", role="member", unit_code=SENDER)
            )
            await submit(sender_api, own, metadata())
            await delivery.deliver_due(sender, "w")
            peer = bearer(await tokens.create_token(receiver, name="peer", role="operator"))
            member = bearer(
                await tokens.create_token(receiver, name="h41", role="member", unit_code=RECIPIENT)
            )
            stranger = bearer(
                await tokens.create_token(receiver, name="h14", role="member", unit_code=OTHER)
            )
            response = await receiver_api.post(
                "/api/v1/inbox",
                data=fake.packages[0],
                headers={**peer, "Content-Type": "application/xml"},
            )
            received = (await response.json())["id"]

            response = await receiver_api.get(f"{MESSAGES}/{received}/package", headers=member)
            assert await response.read() == fake.packages[0]
            response = await receiver_api.get(
                f"{MESSAGES}/{received}/attachments/1", headers=member
            )
            assert await response.read() == PDF[1] and filename_of(response) == PDF[0]
            response = await receiver_api.get(
                f"{MESSAGES}/{received}/attachments/1", headers=stranger
            )
            await problem(response, 404, "NOT_FOUND", "id")

    run(scenario)


def secure_profile(gateway: Gateway) -> None:
    gateway.settings = gateway.settings.model_copy(
        update={"gateway": gateway.settings.gateway.model_copy(update={"profile": "secure"})}
    )


def test_a_classified_copy_goes_to_its_unit_only_opened_only_on_the_secure_side(
    make_gateway: Any, database_url: str
) -> None:
    async def scenario() -> None:
        async with make_gateway() as gateway, serve(gateway) as client:
            admin = bearer(await tokens.create_token(gateway, name="admin", role="admin"))
            operator = bearer(await tokens.create_token(gateway, name="op", role="operator"))
            own = bearer(
                await tokens.create_token(gateway, name="g22", role="member", unit_code=SENDER)
            )
            # No secure endpoint for the recipient: held, but stored (sealed for G22).
            message_id = await submit(client, own, metadata("mat"))
            async with gateway.engine.connect() as conn:
                message = await message_queries.get_message(conn, message_id)
                assert message is not None
                stored = await blobs.read_bytes(conn, message.package_sha256)
            assert sealing.is_sealed(stored[: sealing.SNIFF_LENGTH]) and PDF[1] not in stored

            for who in (admin, operator):
                for path in ("package", "attachments/1"):
                    response = await client.get(f"{MESSAGES}/{message_id}/{path}", headers=who)
                    await problem(response, 403, "CLASSIFIED_READER_REFUSED", "id")

            # A standard gateway: the sealed copy as stored, as the drop folder hands it over.
            response = await client.get(f"{MESSAGES}/{message_id}/package", headers=own)
            assert response.status == 200, await response.text()
            assert await response.read() == stored
            assert response.headers["Docgw-Sealed"] == "true"
            assert response.content_type == "application/octet-stream"
            response = await client.get(f"{MESSAGES}/{message_id}/attachments/1", headers=own)
            await problem(response, 409, "PACKAGE_NOT_OPENABLE", "id")

            # The classified side's own gateway opens it for the unit's system.
            secure_profile(gateway)
            response = await client.get(f"{MESSAGES}/{message_id}/package", headers=own)
            assert response.status == 200, await response.text()
            assert response.headers["Docgw-Sealed"] == "false"
            document = read_package(await response.read()).document()
            assert document.header.from_.organ_id == SENDER
            response = await client.get(f"{MESSAGES}/{message_id}/attachments/2", headers=own)
            assert await response.read() == DOCX[1] and filename_of(response) == DOCX[0]
            for path in ("package", "attachments/1"):
                response = await client.get(f"{MESSAGES}/{message_id}/{path}", headers=admin)
                await problem(response, 403, "CLASSIFIED_READER_REFUSED", "id")

        # The same database served by a secure gateway that holds only another unit's key.
        async with (
            make_gateway(local_units=(OTHER,), url=database_url) as elsewhere,
            serve(elsewhere) as client,
        ):
            secure_profile(elsewhere)
            own = bearer(
                await tokens.create_token(elsewhere, name="g22-b", role="member", unit_code=SENDER)
            )
            for path in ("package", "attachments/1"):
                response = await client.get(f"{MESSAGES}/{message_id}/{path}", headers=own)
                await problem(response, 409, "PACKAGE_NOT_OPENABLE", "id")

    run(scenario)


def test_a_slow_download_holds_no_database_connection(make_gateway: Any) -> None:
    """A client that reads slowly must not keep the others waiting: SQLite's engine has one
    connection, which a download takes only while it reads each stored chunk."""
    big = ("lon.bin", bytes(range(256)) * (96 * 1024), "application/octet-stream")  # 24 MiB

    async def scenario() -> None:
        async with make_gateway() as gateway, serve(gateway) as client:
            own = bearer(
                await tokens.create_token(gateway, name="g22", role="member", unit_code=SENDER)
            )
            message_id = await submit(client, own, metadata(), files=(big,))
            response = await client.get(f"{MESSAGES}/{message_id}/package", headers=own)
            assert response.status == 200
            first = await response.content.read(1024)  # then the client stops reading
            assert first.startswith(b"<?xml") or first.startswith(b"<")
            await asyncio.sleep(0.5)  # the server fills the socket buffers and waits
            other = await asyncio.wait_for(
                client.get(f"{MESSAGES}/{message_id}", headers=own), timeout=10
            )
            assert other.status == 200
            assert len(first) + len(await response.read()) > len(big[1])

    run(scenario)
