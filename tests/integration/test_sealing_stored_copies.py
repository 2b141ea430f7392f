"""Copies sealed in the old DGWSEAL1 container, as a gateway upgraded from before the CMS container
holds them, and packages from a peer that still seals that way: they still go, and still open.

* A recipient's copy stored as DGWSEAL1 is found sealed for the unit's current certificate at the
  claim, passes the connector's whole-seal check, and travels as it is, over real mutual TLS.
* A resend for a renewed certificate opens the sender's own DGWSEAL1 copy and seals the new copy
  in CMS.
* A DGWSEAL1 package pushed by a peer is opened with our unit's key and stored as received.

On SQLite and PostgreSQL (the ``make_gateway`` fixture).
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from integration_support import RECIPIENT, SENDER
from secure_peers import Pki, drain, make_pki, register, secure_gateway, secure_peer, send

from connectors.fake import FakeConnector
from envelopes import dgwseal1
from envelopes.sealing import SealFormat, open_sealed, sniff
from gateway.bootstrap import Gateway
from gateway.domain.lifecycle import TransportState
from gateway.keystore import issue_unit_certificate
from gateway.store import blobs, message_queries
from gateway.store.tables import messages, recipients
from gateway.usecases import intake, operations


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("stored-copies-pki"))


def key_of(keys_dir: Path, code: str) -> PrivateKeyTypes:
    return serialization.load_pem_private_key(
        (keys_dir / f"{code}.key.pem").read_bytes(), password=None
    )


def cert_of(keys_dir: Path, code: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((keys_dir / f"{code}.cert.pem").read_bytes())


async def reseal_as_dgwseal1(
    gateway: Gateway,
    column: sa.Column[Any],
    where: Any,
    key: PrivateKeyTypes,
    cert: x509.Certificate,
) -> bytes:
    """Replace the stored copy that ``column`` points to (``where``) by the same package sealed
    in DGWSEAL1 for ``cert``, as the gateway before the CMS container stored it."""
    async with gateway.engine.begin() as conn:
        sha256 = await conn.scalar(sa.select(column).where(where))
        assert sha256 is not None
        current = await blobs.read_bytes(conn, sha256)
        assert sniff(current) is SealFormat.CMS
        old = dgwseal1.seal(open_sealed(current, key), cert)
        ref = await blobs.put_bytes(
            conn, old, inline_limit=gateway.settings.gateway.inline_blob_bytes, now=gateway.clock()
        )
        await conn.execute(sa.update(column.table).where(where).values({column.name: ref.sha256}))
    return old


def test_a_copy_stored_in_dgwseal1_is_sent_as_it_is_and_resealed_in_cms_for_a_new_certificate(
    make_gateway: Any, pki: Pki, keys_dir: Path
) -> None:
    async def scenario() -> None:
        async with (
            secure_peer(pki.server(RECIPIENT)) as peer,
            secure_gateway(make_gateway, pki) as gw,
        ):
            await register(gw, secure_endpoint=peer.url)
            message_id = await send(gw, "mat", "901")
            recipient_key, sender_key = key_of(keys_dir, RECIPIENT), key_of(keys_dir, SENDER)
            old_copy = await reseal_as_dgwseal1(
                gw,
                recipients.c.package_sha256,
                sa.and_(recipients.c.message_id == message_id, recipients.c.unit_code == RECIPIENT),
                recipient_key,
                cert_of(keys_dir, RECIPIENT),
            )
            await reseal_as_dgwseal1(
                gw,
                messages.c.package_sha256,
                messages.c.id == message_id,
                sender_key,
                cert_of(keys_dir, SENDER),
            )
            await drain(gw)
            [first] = peer.seen
            assert first.body == old_copy  # the stored DGWSEAL1 copy, as it is
            document = open_sealed(first.body, recipient_key)
            assert document.startswith(b"<")

            renewed = issue_unit_certificate(pki.ca, RECIPIENT)
            await register(gw, certificate_pem=renewed.cert_pem.decode())
            await operations.resend(gw, message_id, reason="cấp lại chứng thư", actor="operator")
            await drain(gw)
            second = peer.seen[-1].body
            assert sniff(second) is SealFormat.CMS
            assert open_sealed(second, renewed.key) == document
            async with gw.engine.connect() as conn:
                [row] = await message_queries.get_recipients(conn, message_id)
            assert row.state == TransportState.SENT

    asyncio.run(scenario())


def test_a_dgwseal1_package_from_a_peer_is_opened_and_stored_as_received(
    make_gateway: Any, databases: Any, keys_dir: Path
) -> None:
    axis = FakeConnector(name="axis")
    url_b = databases()

    async def scenario() -> None:
        async with (
            make_gateway(connectors={"axis": axis}) as a,
            make_gateway(local_units=(RECIPIENT,), url=url_b) as b,
        ):
            await send(a, "thuong", "902")
            await drain(a)
            [package] = axis.packages
            sealed = dgwseal1.seal(package, cert_of(keys_dir, RECIPIENT))
            received = await intake.receive_package(b, io.BytesIO(sealed), via="secure")
            assert not received.duplicate
            async with b.engine.connect() as conn:
                stored = await message_queries.get_message(conn, received.message_id)
                assert stored is not None
                assert stored.classification == "mat"  # it came sealed
                assert await blobs.read_bytes(conn, stored.package_sha256) == sealed

    asyncio.run(scenario())
