"""On a secure channel each recipient's copy goes to that recipient's own registered endpoint, over
real mutual TLS, with the server's certificate pinned to that recipient's unit — even for an
unclassified document to several recipients, which on the axis is one call for all of them.

Two real secure inboxes on loopback stand for two units' gateways; each server certificate names
its unit AND the loopback address, so that a client which forgot the pin (or posted another unit's
copy there) would still be accepted: only what each inbox saw tells right from wrong. Real
databases (SQLite file and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
from typing import Any

import pytest
import sqlalchemy as sa
from integration_support import OTHER, RECIPIENT, SENDER
from secure_peers import (
    Pki,
    drain,
    make_pki,
    register,
    secure_connector,
    secure_gateway,
    secure_peer,
    send,
)

from connectors.base import Delivery
from connectors.secure_endpoint import NoSecureEndpoint, unit_dns_name
from envelopes.model import Classification
from gateway.bootstrap import Gateway
from gateway.domain.lifecycle import TransportState
from gateway.store import blobs as blob_store
from gateway.store.tables import messages, recipients


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("secure-grouping-pki"))


async def states(gateway: Gateway, message_id: str) -> dict[str, tuple[TransportState, str | None]]:
    async with gateway.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(recipients.c.unit_code, recipients.c.state, recipients.c.channel).where(
                recipients.c.message_id == message_id
            )
        )
        return {row.unit_code: (TransportState(row.state), row.channel) for row in rows}


async def package_of(gateway: Gateway, message_id: str) -> bytes:
    async with gateway.engine.connect() as conn:
        sha256 = await conn.scalar(
            sa.select(messages.c.package_sha256).where(messages.c.id == message_id)
        )
        return await blob_store.read_bytes(conn, sha256)


def test_unclassified_copies_go_each_to_their_own_recipients_endpoint_pinned_to_its_unit(
    make_gateway: Any, pki: Pki
) -> None:
    async def scenario() -> None:
        async with (
            secure_peer(pki.server(RECIPIENT)) as at_recipient,
            secure_peer(pki.server(OTHER)) as at_other,
            secure_gateway(make_gateway, pki) as gateway,
        ):
            for code, peer in ((RECIPIENT, at_recipient), (OTHER, at_other)):
                await register(gateway, code, channel="secure", secure_endpoint=peer.url)
            message_id = await send(gateway, "thuong", "501", RECIPIENT, OTHER)
            assert await states(gateway, message_id) == {
                RECIPIENT: (TransportState.QUEUED, "secure"),
                OTHER: (TransportState.QUEUED, "secure"),
            }
            await drain(gateway)
            package = await package_of(gateway, message_id)
            assert await states(gateway, message_id) == {
                RECIPIENT: (TransportState.SENT, "secure"),
                OTHER: (TransportState.SENT, "secure"),
            }

        for code, peer in ((RECIPIENT, at_recipient), (OTHER, at_other)):
            [seen] = peer.seen  # its own copy, and no other unit's
            assert seen.headers["X-Docgw-Recipients"] == code
            assert seen.headers["X-Docgw-Message-Id"] == message_id
            assert seen.headers["Content-Type"] == "application/xml"
            assert seen.body == package
            assert seen.unit == SENDER  # mutual TLS: the inbox knows who sent it
            # The host-name pin: the connector asked that server for the recipient's unit.
            assert seen.server_name == unit_dns_name(code)

    asyncio.run(scenario())


def test_a_recipients_endpoint_served_by_another_units_gateway_gets_nothing(
    make_gateway: Any, pki: Pki
) -> None:
    """OTHER registered an endpoint whose server is RECIPIENT's gateway: the pin refuses it (the
    copy stays due for a retry) while RECIPIENT's own copy is delivered."""

    async def scenario() -> None:
        async with (
            secure_peer(pki.server(RECIPIENT)) as at_recipient,
            secure_peer(pki.server(RECIPIENT)) as impostor,
            secure_gateway(make_gateway, pki) as gateway,
        ):
            await register(gateway, RECIPIENT, channel="secure", secure_endpoint=at_recipient.url)
            await register(gateway, OTHER, channel="secure", secure_endpoint=impostor.url)
            message_id = await send(gateway, "thuong", "501", RECIPIENT, OTHER)
            await drain(gateway)
            assert await states(gateway, message_id) == {
                RECIPIENT: (TransportState.SENT, "secure"),
                OTHER: (TransportState.RETRY_SCHEDULED, "secure"),
            }
            async with gateway.engine.connect() as conn:
                error = await conn.scalar(
                    sa.select(recipients.c.last_error).where(
                        recipients.c.message_id == message_id, recipients.c.unit_code == OTHER
                    )
                )
            assert "not trusted" in error
        assert [seen.headers["X-Docgw-Recipients"] for seen in at_recipient.seen] == [RECIPIENT]
        assert impostor.seen == []
        # It was asked for OTHER only (more than once where a slow run made the retry due
        # before the drain ended).
        assert impostor.server_names
        assert set(impostor.server_names) == {unit_dns_name(OTHER)}

    asyncio.run(scenario())


def two_recipients(data: bytes, endpoint: str) -> Delivery:
    """An unclassified delivery for RECIPIENT and OTHER that carries one registered endpoint."""
    return Delivery(
        message_id="m",
        document_id="d",
        kind="document",
        sender=SENDER,
        recipients=(RECIPIENT, OTHER),
        classification=Classification.THUONG,
        open_package=lambda: io.BytesIO(data),
        package_size=len(data),
        package_sha256=hashlib.sha256(data).hexdigest(),
        attempt=1,
        endpoint=endpoint,
    )


def test_the_connector_refuses_one_recipients_endpoint_for_several_recipients(pki: Pki) -> None:
    """Defence in depth: whatever grouped them, a registered endpoint takes one recipient's copy,
    refused before any connection."""
    data = b"<edXMLEnvelope>x</edXMLEnvelope>"

    async def scenario() -> None:
        async with secure_peer(pki.server(RECIPIENT)) as peer:
            connector = secure_connector(pki, SENDER)
            try:
                both = two_recipients(data, peer.url)
                with pytest.raises(NoSecureEndpoint, match="2 recipients") as refused:
                    await connector.deliver(both)
                assert refused.value.code == "NO_SECURE_ENDPOINT"
                assert peer.server_names == []  # not even a TLS handshake
                one = dataclasses.replace(both, recipients=(RECIPIENT,))
                assert (await connector.deliver(one)).remote_id == "peer-1"
            finally:
                await connector.close()
        assert [seen.headers["X-Docgw-Recipients"] for seen in peer.seen] == [RECIPIENT]
        assert peer.server_names == [unit_dns_name(RECIPIENT)]

    asyncio.run(scenario())
