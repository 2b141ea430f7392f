"""Build edXML packages from the model: QCVN element order and formats, one-line base64, the
official SDK's namespace layout, and — when a signer is given — docgw's XML-DSig signature.

Building streams: the package is written to a binary stream, and each attachment is read twice
(once to digest it for the signature, once to encode it), so memory does not grow with it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import IO

from lxml import etree

from envelopes import schema, signing
from envelopes.attachments import AttachmentSource, digest_stream, encode_base64, sniffed_mismatch
from envelopes.datetimes import format_date, format_timestamp
from envelopes.errors import MetadataError
from envelopes.model import (
    AttachmentInfo,
    Business,
    DocumentPackage,
    MessageHeader,
    Organization,
    ResponseFor,
    StaffInfo,
    StatusPackage,
    TraceHeader,
    strip_cid,
)
from envelopes.namespaces import QCVN, QCVN_PREFIX, q

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def _sub(parent: etree._Element, name: str, value: object = None) -> etree._Element:
    element = etree.SubElement(parent, q(name))
    if value is not None:
        element.text = _text(value)
    return element


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(int(value)) if isinstance(value, int) else str(value)


def _opt(parent: etree._Element, name: str, value: object) -> None:
    if value is not None and value != "":
        _sub(parent, name, value)


def _organization(parent: etree._Element, name: str, org: Organization) -> None:
    element = _sub(parent, name)
    _sub(element, "OrganId", org.organ_id)
    _opt(element, "OrganizationInCharge", org.organization_in_charge)
    _opt(element, "OrganName", org.organ_name)
    _opt(element, "OrganAdd", org.organ_add)
    _opt(element, "Email", org.email)
    _opt(element, "Telephone", org.telephone)
    _opt(element, "Fax", org.fax)
    _opt(element, "Website", org.website)


def _response_for(parent: etree._Element, response: ResponseFor) -> None:
    element = _sub(parent, "ResponseFor")
    _sub(element, "OrganId", response.organ_id)
    _opt(element, "Code", response.code)
    if response.promulgation_date is not None:
        _sub(element, "PromulgationDate", format_date(response.promulgation_date))
    _opt(element, "DocumentId", response.document_id)


def _staff_info(parent: etree._Element, staff: StaffInfo | None) -> None:
    if staff is None:
        return
    element = _sub(parent, "StaffInfo")
    _opt(element, "Department", staff.department)
    _opt(element, "Staff", staff.staff)
    _opt(element, "Mobile", staff.mobile)
    _opt(element, "Email", staff.email)


def _message_header(parent: etree._Element, header: MessageHeader) -> None:
    element = _sub(parent, "MessageHeader")
    element.set("Id", signing.HEADER_ID)
    _organization(element, "From", header.from_)
    for to in header.to:
        _organization(element, "To", to)
    code = _sub(element, "Code")
    _sub(code, "CodeNumber", header.code.number)
    _sub(code, "CodeNotation", header.code.notation)
    promulgation = _sub(element, "PromulgationInfo")
    _opt(promulgation, "Place", header.promulgation.place)
    _sub(promulgation, "PromulgationDate", format_date(header.promulgation.date))
    doc_type = _sub(element, "DocumentType")
    _sub(doc_type, "Type", header.document_type.type)
    _opt(doc_type, "TypeDetail", header.document_type.type_detail)
    _sub(doc_type, "TypeName", header.document_type.type_name)
    _sub(element, "Subject", header.subject)
    _opt(element, "Content", header.content)
    if header.signer is not None:
        signer = _sub(element, "SignerInfo")
        _opt(signer, "Competence", header.signer.competence)
        _opt(signer, "Position", header.signer.position)
        _opt(signer, "FullName", header.signer.full_name)
    if header.due_date is not None:
        _sub(element, "DueDate", format_date(header.due_date))
    if header.to_places:
        places = _sub(element, "ToPlaces")
        for place in header.to_places:
            _sub(places, "Place", place)
    _other_info(element, header)
    for response in header.response_for:
        _response_for(element, response)
    _opt(element, "SteeringType", header.steering_type)
    _sub(element, "DocumentId", header.document_id)


def _other_info(parent: etree._Element, header: MessageHeader) -> None:
    info = header.other_info
    element = _sub(parent, "OtherInfo")
    _sub(element, "Priority", int(info.priority))
    _opt(element, "SphereOfPromulgation", info.sphere_of_promulgation)
    _opt(element, "TyperNotation", info.typer_notation)
    _opt(element, "PromulgationAmount", info.promulgation_amount)
    _opt(element, "PageAmount", info.page_amount)
    _opt(element, "Direction", info.direction)
    if info.appendixes:
        appendixes = _sub(element, "Appendixes")
        for appendix in info.appendixes:
            _sub(appendixes, "Appendix", appendix)


def _trace_list(
    parent: etree._Element, traces: Sequence[TraceHeader], biz: Business | None
) -> None:
    element = _sub(parent, "TraceHeaderList")
    for trace in traces:
        trace_element = _sub(element, "TraceHeader")
        _opt(trace_element, "OrganId", trace.organ_id)
        if trace.timestamp is not None:
            _sub(trace_element, "Timestamp", format_timestamp(trace.timestamp))
    if biz is not None:
        _business(element, biz)


def _business(parent: etree._Element, biz: Business) -> None:
    element = _sub(parent, "Bussiness")
    element.set("Id", signing.BUSINESS_ID)
    _opt(element, "DocumentId", biz.document_id)
    _sub(element, "BussinessDocType", int(biz.doc_type))
    _opt(element, "BussinessDocReason", biz.reason)
    _sub(element, "Paper", biz.paper)
    if biz.update is not None:
        info = _sub(element, "BussinessDocumentInfo")
        _opt(info, "DocumentInfo", biz.update.document_info)
        _opt(info, "DocumentReceiver", biz.update.document_receiver)
        if biz.update.receivers:
            receivers = _sub(info, "ReceiverList")
            for receiver in biz.update.receivers:
                receiver_element = _sub(receivers, "Receiver")
                _sub(receiver_element, "OrganId", receiver.organ_id)
                _opt(receiver_element, "ReceiverType", receiver.receiver_type)
    if biz.replacements:
        replacements = _sub(element, "ReplacementInfoList")
        for replacement in biz.replacements:
            info = _sub(replacements, "ReplacementInfo")
            _sub(info, "DocumentId", replacement.document_id)
            if replacement.organ_ids:
                organs = _sub(info, "OrganIdList")
                for organ_id in replacement.organ_ids:
                    _sub(organs, "OrganId", organ_id)
    _staff_info(element, biz.staff_info)


def _describe_attachments(sources: Sequence[AttachmentSource]) -> list[AttachmentInfo]:
    infos = []
    seen: set[str] = set()
    for index, source in enumerate(sources, start=1):
        content_id = strip_cid(source.content_id or str(index))
        if content_id in seen:
            raise ValueError(f"duplicate attachment content id {content_id!r}")
        seen.add(content_id)
        with source.open() as stream:
            digest = digest_stream(stream)
        content_type = source.effective_content_type
        infos.append(
            AttachmentInfo(
                content_id=content_id,
                name=source.name,
                content_type=content_type,
                description=source.description,
                size=digest.size,
                sha256=digest.sha256_hex,
                sniffed_type=sniffed_mismatch(content_type, digest.head),
            )
        )
    return infos


def _manifest_and_attachments(
    root: etree._Element, body: etree._Element, infos: Sequence[AttachmentInfo]
) -> list[etree._Element]:
    manifest = _sub(body, "edXMLManifest")
    manifest.set("version", "1.0")
    manifest.set("Id", signing.MANIFEST_ID)
    for info in infos:
        reference = _sub(manifest, "Reference")
        _sub(reference, "ContentId", f"cid:{info.content_id}")
        _sub(reference, "ContentType", info.content_type)
        _opt(reference, "Description", info.description)
        _sub(reference, "AttachmentName", info.name)
    encoded_slots = []
    if infos:
        encoded = _sub(root, "AttachmentEncoded")
        for index, info in enumerate(infos, start=1):
            attachment = _sub(encoded, "Attachment")
            _sub(attachment, "ContentId", f"cid:{info.content_id}")
            _sub(attachment, "AttachmentName", info.name)
            _opt(attachment, "Description", info.description)
            _sub(attachment, "ContentType", info.content_type)
            # The SDK's layout: this one element re-declares the edXML prefix.
            slot = etree.SubElement(
                attachment, q("ContentTransferEncoded"), nsmap={QCVN_PREFIX: QCVN}
            )
            slot.set("Id", signing.attachment_id(index))
            encoded_slots.append(slot)
    return encoded_slots


def _envelope_root() -> tuple[etree._Element, etree._Element]:
    """The official SDK's layout: default namespace on the root, ``edXML:`` inside the envelope."""
    root = etree.Element(q("edXML"), nsmap={None: QCVN})
    envelope = etree.SubElement(root, q("edXMLEnvelope"), nsmap={QCVN_PREFIX: QCVN})
    return root, envelope


def build_document(
    header: MessageHeader,
    *,
    out: IO[bytes],
    attachments: Sequence[AttachmentSource] = (),
    business: Business | None = None,
    traces: Sequence[TraceHeader] = (),
    signer: signing.Signer | None = None,
) -> DocumentPackage:
    """Write a document package to ``out``; return its model (with attachment digests).

    The skeleton is validated against docgw's XSD before it is signed, so a package that does not
    validate is never written. Attachment bytes are streamed into the output after signing.
    """
    infos = _describe_attachments(attachments)
    root, envelope = _envelope_root()
    xml_header = _sub(envelope, "edXMLHeader")
    _message_header(xml_header, header)
    _trace_list(xml_header, traces, business)
    slots = _manifest_and_attachments(root, _sub(envelope, "edXMLBody"), infos)
    etree.indent(root, space="  ")
    schema.validate_document(root)
    if signer is not None:
        digests = {
            signing.attachment_id(i): bytes.fromhex(info.sha256)
            for i, info in enumerate(infos, start=1)
        }
        signing.sign(root, signer, attachment_digests=digests)
    _write_streaming(root, slots, attachments, out)
    return DocumentPackage(
        header=header, traces=tuple(traces), business=business, attachments=tuple(infos)
    )


def build_document_bytes(header: MessageHeader, **kwargs: object) -> tuple[bytes, DocumentPackage]:
    """Convenience for small packages: the bytes and the model."""
    out = io.BytesIO()
    package = build_document(header, out=out, **kwargs)  # type: ignore[arg-type]
    return out.getvalue(), package


def _write_streaming(
    root: etree._Element,
    slots: Sequence[etree._Element],
    sources: Sequence[AttachmentSource],
    out: IO[bytes],
) -> None:
    """Serialize the skeleton with a marker in each attachment slot, then splice in the base64."""
    markers: list[bytes] = []
    for index, slot in enumerate(slots):
        text = f"@@docgw-attachment-{index}@@"
        slot.text = text
        markers.append(text.encode("ascii"))
    xml = etree.tostring(root, encoding="UTF-8", xml_declaration=False)
    for slot in slots:
        slot.text = None
    out.write(XML_DECLARATION)
    position = 0
    for marker, source in zip(markers, sources, strict=True):
        at = xml.index(marker, position)
        out.write(xml[position:at])
        with source.open() as stream:
            encode_base64(stream, out.write)
        position = at + len(marker)
    out.write(xml[position:])
    out.write(b"\n")


def build_status(status: StatusPackage, *, signer: signing.Signer | None = None) -> bytes:
    """A status package (DOMAIN.md §4); small, so it is built in memory."""
    if status.status_code.requires_reason and not (status.description or "").strip():
        raise MetadataError(
            f"status {status.status_code.value} requires a reason", element="description"
        )
    root, envelope = _envelope_root()
    xml_header = _sub(envelope, "edXMLHeader")
    element = _sub(xml_header, "MessageHeader")
    element.set("Id", signing.HEADER_ID)
    _organization(element, "From", status.from_)
    _response_for(element, status.response_for)
    _staff_info(element, status.staff_info)
    _sub(element, "StatusCode", status.status_code.value)
    _opt(element, "Description", status.description)
    _sub(element, "Timestamp", format_timestamp(status.timestamp))
    etree.indent(root, space="  ")
    schema.validate_status(root)
    if signer is not None:
        signing.sign(root, signer, attachment_digests={})
    xml: bytes = etree.tostring(root, encoding="UTF-8", xml_declaration=False)
    return XML_DECLARATION + xml + b"\n"
