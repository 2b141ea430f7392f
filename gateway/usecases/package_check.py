"""A stored message's package as a person sees it on the console's message page: its signature
checked again against the sender's registered certificates, as at its receipt (who signed, the
certificate's subject, issuer, serial number and expiry, the certificates its KeyInfo carries, the
registered certificate it matches), and its attachments as the signed manifest lists them.

Reading is the downloads' rule (:mod:`gateway.usecases.downloads`): the caller has checked that
the person may see the message at all; a classified package's content (its attachments, which
its manifest names) is read only for a member of the message's own unit on a gateway that opens
its sealed copy, and is otherwise reported as hidden — never opened for staff.
"""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass
from typing import IO, Final

from cryptography import x509

from connectors.offload import run_blocking, stream_size
from envelopes.errors import GatewayError
from envelopes.model import AttachmentInfo, Classification
from envelopes.namespaces import ds
from envelopes.reading import PackageKind, ParsedPackage, read_package
from envelopes.signing import SignerIdentity
from envelopes.verification import verify_document, verify_status
from gateway.store import unit_queries
from gateway.store.records import CertificateRecord, MessageRecord
from gateway.usecases import downloads
from gateway.usecases.packages import hands_over_opened, load_to_spool, trust_for
from gateway.usecases.ports import StoreAndKeys
from gateway.usecases.tokens import Principal, Role

#: The types a browser may show inline (no SVG, no HTML: they can carry script); the bytes must
#: also say so (:func:`inline_type`).
INLINE_TYPES: Final = frozenset(
    {"application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp"}
)
_MAGIC: Final = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


@dataclass(frozen=True, kw_only=True)
class AttachmentEntry:
    number: int  # 1-based: its place in the package, as the downloads number it
    name: str
    content_type: str
    size: int
    #: Its type is one a browser may show inline (the bytes are checked when it is served).
    viewable: bool


@dataclass(frozen=True, kw_only=True)
class PackageCheck:
    #: The content is classified and not for this reader: nothing below was read.
    hidden: bool = False
    valid: bool | None = None
    error_code: str | None = None
    error: str | None = None
    signer: SignerIdentity | None = None
    algorithm: str | None = None
    #: The certificates the signature's KeyInfo carries (the signer's first).
    chain: tuple[SignerIdentity, ...] = ()
    #: The sender's registered certificate the signer's is (None: none matches).
    registered: CertificateRecord | None = None
    attachments: tuple[AttachmentEntry, ...] = ()


def inline_type(media_type: str, head: bytes) -> str | None:
    """The type to show inline: the label's, when it is one of INLINE_TYPES and the first bytes
    agree; else None (the file is downloaded, never shown)."""
    label = media_type.split(";")[0].strip().lower()
    if label not in INLINE_TYPES or not head.startswith(_MAGIC[label]):
        return None
    if label == "image/webp" and head[8:12] != b"WEBP":
        return None
    return label


def _readable(gateway: StoreAndKeys, message: MessageRecord, reader: Principal) -> bool:
    if not Classification(message.classification).is_classified:
        return True
    return reader.role is Role.MEMBER and hands_over_opened(gateway)


async def check_stored(
    gateway: StoreAndKeys, message: MessageRecord, *, reader: Principal
) -> PackageCheck:
    """The package's signature checked again at its receipt time, and its attachments."""
    if not _readable(gateway, message, reader):
        return PackageCheck(hidden=True)
    plain = await _plaintext(gateway, message)
    try:
        parsed = await run_blocking(stream_size(plain), read_package, plain)
    except GatewayError as exc:
        return PackageCheck(valid=False, error_code=exc.code, error=exc.message)
    finally:
        plain.close()
    async with gateway.reader.connect() as conn:
        registered = await unit_queries.certificates(conn, message.sender)
        try:
            trust = await trust_for(gateway, conn, message.sender)
        except GatewayError as exc:
            return _unverified(parsed, exc)
    trust = dataclasses.replace(trust, at=message.created_at)
    infos: tuple[AttachmentInfo, ...] = ()
    try:
        if parsed.kind is PackageKind.STATUS:
            verified_status = await run_blocking(None, verify_status, parsed, trust)
            signer, algorithm = verified_status.signer, verified_status.algorithm
        else:
            verified = await run_blocking(None, verify_document, parsed, trust)
            signer, algorithm = verified.signer, verified.algorithm
            infos = verified.package.attachments
    except GatewayError as exc:
        return _unverified(parsed, exc)
    return PackageCheck(
        valid=True,
        signer=signer,
        algorithm=algorithm,
        chain=_key_info_chain(parsed),
        registered=next(
            (c for c in registered if c.fingerprint_sha256 == signer.fingerprint_sha256), None
        ),
        attachments=_entries(infos),
    )


async def _plaintext(gateway: StoreAndKeys, message: MessageRecord) -> IO[bytes]:
    if Classification(message.classification).is_classified:
        return await downloads.opened(gateway, message)
    async with gateway.reader.connect() as conn:
        return await load_to_spool(conn, message.package_sha256)


def _unverified(parsed: ParsedPackage, exc: GatewayError) -> PackageCheck:
    """Not verified now: the reason, and the attachments as the (unverified) manifest says."""
    infos: tuple[AttachmentInfo, ...] = ()
    if parsed.kind is PackageKind.DOCUMENT:
        try:
            infos = tuple(parsed.document().attachments)
        except GatewayError:
            infos = ()
    return PackageCheck(
        valid=False,
        error_code=exc.code,
        error=exc.message,
        chain=_key_info_chain(parsed),
        attachments=_entries(infos),
    )


def _entries(
    infos: tuple[AttachmentInfo, ...] | list[AttachmentInfo],
) -> tuple[AttachmentEntry, ...]:
    return tuple(
        AttachmentEntry(
            number=number,
            name=info.name,
            content_type=info.content_type,
            size=info.size,
            viewable=info.content_type.split(";")[0].strip().lower() in INLINE_TYPES,
        )
        for number, info in enumerate(infos, start=1)
    )


def _key_info_chain(parsed: ParsedPackage) -> tuple[SignerIdentity, ...]:
    """The certificates in the signature's KeyInfo, described (not trusted for that)."""
    found = []
    for element in parsed.root.iterfind(
        f".//{ds('KeyInfo')}/{ds('X509Data')}/{ds('X509Certificate')}"
    ):
        try:
            cert = x509.load_der_x509_certificate(base64.b64decode(element.text or ""))
        except ValueError:
            continue
        found.append(SignerIdentity.of(cert))
    return tuple(found)
