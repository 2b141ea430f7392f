"""A secure endpoint is ``https://`` or nothing (issue 13): the registry refuses an ``http://``
one on every surface (API, CLI, CSV) with ``SECURE_ENDPOINT_INVALID`` naming the field, and the
secure connector refuses one at send time — one stored before that rule included — before any
connection is opened.

"Nothing left in clear" is proved with a real plain-HTTP listener on loopback that counts every
connection and byte it gets (and would answer 201, so a leak would look like a delivery). Real
databases (SQLite file and PostgreSQL), real mutual TLS where a secure peer is involved.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from integration_support import RECIPIENT, SENDER
from secure_peers import (
    Pki,
    drain,
    make_pki,
    register,
    secure_gateway,
    secure_peer,
    send,
    snapshot,
)

from connectors.base import Delivery, PeerRefused
from connectors.secure_endpoint import (
    SecureEndpointConnector,
    SecureEndpointInvalid,
    TlsConfigurationError,
    check_secure_endpoint,
)
from envelopes.model import Classification
from envelopes.sealing import seal
from gateway.bootstrap import Gateway
from gateway.domain.lifecycle import TransportState
from gateway.keystore import issue_unit_certificate
from gateway.store.records import UnitRecord
from gateway.store.tables import attempts, recipients, units
from gateway.usecases import registry, tokens
from gateway.web.app import create_app

DOCGW = Path(sys.executable).parent / "docgw"
PACKAGE = b"<edXMLEnvelope>" + b"x" * 50_000 + b"</edXMLEnvelope>"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("secure-https-pki"))


@dataclass
class PlainListener:
    """A plain-HTTP (no TLS) server on 127.0.0.1 that counts what reaches it."""

    url: str = ""
    connections: int = 0
    received: int = 0


@asynccontextmanager
async def plain_listener() -> AsyncIterator[PlainListener]:
    listener = PlainListener()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener.connections += 1
        try:
            while chunk := await reader.read(65536):
                listener.received += len(chunk)
                if b"\r\n\r\n" in chunk:  # answer as an inbox would: a leak looks like success
                    body = b'{"id": "x", "duplicate": false}'
                    writer.write(
                        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
                    )
                    await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    listener.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/api/v1/inbox"
    try:
        yield listener
    finally:
        server.close()
        await server.wait_closed()


def delivery_of(data: bytes, classification: Classification, endpoint: str | None) -> Delivery:
    return Delivery(
        message_id="m-1",
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


# ---------------------------------------------------------------------------- the one rule


@pytest.mark.parametrize(
    "url",
    [
        "https://gw-h41.example.gov.vn:8443/inbox",
        "https://127.0.0.1:8443/api/v1/inbox",
        "https://[::1]:8443/inbox",
        "HTTPS://GW.example.gov.vn/inbox",
    ],
)
def test_an_https_endpoint_is_a_secure_endpoint(url: str) -> None:
    assert check_secure_endpoint(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://gw-h41.example.gov.vn/inbox",
        "http://127.0.0.1:8443/inbox",
        "gw-h41.example.gov.vn/inbox",
        "ftp://gw/inbox",
        "https://",
        "https:///inbox",
        "https://gw:notaport/inbox",
        "https://[::1/inbox",
        " https://gw/inbox",
        "https://gw/in box",
        "https://user:password@gw/inbox",
        "https://user@gw/inbox",
    ],
)
def test_anything_else_is_refused_naming_the_field(url: str) -> None:
    with pytest.raises(SecureEndpointInvalid) as raised:
        check_secure_endpoint(url)
    assert raised.value.code == "SECURE_ENDPOINT_INVALID"
    assert raised.value.element == "secure_endpoint"
    assert isinstance(raised.value, PeerRefused)  # final where the connector raises it


# ----------------------------------------------------------------------------- the connector


@pytest.mark.parametrize("classification", list(Classification))
def test_the_connector_sends_nothing_to_a_plain_http_endpoint(
    pki: Pki, classification: Classification
) -> None:
    """The recipient's registered endpoint is http://: refused before any connection, sealed or
    not (an http:// URL would carry the bytes, the unit codes and the message id in clear)."""
    data = PACKAGE
    if classification.is_classified:
        data = seal(PACKAGE, issue_unit_certificate(pki.ca, RECIPIENT).certificate)

    async def scenario() -> None:
        async with plain_listener() as listener:
            connector = SecureEndpointConnector(name="secure", ssl_context=pki.client(SENDER))
            try:
                with pytest.raises(SecureEndpointInvalid) as raised:
                    await connector.deliver(delivery_of(data, classification, listener.url))
            finally:
                await connector.close()
        assert raised.value.element == "endpoint"
        assert listener.url in raised.value.message
        assert (listener.connections, listener.received) == (0, 0)

    asyncio.run(scenario())


def test_a_secure_channel_with_a_plain_http_endpoint_of_its_own_does_not_start(
    pki: Pki, tmp_path: Path
) -> None:
    with pytest.raises(SecureEndpointInvalid) as raised:
        SecureEndpointConnector(
            name="lan", endpoint="http://127.0.0.1:9/api/v1/inbox", ssl_context=pki.client(SENDER)
        )
    assert raised.value.element == "channels.lan.endpoint"
    # As `docgw serve` meets it: one line, no traceback.
    keys = tmp_path / "keys"
    assert (
        subprocess.run(
            [str(DOCGW), "keys", "init", "--dir", str(keys), "--unit", SENDER], capture_output=True
        ).returncode
        == 0
    )
    config = tmp_path / "docgw.toml"
    config.write_text(
        f'[gateway]\nlocal_units = ["{SENDER}"]\n[keys]\ndir = "{keys}"\n'
        '[channels.lan]\nkind = "secure"\nendpoint = "http://127.0.0.1:9/api/v1/inbox"\n',
        encoding="utf-8",
    )
    result = subprocess.run(
        [str(DOCGW), "--config", str(config), "serve"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: SECURE_ENDPOINT_INVALID: ")
    assert line.endswith("[channels.lan.endpoint]")


def test_the_channels_own_plain_http_endpoint_gets_nothing_at_send_time_either(pki: Pki) -> None:
    """Were a connector's endpoint changed after it was made (it is not frozen)."""

    async def scenario() -> None:
        async with plain_listener() as listener:
            connector = SecureEndpointConnector(name="secure", ssl_context=pki.client(SENDER))
            connector.endpoint = listener.url
            try:
                with pytest.raises(SecureEndpointInvalid):
                    await connector.deliver(delivery_of(PACKAGE, Classification.THUONG, None))
            finally:
                await connector.close()
        assert (listener.connections, listener.received) == (0, 0)

    asyncio.run(scenario())


@pytest.mark.parametrize("loosen", ["no_hostname_check", "no_verification"])
def test_a_tls_context_that_does_not_check_the_server_is_refused(pki: Pki, loosen: str) -> None:
    context = pki.client(SENDER)
    context.check_hostname = False
    if loosen == "no_verification":
        context.verify_mode = ssl.CERT_NONE
    with pytest.raises(TlsConfigurationError, match="must verify the server"):
        SecureEndpointConnector(name="secure", ssl_context=context)


# ------------------------------------------------------------------- a gateway at send time


async def set_endpoint_behind_the_registrys_back(gateway: Gateway, url: str) -> None:
    """As an endpoint registered before docgw refused http:// sits in the database."""
    async with gateway.engine.begin() as conn:
        await conn.execute(
            sa.update(units).where(units.c.code == RECIPIENT).values(secure_endpoint=url)
        )


async def outcome(gateway: Gateway, message_id: str) -> tuple[TransportState, list[str | None]]:
    async with gateway.engine.connect() as conn:
        recipient = (
            await conn.execute(
                sa.select(recipients.c.id, recipients.c.state).where(
                    recipients.c.message_id == message_id
                )
            )
        ).one()
        codes = await conn.scalars(
            sa.select(attempts.c.error_code)
            .where(attempts.c.recipient_id == recipient.id)
            .order_by(attempts.c.number)
        )
        return TransportState(recipient.state), list(codes)


@pytest.mark.parametrize("classification", ["mat", "toi_mat", "tuyet_mat"])
def test_a_stored_http_endpoint_gets_no_classified_copy_and_the_recipient_fails_with_the_code(
    make_gateway: Any, pki: Pki, classification: str
) -> None:
    async def scenario() -> None:
        async with (
            plain_listener() as listener,
            secure_peer(pki.server(RECIPIENT)) as real_peer,
            secure_gateway(make_gateway, pki) as gateway,
        ):
            await register(gateway, secure_endpoint=real_peer.url, allows_tuyet_mat=True)
            await set_endpoint_behind_the_registrys_back(gateway, listener.url)
            message_id = await send(gateway, classification, "601")
            await drain(gateway)
            state, codes = await outcome(gateway, message_id)
        assert state is TransportState.FAILED
        assert codes == ["SECURE_ENDPOINT_INVALID"]  # one attempt, final: not retried
        assert (listener.connections, listener.received) == (0, 0)
        assert real_peer.seen == []

    asyncio.run(scenario())


# ---------------------------------------------------------------------------- the registry


def test_the_registry_refuses_an_http_endpoint_and_stores_nothing(make_gateway: Any) -> None:
    async def scenario() -> None:
        async with make_gateway() as gateway:
            before = await snapshot(gateway)
            for url in ("http://gw-h41.example.gov.vn/inbox", "gw-h41.example.gov.vn/inbox"):
                with pytest.raises(SecureEndpointInvalid) as raised:
                    await register(gateway, secure_endpoint=url)
                assert raised.value.element == "secure_endpoint"
            csv = f"code,name,secure_endpoint\n{RECIPIENT},Nghệ An,http://gw-h41/inbox\n"
            with pytest.raises(SecureEndpointInvalid) as raised:
                await registry.import_csv(gateway, csv, actor="admin")
            assert raised.value.element == "secure_endpoint"
            assert "line 2" in raised.value.message
            assert await snapshot(gateway) == before
            # An https:// one is taken; clearing it too.
            await register(gateway, secure_endpoint="https://gw-h41.example.gov.vn:8443/inbox")
            await register(gateway, secure_endpoint=None)

    asyncio.run(scenario())


def test_a_stored_http_endpoint_does_not_block_a_change_that_leaves_it_alone(
    make_gateway: Any,
) -> None:
    """Renaming a unit whose http:// endpoint predates the rule is not refused for it (a member
    may not even change the endpoint); giving that endpoint again is."""

    async def scenario() -> None:
        async with make_gateway() as gateway:
            await set_endpoint_behind_the_registrys_back(gateway, "http://gw-h41/inbox")
            for given in ({}, {"secure_endpoint": "http://gw-h41/inbox"}):
                unit = UnitRecord(code=RECIPIENT, name="UBND tỉnh Nghệ An", **given)
                change = registry.register_unit(
                    gateway, unit, certificate_pem=None, actor="admin", given=("name", *given)
                )
                if given:
                    with pytest.raises(SecureEndpointInvalid):
                        await change
                else:
                    await change
            detail = await registry.get_unit(gateway, RECIPIENT)
            assert (detail.unit.name, detail.unit.secure_endpoint) == (
                "UBND tỉnh Nghệ An",
                "http://gw-h41/inbox",
            )

    asyncio.run(scenario())


def test_the_api_refuses_an_http_endpoint_with_a_problem_naming_the_field(
    make_gateway: Any,
) -> None:
    async def scenario() -> None:
        async with make_gateway() as gateway:
            admin = await tokens.create_token(gateway, name="admin", role="admin")
            before = await snapshot(gateway)
            async with TestClient(TestServer(create_app(gateway))) as client:
                response = await client.post(
                    "/api/v1/units",
                    json={"code": RECIPIENT, "secure_endpoint": "http://127.0.0.1:9/inbox"},
                    headers={"Authorization": f"Bearer {admin}"},
                )
                assert response.status == 422
                assert response.content_type == "application/problem+json"
                problem = await response.json()
            assert problem["code"] == "SECURE_ENDPOINT_INVALID"
            assert problem["element"] == "secure_endpoint"
            assert "Traceback" not in json.dumps(problem)
            assert await snapshot(gateway) == before

    asyncio.run(scenario())


def test_the_cli_refuses_an_http_endpoint_with_the_same_code(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init = subprocess.run(
        [str(DOCGW), "init", "--dir", str(home)], capture_output=True, text=True, timeout=120
    )
    assert init.returncode == 0, init.stderr
    config = str(home / "docgw.toml")
    result = subprocess.run(
        [str(DOCGW), "--config", config, "units", "add", RECIPIENT, "--name", "Nghệ An",
         "--secure-endpoint", "http://gw-h41.example.gov.vn/inbox"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: SECURE_ENDPOINT_INVALID: ")
    assert line.endswith("[secure_endpoint]")
    shown = subprocess.run(
        [str(DOCGW), "--config", config, "units", "show", RECIPIENT],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert json.loads(shown.stdout)["unit"]["secure_endpoint"] is None
