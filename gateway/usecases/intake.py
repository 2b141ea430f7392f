"""Receive a package: open it if sealed, read it (hardened, streaming), verify it against the
sender's REGISTERED certificates, deduplicate on (sender, DocumentId), store it, and answer a
document automatically with status 01 from each local unit it is addressed to — all of it in one
transaction. A duplicate is acknowledged with the original message id and stores nothing.

Incoming status packages move the business status of the right recipient of the right message;
unknown or out-of-order ones are kept and shown, never dropped.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from connectors.offload import run_blocking, stream_size
from envelopes import sealing
from envelopes.model import Classification, ResponseFor, StatusCode
from envelopes.reading import PackageKind, ParsedPackage, read_package
from envelopes.verification import VerifiedDocument, VerifiedStatus, verify_document, verify_status
from gateway.bootstrap import Gateway
from gateway.domain.lifecycle import TransportState
from gateway.store import blobs, queries
from gateway.usecases import events
from gateway.usecases.errors import SenderMismatch
from gateway.usecases.packages import open_sealed_for_us, trust_for
from gateway.usecases.statuses import (
    VIETNAM,
    apply_received_status,
    enqueue_status,
    find_status_target,
)


@dataclass(frozen=True, kw_only=True)
class Received:
    message_id: str
    kind: str
    document_id: str
    sender: str
    duplicate: bool
    #: Status messages queued in answer (01 for a new document).
    answers: tuple[str, ...] = ()


async def receive_package(
    gateway: Gateway, source: IO[bytes], *, via: str, expected_sender: str | None = None
) -> Received:
    """``source`` is the package as received (a seekable stream, possibly sealed).

    ``expected_sender``: the unit the connection itself is authenticated as (a secure peer's
    client certificate); a package from any other unit is refused before anything is stored.
    """
    plain, sealed = await run_blocking(stream_size(source), _open_if_sealed, gateway, source)
    try:
        return await _receive(gateway, plain, sealed, via, expected_sender)
    finally:
        if sealed is not None:
            plain.close()  # the opened plaintext of a sealed package is never kept


async def _receive(
    gateway: Gateway,
    plain: IO[bytes],
    sealed: IO[bytes] | None,
    via: str,
    expected_sender: str | None,
) -> Received:
    size = stream_size(plain)
    parsed = await run_blocking(size, read_package, plain)
    sender = _sender(parsed)
    if expected_sender is not None and sender != expected_sender:
        raise SenderMismatch(
            f"the package is from {sender} but the connection is authenticated as {expected_sender}"
        )
    async with gateway.reader.connect() as conn:
        trust = await trust_for(gateway, conn, sender)
    verified: VerifiedDocument | VerifiedStatus
    if parsed.kind is PackageKind.DOCUMENT:
        verified = await run_blocking(size, verify_document, parsed, trust)
    else:
        verified = await run_blocking(size, verify_status, parsed, trust)
    # edXML carries no classification. A package that came sealed came over a secure channel:
    # it is recorded at least as "mat", so that everything about it (the 01 answer included)
    # stays off the axis.
    classification = Classification.MAT if sealed is not None else Classification.THUONG
    try:
        return await _store(gateway, verified, sealed or plain, via, classification)
    except _AlreadyStored:
        # Stored before (or by a concurrent copy that committed first): nothing of this copy was
        # kept; the answer names the stored one.
        async with gateway.reader.connect() as conn:
            existing = await queries.message_id_for_dedup_key(conn, "in", _dedup_key(verified))
        if existing is None:  # pragma: no cover - the insert just met it
            raise
        return _received(existing, verified, duplicate=True)


class _AlreadyStored(Exception):
    """Raised inside the store transaction to roll it back: the package is a duplicate."""


def _open_if_sealed(gateway: Gateway, source: IO[bytes]) -> tuple[IO[bytes], IO[bytes] | None]:
    """(plaintext, the sealed original or None)."""
    source.seek(0)
    sealed = source.read(len(sealing.MAGIC)) == sealing.MAGIC
    source.seek(0)
    if not sealed:
        return source, None
    return open_sealed_for_us(gateway, source), source


def _sender(parsed: ParsedPackage) -> str:
    if parsed.kind is PackageKind.DOCUMENT:
        return parsed.document().header.from_.organ_id
    return parsed.status().from_.organ_id


def _dedup_key(verified: VerifiedDocument | VerifiedStatus) -> str:
    if isinstance(verified, VerifiedDocument):
        header = verified.package.header
        return f"{header.from_.organ_id}|{header.document_id}"
    status = verified.status
    return (
        f"{status.from_.organ_id}|{status.response_for.document_id}|{status.status_code.value}"
        f"|{status.timestamp.isoformat()}"
    )


def _received(
    message_id: str,
    verified: VerifiedDocument | VerifiedStatus,
    *,
    duplicate: bool,
    answers: tuple[str, ...] = (),
) -> Received:
    if isinstance(verified, VerifiedDocument):
        header = verified.package.header
        return Received(
            message_id=message_id,
            kind="document",
            document_id=header.document_id,
            sender=header.from_.organ_id,
            duplicate=duplicate,
            answers=answers,
        )
    status = verified.status
    return Received(
        message_id=message_id,
        kind="status",
        document_id=status.response_for.document_id or "",
        sender=status.from_.organ_id,
        duplicate=duplicate,
    )


async def _store(
    gateway: Gateway,
    verified: VerifiedDocument | VerifiedStatus,
    package: IO[bytes],
    via: str,
    classification: Classification,
) -> Received:
    now = gateway.clock()
    key = _dedup_key(verified)
    async with gateway.engine.begin() as conn:
        package.seek(0)
        ref = await blobs.put_stream(
            conn, package, inline_limit=gateway.settings.gateway.inline_blob_bytes, now=now
        )
        message_id = str(uuid.uuid4())
        stored = _Stored(
            message_id=message_id,
            package_sha256=ref.sha256,
            dedup_key=key,
            via=via,
            classification=classification,
            now=now,
        )
        answers: tuple[str, ...] = ()
        if isinstance(verified, VerifiedDocument):
            answers = await _store_document(gateway, conn, verified, stored)
        else:
            await _store_status(conn, verified, stored)
    if answers:
        gateway.work_available.set()  # after the commit: a worker woken now finds the answers
    return _received(message_id, verified, duplicate=False, answers=answers)


@dataclass(frozen=True, kw_only=True)
class _Stored:
    """Where and how a received package was stored (shared by documents and statuses)."""

    message_id: str
    package_sha256: str
    dedup_key: str
    via: str
    classification: Classification
    now: dt.datetime


def _message_row(stored: _Stored, verified: VerifiedDocument | VerifiedStatus) -> dict[str, Any]:
    """The columns both kinds share. A classified message keeps no readable subject: its
    content lives only in the sealed package."""
    return {
        "id": stored.message_id,
        "direction": "in",
        "classification": stored.classification.value,
        "package_sha256": stored.package_sha256,
        "client": stored.via,
        "dedup_key": stored.dedup_key,
        "route": stored.via,
        "notices": [n.code for n in verified.notices],
        "signer_subject": verified.signer.subject,
        "created_at": stored.now,
    }


async def _store_document(
    gateway: Gateway, conn: AsyncConnection, verified: VerifiedDocument, stored: _Stored
) -> tuple[str, ...]:
    header = verified.package.header
    message_id, via, now = stored.message_id, stored.via, stored.now
    await _insert_received(
        conn,
        **_message_row(stored, verified),
        kind="document",
        document_id=header.document_id,
        sender=header.from_.organ_id,
        subject=None if stored.classification.is_classified else header.subject,
        code=str(header.code),
        promulgation_date=header.promulgation.date,
        priority=int(header.other_info.priority),
    )
    local = [to.organ_id for to in header.to if to.organ_id in gateway.signers]
    answers = []
    audit_rows: list[dict[str, Any]] = []  # every recipient's "created", in one INSERT
    for unit_code in local:
        await queries.insert_recipient(
            conn,
            message_id=message_id,
            unit_code=unit_code,
            channel=None,
            state=TransportState.SENT,
            now=now,
            actor=via,
            reason=f"received via {via}, signed by {verified.signer.subject}",
            business_status=StatusCode.ARRIVED.value,
            audit_rows=audit_rows,
        )
        answers.append(
            await enqueue_status(
                gateway,
                conn,
                reporter=unit_code,
                to=header.from_.organ_id,
                about=ResponseFor(
                    organ_id=header.from_.organ_id,
                    code=str(header.code),
                    promulgation_date=header.promulgation.date,
                    document_id=header.document_id,
                ),
                code=StatusCode.ARRIVED,
                description="Đã đến hệ thống quản lý văn bản (docgw)",
                staff=None,
                related_message_id=message_id,
                classification=stored.classification,
                actor="intake",
                now=now,
                audit_rows=audit_rows,
            )
        )
    await queries.insert_audit_rows(conn, audit_rows)
    await events.record_document_received(
        conn, verified.package, message_id=message_id, local_units=local, now=now
    )
    return tuple(answers)


async def _store_status(conn: AsyncConnection, verified: VerifiedStatus, stored: _Stored) -> None:
    status = verified.status
    reporter, document_id = status.from_.organ_id, status.response_for.document_id
    target = await find_status_target(
        conn, reporter=reporter, document_id=document_id, code=status.status_code
    )
    await _insert_received(
        conn,
        **_message_row(stored, verified),
        kind="status",
        document_id=document_id or "",
        sender=reporter,
        subject=None if stored.classification.is_classified else status.description,
        priority=0,
        status_code=status.status_code.value,
        related_message_id=target.message_id if target else None,
    )
    await apply_received_status(
        conn,
        target,
        reporter=reporter,
        document_id=document_id,
        code=status.status_code,
        description=None if stored.classification.is_classified else status.description,
        # edXML writes Vietnamese local time; the store keeps UTC.
        reported_at=status.timestamp.replace(tzinfo=VIETNAM).astimezone(dt.UTC),
        status_message_id=stored.message_id,
        now=stored.now,
    )
    await events.record_status_received(
        conn,
        status_message_id=stored.message_id,
        about_message_id=target.message_id if target else None,
        reporter=reporter,
        document_id=document_id,
        code=status.status_code,
        now=stored.now,
    )


async def _insert_received(conn: AsyncConnection, **values: Any) -> None:
    if not await queries.insert_message_unless_received(conn, **values):
        raise _AlreadyStored
