"""A held classified recipient, once released, is sent a copy whose To names only itself (issue
12: what a channel is given addresses only the recipients routed through it).

docgw keeps no plaintext of a classified message, only the sender's sealed copy, whose To names
every recipient: the released recipient's copy is opened from it, rebuilt addressed to that
recipient alone (same DocumentId) and signed again by the sender, then sealed for the recipient.

Real databases (SQLite file and PostgreSQL), the real secure connector and real secure inboxes over
mutual TLS on loopback.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from integration_support import OTHER, RECIPIENT, SENDER
from secure_peers import Pki, drain, make_pki, register, secure_gateway, secure_peer, send

from envelopes.model import MessageHeader
from envelopes.reading import read_package
from envelopes.sealing import open_sealed
from envelopes.signing import TrustPolicy
from envelopes.verification import verify_document
from gateway.usecases import operations


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("classified-release-pki"))


def opened(body: bytes, keys_dir: Path, code: str) -> tuple[MessageHeader, list[bytes]]:
    """The header and the attachments' bytes of a copy sealed for ``code``, opened with its key,
    once its signature is verified against the sender's certificate."""
    key = serialization.load_pem_private_key(
        (keys_dir / f"{code}.key.pem").read_bytes(), password=None
    )
    sender = x509.load_pem_x509_certificate((keys_dir / f"{SENDER}.cert.pem").read_bytes())
    sinks: list[io.BytesIO] = []

    def sink() -> io.BytesIO:
        sinks.append(io.BytesIO())
        return sinks[-1]

    plain = open_sealed(body, key)  # type: ignore[arg-type]
    parsed = read_package(io.BytesIO(plain), sink_factory=sink)
    header = verify_document(parsed, TrustPolicy(pinned=(sender,))).package.header
    return header, [s.getvalue() for s in sinks]


@pytest.mark.parametrize("operation", ["reroute", "resend"])
def test_a_released_toi_mat_recipient_is_sent_a_copy_addressed_to_it_alone(
    make_gateway: Any, pki: Pki, keys_dir: Path, operation: str
) -> None:
    async def scenario() -> None:
        async with (
            secure_peer(pki.server(RECIPIENT)) as at_recipient,
            secure_peer(pki.server(OTHER)) as at_other,
            secure_gateway(make_gateway, pki) as gateway,
        ):
            await register(gateway, RECIPIENT, secure_endpoint=at_recipient.url)
            message_id = await send(gateway, "toi_mat", "701", RECIPIENT, OTHER)
            await drain(gateway)  # OTHER has no secure endpoint: held
            assert at_other.seen == []

            await register(gateway, OTHER, secure_endpoint=at_other.url)
            if operation == "reroute":
                await operations.reroute(
                    gateway, message_id, channel="secure", reason="đã đăng ký", actor="op"
                )
            else:
                await operations.resend(
                    gateway, message_id, reason="đã đăng ký", actor="op", recipient=OTHER
                )
            await drain(gateway)

        [sent] = at_recipient.seen
        [released] = at_other.seen
        first, first_attachments = opened(sent.body, keys_dir, RECIPIENT)
        second, second_attachments = opened(released.body, keys_dir, OTHER)
        assert second_attachments == first_attachments == [b"%PDF-1.7 tai lieu"]
        assert [to.organ_id for to in first.to] == [RECIPIENT]
        assert [to.organ_id for to in second.to] == [OTHER]
        assert second.document_id == first.document_id
        assert (second.code, second.subject) == (first.code, first.subject)

    asyncio.run(scenario())
