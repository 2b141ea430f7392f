"""Verify a read package and build the objects the rest of docgw may trust.

``verify_document`` / ``verify_status`` check the signature (envelopes.signing), compare each
signed attachment digest with the digest computed while streaming, and build the model from the
signed elements only: the MessageHeader, the Bussiness block and the manifest that the signature
covers. Trace entries are not signed (the axis appends them) and are returned apart, marked so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from envelopes import signing, zipped
from envelopes.errors import AttachmentAdded, AttachmentTampered, PackageStructureError
from envelopes.model import DocumentPackage, StatusPackage, TraceHeader, strip_cid
from envelopes.namespaces import q
from envelopes.reading import (
    Notice,
    PackageKind,
    ParsedPackage,
    StreamedAttachment,
    attachments_from_manifest,
    business_from_element,
    header_from_element,
    status_from_element,
    traces_from_element,
)


@dataclass(frozen=True, kw_only=True)
class VerifiedDocument(signing.VerifiedBase):
    """A document package whose every field below was covered by a valid, trusted signature."""

    package: DocumentPackage
    #: Not signed: the axis appends its own entries in transit.
    unsigned_traces: tuple[TraceHeader, ...]
    notices: tuple[Notice, ...]


@dataclass(frozen=True, kw_only=True)
class VerifiedStatus(signing.VerifiedBase):
    status: StatusPackage
    notices: tuple[Notice, ...]


def verify_document(parsed: ParsedPackage, trust: signing.TrustPolicy) -> VerifiedDocument:
    if parsed.kind is not PackageKind.DOCUMENT:
        raise PackageStructureError("a status package, not a document package", element="/edXML")
    signed = signing.verify_signature(parsed.root, trust)
    _check_attachments(parsed, signed)
    notices = list(parsed.notices)
    elements = signed.elements
    header_element = elements[signing.HEADER_ID]
    business_element = elements.get(signing.BUSINESS_ID)
    manifest_element = elements.get(signing.MANIFEST_ID)
    sources = parsed.sources
    read = parsed.document()
    if (
        sources is not None
        and sources.header is header_element
        and sources.business is business_element
        and sources.manifest is manifest_element
    ):
        # The model read from the package was built from exactly the signed elements.
        package = dataclasses.replace(read, traces=())
        unsigned_traces = read.traces
    else:
        package = DocumentPackage(
            header=header_from_element(header_element, notices),
            traces=(),
            business=business_from_element(business_element, notices)
            if business_element is not None
            else None,
            attachments=attachments_from_manifest(manifest_element, parsed.attachments, notices),
        )
        unsigned_traces = traces_from_element(
            parsed.root.find(f".//{q('TraceHeaderList')}"), notices
        )
    return VerifiedDocument(
        package=package,
        unsigned_traces=unsigned_traces,
        notices=tuple(dict.fromkeys(notices)),
        signer=signed.signer,
        algorithm=signed.algorithm,
        _seal=signing.seal_token(),
    )


def check_zipped(
    verified: VerifiedDocument, parsed: ParsedPackage, *, limits: zipped.UnzipLimits | None = None
) -> VerifiedDocument:
    """``verified`` with a notice for each attachment its sender's builder zipped: whether it
    unpacks (ATTACHMENT_UNZIPPED) or is refused (its ZIP_* code). Checked on the verified bytes
    that ``parsed`` kept (read with a sink such as :class:`~envelopes.zipped.ZipCandidateSpool`);
    an attachment read without a sink is not checked."""
    contents = {a.content_id: a.content for a in parsed.attachments}
    found = zipped.unwrap_document(verified.package, contents, limits=limits)
    notices = verified.notices + tuple(u.notice for u in found)
    return dataclasses.replace(verified, notices=tuple(dict.fromkeys(notices)))


def _check_attachments(parsed: ParsedPackage, signed: signing.SignedReferences) -> None:
    """Each signed attachment's streamed digest must match; each attachment must be signed; and
    each attachment's unsigned labels must agree with the signed manifest entry of its position."""
    expected = signing.attachment_digests(parsed.root)
    by_id: dict[str, StreamedAttachment] = {
        a.element_id: a for a in parsed.attachments if a.element_id is not None
    }
    for element_id in signed.attachment_ids:
        _, digest = expected[element_id]  # SHA-256: verify_signature refused any other
        signing.check_attachment_digest(element_id, digest, by_id[element_id].digest.sha256)
    if len(signed.attachment_ids) != len(parsed.attachments):
        raise AttachmentAdded("an attachment is not covered by the signature")
    manifest = signed.elements.get(signing.MANIFEST_ID)
    references = [] if manifest is None else list(manifest.iterfind(q("Reference")))
    for index, reference in enumerate(references, start=1):
        attachment = by_id.get(signing.attachment_id(index))
        signed_cid = (reference.findtext(q("ContentId")) or "").strip()
        if attachment is None or attachment.content_id != strip_cid(signed_cid):
            raise AttachmentTampered(
                f"attachment {index} does not carry the ContentId the signed manifest gives it"
            )


def verify_status(parsed: ParsedPackage, trust: signing.TrustPolicy) -> VerifiedStatus:
    if parsed.kind is not PackageKind.STATUS:
        raise PackageStructureError("a document package, not a status package", element="/edXML")
    signed = signing.verify_signature(parsed.root, trust)
    notices = list(parsed.notices)
    header_element = signed.elements[signing.HEADER_ID]
    return VerifiedStatus(
        # The model read from the package, when it was read from exactly the signed element.
        status=parsed.status()
        if header_element is parsed.status_source
        else status_from_element(header_element, notices),
        notices=tuple(dict.fromkeys(notices)),
        signer=signed.signer,
        algorithm=signed.algorithm,
        _seal=signing.seal_token(),
    )
