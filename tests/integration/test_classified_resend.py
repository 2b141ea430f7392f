"""An operator's resend never bends the classified routing policy (DOMAIN.md §6) either: whatever
state a classified recipient is resent from (held, failed, sent …), the policy runs again against
the registry as it is NOW, and the whole resend is refused (RESEND_REFUSED, nothing changed) when
it no longer gives a secure route. An accepted resend goes to the unit's current registered
endpoint, sealed for its current certificate.

Real databases (SQLite file and PostgreSQL), the real secure connector and real secure inboxes over
mutual TLS on loopback (each server certificate names its unit: the connector pins it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from integration_support import OTHER, RECIPIENT, SENDER
from secure_peers import (
    Peer,
    Pki,
    drain,
    make_pki,
    refused_over_api,
    register,
    secure_gateway,
    secure_peer,
    send,
    snapshot,
)

from connectors import offload
from connectors.secure_endpoint import unit_dns_name
from envelopes.errors import SealError
from envelopes.sealing import open_sealed
from gateway.bootstrap import Gateway
from gateway.domain.lifecycle import TransportState
from gateway.keystore import Issued, issue_unit_certificate
from gateway.store.tables import recipients
from gateway.usecases import operations, registry
from gateway.usecases.classified_copies import ClassifiedCopies
from gateway.usecases.operations import ResendRefused


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("classified-resend-pki"))


@pytest.fixture
def gateway(make_gateway: Any, pki: Pki) -> Any:
    """``async with gateway() as gw``: the axis (a fake) and the real secure connector."""
    return lambda: secure_gateway(make_gateway, pki)


def key_of(keys_dir: Path, code: str) -> PrivateKeyTypes:
    return serialization.load_pem_private_key(
        (keys_dir / f"{code}.key.pem").read_bytes(), password=None
    )


async def deactivate(gateway: Gateway, code: str) -> None:
    """As the directory sync does when a unit leaves: the whole record, inactive."""
    unit = (await registry.get_unit(gateway, code)).unit
    await registry.register_unit(
        gateway, dataclasses.replace(unit, active=False), certificate_pem=None, actor="sync"
    )


async def where_is(gateway: Gateway, message_id: str, code: str = RECIPIENT) -> tuple[Any, ...]:
    """A recipient's state, channel and the copy it is sent with."""
    async with gateway.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(
                    recipients.c.state, recipients.c.channel, recipients.c.package_sha256
                ).where(recipients.c.message_id == message_id, recipients.c.unit_code == code)
            )
        ).one()
    return TransportState(row.state), row.channel, row.package_sha256


async def refused_resend(
    gateway: Gateway, message_id: str, why: str, code: str = RECIPIENT
) -> None:
    """The resend is refused with ``why`` and changes nothing, then nothing is sent."""
    before = await snapshot(gateway)
    with pytest.raises(ResendRefused) as refused:
        await operations.resend(gateway, message_id, reason="gửi lại", actor="operator")
    assert refused.value.code == "RESEND_REFUSED"
    assert code in refused.value.message
    assert why in refused.value.message, refused.value.message
    assert await snapshot(gateway) == before


def assert_pinned(peer: Peer) -> None:
    assert {seen.server_name for seen in peer.seen} == {unit_dns_name(RECIPIENT)}
    assert {seen.unit for seen in peer.seen} == {SENDER}


def test_a_sent_tuyet_mat_is_not_resent_once_its_permission_is_revoked(
    gateway: Any, pki: Pki, keys_dir: Path
) -> None:
    async def scenario() -> None:
        async with secure_peer(pki.server(RECIPIENT)) as peer, gateway() as gw:
            await register(gw, secure_endpoint=peer.url, allows_tuyet_mat=True)
            message_id = await send(gw, "tuyet_mat", "601")
            await drain(gw)
            assert (await where_is(gw, message_id))[:2] == (TransportState.SENT, "secure")
            [first] = peer.seen
            assert open_sealed(first.body, key_of(keys_dir, RECIPIENT)).startswith(b"<")

            await register(gw, allows_tuyet_mat=False)
            await refused_resend(gw, message_id, "tuyet_mat is not explicitly allowed")
            await refused_over_api(
                gw,
                f"/api/v1/messages/{message_id}/resend",
                {"reason": "gửi lại"},
                "RESEND_REFUSED",
                "tuyet_mat is not explicitly allowed",
            )
            await drain(gw)
            assert len(peer.seen) == 1

            # Allowed again: the same copy goes again (the receiver deduplicates it).
            await register(gw, allows_tuyet_mat=True)
            await operations.resend(gw, message_id, reason="được phép lại", actor="operator")
            await drain(gw)
            assert [seen.body for seen in peer.seen] == [first.body, first.body]
            assert_pinned(peer)

    asyncio.run(scenario())


@pytest.mark.parametrize("change", ["deactivated", "endpoint removed"])
def test_a_failed_mat_is_not_resent_to_a_unit_deactivated_or_without_its_endpoint(
    gateway: Any, pki: Pki, change: str
) -> None:
    async def scenario() -> None:
        async with secure_peer(pki.server(RECIPIENT)) as peer, gateway() as gw:
            await register(gw, secure_endpoint=peer.url)
            peer.status = 422  # refused for good: failed
            message_id = await send(gw, "mat", "602")
            await drain(gw)
            assert (await where_is(gw, message_id))[:2] == (TransportState.FAILED, "secure")
            peer.status = 201
            if change == "deactivated":
                await deactivate(gw, RECIPIENT)
                why = "is not active in the registry"
            else:
                await register(gw, secure_endpoint=None)
                why = "mat needs a secure endpoint"
            await refused_resend(gw, message_id, why)
            await drain(gw)
            assert len(peer.seen) == 1  # only the refused first attempt

    asyncio.run(scenario())


def test_a_resend_goes_to_the_units_current_endpoint_sealed_for_its_current_certificate(
    gateway: Any, pki: Pki, keys_dir: Path
) -> None:
    async def scenario() -> None:
        async with (
            secure_peer(pki.server(RECIPIENT)) as old,
            secure_peer(pki.server(RECIPIENT)) as new,
            gateway() as gw,
        ):
            await register(gw, secure_endpoint=old.url)
            message_id = await send(gw, "toi_mat", "603")
            await drain(gw)
            _, _, first_copy = await where_is(gw, message_id)
            [first] = old.seen
            old_key = key_of(keys_dir, RECIPIENT)
            document = open_sealed(first.body, old_key)

            # The unit moved its gateway and renewed its certificate.
            renewed = issue_unit_certificate(pki.ca, RECIPIENT)
            await register(gw, secure_endpoint=new.url, certificate_pem=renewed.cert_pem.decode())
            await operations.resend(gw, message_id, reason="đơn vị đổi cổng", actor="operator")
            await drain(gw)
            state_now, channel, second_copy = await where_is(gw, message_id)
            assert (state_now, channel) == (TransportState.SENT, "secure")
            assert second_copy != first_copy
            assert len(old.seen) == 1
            [second] = new.seen
            assert open_sealed(second.body, renewed.key) == document
            with pytest.raises(SealError):
                open_sealed(second.body, old_key)
            assert_pinned(new)

            # Nothing changed since: the stored copy is sent again as it is.
            await operations.resend(gw, message_id, reason="lần nữa", actor="operator")
            await drain(gw)
            assert [seen.body for seen in new.seen] == [second.body, second.body]
            assert (await where_is(gw, message_id))[2] == second_copy

    asyncio.run(scenario())


def test_a_resend_of_several_recipients_is_refused_whole_when_one_has_no_route(
    gateway: Any, pki: Pki
) -> None:
    """OTHER's endpoint was removed: RECIPIENT is not resent either; held ones too are refused
    until they have a route, then released to it."""

    async def scenario() -> None:
        async with (
            secure_peer(pki.server(RECIPIENT)) as at_recipient,
            secure_peer(pki.server(OTHER)) as at_other,
            gateway() as gw,
        ):
            await register(gw, RECIPIENT, secure_endpoint=at_recipient.url)
            await register(gw, OTHER, secure_endpoint=at_other.url)
            message_id = await send(gw, "mat", "604", RECIPIENT, OTHER)
            await drain(gw)
            assert len(at_recipient.seen) == len(at_other.seen) == 1

            await register(gw, OTHER, secure_endpoint=None)
            await refused_resend(gw, message_id, "needs a secure endpoint", code=OTHER)
            await drain(gw)
            assert len(at_recipient.seen) == len(at_other.seen) == 1

            # A held recipient: refused the same way until it has a route.
            held_id = await send(gw, "mat", "605", OTHER)
            assert (await where_is(gw, held_id, OTHER))[:2] == (TransportState.HELD, None)
            await refused_resend(gw, held_id, "needs a secure endpoint", code=OTHER)
            await register(gw, OTHER, secure_endpoint=at_other.url)
            await operations.resend(gw, held_id, reason="đã đăng ký", actor="operator")
            await drain(gw)
            assert (await where_is(gw, held_id, OTHER))[:2] == (TransportState.SENT, "secure")
            assert [seen.headers["X-Docgw-Message-Id"] for seen in at_other.seen] == [
                message_id,
                held_id,
            ]

    asyncio.run(scenario())


async def sent_once(
    gw: Gateway, peer: Peer, number: str, key: PrivateKeyTypes
) -> tuple[str, bytes]:
    """A mat document sent to RECIPIENT at ``peer``: its message id and the document itself
    (the copy ``peer`` got, opened with ``key``)."""
    await register(gw, secure_endpoint=peer.url)
    message_id = await send(gw, "mat", number)
    await drain(gw)
    [first] = peer.seen
    return message_id, open_sealed(first.body, key)


async def resent_copy(gw: Gateway, peer: Peer, message_id: str, reason: str) -> bytes:
    """Resend ``message_id`` and deliver it: the copy ``peer`` got."""
    await operations.resend(gw, message_id, reason=reason, actor="operator")
    await drain(gw)
    assert (await where_is(gw, message_id))[:2] == (TransportState.SENT, "secure")
    return peer.seen[-1].body


def test_a_resend_seals_the_new_copy_off_the_event_loop_and_with_no_connection_held(
    gateway: Any, pki: Pki, keys_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sealing a large package takes a while: not on the event loop, and not while holding a
    database connection (SQLite has only one) — before the write transaction."""
    monkeypatch.setattr(offload, "INLINE_WORK_BYTES", 0)  # every package counts as large here
    sealing_seen: list[tuple[bool, int]] = []
    seal = ClassifiedCopies._seal
    engines: list[Any] = []

    def watched(copies: Any, *args: Any) -> None:
        on_loop = threading.current_thread() is threading.main_thread()
        sealing_seen.append((on_loop, engines[0].pool.checkedout()))
        seal(copies, *args)

    monkeypatch.setattr(ClassifiedCopies, "_seal", watched)

    async def scenario() -> None:
        async with secure_peer(pki.server(RECIPIENT)) as peer, gateway() as gw:
            engines.append(gw.engine)
            message_id, document = await sent_once(gw, peer, "606", key_of(keys_dir, RECIPIENT))
            # The first delivery's copy was sealed at submission (as resends are, off the loop).
            assert sealing_seen and all(seen == (False, 0) for seen in sealing_seen)
            sealing_seen.clear()

            renewed = issue_unit_certificate(pki.ca, RECIPIENT)
            await register(gw, certificate_pem=renewed.cert_pem.decode())
            copy = await resent_copy(gw, peer, message_id, "cấp lại")
            assert open_sealed(copy, renewed.key) == document
            assert sealing_seen == [(False, 0)]

    asyncio.run(scenario())


def test_a_certificate_renewed_while_the_copy_was_sealed_ahead_is_sealed_for_in_the_transaction(
    gateway: Any, pki: Pki, keys_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy sealed before the write transaction is for the certificate then current; the
    transaction checks again, seals for the one renewed meanwhile and stores only that copy."""
    seal_ahead = operations._seal_ahead
    renewals: list[Issued] = []

    async def renewed_meanwhile(gw: Gateway, *args: Any) -> Any:
        sealed = await seal_ahead(gw, *args)
        assert sealed is not None and len(sealed) == 1
        renewals.append(issue_unit_certificate(pki.ca, RECIPIENT))
        await register(gw, certificate_pem=renewals[-1].cert_pem.decode())
        return sealed

    async def scenario() -> None:
        async with secure_peer(pki.server(RECIPIENT)) as peer, gateway() as gw:
            message_id, document = await sent_once(gw, peer, "607", key_of(keys_dir, RECIPIENT))

            first = issue_unit_certificate(pki.ca, RECIPIENT)
            await register(gw, certificate_pem=first.cert_pem.decode())
            monkeypatch.setattr(operations, "_seal_ahead", renewed_meanwhile)
            stored = len((await snapshot(gw))["blobs"])
            copy = await resent_copy(gw, peer, message_id, "lại")
            [renewed] = renewals
            assert open_sealed(copy, renewed.key) == document
            with pytest.raises(SealError):
                open_sealed(copy, first.key)
            assert len((await snapshot(gw))["blobs"]) == stored + 1  # not the copy sealed ahead

    asyncio.run(scenario())
