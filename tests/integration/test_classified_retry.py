"""An automatic retry never bends the classified routing policy (DOMAIN.md §6) either: a classified
recipient waiting for a retry (``retry_scheduled``) or resent after an unknown outcome
(``unconfirmed``) is checked again at each claim against the registry as it is then, as an
operator's resend is. Its unit deactivated, its secure endpoint removed or its Tuyệt mật permission
revoked meanwhile: the recipient is held (sending → held, in the claim's transaction, audited with
the policy's reason) and nothing is sent. Nor is a copy sealed for a certificate that is no longer
the unit's current one (replaced or revoked). An operator's resend, once the registry allows it
again, routes it anew and seals it for the current certificate.

Real databases (SQLite file and PostgreSQL), the real secure connector and real secure inboxes over
mutual TLS on loopback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from integration_support import EXAMPLES, RECIPIENT, SENDER
from secure_peers import (
    NOWHERE,
    SECURE,
    Peer,
    Pki,
    drain,
    make_pki,
    register,
    secure_peer,
    send,
)

from connectors.fake import FakeConnector
from connectors.secure_endpoint import SecureEndpointConnector
from envelopes.attachments import AttachmentSource
from envelopes.metadata import parse_metadata
from envelopes.sealing import open_sealed
from gateway.bootstrap import Gateway
from gateway.domain.lifecycle import TransportState
from gateway.domain.retry import MAYBE_DELIVERED
from gateway.keystore import issue_unit_certificate
from gateway.store.tables import attempts, audit_events, recipients, unit_certificates
from gateway.usecases import operations, registry, submit
from gateway.usecases.statuses import VIETNAM

#: The connector's answer timeout: a peer slower than this leaves the outcome unknown.
TIMEOUT = 1.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("classified-retry-pki"))


@pytest.fixture
def gateway(make_gateway: Any, pki: Pki) -> Any:
    """``async with gateway() as gw``: the axis (a fake) and the real secure connector, with a
    short answer timeout; the gateway's clock is moved by :func:`later`."""

    def factory() -> Any:
        secure = SecureEndpointConnector(
            name="secure", endpoint=NOWHERE, ssl_context=pki.client(SENDER), timeout_seconds=TIMEOUT
        )
        connectors = {"axis": FakeConnector(name="axis", is_axis=True), "secure": secure}
        return make_gateway(connectors=connectors, extra=SECURE)

    return factory


def key_of(keys_dir: Path, code: str) -> PrivateKeyTypes:
    return serialization.load_pem_private_key(
        (keys_dir / f"{code}.key.pem").read_bytes(), password=None
    )


def later(gateway: Gateway, hours: float = 2) -> None:
    """Move the gateway's clock on: every retry is due."""
    now = gateway.clock() + dt.timedelta(hours=hours)
    gateway.clock = lambda: now


async def set_active(gateway: Gateway, code: str, active: bool) -> None:
    """As the directory sync does when a unit leaves or comes back: the whole record."""
    unit = (await registry.get_unit(gateway, code)).unit
    await registry.register_unit(
        gateway, dataclasses.replace(unit, active=active), certificate_pem=None, actor="sync"
    )


async def send_large(gateway: Gateway, classification: str, number: str) -> str:
    """A document whose sealed copy is over ``inline_blob_bytes``: stored in chunks, so the claim
    does not bring it and its seal header is read from its first chunk."""
    meta = json.loads((EXAMPLES / "new-document.json").read_text(encoding="utf-8"))
    meta.update(classification=classification, code={"number": number, "notation": "VPCP-TTĐT"})
    meta["to"] = [{"organ_id": RECIPIENT, "organ_name": f"Đơn vị {RECIPIENT}"}]
    request = parse_metadata(meta, today=dt.datetime.now(VIETNAM).date())
    big = b"%PDF-1.7 " + bytes(range(256)) * 2048  # 512 KiB
    attachment = AttachmentSource(name="lon.pdf", open=lambda: io.BytesIO(big))
    result = await submit.submit_document(
        gateway, request, [attachment], client="test", actor="test", idempotency_key=None
    )
    return result.message_id


@dataclasses.dataclass(frozen=True)
class Recipient:
    state: TransportState
    channel: str | None
    package_sha256: str | None
    attempt_count: int
    last_error: str | None
    attempts: int
    #: (action, from, to, reason) of its audit events, oldest first.
    events: list[tuple[str, str | None, str | None, str | None]]


async def recipient(gateway: Gateway, message_id: str) -> Recipient:
    async with gateway.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(recipients).where(
                    recipients.c.message_id == message_id, recipients.c.unit_code == RECIPIENT
                )
            )
        ).one()
        made = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(attempts)
            .where(attempts.c.recipient_id == row.id)
        )
        events = (
            await conn.execute(
                sa.select(
                    audit_events.c.action,
                    audit_events.c.from_state,
                    audit_events.c.to_state,
                    audit_events.c.reason,
                )
                .where(audit_events.c.recipient_id == row.id)
                .order_by(audit_events.c.id)
            )
        ).all()
    return Recipient(
        state=TransportState(row.state),
        channel=row.channel,
        package_sha256=row.package_sha256,
        attempt_count=row.attempt_count,
        last_error=row.last_error,
        attempts=int(made or 0),
        events=[tuple(e) for e in events],
    )


async def first_attempt_leaves(gateway: Gateway, peer: Peer, waiting: TransportState) -> None:
    """The first attempt reaches the peer and leaves the recipient ``waiting`` for a retry: the
    peer answers 503 (retry_scheduled), or too late (unconfirmed: it may hold the copy). The
    gateway's clock stands still from here on (the retry is not due until :func:`later`)."""
    later(gateway, hours=0)
    if waiting is TransportState.RETRY_SCHEDULED:
        peer.status = 503
    else:
        peer.delay = TIMEOUT + 1
    await drain(gateway)
    peer.status, peer.delay = 201, 0.0


def assert_held_at_claim(held: Recipient, before: Recipient, why: str) -> None:
    """Held at the claim with ``why``; no attempt made, nothing else changed. Held from
    ``unconfirmed``, the reason says first that the peer may hold the earlier copy."""
    assert held.state is TransportState.HELD
    assert held.last_error is not None and why in held.last_error, held.last_error
    if before.state is TransportState.UNCONFIRMED:
        assert held.last_error.startswith(f"{MAYBE_DELIVERED}: "), held.last_error
        assert "; held at the claim, nothing sent: " in held.last_error
    else:
        assert held.last_error.startswith("held at the claim, nothing sent: ")
    assert (held.channel, held.package_sha256) == (before.channel, before.package_sha256)
    assert held.attempts == before.attempts and held.attempt_count == before.attempt_count
    # The claim and the hold, audited: sending → held with the reason.
    new = held.events[len(before.events) :]
    assert [(a, f, t) for a, f, t, _ in new] == [
        ("claimed", before.state.value, "sending"),
        ("held_at_claim", "sending", "held"),
    ]
    assert new[-1][3] == held.last_error


@pytest.mark.parametrize(
    "waiting", [TransportState.RETRY_SCHEDULED, TransportState.UNCONFIRMED], ids=lambda s: s.value
)
@pytest.mark.parametrize(
    ("change", "classification", "why"),
    [
        ("tuyet_mat revoked", "tuyet_mat", "tuyet_mat is not explicitly allowed"),
        ("deactivated", "toi_mat", "is not active in the registry"),
        ("endpoint removed", "mat", "mat needs a secure endpoint"),
    ],
    ids=["revoked", "deactivated", "no-endpoint"],
)
def test_a_classified_retry_is_held_once_the_policy_no_longer_routes_it(
    gateway: Any, pki: Pki, waiting: TransportState, change: str, classification: str, why: str
) -> None:
    async def scenario() -> None:
        async with secure_peer(pki.server(RECIPIENT)) as peer, gateway() as gw:
            await register(gw, secure_endpoint=peer.url, allows_tuyet_mat=True)
            message_id = await send(gw, classification, "701")
            await first_attempt_leaves(gw, peer, waiting)
            before = await recipient(gw, message_id)
            assert (before.state, before.channel) == (waiting, "secure")
            [first] = peer.seen

            if change == "tuyet_mat revoked":
                await register(gw, allows_tuyet_mat=False)
            elif change == "deactivated":
                await set_active(gw, RECIPIENT, False)
            else:
                await register(gw, secure_endpoint=None)
            later(gw)
            await drain(gw)
            assert len(peer.seen) == 1, "a classified copy went out the policy no longer allows"
            assert_held_at_claim(await recipient(gw, message_id), before, why)

            # Held, not lost: once the registry allows it again, an operator's resend sends the
            # same copy (the receiver deduplicates it).
            if change == "deactivated":
                await set_active(gw, RECIPIENT, True)
            else:
                await register(gw, secure_endpoint=peer.url, allows_tuyet_mat=True)
            await operations.resend(gw, message_id, reason="được phép lại", actor="operator")
            await drain(gw)
            assert (await recipient(gw, message_id)).state is TransportState.SENT
            assert [seen.body for seen in peer.seen] == [first.body, first.body]

    asyncio.run(scenario())


@pytest.mark.parametrize("size", ["inline", "chunked"])
def test_a_retry_of_a_copy_sealed_for_a_replaced_certificate_is_held_then_sealed_anew(
    gateway: Any, pki: Pki, keys_dir: Path, size: str
) -> None:
    async def scenario() -> None:
        async with secure_peer(pki.server(RECIPIENT)) as peer, gateway() as gw:
            await register(gw, secure_endpoint=peer.url)
            if size == "inline":
                message_id = await send(gw, "mat", "702")
            else:
                message_id = await send_large(gw, "mat", "702")
            await first_attempt_leaves(gw, peer, TransportState.RETRY_SCHEDULED)
            before = await recipient(gw, message_id)
            [first] = peer.seen
            document = open_sealed(first.body, key_of(keys_dir, RECIPIENT))

            # The unit renewed its certificate: the stored copy is sealed for the old one.
            renewed = issue_unit_certificate(pki.ca, RECIPIENT)
            await register(gw, certificate_pem=renewed.cert_pem.decode())
            later(gw)
            await drain(gw)
            assert len(peer.seen) == 1
            assert_held_at_claim(
                await recipient(gw, message_id),
                before,
                "sealed for a certificate that is no longer",
            )

            await operations.resend(gw, message_id, reason="niêm phong lại", actor="operator")
            await drain(gw)
            sent = await recipient(gw, message_id)
            assert sent.state is TransportState.SENT
            assert sent.package_sha256 != before.package_sha256
            assert open_sealed(peer.seen[-1].body, renewed.key) == document

    asyncio.run(scenario())


def test_a_retry_whose_units_certificate_was_revoked_is_held(gateway: Any, pki: Pki) -> None:
    async def scenario() -> None:
        async with secure_peer(pki.server(RECIPIENT)) as peer, gateway() as gw:
            await register(gw, secure_endpoint=peer.url)
            message_id = await send(gw, "toi_mat", "703")
            await first_attempt_leaves(gw, peer, TransportState.UNCONFIRMED)
            before = await recipient(gw, message_id)

            async with gw.engine.begin() as conn:  # the key was compromised: revoked
                await conn.execute(
                    unit_certificates.update()
                    .where(unit_certificates.c.unit_code == RECIPIENT)
                    .values(revoked_at=gw.clock())
                )
            later(gw)
            await drain(gw)
            assert len(peer.seen) == 1
            assert_held_at_claim(
                await recipient(gw, message_id), before, "has no current (registered, unrevoked"
            )

    asyncio.run(scenario())


def test_a_classified_retry_the_policy_still_allows_is_sent(gateway: Any, pki: Pki) -> None:
    """The check holds only what it must: nothing changed, the retry goes with the same copy."""

    async def scenario() -> None:
        async with secure_peer(pki.server(RECIPIENT)) as peer, gateway() as gw:
            await register(gw, secure_endpoint=peer.url, allows_tuyet_mat=True)
            message_id = await send(gw, "tuyet_mat", "704")
            await first_attempt_leaves(gw, peer, TransportState.RETRY_SCHEDULED)
            later(gw)
            await drain(gw)
            sent = await recipient(gw, message_id)
            assert (sent.state, sent.attempts, sent.last_error) == (TransportState.SENT, 2, None)
            assert len(peer.seen) == 2 and peer.seen[0].body == peer.seen[1].body

    asyncio.run(scenario())


def test_two_certificates_registered_at_one_instant_name_one_current_certificate(
    gateway: Any, pki: Pki
) -> None:
    """Two certificates with the same ``added_at`` (a coarse clock, a bulk import): the copy is
    sealed for, and the claim checks against, the same one — the one with the greater fingerprint
    — instead of being held at every claim for being sealed for the other."""

    async def scenario() -> None:
        async with secure_peer(pki.server(RECIPIENT)) as peer, gateway() as gw:
            await register(gw, secure_endpoint=peer.url)
            instant = gw.clock()
            gw.clock = lambda: instant
            renewals = [issue_unit_certificate(pki.ca, RECIPIENT) for _ in range(2)]
            for renewed in renewals:
                await register(gw, certificate_pem=renewed.cert_pem.decode())
            async with gw.engine.connect() as conn:
                added = (
                    await conn.execute(
                        sa.select(unit_certificates.c.added_at).where(
                            unit_certificates.c.unit_code == RECIPIENT
                        )
                    )
                ).scalars()
                assert list(added).count(instant) == 2  # a true tie
            message_id = await send(gw, "mat", "706")
            await drain(gw)
            sent = await recipient(gw, message_id)
            assert (sent.state, sent.last_error) == (TransportState.SENT, None)
            newest = max(
                renewals, key=lambda issued: issued.certificate.fingerprint(hashes.SHA256()).hex()
            )
            [seen] = peer.seen
            assert open_sealed(seen.body, newest.key)

    asyncio.run(scenario())
