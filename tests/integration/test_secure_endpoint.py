"""The secure-network connector against a real mutual-TLS server on loopback.

Every certificate is made here: a development CA, unit certificates from ``gateway.keystore``,
server certificates (``pki.leaf_certificate``: IP SAN 127.0.0.1, or a unit's DNS name) signed by
the same CA, and a second CA nobody trusts. The inbox is ``secure_peers.secure_peer``, the one the
gateway tests deliver to. pytest-asyncio is not used: each test runs its
scenario with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pki import leaf_certificate
from secure_peers import secure_peer, server_certificate

from connectors.base import (
    Delivery,
    NotSealed,
    OutcomeUnknown,
    PeerRefused,
    PeerUnavailable,
    Receipt,
)
from connectors.secure_endpoint import (
    NoSecureEndpoint,
    SecureEndpointConnector,
    TlsConfigurationError,
    client_ssl_context,
    peer_unit_from_certificate,
    server_ssl_context,
    unit_dns_name,
)
from envelopes.model import Classification
from envelopes.sealing import open_sealed, seal
from gateway.keystore import Issued, create_ca, issue_unit_certificate

SENDER, RECIPIENT, OTHER = "000.00.00.G22", "000.00.00.H41", "000.00.00.H14"
PACKAGE = b"<edXMLEnvelope>" + b"x" * 200_000 + b"</edXMLEnvelope>"


# ------------------------------------------------------------------------------------ the PKI


@dataclass(frozen=True, kw_only=True)
class Pki:
    ca_file: Path
    other_ca_file: Path
    recipient: Issued
    files: dict[str, tuple[Path, Path]]  # name → (cert, key)

    def client(self, name: str = "client") -> ssl.SSLContext:
        cert, key = self.files[name]
        return client_ssl_context(cert, key, self.ca_file)

    def server(self, name: str = "server") -> ssl.SSLContext:
        cert, key = self.files[name]
        return server_ssl_context(cert, key, self.ca_file)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other_ca = create_ca(), create_ca()
    issued = {
        "client": issue_unit_certificate(ca, SENDER),
        "stranger": issue_unit_certificate(other_ca, SENDER),
        "server": leaf_certificate(
            ca,
            common_name="docgw test server",
            san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
            server_auth=True,
        ),
        "recipient_server": leaf_certificate(
            ca,
            common_name=RECIPIENT,
            san=[x509.DNSName(unit_dns_name(RECIPIENT))],
            server_auth=True,
        ),
        # Another unit's gateway, with 127.0.0.1 too: only the recipient's unit pin refuses it.
        "impostor_server": server_certificate(ca, OTHER),
    }
    files = {}
    for name, item in issued.items():
        cert, key = directory / f"{name}.cert.pem", directory / f"{name}.key.pem"
        cert.write_bytes(item.cert_pem)
        key.write_bytes(item.key_pem)
        files[name] = (cert, key)
    (ca_file := directory / "ca.pem").write_bytes(ca.cert_pem)
    (other_ca_file := directory / "other-ca.pem").write_bytes(other_ca.cert_pem)
    return Pki(
        ca_file=ca_file,
        other_ca_file=other_ca_file,
        recipient=issue_unit_certificate(ca, RECIPIENT),
        files=files,
    )


def delivery_of(
    data: bytes,
    *,
    classification: Classification = Classification.MAT,
    message_id: str = "m-1",
    endpoint: str | None = None,
) -> Delivery:
    """``endpoint``: the recipient's registered secure endpoint, as delivery passes it (a
    classified delivery goes there and nowhere else)."""
    return Delivery(
        message_id=message_id,
        document_id=f"{SENDER},2024/03/15,7816/VPCP-TTĐT",
        kind="document",
        sender=SENDER,
        recipients=(RECIPIENT,),
        classification=classification,
        open_package=lambda: io.BytesIO(data),
        package_size=len(data),
        package_sha256=hashlib.sha256(data).hexdigest(),
        attempt=1,
        endpoint=endpoint,
    )


async def deliver(connector: SecureEndpointConnector, delivery: Delivery) -> Receipt:
    try:
        return await connector.deliver(delivery)
    finally:
        await connector.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------- tests


def test_a_sealed_package_goes_over_mutual_tls_and_the_peer_knows_the_sending_unit(
    pki: Pki,
) -> None:
    sealed = seal(PACKAGE, pki.recipient.certificate)

    async def scenario() -> None:
        async with secure_peer(pki.server("recipient_server")) as peer:
            # The recipient's registered endpoint; its gateway's certificate names the unit.
            connector = SecureEndpointConnector(name="secure", ssl_context=pki.client())
            receipt = await deliver(connector, delivery_of(sealed, endpoint=peer.url))
        assert receipt.remote_id == "peer-1"
        assert not receipt.duplicate
        [seen] = peer.seen
        assert seen.unit == SENDER
        assert seen.headers["X-Docgw-Message-Id"] == "m-1"
        assert seen.headers["X-Docgw-Sender"] == SENDER
        assert seen.headers["X-Docgw-Recipients"] == RECIPIENT
        assert seen.headers["Content-Type"] == "application/octet-stream"
        assert seen.body == sealed
        # Only the recipient's key opens what travelled.
        assert open_sealed(seen.body, pki.recipient.key) == PACKAGE

    asyncio.run(scenario())


def test_an_unclassified_package_may_travel_unsealed(pki: Pki) -> None:
    async def scenario() -> None:
        async with (
            secure_peer(pki.server()) as peer,
            aiohttp.ClientSession() as session,  # an injected session is used, not closed
        ):
            connector = SecureEndpointConnector(
                name="secure", endpoint=peer.url, ssl_context=pki.client(), session=session
            )
            receipt = await deliver(
                connector, delivery_of(PACKAGE, classification=Classification.THUONG)
            )
            assert not session.closed
        assert receipt.remote_id == "peer-1"
        [seen] = peer.seen
        assert (seen.body, seen.headers["Content-Type"]) == (PACKAGE, "application/xml")

    asyncio.run(scenario())


@pytest.mark.parametrize("tls", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2], ids=str)
@pytest.mark.parametrize("client", ["none", "stranger"])
def test_a_client_without_a_trusted_certificate_is_refused_at_the_tls_layer(
    pki: Pki, client: str, tls: ssl.TLSVersion
) -> None:
    """TLS 1.2 refuses during the handshake; TLS 1.3 only after the client's handshake is done,
    which the connector must still report as unavailable (nothing was committed), not unknown."""
    if client == "none":
        context = ssl.create_default_context(cafile=pki.ca_file)
    else:
        context = pki.client("stranger")  # a unit certificate, from a CA the peer does not trust
    server = pki.server("recipient_server")
    server.maximum_version = tls
    sealed = seal(PACKAGE, pki.recipient.certificate)

    async def scenario() -> None:
        async with secure_peer(server) as peer:
            connector = SecureEndpointConnector(name="secure", ssl_context=context)
            with pytest.raises(PeerUnavailable) as raised:
                await deliver(connector, delivery_of(sealed, endpoint=peer.url))
        assert peer.seen == []
        assert "refusing our client certificate" in raised.value.message

    asyncio.run(scenario())


def test_a_server_certificate_we_do_not_trust_is_unavailable_with_a_clear_message(
    pki: Pki,
) -> None:
    cert, key = pki.files["client"]
    context = client_ssl_context(cert, key, pki.other_ca_file)

    async def scenario() -> None:
        async with secure_peer(pki.server()) as peer:
            connector = SecureEndpointConnector(name="secure", ssl_context=context)
            sealed = seal(PACKAGE, pki.recipient.certificate)
            with pytest.raises(PeerUnavailable, match="peer's certificate is not trusted"):
                await deliver(connector, delivery_of(sealed, endpoint=peer.url))
        assert peer.seen == []

    asyncio.run(scenario())


def test_server_hostname_pins_the_channels_own_endpoint(pki: Pki) -> None:
    """The channel's own endpoint is an IP address; ``server_hostname`` names whose certificate
    the server there must hold."""
    plain = delivery_of(PACKAGE, classification=Classification.THUONG)

    async def scenario() -> None:
        async with secure_peer(pki.server("recipient_server")) as peer:
            pinned = SecureEndpointConnector(
                name="secure",
                endpoint=peer.url,
                ssl_context=pki.client(),
                server_hostname=unit_dns_name(RECIPIENT),
            )
            assert (await deliver(pinned, plain)).remote_id == "peer-1"
            wrong = SecureEndpointConnector(
                name="secure",
                endpoint=peer.url,
                ssl_context=pki.client(),
                server_hostname=unit_dns_name("000.00.00.H14"),
            )
            with pytest.raises(PeerUnavailable, match="not trusted"):
                await deliver(wrong, plain)
        assert len(peer.seen) == 1

    asyncio.run(scenario())


@pytest.mark.parametrize("classification", [Classification.THUONG, Classification.TOI_MAT])
def test_a_registered_endpoint_is_pinned_to_its_recipient_whatever_server_hostname_says(
    pki: Pki, classification: Classification
) -> None:
    """The server at the recipient's registered endpoint holds a certificate naming another unit
    (and 127.0.0.1, so only the unit pin refuses it); a ``server_hostname`` naming that other
    unit does not stand in for the recipient's name."""
    data = PACKAGE
    if classification.is_classified:
        data = seal(PACKAGE, pki.recipient.certificate)

    async def scenario() -> None:
        async with secure_peer(pki.server("impostor_server")) as peer:
            for server_hostname in (None, unit_dns_name(OTHER)):
                connector = SecureEndpointConnector(
                    name="secure",
                    ssl_context=pki.client(),
                    server_hostname=server_hostname,
                )
                to_recipient = delivery_of(data, classification=classification, endpoint=peer.url)
                with pytest.raises(PeerUnavailable, match="not trusted"):
                    await deliver(connector, to_recipient)
        assert peer.seen == []
        assert peer.server_names == [unit_dns_name(RECIPIENT)] * 2

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(PACKAGE, id="plain-xml"),
        pytest.param(b"", id="empty"),
        pytest.param(b"DGWSEAL1\x00\x00\x00\x05{oops", id="bad-header"),
    ],
)
@pytest.mark.parametrize("classification", [Classification.MAT, Classification.TUYET_MAT])
def test_classified_bytes_that_are_not_a_seal_are_refused_before_any_connection(
    pki: Pki, data: bytes, classification: Classification
) -> None:
    async def scenario() -> None:
        async with secure_peer(pki.server()) as peer:
            connector = SecureEndpointConnector(
                name="secure", endpoint=peer.url, ssl_context=pki.client()
            )
            with pytest.raises(NotSealed) as raised:
                await deliver(connector, delivery_of(data, classification=classification))
        assert peer.seen == []
        assert raised.value.code == "NOT_SEALED"
        assert isinstance(raised.value, PeerRefused)  # final: the outbox does not retry it

        # Nothing listens there: had the connector tried to connect, it would be unavailable.
        nowhere = SecureEndpointConnector(
            name="secure",
            endpoint=f"https://127.0.0.1:{free_port()}/api/v1/inbox",
            ssl_context=pki.client(),
        )
        with pytest.raises(NotSealed):
            await deliver(nowhere, delivery_of(data, classification=classification))

    asyncio.run(scenario())


@pytest.mark.parametrize("classification", [Classification.MAT, Classification.TUYET_MAT])
def test_a_classified_package_without_the_recipients_registered_endpoint_goes_nowhere(
    pki: Pki, classification: Classification
) -> None:
    """The channel's own endpoint is a real, listening peer: the connector must still not fall
    back to it for a classified package that carries no registered endpoint of its recipient."""
    sealed = seal(PACKAGE, pki.recipient.certificate)

    async def scenario() -> None:
        async with secure_peer(pki.server()) as peer:
            connector = SecureEndpointConnector(
                name="secure", endpoint=peer.url, ssl_context=pki.client()
            )
            with pytest.raises(NoSecureEndpoint) as raised:
                await deliver(connector, delivery_of(sealed, classification=classification))
            assert raised.value.code == "NO_SECURE_ENDPOINT"
            assert RECIPIENT in raised.value.message
            assert isinstance(raised.value, PeerRefused)  # final: the outbox does not retry it

            # Two recipients cannot share one recipient's endpoint.
            both = dataclasses.replace(
                delivery_of(sealed, classification=classification, endpoint=peer.url),
                recipients=(RECIPIENT, "000.00.00.H14"),
            )
            with pytest.raises(NoSecureEndpoint, match="2 recipients"):
                await deliver(connector, both)

            # The same connector sends an unclassified package to its own endpoint.
            plain = delivery_of(PACKAGE, classification=Classification.THUONG)
            assert (await deliver(connector, plain)).remote_id == "peer-1"
        assert [seen.body for seen in peer.seen] == [PACKAGE]

    asyncio.run(scenario())


def test_a_truncated_seal_is_refused(pki: Pki) -> None:
    truncated = seal(PACKAGE, pki.recipient.certificate)[:-100]

    async def scenario() -> None:
        async with secure_peer(pki.server()) as peer:
            connector = SecureEndpointConnector(
                name="secure", endpoint=peer.url, ssl_context=pki.client()
            )
            with pytest.raises(NotSealed, match="truncated or padded"):
                await deliver(connector, delivery_of(truncated))
        assert peer.seen == []

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("status", "error"),
    [(503, PeerUnavailable), (500, PeerUnavailable), (429, PeerUnavailable), (422, PeerRefused)],
)
def test_http_answers_map_to_outcomes(pki: Pki, status: int, error: type[Exception]) -> None:
    async def scenario() -> None:
        async with secure_peer(pki.server("recipient_server"), status=status) as peer:
            connector = SecureEndpointConnector(name="secure", ssl_context=pki.client())
            sealed = seal(PACKAGE, pki.recipient.certificate)
            with pytest.raises(error, match=f"HTTP {status}") as raised:
                await deliver(connector, delivery_of(sealed, endpoint=peer.url))
        assert type(raised.value) is error
        assert len(peer.seen) == 1

    asyncio.run(scenario())


def test_a_timeout_after_the_package_was_sent_is_an_unknown_outcome(pki: Pki) -> None:
    async def scenario() -> None:
        async with secure_peer(pki.server("recipient_server"), delay=1.5) as peer:
            connector = SecureEndpointConnector(
                name="secure", ssl_context=pki.client(), timeout_seconds=0.5
            )
            sealed = seal(PACKAGE, pki.recipient.certificate)
            with pytest.raises(OutcomeUnknown):
                await deliver(connector, delivery_of(sealed, endpoint=peer.url))
        assert len(peer.seen) == 1  # the peer did get it: resending the same package is right

    asyncio.run(scenario())


def test_nobody_listening_is_unavailable(pki: Pki) -> None:
    connector = SecureEndpointConnector(name="secure", ssl_context=pki.client())
    nowhere = f"https://127.0.0.1:{free_port()}/api/v1/inbox"
    sealed = seal(PACKAGE, pki.recipient.certificate)
    with pytest.raises(PeerUnavailable, match=r"cannot connect to 127\.0\.0\.1:\d+"):
        asyncio.run(deliver(connector, delivery_of(sealed, endpoint=nowhere)))


def test_unreadable_tls_files_are_a_configuration_error(pki: Pki, tmp_path: Path) -> None:
    cert, key = pki.files["client"]
    with pytest.raises(TlsConfigurationError):
        client_ssl_context(cert, key, tmp_path / "missing-ca.pem")
    with pytest.raises(TlsConfigurationError):
        client_ssl_context(cert, pki.files["server"][1], pki.ca_file)  # key of another cert
    with pytest.raises(TlsConfigurationError):
        server_ssl_context(tmp_path / "missing.pem", key, pki.ca_file)


def test_contexts_refuse_anything_older_than_tls_1_2(pki: Pki) -> None:
    client, server = pki.client(), pki.server()
    assert client.minimum_version == server.minimum_version == ssl.TLSVersion.TLSv1_2
    assert client.verify_mode == server.verify_mode == ssl.CERT_REQUIRED
    assert client.check_hostname


# ------------------------------------------------------------------- peer_unit_from_certificate


def _unit_like(*, common_name: str, dns: list[str], ca: Issued | None = None) -> x509.Certificate:
    ca = ca or create_ca()
    san = [x509.DNSName(name) for name in dns]
    return leaf_certificate(ca, common_name=common_name, san=san).certificate


def test_the_unit_comes_from_the_san_or_the_common_name(pki: Pki) -> None:
    unit = issue_unit_certificate(create_ca(), RECIPIENT).certificate
    assert peer_unit_from_certificate(unit) == RECIPIENT
    assert peer_unit_from_certificate(unit.public_bytes(Encoding.DER)) == RECIPIENT
    ca = create_ca()
    assert peer_unit_from_certificate(_unit_like(common_name=RECIPIENT, dns=[], ca=ca)) == RECIPIENT
    only_san = _unit_like(common_name="Văn thư", dns=[unit_dns_name(SENDER)], ca=ca)
    assert peer_unit_from_certificate(only_san) == SENDER


def test_no_unit_is_guessed_from_an_ambiguous_or_foreign_certificate() -> None:
    ca = create_ca()
    cases = {
        "a server certificate": _unit_like(common_name="docgw test server", dns=[], ca=ca),
        "CN and SAN name different units": _unit_like(
            common_name=SENDER, dns=[unit_dns_name(RECIPIENT)], ca=ca
        ),
        "two units in the SAN": _unit_like(
            common_name="x", dns=[unit_dns_name(SENDER), unit_dns_name(RECIPIENT)], ca=ca
        ),
        "a wildcard": _unit_like(common_name="x", dns=["*.unit.docgw"], ca=ca),
        "a deeper name": _unit_like(common_name="x", dns=["evil." + unit_dns_name(SENDER)], ca=ca),
    }
    for why, certificate in cases.items():
        assert peer_unit_from_certificate(certificate) is None, why
    assert peer_unit_from_certificate(b"not a certificate") is None
