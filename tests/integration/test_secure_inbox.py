"""The secure inbox (``gateway/web/secure_inbox.py``) as ``docgw serve`` runs it: its own listener
with the TLS context of ``secure_inbox_ssl_context`` (client certificates required, from the keys
folder's CA), peers connecting over real mutual TLS on loopback with unit certificates.

What a peer may not do — connect as a unit that is not registered (or no longer active), with a
certificate that names no unit, push a package of another unit, send more than the size limit — is
refused with its problem code and changes nothing; a package pushed twice is stored once. On SQLite
and PostgreSQL (the ``make_gateway`` fixture). pytest-asyncio is not used.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import socket
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from integration_support import EXAMPLES, OTHER, RECIPIENT, SENDER
from pki import leaf_certificate

from connectors.fake import FakeConnector
from connectors.secure_endpoint import client_ssl_context, unit_dns_name
from envelopes.attachments import AttachmentSource
from envelopes.metadata import parse_metadata
from gateway.bootstrap import Gateway
from gateway.keystore import CA_CERT, CA_KEY, Issued, issue_unit_certificate, load_issued
from gateway.service import start_secure_inbox
from gateway.store.records import UnitRecord
from gateway.store.tables import (
    attempts,
    audit_events,
    blob_chunks,
    blobs,
    messages,
    recipients,
    status_events,
)
from gateway.usecases import delivery, registry, submit

#: The receiver's limit (``api.max_upload_bytes`` is the secure inbox's limit too).
LIMIT = 256 * 1024
#: A unit from the same CA that the receiver has never registered.
STRANGER = "000.00.00.H13"
PROBLEM = "application/problem+json"


@dataclass(frozen=True, kw_only=True)
class Answer:
    status: int
    content_type: str
    body: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class Peer:
    """A client's certificate and key files (from the receiver's CA unless said otherwise)."""

    cert: Path
    key: Path


def write_issued(issued: Issued, directory: Path, name: str) -> Peer:
    peer = Peer(cert=directory / f"{name}.cert.pem", key=directory / f"{name}.key.pem")
    peer.cert.write_bytes(issued.cert_pem)
    peer.key.write_bytes(issued.key_pem)
    return peer


@asynccontextmanager
async def running_inbox(gateway: Gateway) -> AsyncIterator[str]:
    """The secure inbox on a free loopback port, started as ``docgw serve`` starts it."""
    runner = await start_secure_inbox(gateway, "127.0.0.1", 0)
    try:
        host, port = runner.addresses[0][:2]
        yield f"https://{host}:{port}/inbox"
    finally:
        await runner.cleanup()


async def push(url: str, peer: Peer, ca_file: Path, body: bytes) -> Answer:
    """POST ``body`` as ``peer`` over mutual TLS, checking the server is the recipient unit's."""
    context = client_ssl_context(peer.cert, peer.key, ca_file)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url,
            data=body,
            ssl=context,
            server_hostname=unit_dns_name(RECIPIENT),
            headers={"Content-Type": "application/xml"},
        ) as response,
    ):
        text = await response.text()
        return Answer(
            status=response.status, content_type=response.content_type, body=json.loads(text)
        )


TABLES = (messages, recipients, attempts, audit_events, status_events, blobs, blob_chunks)


async def snapshot(gateway: Gateway) -> dict[str, int]:
    async with gateway.engine.connect() as conn:
        return {
            table.name: int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
            for table in TABLES
        }


async def signed_package(sender: Gateway, fake: FakeConnector) -> bytes:
    """A document from SENDER to RECIPIENT, built, signed and handed to a connector by the
    sender's gateway: the bytes a secure peer pushes."""
    meta = json.loads((EXAMPLES / "new-document.json").read_text(encoding="utf-8"))
    meta["to"] = [{"organ_id": RECIPIENT, "organ_name": "UBND tỉnh Nghệ An"}]
    request = parse_metadata(meta, today=dt.date.today())
    attachment = AttachmentSource(name="van-ban.pdf", open=lambda: io.BytesIO(b"%PDF-1.7 noi dung"))
    await submit.submit_document(sender, request, [attachment], client="test", actor="test")
    await delivery.deliver_due(sender, "w")
    [package] = fake.packages
    return package


def assert_problem(answer: Answer, status: int, code: str) -> None:
    assert answer.status == status, answer
    assert answer.content_type == PROBLEM, answer
    assert answer.body["code"] == code and answer.body["detail"], answer


def test_the_secure_inbox_refuses_what_a_peer_may_not_do_and_stores_a_push_once(
    make_gateway: Any, databases: Callable[[], str], keys_dir: Path, tmp_path: Path
) -> None:
    ca_file = keys_dir / CA_CERT
    ca = load_issued(keys_dir / CA_KEY, ca_file)
    sender_peer = Peer(cert=keys_dir / f"{SENDER}.cert.pem", key=keys_dir / f"{SENDER}.key.pem")
    other_peer = Peer(cert=keys_dir / f"{OTHER}.cert.pem", key=keys_dir / f"{OTHER}.key.pem")
    stranger = write_issued(issue_unit_certificate(ca, STRANGER), tmp_path, "stranger")
    # A client certificate the CA signed for a host rather than a unit (no unit SAN or CN).
    nameless_host = leaf_certificate(ca, common_name="may chu thu nghiem")
    nameless = write_issued(nameless_host, tmp_path, "nameless")
    receiver_database = databases()  # outside the event loop: it may create a PostgreSQL database
    fake = FakeConnector(name="axis")

    async def scenario() -> None:
        async with (
            make_gateway(connectors={"axis": fake}) as sender,
            make_gateway(
                local_units=(RECIPIENT,),
                url=receiver_database,
                connectors={"axis": FakeConnector(name="axis")},
                extra=f"[api]\nmax_upload_bytes = {LIMIT}\n",
            ) as receiver,
            running_inbox(receiver) as url,
        ):
            package = await signed_package(sender, fake)
            empty = await snapshot(receiver)
            refused = [
                # A unit from the trusted CA that the receiver has not registered.
                (stranger, package, 403, "PEER_NOT_REGISTERED"),
                # A certificate from the trusted CA that names no unit at all.
                (nameless, package, 403, "PEER_NOT_REGISTERED"),
                # A registered, active unit pushing another unit's (validly signed) package.
                (other_peer, package, 403, "SENDER_MISMATCH"),
                # Over the limit: refused while reading, before anything is parsed.
                (sender_peer, b"<" * (LIMIT + 1), 413, "PAYLOAD_TOO_LARGE"),
            ]
            for peer, body, status, code in refused:
                assert_problem(await push(url, peer, ca_file, body), status, code)
                assert await snapshot(receiver) == empty, code
            # At the limit the size is no reason to refuse: the bytes are read and judged.
            assert_problem(
                await push(url, sender_peer, ca_file, b"<" * LIMIT), 422, "XML_MALFORMED"
            )

            first = await push(url, sender_peer, ca_file, package)
            assert first.status == 201, first
            assert first.body["duplicate"] is False and first.body["kind"] == "document"
            stored = await snapshot(receiver)
            again = await push(url, sender_peer, ca_file, package)
            assert again.status == 200, again
            assert again.body == {**first.body, "duplicate": True}
            assert await snapshot(receiver) == stored  # stored once: nothing new the second time
            async with receiver.engine.connect() as conn:
                received = (
                    await conn.execute(
                        sa.select(messages.c.id, messages.c.route).where(
                            messages.c.direction == "in"
                        )
                    )
                ).all()
            assert [tuple(row) for row in received] == [(first.body["id"], f"secure:{SENDER}")]

            # A unit that is registered but no longer active is refused like a stranger.
            await registry.register_unit(
                receiver,
                UnitRecord(code=SENDER, name=f"Đơn vị {SENDER}", channel="axis", active=False),
                certificate_pem=None,
                actor="test",
            )
            before = await snapshot(receiver)
            assert_problem(
                await push(url, sender_peer, ca_file, package), 403, "PEER_NOT_REGISTERED"
            )
            assert await snapshot(receiver) == before

    asyncio.run(scenario())


def raw_request(url: str, peer: Peer, ca_file: Path, request: bytes) -> tuple[int, str, bytes]:
    """Send bytes as they are over mutual TLS (no client library sends a header this large) and
    read the answer: (status, content type, body)."""
    where = urllib.parse.urlsplit(url)
    context = client_ssl_context(peer.cert, peer.key, ca_file)
    with (
        socket.create_connection((where.hostname, where.port), timeout=10) as plain,
        context.wrap_socket(plain, server_hostname=unit_dns_name(RECIPIENT)) as conn,
    ):
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lengths = [
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            if lengths and len(body) >= lengths[0]:
                break
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers.get("content-type", ""), body


def test_a_request_aiohttp_cannot_parse_is_a_problem_too(make_gateway: Any, keys_dir: Path) -> None:
    """A header over aiohttp's limit is refused before any handler runs: as a problem, like the
    API's (gateway.web.problems.ProblemAppRunner), not aiohttp's plain text."""
    ca_file = keys_dir / CA_CERT
    peer = Peer(cert=keys_dir / f"{SENDER}.cert.pem", key=keys_dir / f"{SENDER}.key.pem")
    request = b"\r\n".join(
        [
            b"POST /inbox HTTP/1.1",
            b"Host: 127.0.0.1",
            b"X-Padding: " + b"a" * 9000,
            b"Content-Type: application/xml",
            b"Content-Length: 0",
            b"Connection: close",
            b"",
            b"",
        ]
    )

    async def scenario() -> None:
        async with (
            make_gateway(local_units=(RECIPIENT,)) as receiver,
            running_inbox(receiver) as url,
        ):
            empty = await snapshot(receiver)
            status, content_type, body = await asyncio.to_thread(
                raw_request, url, peer, ca_file, request
            )
            assert await snapshot(receiver) == empty
        assert (status, content_type.split(";")[0]) == (431, PROBLEM), body
        assert_problem(
            Answer(status=status, content_type=PROBLEM, body=json.loads(body)),
            431,
            "HEADERS_TOO_LARGE",
        )

    asyncio.run(scenario())
