"""Real secure inboxes on loopback for the gateway tests that deliver over the secure channel:
a small PKI (a CA, our unit's client certificate, a server certificate per peer unit) and an
aiohttp listener over mutual TLS that records what each request carried and which host name the
client asked for (SNI: the secure connector pins a recipient's endpoint to ``unit_dns_name``).

A module of its own (not conftest): the classified resend and the secure grouping tests share it.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from cryptography import x509
from pki import leaf_certificate

from connectors.secure_endpoint import (
    SecureEndpointConnector,
    client_ssl_context,
    peer_unit_from_certificate,
    server_ssl_context,
    unit_dns_name,
)
from gateway.keystore import Issued, create_ca, issue_unit_certificate

#: Where nothing listens: a secure channel's own endpoint, which a recipient with a registered
#: endpoint never uses.
NOWHERE = "https://127.0.0.1:9/api/v1/inbox"


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
    seen: list[Seen] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)


@asynccontextmanager
async def secure_peer(context: ssl.SSLContext) -> AsyncIterator[Peer]:
    """An aiohttp secure inbox on 127.0.0.1 over mutual TLS, recording each request."""
    peer = Peer()

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
        if peer.status >= 300:
            return web.json_response({"error": "scripted"}, status=peer.status)
        return web.json_response({"id": f"peer-{len(peer.seen)}", "duplicate": False}, status=201)

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
