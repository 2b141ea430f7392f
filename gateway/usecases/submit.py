"""Submit a document: check it, route it, build + sign + validate the package, and store the
message, its package and every recipient's first state in ONE transaction.

A ready package (built and signed by the local document-management system, from the drop folder)
is checked like a received one and stored as it is: :func:`submit_package`.

A repeated idempotency key (per client) returns the original message, not a new one. Classified
documents are sealed before they are stored: each secure recipient's copy is sealed for that
recipient's registered certificate, and the message's own copy for the sender's certificate, so
the database never holds their plaintext.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from connectors.offload import run_blocking, stream_size
from envelopes.attachments import AttachmentSource
from envelopes.building import build_document
from envelopes.errors import SignatureMissing
from envelopes.metadata import DocumentRequest
from envelopes.model import Classification, MessageHeader
from envelopes.reading import PackageKind, read_package
from envelopes.verification import verify_document
from gateway.bootstrap import Gateway
from gateway.domain.deadlines import VIETNAM, send_deadline
from gateway.domain.lifecycle import TransportState, summarize
from gateway.domain.routing import RecipientEntry, Route, route_recipient
from gateway.store import blobs, queries
from gateway.store.records import UnitRecord
from gateway.usecases.errors import Forbidden, ReadyPackageRefused, UnknownUnit
from gateway.usecases.packages import current_certificate, seal_copy, spool, trust_for


@dataclass(frozen=True, kw_only=True)
class Submitted:
    message_id: str
    document_id: str
    state: str
    routes: tuple[Route, ...]
    created: bool


def recipient_entry(unit: UnitRecord, gateway: Gateway) -> RecipientEntry:
    """What the routing policy needs to know of a registered unit."""
    secure = next(
        (c.name for c in gateway.channels.values() if c.is_secure and not c.is_axis), None
    )
    return RecipientEntry(
        code=unit.code,
        active=unit.active,
        channel=unit.channel,
        secure_channel=secure if unit.secure_endpoint else None,
        allows_tuyet_mat=unit.allows_tuyet_mat,
    )


def _total_size(attachments: Sequence[AttachmentSource]) -> int | None:
    """The attachments' bytes, or None when one of them cannot tell (not seekable)."""
    total = 0
    for source in attachments:
        with source.open() as stream:
            size = stream_size(stream)
        if size is None:
            return None
        total += size
    return total


async def explain_routes(gateway: Gateway, request: DocumentRequest) -> tuple[Route, ...]:
    """Where each recipient's copy would go, and why (nothing is sent or stored)."""
    async with gateway.engine.connect() as conn:
        return await _routes(conn, gateway, request.header, request.classification)


async def _routes(
    conn: AsyncConnection,
    gateway: Gateway,
    header: MessageHeader,
    classification: Classification,
) -> tuple[Route, ...]:
    codes = [to.organ_id for to in header.to]
    registry = await queries.get_units(conn, codes)
    missing = [code for code in codes if code not in registry]
    if missing:
        raise UnknownUnit(f"not in the unit registry: {', '.join(missing)}", element="to")
    return tuple(
        route_recipient(classification, recipient_entry(registry[code], gateway), gateway.channels)
        for code in codes
    )


async def submit_document(
    gateway: Gateway,
    request: DocumentRequest,
    attachments: Sequence[AttachmentSource],
    *,
    client: str,
    actor: str,
    idempotency_key: str | None = None,
    member_unit: str | None = None,
) -> Submitted:
    header = request.header
    if member_unit is not None and header.from_.organ_id != member_unit:
        raise Forbidden(f"a member token of {member_unit} cannot send for {header.from_.organ_id}")
    if idempotency_key:
        existing = await _existing(gateway, client, idempotency_key)
        if existing is not None:
            return existing
    signer = gateway.signer(header.from_.organ_id)
    package = spool()
    try:
        await run_blocking(
            _total_size(attachments),
            build_document,
            header,
            out=package,
            attachments=attachments,
            business=request.business,
            signer=signer,
        )
        return await _store_new(
            gateway,
            header,
            request.classification,
            package,
            client=client,
            actor=actor,
            idempotency_key=idempotency_key,
        )
    finally:
        package.close()


async def submit_package(
    gateway: Gateway,
    package: IO[bytes],
    *,
    client: str,
    actor: str,
    idempotency_key: str | None = None,
    sign_unsigned: bool = False,
) -> Submitted:
    """Send a ready package — built and signed by the local document-management system — as it
    is: byte for byte, so the local system's signature is what recipients verify.

    edXML carries no classification, so a ready package is sent as unclassified (``thuong``): a
    classified document comes as a document folder whose metadata says so, and a gateway with
    ``profile = "secure"`` (where everything is classified) takes no ready packages. The package
    must be a document from one of this gateway's local units, signed by a certificate the
    registry holds for that unit (the rule every received package meets).

    ``sign_unsigned`` (a drop folder's ``sign_ready_packages``): a package that carries no
    signature at all (none, or the official SDK's placeholder) is signed here with the sending
    unit's key instead — rebuilt in docgw's form from what was read, as a document folder's
    package is built. A package that carries a signature is verified either way: one that fails
    is refused, never signed over.
    """
    if gateway.settings.gateway.profile == "secure":
        raise ReadyPackageRefused(
            "a secure gateway takes no ready packages: edXML cannot say a package is "
            "classified; put a document folder whose metadata gives the classification"
        )
    if idempotency_key:
        existing = await _existing(gateway, client, idempotency_key)
        if existing is not None:
            return existing
    package.seek(0)
    size = stream_size(package)
    parsed = await run_blocking(size, read_package, package)
    if parsed.kind is not PackageKind.DOCUMENT:
        raise ReadyPackageRefused("a status package: only documents are sent from the outbox")
    header = parsed.document().header
    sender = header.from_.organ_id
    if sender not in gateway.settings.gateway.local_units:
        raise ReadyPackageRefused(
            f"the package is from {sender}, which is not one of this gateway's local units",
            element="From/OrganId",
        )
    today = gateway.clock().astimezone(VIETNAM).date()
    if header.promulgation.date > today:  # as a document folder's metadata
        raise ReadyPackageRefused(
            f"is after today ({today.isoformat()})", element="PromulgationInfo/PromulgationDate"
        )
    async with gateway.reader.connect() as conn:
        trust = await trust_for(gateway, conn, sender)
    try:
        verified = await run_blocking(size, verify_document, parsed, trust)
    except SignatureMissing:
        if not sign_unsigned:
            raise
        return await _sign_and_store(
            gateway, package, size, client=client, actor=actor, idempotency_key=idempotency_key
        )
    return await _store_new(
        gateway,
        verified.package.header,
        Classification.THUONG,
        package,
        client=client,
        actor=actor,
        idempotency_key=idempotency_key,
    )


async def _sign_and_store(
    gateway: Gateway,
    package: IO[bytes],
    size: int | None,
    *,
    client: str,
    actor: str,
    idempotency_key: str | None,
) -> Submitted:
    """An unsigned ready package, signed on hand-over: its attachments decoded to files, the
    package built again from what was read and signed with the sending unit's key, then stored
    as a submission is."""
    with tempfile.TemporaryDirectory(prefix="docgw-ready-") as folder:
        built = spool()
        try:
            header = await run_blocking(
                size, _rebuild_signed, gateway, package, Path(folder), built
            )
            return await _store_new(
                gateway,
                header,
                Classification.THUONG,
                built,
                client=client,
                actor=actor,
                idempotency_key=idempotency_key,
            )
        finally:
            built.close()


def _rebuild_signed(
    gateway: Gateway, package: IO[bytes], folder: Path, out: IO[bytes]
) -> MessageHeader:
    """Read ``package`` with each attachment decoded into a file of ``folder``, and build it
    again, signed, into ``out``: header, trace entries, business block and every attachment with
    its manifest labels (what docgw does not read is reported as a notice when read, and not
    carried over)."""
    paths: list[Path] = []

    def attachment_file() -> IO[bytes]:
        paths.append(folder / str(len(paths)))
        return paths[-1].open("w+b")

    package.seek(0)
    parsed = read_package(package, sink_factory=attachment_file)
    for streamed in parsed.attachments:
        if streamed.content is not None:
            streamed.content.close()
    # What the manifest and the attachments disagree on, docgw would settle silently in signing.
    for notice in parsed.notices:
        if notice.code in _UNSIGNABLE:
            raise ReadyPackageRefused(
                f"cannot be signed as it is: {notice.message}", element=notice.element
            )
    by_content_id = dict(zip((a.content_id for a in parsed.attachments), paths, strict=True))
    document = parsed.document()
    sources = [
        AttachmentSource(
            name=info.name,
            open=_reader_of(by_content_id[info.content_id]),
            content_type=info.content_type,
            description=info.description,
            content_id=info.content_id,
        )
        for info in document.attachments
    ]
    build_document(
        document.header,
        out=out,
        attachments=sources,
        business=document.business,
        traces=document.traces,
        signer=gateway.signer(document.header.from_.organ_id),
    )
    return document.header


#: Notices of a read package that signing on hand-over refuses.
_UNSIGNABLE = frozenset({"MANIFEST_WITHOUT_ATTACHMENT", "ATTACHMENT_NOT_IN_MANIFEST"})


def _reader_of(path: Path) -> Callable[[], IO[bytes]]:
    return lambda: path.open("rb")


async def _store_new(
    gateway: Gateway,
    header: MessageHeader,
    classification: Classification,
    package: IO[bytes],
    *,
    client: str,
    actor: str,
    idempotency_key: str | None,
) -> Submitted:
    """Store a new outgoing message, its package and every recipient's first state in one
    transaction, and wake the delivery workers."""
    now = gateway.clock()
    message_id = str(uuid.uuid4())
    try:
        async with gateway.engine.begin() as conn:
            # The registry is read in the transaction that stores: one connection per submission
            # instead of two (round trips are most of a small submission's cost). An unknown
            # recipient is therefore found after the build, which costs only that wasted build.
            routes = await _routes(conn, gateway, header, classification)
            stored = await _store_packages(
                gateway, conn, header, classification, routes, package, now
            )
            await queries.insert_message(
                conn,
                id=message_id,
                direction="out",
                kind="document",
                document_id=header.document_id,
                sender=header.from_.organ_id,
                classification=classification.value,
                # Classified: the subject stays inside the sealed package, never in a column.
                subject=None if classification.is_classified else header.subject,
                code=str(header.code),
                promulgation_date=header.promulgation.date,
                priority=int(header.other_info.priority),
                package_sha256=stored.message_package,
                client=client,
                idempotency_key=idempotency_key,
                route=",".join(sorted({r.channel or "held" for r in routes})),
                send_due_at=send_deadline(
                    signed_on=header.promulgation.date,
                    accepted_at=now,
                    priority=int(header.other_info.priority),
                    policy=gateway.deadlines,
                ),
                created_at=now,
            )
            for route in routes:
                held = route.is_held or route.recipient in stored.unsealable
                await queries.insert_recipient(
                    conn,
                    message_id=message_id,
                    unit_code=route.recipient,
                    channel=route.channel,
                    state=TransportState.HELD if held else TransportState.QUEUED,
                    now=now,
                    actor=actor,
                    reason=stored.unsealable.get(route.recipient, route.reason),
                    package_sha256=stored.per_recipient.get(route.recipient),
                )
    except sa.exc.IntegrityError:
        if idempotency_key:  # a concurrent submission with the same key won the race
            existing = await _existing(gateway, client, idempotency_key)
            if existing is not None:
                return existing
        raise
    gateway.work_available.set()
    held_all = all(r.is_held for r in routes)
    return Submitted(
        message_id=message_id,
        document_id=header.document_id,
        state=(TransportState.HELD if held_all else TransportState.QUEUED).value,
        routes=routes,
        created=True,
    )


@dataclass
class _Stored:
    message_package: str
    per_recipient: dict[str, str]
    unsealable: dict[str, str]


async def _store_packages(
    gateway: Gateway,
    conn: AsyncConnection,
    header: MessageHeader,
    classification: Classification,
    routes: Sequence[Route],
    package: IO[bytes],
    now: dt.datetime,
) -> _Stored:
    inline = gateway.settings.gateway.inline_blob_bytes
    if not classification.is_classified:
        package.seek(0)
        ref = await blobs.put_stream(conn, package, inline_limit=inline, now=now)
        return _Stored(message_package=ref.sha256, per_recipient={}, unsealable={})
    # Classified: never store the plaintext. The message keeps a copy sealed for the sender.
    sender_cert = gateway.signer(header.from_.organ_id).certificate
    with seal_copy(package, sender_cert) as own:
        ref = await blobs.put_stream(conn, own, inline_limit=inline, now=now)
    per_recipient: dict[str, str] = {}
    unsealable: dict[str, str] = {}
    for route in routes:
        if route.is_held:
            continue
        cert = await current_certificate(conn, route.recipient, now)
        if cert is None:
            unsealable[route.recipient] = (
                f"no current certificate registered for {route.recipient} to seal for"
            )
            continue
        with seal_copy(package, cert) as sealed:
            stored = await blobs.put_stream(conn, sealed, inline_limit=inline, now=now)
        per_recipient[route.recipient] = stored.sha256
    return _Stored(message_package=ref.sha256, per_recipient=per_recipient, unsealable=unsealable)


async def _existing(gateway: Gateway, client: str, key: str) -> Submitted | None:
    async with gateway.engine.connect() as conn:
        message_id = await queries.message_id_for_idempotency_key(conn, client, key)
        if message_id is None:
            return None
        message = await queries.get_message(conn, message_id)
    assert message is not None
    return Submitted(
        message_id=message.id,
        document_id=message.document_id,
        state=summarize([r.state for r in message.recipients]).value,
        routes=tuple(
            Route(recipient=r.unit_code, channel=r.channel, reason="as first submitted")
            for r in message.recipients
        ),
        created=False,
    )
