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
from typing import IO, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from connectors.offload import run_blocking, stream_size
from envelopes import sealing
from envelopes.model import Classification, ResponseFor, StatusCode, StatusPackage
from envelopes.reading import PackageKind, ParsedPackage, read_package
from envelopes.verification import (
    VerifiedDocument,
    VerifiedStatus,
    check_zipped,
    verify_document,
    verify_status,
)
from envelopes.zipped import ZipOrPdfSpool, is_wrapped
from gateway.domain.direction import Direction
from gateway.domain.lifecycle import TransportState
from gateway.domain.routing import strictest
from gateway.store import audit_queries, blobs, message_queries, status_queries
from gateway.store.document_signatures import DocumentSignatureRow
from gateway.store.visibility import readable_text
from gateway.usecases import document_signatures, events
from gateway.usecases.errors import SenderMismatch, UnknownSender
from gateway.usecases.packages import open_sealed_for_us, trust_for
from gateway.usecases.ports import Channels, Keys, Signing, Store, Waker
from gateway.usecases.statuses import (
    VIETNAM,
    apply_received_status,
    enqueue_status,
    find_status_target,
)


class Intake(Store, Keys, Channels, Signing, Waker, Protocol):
    """What storing a received package uses: the store, the settings and the local units' keys
    (opening a package sealed for us; an automatic reply's signature), the channels (the reply's
    route), the workers' wake-up."""


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
    gateway: Intake, source: IO[bytes], *, via: str, expected_sender: str | None = None
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
    gateway: Intake,
    plain: IO[bytes],
    sealed: IO[bytes] | None,
    via: str,
    expected_sender: str | None,
) -> Received:
    verified, documents = await _read_and_verify(gateway, plain, expected_sender)
    # edXML carries no classification. A package that came sealed came over a secure channel:
    # it is recorded at least as "mat", so that everything about it (the 01 answer included)
    # stays off the axis.
    classification = Classification.MAT if sealed is not None else Classification.THUONG
    if isinstance(verified, _UnverifiedStatus):
        return await _keep_unverified_status(
            gateway, verified, sealed or plain, via, classification
        )
    try:
        return await _store(gateway, verified, sealed or plain, via, classification, documents)
    except _AlreadyStored:
        # Stored before (or by a concurrent copy that committed first): nothing of this copy was
        # kept; the answer names the stored one.
        async with gateway.reader.connect() as conn:
            existing = await message_queries.message_id_for_dedup_key(
                conn, Direction.IN, _dedup_key(verified)
            )
        if existing is None:  # pragma: no cover - the insert just met it
            raise
        answers: tuple[str, ...] = ()
        if isinstance(verified, VerifiedDocument):
            answers = await _address_new_units(gateway, existing, verified, via, classification)
        return _received(existing, verified, duplicate=True, answers=answers)


async def _read_and_verify(
    gateway: Intake, plain: IO[bytes], expected_sender: str | None
) -> tuple[VerifiedDocument | VerifiedStatus | _UnverifiedStatus, list[DocumentSignatureRow]]:
    """The package verified, and a document's PDFs' own signatures; a status from a unit with no
    registered certificate comes back unverified, to be kept and shown (a document from one is
    refused: UNKNOWN_SENDER)."""
    size = stream_size(plain)
    # Attachments that begin as a zip are kept, to check the sender's zip after verification, and
    # PDFs, to verify their own signatures.
    parsed = await run_blocking(size, read_package, plain, sink_factory=ZipOrPdfSpool)
    try:
        sender = _sender(parsed)
        if expected_sender is not None and sender != expected_sender:
            raise SenderMismatch(
                f"the package is from {sender} but the connection is authenticated as "
                f"{expected_sender}"
            )
        try:
            async with gateway.reader.connect() as conn:
                trust = await trust_for(gateway, conn, sender)
        except UnknownSender:
            if parsed.kind is PackageKind.DOCUMENT:
                raise
            return _UnverifiedStatus(parsed.status(), [n.code for n in parsed.notices]), []
        if parsed.kind is PackageKind.STATUS:
            return await run_blocking(size, verify_status, parsed, trust), []
        verified = await run_blocking(size, verify_document, parsed, trust)
        # The PDFs' own signatures, once the package's is verified: a verdict each, never a
        # refusal of the package.
        documents = await document_signatures.check_attachments(
            gateway.settings,
            document_signatures.pdf_attachments(
                verified.package.attachments, {a.content_id: a.content for a in parsed.attachments}
            ),
            now=gateway.clock(),
        )
        if not any(is_wrapped(a) for a in verified.package.attachments):
            return verified, documents
        # A zip that will not unpack is a notice, never a refusal of the package. Unpacking can
        # be up to max_ratio times the zip's size of work: never on the loop (size None).
        return await run_blocking(None, check_zipped, verified, parsed), documents
    finally:
        for attachment in parsed.attachments:
            if attachment.content is not None:
                attachment.content.close()


class _AlreadyStored(Exception):
    """Raised inside the store transaction to roll it back: the package is a duplicate."""


def _open_if_sealed(gateway: Intake, source: IO[bytes]) -> tuple[IO[bytes], IO[bytes] | None]:
    """(plaintext, the sealed original or None)."""
    source.seek(0)
    sealed = sealing.is_sealed(source.read(sealing.SNIFF_LENGTH))
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
    return _status_dedup_key(verified.status)


def _status_dedup_key(status: StatusPackage) -> str:
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
    gateway: Intake,
    verified: VerifiedDocument | VerifiedStatus,
    package: IO[bytes],
    via: str,
    classification: Classification,
    documents: list[DocumentSignatureRow],
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
            await document_signatures.store_rows(conn, message_id, classification, documents)
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
    content lives only in the sealed package (``message_queries.insert_message…`` see to it)."""
    return {
        "id": stored.message_id,
        "direction": Direction.IN,
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
    gateway: Intake, conn: AsyncConnection, verified: VerifiedDocument, stored: _Stored
) -> tuple[str, ...]:
    header = verified.package.header
    message_id, via, now = stored.message_id, stored.via, stored.now
    await _insert_received(
        conn,
        **_message_row(stored, verified),
        kind="document",
        document_id=header.document_id,
        sender=header.from_.organ_id,
        subject=header.subject,
        code=str(header.code),
        promulgation_date=header.promulgation.date,
        priority=int(header.other_info.priority),
    )
    local = [to.organ_id for to in header.to if to.organ_id in gateway.signers]
    return await _register_local_units(
        gateway, conn, verified, local, message_id, via, stored.classification, now
    )


async def _register_local_units(
    gateway: Intake,
    conn: AsyncConnection,
    verified: VerifiedDocument,
    local: list[str],
    message_id: str,
    via: str,
    classification: Classification,
    now: dt.datetime,
) -> tuple[str, ...]:
    """A recipient row (``sent``, business status 01) per local unit the document reached, and
    its 01 queued to the sender; the 01 messages' ids."""
    header = verified.package.header
    answers = []
    audit_rows: list[dict[str, Any]] = []  # every recipient's "created", in one INSERT
    for unit_code in local:
        await message_queries.insert_recipient(
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
                classification=classification,
                actor="intake",
                now=now,
                audit_rows=audit_rows,
            )
        )
    await audit_queries.insert_audit_rows(conn, audit_rows)
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
        subject=status.description,
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
        description=readable_text(stored.classification, status.description),
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
    if not await message_queries.insert_message_unless_received(conn, **values):
        raise _AlreadyStored


@dataclass(frozen=True)
class _UnverifiedStatus:
    """A status package read but not verified (its sender has no registered certificate)."""

    status: StatusPackage
    notices: list[str]


#: The notice a status kept without verification carries (its sender is unknown to docgw).
UNVERIFIED_SENDER = "UNVERIFIED_SENDER"


async def _keep_unverified_status(
    gateway: Intake,
    unverified: _UnverifiedStatus,
    package: IO[bytes],
    via: str,
    classification: Classification,
) -> Received:
    """A status from a unit docgw holds no certificate for (e.g. one the recipient forwarded the
    document to) is kept and shown with the document it names — its event marked unverified, its
    message with the UNVERIFIED_SENDER notice — and never dropped; unverified, it moves no
    recipient's business status. Deduplicated as every received status is."""
    status, now = unverified.status, gateway.clock()
    reporter, document_id = status.from_.organ_id, status.response_for.document_id
    message_id = str(uuid.uuid4())
    key = _status_dedup_key(status)
    description = readable_text(classification, status.description)
    duplicate = False
    try:
        async with gateway.engine.begin() as conn:
            package.seek(0)
            ref = await blobs.put_stream(
                conn, package, inline_limit=gateway.settings.gateway.inline_blob_bytes, now=now
            )
            target = await find_status_target(
                conn, reporter=reporter, document_id=document_id, code=status.status_code
            )
            related = target.message_id if target else None
            await _insert_received(
                conn,
                id=message_id,
                direction=Direction.IN,
                kind=PackageKind.STATUS,
                classification=classification.value,
                package_sha256=ref.sha256,
                client=via,
                dedup_key=key,
                route=via,
                notices=[*unverified.notices, UNVERIFIED_SENDER],
                signer_subject=None,
                created_at=now,
                document_id=document_id or "",
                sender=reporter,
                subject=description,
                priority=0,
                status_code=status.status_code.value,
                related_message_id=related,
            )
            await status_queries.insert_status_event(
                conn,
                direction=Direction.IN,
                status_message_id=message_id,
                message_id=related,
                recipient_id=None,
                reporter=reporter,
                document_id=document_id,
                status_code=status.status_code.value,
                description=description,
                reported_at=status.timestamp.replace(tzinfo=VIETNAM).astimezone(dt.UTC),
                recorded_at=now,
                out_of_order=False,
                verified=False,
            )
            await events.record_status_received(
                conn,
                status_message_id=message_id,
                about_message_id=related,
                reporter=reporter,
                document_id=document_id,
                code=status.status_code,
                now=now,
            )
    except _AlreadyStored:
        async with gateway.reader.connect() as conn:
            existing = await message_queries.message_id_for_dedup_key(conn, Direction.IN, key)
        if existing is None:  # pragma: no cover - the insert just met it
            raise
        message_id, duplicate = existing, True
    return Received(
        message_id=message_id,
        kind="status",
        document_id=document_id or "",
        sender=reporter,
        duplicate=duplicate,
    )


async def _address_new_units(
    gateway: Intake,
    message_id: str,
    verified: VerifiedDocument,
    via: str,
    classification: Classification,
) -> tuple[str, ...]:
    """A copy of a document already stored that names local units the stored copy did not: the
    sender sends one copy per channel, and a recipient it held gets its own copy once released
    (same DocumentId), so a gateway serving several units may receive the document again for
    another of them. Those units are registered as the first copy's were (01 queued); nothing
    else of the copy is kept. The ids of the 01 messages queued."""
    header = verified.package.header
    local = [to.organ_id for to in header.to if to.organ_id in gateway.signers]
    if not local:
        return ()
    now = gateway.clock()
    try:
        async with gateway.engine.begin() as conn:
            message = await message_queries.get_message(conn, message_id)
            if message is None:  # pragma: no cover - it was just found
                return ()
            known = {r.unit_code for r in message.recipients}
            new = [code for code in local if code not in known]
            if not new:
                return ()
            stricter = strictest(classification, [Classification(message.classification)])
            answers = await _register_local_units(
                gateway, conn, verified, new, message_id, via, stricter, now
            )
    except sa.exc.IntegrityError:
        return ()  # a concurrent copy registered them first
    gateway.work_available.set()
    return answers
