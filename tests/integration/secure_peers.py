"""Real secure inboxes on loopback for the gateway tests that deliver over the secure channel:
a small PKI (a CA, our unit's client certificate, a server certificate per peer unit) and an
aiohttp listener over mutual TLS that records what each request carried and which host name the
client asked for (SNI: the secure connector pins a recipient's endpoint to ``unit_dns_name``).

Also the gateway-side helpers those tests and the classified re-route test share: a gateway with
the real secure connector, registering a unit's fields as an admin would, submitting a document,
draining the outbox, and a snapshot of all that a refused operation must leave as it was.

A module of its own (not conftest): the classified resend, re-route and secure grouping tests and
the secure endpoint test share it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from integration_support import EXAMPLES, RECIPIENT, SENDER
from pki import leaf_certificate

from connectors.fake import FakeConnector
from connectors.secure_endpoint import (
    SecureEndpointConnector,
    client_ssl_context,
    peer_unit_from_certificate,
    server_ssl_context,
    unit_dns_name,
)
from envelopes.attachments import AttachmentSource
from envelopes.metadata import parse_metadata
from gateway.bootstrap import Gateway
from gateway.keystore import Issued, create_ca, issue_unit_certificate
from gateway.store.records import UnitRecord
from gateway.store.tables import audit_events, blobs, recipients, units
from gateway.usecases import delivery, registry, submit, tokens
from gateway.usecases.statuses import VIETNAM
from gateway.web.app import create_app

#: Where nothing listens: a secure channel's own endpoint, which a recipient with a registered
#: endpoint never uses.
NOWHERE = "https://127.0.0.1:9/api/v1/inbox"
#: The configuration of a ``kind = "secure"`` channel named "secure".
SECURE = '[channels.secure]\nkind = "secure"\n'


def server_certificate(ca: Issued, unit: str) -> Issued:
    """A TLS server certificate of ``unit``'s gateway: its unit DNS name and the loopback address
    (so that a client which does not pin the unit would also accept it: only the pin tells)."""
    san = [x509.DNSName(unit_dns_name(unit)), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    return leaf_certificate(ca, common_name=unit, san=san, server_auth=True)


@dataclass(frozen=True, kw_only=True)
class Pki:
    directory: Path
    ca: Issued

    def _files(self, name: str, issued: Issued) -> tuple[Path, Path]:
        cert, key = self.directory / f"{name}.cert.pem", self.directory / f"{name}.key.pem"
        cert.write_bytes(issued.cert_pem)
        key.write_bytes(issued.key_pem)
        return cert, key

    @property
    def ca_file(self) -> Path:
        path = self.directory / "ca.pem"
        path.write_bytes(self.ca.cert_pem)
        return path

    def client(self, unit: str) -> ssl.SSLContext:
        """Our side: ``unit``'s certificate for mutual TLS, this CA for the peers."""
        cert, key = self._files(f"client-{unit}", issue_unit_certificate(self.ca, unit))
        return client_ssl_context(cert, key, self.ca_file)

    def server(self, unit: str) -> ssl.SSLContext:
        """The secure inbox of ``unit``'s gateway (client certificates from this CA required)."""
        cert, key = self._files(f"server-{unit}", server_certificate(self.ca, unit))
        return server_ssl_context(cert, key, self.ca_file)


def make_pki(directory: Path) -> Pki:
    return Pki(directory=directory, ca=create_ca())


def secure_connector(pki: Pki, sender: str) -> SecureEndpointConnector:
    """The real secure connector, as bootstrap makes it (no fixed ``server_hostname``)."""
    return SecureEndpointConnector(name="secure", endpoint=NOWHERE, ssl_context=pki.client(sender))


@dataclass(frozen=True, kw_only=True)
class Seen:
    #: The unit the TLS client certificate names.
    unit: str | None
    #: The host name the client asked for (SNI): the recipient's unit DNS name when pinned.
    server_name: str | None
    headers: dict[str, str]
    body: bytes


@dataclass
class Peer:
    url: str = ""
    #: What the inbox answers next (201 = taken; 4xx = refused for good).
    status: int = 201
    #: How long the inbox waits, once it has recorded a request, before it answers (seconds).
    delay: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)


@asynccontextmanager
async def secure_peer(
    context: ssl.SSLContext, *, status: int = 201, delay: float = 0.0
) -> AsyncIterator[Peer]:
    """An aiohttp secure inbox on 127.0.0.1 over mutual TLS, recording each request, then
    answering ``status`` after ``delay`` seconds (both may be changed on the peer meanwhile)."""
    peer = Peer(status=status, delay=delay)

    def remember_server_name(_: ssl.SSLObject, name: str | None, __: ssl.SSLContext) -> None:
        peer.server_names.append(name)

    context.sni_callback = remember_server_name

    async def inbox(request: web.Request) -> web.Response:
        assert request.transport is not None
        tls = request.transport.get_extra_info("ssl_object")
        body = await request.read()
        peer.seen.append(
            Seen(
                unit=peer_unit_from_certificate(tls.getpeercert(binary_form=True)),
                server_name=peer.server_names[-1] if peer.server_names else None,
                headers=dict(request.headers),
                body=body,
            )
        )
        if peer.delay:
            await asyncio.sleep(peer.delay)
        if peer.status >= 300:
            return web.json_response({"error": "scripted"}, status=peer.status)
        return web.json_response(
            {"id": f"peer-{len(peer.seen)}", "duplicate": False}, status=peer.status
        )

    app = web.Application(client_max_size=16 << 20)
    app.router.add_post("/api/v1/inbox", inbox)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    peer.url = f"https://127.0.0.1:{runner.addresses[0][1]}/api/v1/inbox"
    try:
        yield peer
    finally:
        await runner.cleanup()


# ----------------------------------------------------------------------- the gateway's side


def secure_gateway(
    make_gateway: Any, pki: Pki, sender: str = SENDER
) -> AbstractAsyncContextManager[Gateway]:
    """``async with secure_gateway(make_gateway, pki) as gateway``: the axis (a fake) and the real
    secure connector of ``sender`` on the channel "secure"."""
    connectors = {
        "axis": FakeConnector(name="axis", is_axis=True),
        "secure": secure_connector(pki, sender),
    }
    context: AbstractAsyncContextManager[Gateway] = make_gateway(
        connectors=connectors, extra=SECURE
    )
    return context


async def register(
    gateway: Gateway, code: str = RECIPIENT, *, certificate_pem: str | None = None, **values: Any
) -> None:
    """Change only the fields given of ``code`` (and add a certificate), as an admin would."""
    unit = UnitRecord(code=code, name="", **values)
    await registry.register_unit(
        gateway, unit, certificate_pem=certificate_pem, actor="admin", given=values
    )


async def send(gateway: Gateway, classification: str, number: str, *to: str) -> str:
    """Submit the example document with ``classification`` and number ``number`` to ``to``
    (RECIPIENT when none); its message id."""
    meta = json.loads((EXAMPLES / "new-document.json").read_text(encoding="utf-8"))
    meta.update(classification=classification, code={"number": number, "notation": "VPCP-TTĐT"})
    meta["to"] = [{"organ_id": code, "organ_name": f"Đơn vị {code}"} for code in to or (RECIPIENT,)]
    request = parse_metadata(meta, today=dt.datetime.now(VIETNAM).date())
    attachment = AttachmentSource(name="van-ban.pdf", open=lambda: io.BytesIO(b"%PDF-1.7 tai lieu"))
    result = await submit.submit_document(
        gateway, request, [attachment], client="test", actor="test", idempotency_key=None
    )
    return result.message_id


async def drain(gateway: Gateway) -> None:
    """Deliver until nothing is due."""
    for _ in range(50):
        if not await delivery.deliver_due(gateway, "w"):
            return
    raise AssertionError("the queue did not drain")


async def refused_over_api(
    gateway: Gateway, path: str, body: dict[str, str], code: str, why: str
) -> None:
    """An admin's POST of ``body`` to ``path`` is refused 409 with ``code`` and ``why`` in a
    problem document, and changes nothing."""
    admin = await tokens.create_token(gateway, name="admin", role="admin")
    before = await snapshot(gateway)
    async with TestClient(TestServer(create_app(gateway))) as client:
        response = await client.post(path, json=body, headers={"Authorization": f"Bearer {admin}"})
        assert response.status == 409
        assert response.content_type == "application/problem+json"
        problem = await response.json()
    assert problem["code"] == code
    assert why in problem["detail"]
    assert await snapshot(gateway) == before


async def snapshot(gateway: Gateway) -> dict[str, Any]:
    """Everything a refused operation (resend, re-route) must leave as it was: the recipients,
    the audit trail, the registry and which blobs are stored."""
    async with gateway.engine.connect() as conn:
        rows = {
            table.name: [
                tuple(row)
                for row in (await conn.execute(sa.select(table).order_by(*table.primary_key)))
            ]
            for table in (recipients, audit_events, units)
        }
        rows["blobs"] = [
            tuple(row) for row in await conn.execute(sa.select(blobs.c.sha256).order_by("sha256"))
        ]
    return rows
