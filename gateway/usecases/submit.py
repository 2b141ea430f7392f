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

import dataclasses
import datetime as dt
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.ext.asyncio import AsyncConnection

from connectors.offload import run_blocking, stream_size
from envelopes.attachments import AttachmentSource
from envelopes.building import build_document
from envelopes.errors import SignatureMissing
from envelopes.metadata import DocumentRequest
from envelopes.model import (
    Business,
    BusinessDocType,
    Classification,
    DocumentPackage,
    MessageHeader,
)
from envelopes.reading import PackageKind, ParsedPackage, read_package
from envelopes.verification import verify_document
from envelopes.zipped import ZipOrPdfSpool
from gateway.domain.deadlines import VIETNAM, send_deadline
from gateway.domain.direction import Direction
from gateway.domain.lifecycle import TransportState, summarize
from gateway.domain.routing import RecipientEntry, Route, route_recipient
from gateway.store import blobs, message_queries, unit_queries
from gateway.store.document_signatures import DocumentSignatureRow
from gateway.store.records import UnitRecord
from gateway.usecases import document_signatures, idempotency
from gateway.usecases.classified_copies import ClassifiedCopies, Spools, no_certificate
from gateway.usecases.errors import (
    Conflict,
    DocumentIdReused,
    DuplicateDocumentCode,
    Forbidden,
    ReadyPackageRefused,
    UnknownUnit,
)
from gateway.usecases.naming import is_new_document, stored_classification
from gateway.usecases.packages import current_certificate, read_rebuildable, spool, trust_for
from gateway.usecases.ports import Channels, Deadlines, Keys, Signing, Store, Waker


class Submitting(Store, Keys, Channels, Deadlines, Signing, Waker, Protocol):
    """What a submission uses: the store, the settings and the local units' keys (the sender's,
    and opening a sealed repeat), the channels and deadlines, the workers' wake-up."""


@dataclass(frozen=True, kw_only=True)
class Submitted:
    message_id: str
    document_id: str
    state: str
    routes: tuple[Route, ...]
    created: bool


def recipient_entry(unit: UnitRecord, gateway: Channels) -> RecipientEntry:
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


async def explain_routes(
    gateway: Submitting, request: DocumentRequest, *, member_unit: str | None = None
) -> tuple[Route, ...]:
    """Where each recipient's copy would go, and why (nothing is sent or stored). A member
    token (``member_unit``) may ask only about its own unit's sends."""
    sender = request.header.from_.organ_id
    if member_unit is not None and sender != member_unit:
        raise Forbidden(f"a member token of {member_unit} cannot route for {sender}")
    async with gateway.engine.connect() as conn:
        classification = await stored_classification(
            conn, request.header, request.business, request.classification
        )
        return await _routes(conn, gateway, request.header, classification)


async def _routes(
    conn: AsyncConnection,
    gateway: Submitting,
    header: MessageHeader,
    classification: Classification,
) -> tuple[Route, ...]:
    codes = [to.organ_id for to in header.to]
    registry = await unit_queries.get_units(conn, codes)
    missing = [code for code in codes if code not in registry]
    if missing:
        raise UnknownUnit(f"not in the unit registry: {', '.join(missing)}", element="to")
    return tuple(
        route_recipient(classification, recipient_entry(registry[code], gateway), gateway.channels)
        for code in codes
    )


#: The recipients one package copy addresses (its MessageHeader/To), in the request's order.
Group = tuple[str, ...]


def copy_groups(routes: Sequence[Route], classification: Classification) -> tuple[Group, ...]:
    """The package copies a message needs: one per channel, addressing only the recipients routed
    through it, and one per held recipient addressing it alone (it is sent, once released, with no
    other recipient in its To). A classified message stores no plaintext, so its held recipients
    get their copy when they are released (sealed anew from the sender's copy)."""
    by_channel: dict[str, list[str]] = {}
    groups: list[Group] = []
    for route in routes:
        if route.channel is None:
            if not classification.is_classified:
                groups.append((route.recipient,))
            continue
        if route.channel not in by_channel:
            by_channel[route.channel] = []
            groups.append(())  # its place, filled below
        by_channel[route.channel].append(route.recipient)
    filled = iter(tuple(codes) for codes in by_channel.values())
    return tuple(group or next(filled) for group in groups)


async def _taken(gateway: Submitting, header: MessageHeader) -> bool:
    async with gateway.engine.connect() as conn:
        return bool(await message_queries.classifications_of_document(conn, header.document_id))


def _document_id_reused(header: MessageHeader) -> DocumentIdReused:
    return DocumentIdReused(
        f"DocumentId {header.document_id!r} is already used by another document; receivers "
        "deduplicate on (sender, DocumentId), so one of the two would be dropped",
        element="document_id",
    )


async def _check_identity(
    conn: AsyncConnection,
    header: MessageHeader,
    business: Business | None,
    *,
    duplicate_code_intended: bool,
) -> None:
    """Refuse a new document (BussinessDocType 0) that reuses a stored document's DocumentId, or
    its sender's số/ký hiệu of the same promulgation year unless that is intended; a revocation,
    update or replacement names its document by them on purpose."""
    if not is_new_document(business):
        return
    if await message_queries.classifications_of_document(conn, header.document_id):
        raise _document_id_reused(header)
    if not duplicate_code_intended:
        earlier = await message_queries.code_used(
            conn,
            sender=header.from_.organ_id,
            code=str(header.code),
            year=header.promulgation.date.year,
        )
        if earlier is not None:
            raise DuplicateDocumentCode(
                f"{header.from_.organ_id} already sent số/ký hiệu {header.code} in "
                f"{header.promulgation.date.year} (message {earlier}); a new version is an update "
                "or replacement (business.doc_type 2 or 3), or say the repeat is intended",
                element="code",
            )


async def submit_document(
    gateway: Submitting,
    request: DocumentRequest,
    attachments: Sequence[AttachmentSource],
    *,
    client: str,
    actor: str,
    idempotency_key: str | None = None,
    member_unit: str | None = None,
    duplicate_code_intended: bool = False,
) -> Submitted:
    """``duplicate_code_intended``: the caller says a new document repeating its sender's
    số/ký hiệu of the same year is meant (otherwise refused: DUPLICATE_DOCUMENT_CODE).

    A repeated ``idempotency_key`` returns the key's first message only with the request it was
    first used for; another request is refused (IDEMPOTENCY_KEY_REUSED), whoever calls."""
    header = request.header
    if member_unit is not None and header.from_.organ_id != member_unit:
        raise Forbidden(f"a member token of {member_unit} cannot send for {header.from_.organ_id}")
    if idempotency_key:
        existing = await _existing(gateway, client, idempotency_key)
        if existing is not None:
            await idempotency.check_repeat(
                gateway, request, attachments, client=client, key=idempotency_key
            )
            return existing
    signer = gateway.signer(header.from_.organ_id)
    size = _total_size(attachments)
    documents = await document_signatures.check_sources(
        gateway.settings, attachments, now=gateway.clock()
    )

    async def build(group: Group, out: IO[bytes]) -> None:
        addressed = tuple(to for to in header.to if to.organ_id in group)
        await run_blocking(
            size,
            build_document,
            dataclasses.replace(header, to=addressed),
            out=out,
            attachments=attachments,
            business=request.business,
            signer=signer,
        )

    submitted = await _store_new(
        gateway,
        header,
        request.classification,
        request.business,
        build,
        None,
        client=client,
        actor=actor,
        idempotency_key=idempotency_key,
        duplicate_code_intended=duplicate_code_intended,
        documents=documents,
    )
    if idempotency_key and not submitted.created:
        # A concurrent submission with this key stored first: compared like any repeat.
        await idempotency.check_repeat(
            gateway, request, attachments, client=client, key=idempotency_key
        )
    return submitted


async def submit_package(
    gateway: Submitting,
    package: IO[bytes],
    *,
    client: str,
    actor: str,
    idempotency_key: str | None = None,
    sign_unsigned: bool = False,
) -> Submitted:
    """Send a ready package — built and signed by the local document-management system — as it
    is: byte for byte, so the local system's signature is what recipients verify.

    edXML carries no classification, so a ready package is sent as unclassified (``thuong``) —
    unless it names a classified document docgw holds (then it travels as that one): a
    classified document comes as a document folder whose metadata says so, and a gateway with
    ``profile = "secure"`` (where everything is classified) takes no ready packages. The package
    must be a document from one of this gateway's local units, signed by a certificate the
    registry holds for that unit (the rule every received package meets). As it cannot be built
    again, its recipients must all take one channel (its To is what each channel is given).

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
    # PDFs are kept to verify their own signatures (each closed in _submit_parsed).
    parsed = await run_blocking(size, read_package, package, sink_factory=ZipOrPdfSpool)
    try:
        return await _submit_parsed(
            gateway,
            package,
            parsed,
            size,
            client=client,
            actor=actor,
            idempotency_key=idempotency_key,
            sign_unsigned=sign_unsigned,
        )
    finally:
        for attachment in parsed.attachments:
            if attachment.content is not None:
                attachment.content.close()


async def _submit_parsed(
    gateway: Submitting,
    package: IO[bytes],
    parsed: ParsedPackage,
    size: int | None,
    *,
    client: str,
    actor: str,
    idempotency_key: str | None,
    sign_unsigned: bool,
) -> Submitted:
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
    documents = await document_signatures.check_attachments(
        gateway.settings,
        document_signatures.pdf_attachments(
            parsed.document().attachments, {a.content_id: a.content for a in parsed.attachments}
        ),
        now=gateway.clock(),
    )
    try:
        verified = await run_blocking(size, verify_document, parsed, trust)
    except SignatureMissing:
        if not sign_unsigned:
            raise
        return await _sign_and_store(
            gateway,
            package,
            size,
            client=client,
            actor=actor,
            idempotency_key=idempotency_key,
            documents=documents,
        )
    return await _store_new(
        gateway,
        verified.package.header,
        Classification.THUONG,
        verified.package.business,
        None,
        package,
        client=client,
        actor=actor,
        idempotency_key=idempotency_key,
        duplicate_code_intended=False,
        documents=documents,
    )


async def _sign_and_store(
    gateway: Submitting,
    package: IO[bytes],
    size: int | None,
    *,
    client: str,
    actor: str,
    idempotency_key: str | None,
    documents: list[DocumentSignatureRow],
) -> Submitted:
    """An unsigned ready package, signed on hand-over: its attachments decoded to files, the
    package built again from what was read and signed with the sending unit's key, then stored
    as a submission is."""
    with tempfile.TemporaryDirectory(prefix="docgw-ready-") as folder:
        built = spool()
        try:
            document = await run_blocking(
                size, _rebuild_signed, gateway, package, Path(folder), built
            )
            return await _store_new(
                gateway,
                document.header,
                Classification.THUONG,
                document.business,
                None,
                built,
                client=client,
                actor=actor,
                idempotency_key=idempotency_key,
                duplicate_code_intended=False,
                documents=documents,
            )
        finally:
            built.close()


def _rebuild_signed(
    gateway: Submitting, package: IO[bytes], folder: Path, out: IO[bytes]
) -> DocumentPackage:
    """Read ``package`` with each attachment decoded into a file of ``folder``, and build it
    again, signed, into ``out``: header, trace entries, business block and every attachment with
    its manifest labels (what docgw does not read is reported as a notice when read, and not
    carried over)."""
    rebuilt = read_rebuildable(package, folder)
    # What the manifest and the attachments disagree on, docgw would settle silently in signing.
    for notice in rebuilt.notices:
        if notice.code in _UNSIGNABLE:
            raise ReadyPackageRefused(
                f"cannot be signed as it is: {notice.message}", element=notice.element
            )
    document = rebuilt.document
    rebuilt.build(gateway.signer(document.header.from_.organ_id), out)
    return document


#: Notices of a read package that signing on hand-over refuses.
_UNSIGNABLE = frozenset({"MANIFEST_WITHOUT_ATTACHMENT", "ATTACHMENT_NOT_IN_MANIFEST"})


#: Builds the copy of a package addressing one group into a spool.
Builder = Callable[[Group, IO[bytes]], Awaitable[None]]


class _CopiesNeeded(Exception):
    """Raised in the store transaction (rolling it back) when the routes need package copies
    that are not built, or not sealed for the certificates now current, yet; they are built and
    sealed with no connection held, and the store runs again."""

    def __init__(self, groups: Sequence[Group], seals: Sequence[_Seal]) -> None:
        super().__init__()
        self.groups = groups
        self.seals = seals


#: A copy (by the group it addresses) and the certificate it is sealed for.
_Seal = tuple[Group, x509.Certificate]

#: Attempts after which a submission whose routes keep changing under it gives up (the registry
#: changed between two transactions twice: submit again). A classified one takes two at least:
#: the first finds the certificates its copies are sealed for.
_STORE_ATTEMPTS = 3


async def _store_new(
    gateway: Submitting,
    header: MessageHeader,
    classification: Classification,
    business: Business | None,
    build: Builder | None,
    ready: IO[bytes] | None,
    *,
    client: str,
    actor: str,
    idempotency_key: str | None,
    duplicate_code_intended: bool,
    documents: list[DocumentSignatureRow],
) -> Submitted:
    """Store a new outgoing message, its package copies and every recipient's first state in one
    transaction, and wake the delivery workers. ``build`` makes the copies (a document docgw
    builds); ``ready`` is the one package there is (a ready package: it cannot be split). The
    copies of a classified message are sealed between the transaction's attempts.
    ``documents``: its PDFs' signature verdicts, stored with it (and, under the sender's policy,
    holding its recipients)."""
    everyone: Group = tuple(to.organ_id for to in header.to)
    with ExitStack() as spools:
        copies: dict[Group, IO[bytes]] = {}
        sealed = ClassifiedCopies(
            Spools(copies), spools, inline_limit=gateway.settings.gateway.inline_blob_bytes
        )
        if ready is not None:
            copies[everyone] = ready
        # Most documents have one recipient, or all take one channel: build that copy first.
        wanted: Sequence[Group] = [] if ready is not None else [everyone]
        seals: Sequence[_Seal] = []
        for _ in range(_STORE_ATTEMPTS):
            for group in wanted:
                if build is None:
                    raise ReadyPackageRefused(
                        "the recipients of a ready package take different channels or are held; "
                        "its To would address them on every channel — send a document folder "
                        "(docgw builds one copy per channel) or one package per channel",
                        element="To",
                    )
                out = spools.enter_context(spool())
                await build(group, out)
                copies[group] = out
            await sealed.seal(seals)
            try:
                return await _store_once(
                    gateway,
                    header,
                    classification,
                    business,
                    copies,
                    sealed,
                    client=client,
                    actor=actor,
                    idempotency_key=idempotency_key,
                    duplicate_code_intended=duplicate_code_intended,
                    documents=documents,
                )
            except _CopiesNeeded as needed:
                wanted, seals = needed.groups, needed.seals
            except (sa.exc.IntegrityError, DocumentIdReused, DuplicateDocumentCode) as exc:
                if idempotency_key:  # a concurrent submission with the same key won the race
                    existing = await _existing(gateway, client, idempotency_key)
                    if existing is not None:
                        return existing
                identity_raced = isinstance(exc, (sa.exc.IntegrityError, DuplicateDocumentCode))
                if identity_raced and await _taken(gateway, header):
                    # A concurrent new document with this DocumentId won the race: it committed
                    # after this one's DocumentId check (then its số/ký hiệu is found) or after
                    # both checks (the unique index of new documents). The DocumentId is what
                    # this one reused: the refusal the check would have given.
                    raise _document_id_reused(header) from None
                raise
    raise Conflict("the unit registry kept changing while the document was packaged; submit again")


async def _store_once(
    gateway: Submitting,
    header: MessageHeader,
    requested: Classification,
    business: Business | None,
    copies: dict[Group, IO[bytes]],
    sealed: ClassifiedCopies[Group],
    *,
    client: str,
    actor: str,
    idempotency_key: str | None,
    duplicate_code_intended: bool,
    documents: list[DocumentSignatureRow],
) -> Submitted:
    now = gateway.clock()
    message_id = str(uuid.uuid4())
    sender = header.from_.organ_id
    # The sending unit's policy (documents.hold_unsigned / hold_failing): hold, or only warn.
    document_hold = document_signatures.hold_reason(gateway.settings.documents, sender, documents)
    async with gateway.engine.begin() as conn:
        # The registry is read in the transaction that stores: one connection per submission
        # instead of two (round trips are most of a small submission's cost). An unknown
        # recipient is therefore found after the build, which costs only that wasted build.
        # Unknown recipients are reported first (the plainest mistake), then what the document
        # names (a refused DocumentId or số/ký hiệu, a stricter classification).
        routes = await _routes(conn, gateway, header, requested)
        await _check_identity(
            conn, header, business, duplicate_code_intended=duplicate_code_intended
        )
        classification = await stored_classification(conn, header, business, requested)
        if classification is not requested:  # it names a stricter document: routed as that
            routes = await _routes(conn, gateway, header, classification)
        groups = copy_groups(routes, classification)
        certificates = None
        if classification.is_classified:
            certificates = await _certificates(gateway, conn, header, routes, groups, now)
        missing = [group for group in groups if group not in copies]
        unsealed = [] if certificates is None else certificates.missing_from(sealed)
        if missing or unsealed:
            raise _CopiesNeeded(missing, unsealed)
        stored = await _store_packages(
            gateway, conn, header, copies, sealed, certificates, groups, now
        )
        await message_queries.insert_message(
            conn,
            id=message_id,
            direction=Direction.OUT,
            kind=PackageKind.DOCUMENT,
            document_id=header.document_id,
            sender=header.from_.organ_id,
            classification=classification.value,
            # Classified: the subject stays inside the sealed package (the store keeps no column).
            subject=header.subject,
            code=str(header.code),
            promulgation_date=header.promulgation.date,
            priority=int(header.other_info.priority),
            package_sha256=stored.message_package,
            client=client,
            idempotency_key=idempotency_key,
            route=",".join(sorted({r.channel or "held" for r in routes})),
            business_doc_type=int(business.doc_type if business else BusinessDocType.NEW),
            send_due_at=send_deadline(
                signed_on=header.promulgation.date,
                accepted_at=now,
                priority=int(header.other_info.priority),
                policy=gateway.deadlines,
            ),
            created_at=now,
        )
        await document_signatures.store_rows(conn, message_id, classification, documents)
        for route in routes:
            held = route.is_held or route.recipient in stored.unsealable or bool(document_hold)
            await message_queries.insert_recipient(
                conn,
                message_id=message_id,
                unit_code=route.recipient,
                channel=route.channel,
                state=TransportState.HELD if held else TransportState.QUEUED,
                now=now,
                actor=actor,
                reason=stored.unsealable.get(route.recipient, document_hold or route.reason),
                package_sha256=stored.per_recipient.get(route.recipient),
            )
    gateway.work_available.set()
    document_signatures.warn(message_id, sender, classification, documents)
    held_all = document_hold is not None or all(r.is_held for r in routes)
    return Submitted(
        message_id=message_id,
        document_id=header.document_id,
        state=(TransportState.HELD if held_all else TransportState.QUEUED).value,
        routes=routes,
        created=True,
    )


@dataclass(frozen=True)
class _Certificates:
    """What a classified message's copies are sealed for, as the store transaction reads it: the
    message's own copy (addressing everyone) for its sender, each recipient's copy for its unit's
    current certificate; recipients whose unit has none are held."""

    own: _Seal
    recipients: dict[str, _Seal]
    unsealable: dict[str, str]

    def missing_from(self, sealed: ClassifiedCopies[Group]) -> list[_Seal]:
        return [s for s in (self.own, *self.recipients.values()) if not sealed.has(*s)]


async def _certificates(
    gateway: Submitting,
    conn: AsyncConnection,
    header: MessageHeader,
    routes: Sequence[Route],
    groups: Sequence[Group],
    now: dt.datetime,
) -> _Certificates:
    group_of = {code: group for group in groups for code in group}
    recipients: dict[str, _Seal] = {}
    unsealable: dict[str, str] = {}
    for route in routes:
        if route.is_held:
            continue
        cert = await current_certificate(conn, route.recipient, now)
        if cert is None:
            unsealable[route.recipient] = no_certificate(route.recipient)
        else:
            recipients[route.recipient] = (group_of[route.recipient], cert)
    everyone: Group = tuple(to.organ_id for to in header.to)
    own = (everyone, gateway.signer(header.from_.organ_id).certificate)
    return _Certificates(own=own, recipients=recipients, unsealable=unsealable)


@dataclass
class _Stored:
    message_package: str
    per_recipient: dict[str, str]
    unsealable: dict[str, str]


async def _store_packages(
    gateway: Submitting,
    conn: AsyncConnection,
    header: MessageHeader,
    copies: dict[Group, IO[bytes]],
    sealed: ClassifiedCopies[Group],
    certificates: _Certificates | None,
    groups: Sequence[Group],
    now: dt.datetime,
) -> _Stored:
    """The copy addressing every recipient is the message's own record; each recipient is sent
    the copy of its group (see :func:`copy_groups`). Classified (``certificates``): only copies
    sealed ahead, never the plaintext."""
    if certificates is not None:
        own_key, own_cert = certificates.own
        return _Stored(
            message_package=await sealed.store(conn, own_key, own_cert, now=now),
            per_recipient={
                code: await sealed.store(conn, group, cert, now=now)
                for code, (group, cert) in certificates.recipients.items()
            },
            unsealable=certificates.unsealable,
        )
    inline = gateway.settings.gateway.inline_blob_bytes
    everyone: Group = tuple(to.organ_id for to in header.to)
    package = copies[everyone]
    package.seek(0)
    ref = await blobs.put_stream(conn, package, inline_limit=inline, now=now)
    per_recipient: dict[str, str] = {}
    for group in groups:
        if group != everyone:  # else the message's package, as delivery reads it
            copies[group].seek(0)
            stored = await blobs.put_stream(conn, copies[group], inline_limit=inline, now=now)
            per_recipient.update(dict.fromkeys(group, stored.sha256))
    return _Stored(message_package=ref.sha256, per_recipient=per_recipient, unsealable={})


async def _existing(gateway: Submitting, client: str, key: str) -> Submitted | None:
    async with gateway.engine.connect() as conn:
        message_id = await message_queries.message_id_for_idempotency_key(conn, client, key)
        if message_id is None:
            return None
        message = await message_queries.get_message(conn, message_id)
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
