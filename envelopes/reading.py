"""Read edXML packages from bytes or a stream into the model.

Namespace-aware (prefixed and unprefixed elements are the same namespace), order-agnostic (the SDK
and QCVN order their elements differently), tolerant of what is safe to tolerate — stray bytes
before the XML declaration, ``TimeStamp`` for ``Timestamp``, unknown elements, non-conforming unit
codes, the SDK's placeholder ``<Signature>``, an optional element or block that is present but
empty (read as absent) — each reported as a :class:`Notice`; everything else is a typed error
naming the element. Attachments are decoded while streaming (see xmlsafe).

What this module returns is *unverified*. Only :mod:`envelopes.verification` makes the objects that
the rest of docgw may trust.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO

from lxml import etree

from envelopes.attachments import Base64Decoder, Digest, sniffed_mismatch
from envelopes.datetimes import parse_date, parse_timestamp
from envelopes.errors import AttachmentError, PackageStructureError
from envelopes.model import (
    AttachmentInfo,
    Business,
    BusinessDocType,
    DocumentCode,
    DocumentPackage,
    DocumentType,
    MessageHeader,
    Organization,
    OtherInfo,
    Priority,
    PromulgationInfo,
    Receiver,
    Replacement,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusCode,
    StatusPackage,
    TraceHeader,
    UpdateInfo,
    strip_cid,
)
from envelopes.namespaces import DSIG, QCVN, q
from envelopes.unit_codes import parse_lenient
from envelopes.xmlsafe import Limits, TextSink, iter_chunks, parse_stream


class PackageKind(StrEnum):
    DOCUMENT = "document"
    STATUS = "status"


@dataclass(frozen=True, kw_only=True)
class Notice:
    """Something odd but tolerated, reported to the operator (never silently dropped)."""

    code: str
    message: str
    element: str | None = None


@dataclass(kw_only=True)
class StreamedAttachment:
    element_id: str | None  # the Id attribute of ContentTransferEncoded, if any
    content_id: str
    digest: Digest
    content: IO[bytes] | None  # decoded bytes, where a sink factory was given
    # The Attachment element's own (unsigned) labels; the manifest's are the ones signed.
    name: str | None = None
    content_type: str | None = None
    description: str | None = None


@dataclass(kw_only=True)
class ParsedPackage:
    """A package read but not verified. ``root`` is the skeleton (attachment text streamed away).

    The model is built while reading, so a structural problem fails the read itself, and
    ``notices`` is complete when ``read_package`` returns.
    """

    kind: PackageKind
    root: etree._Element
    attachments: list[StreamedAttachment] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    _document: DocumentPackage | None = None
    _status: StatusPackage | None = None
    #: For a document: the elements its model was read from.
    sources: SourceElements | None = None
    #: For a status: the MessageHeader element its model was read from.
    status_source: etree._Element | None = None

    def document(self) -> DocumentPackage:
        """The unverified document model (for inspection; never for the store)."""
        if self._document is None:
            raise PackageStructureError(
                "a status package, not a document package", element="/edXML"
            )
        return self._document

    def status(self) -> StatusPackage:
        if self._status is None:
            raise PackageStructureError(
                "a document package, not a status package", element="/edXML"
            )
        return self._status


#: Makes a fresh binary stream for one attachment's decoded bytes (e.g. a spooled temp file).
SinkFactory = Callable[[], IO[bytes]]


def read_package(
    source: bytes | IO[bytes] | Iterable[bytes],
    *,
    sink_factory: SinkFactory | None = None,
    limits: Limits | None = None,
) -> ParsedPackage:
    """Parse a package; attachment bytes go to streams from ``sink_factory`` (or are dropped,
    keeping only their digest, size and first bytes)."""
    decoders: list[Base64Decoder] = []
    outputs: list[IO[bytes] | None] = []

    def choose(tag: str, parent: str | None) -> TextSink | None:
        if tag != q("ContentTransferEncoded") or parent != q("Attachment"):
            return None
        out = sink_factory() if sink_factory is not None else None
        decoder = Base64Decoder(out, element=f"Attachment[{len(decoders) + 1}]")
        decoders.append(decoder)
        outputs.append(out)
        return decoder

    try:
        return _read(_chunks_of(source), limits, choose, decoders, outputs)
    except BaseException:
        # The caller never sees these sinks (spooled temp files, say): close them here.
        for out in outputs:
            if out is not None:
                out.close()
        raise


def _chunks_of(source: bytes | IO[bytes] | Iterable[bytes]) -> Iterable[bytes]:
    if isinstance(source, bytes | bytearray) or hasattr(source, "read"):
        return iter_chunks(source)  # type: ignore[arg-type]  # bytes or a stream, by the checks
    return source


def _read(
    chunks: Iterable[bytes],
    limits: Limits | None,
    choose: Callable[[str, str | None], TextSink | None],
    decoders: list[Base64Decoder],
    outputs: list[IO[bytes] | None],
) -> ParsedPackage:
    parsed = parse_stream(chunks, limits=limits, stream=choose)
    root = parsed.root
    notices: list[Notice] = []
    if parsed.stray_prefix:
        notices.append(
            Notice(
                code="STRAY_BYTES_BEFORE_XML",
                message=f"{len(parsed.stray_prefix)} bytes before the XML declaration were skipped",
            )
        )
    kind = _kind(root)
    attachments = []
    for (element, _), decoder, out in zip(parsed.streamed, decoders, outputs, strict=True):
        if out is not None:
            out.seek(0)
        labels = element.getparent()
        assert labels is not None  # the chooser streams only Attachment/ContentTransferEncoded
        attachments.append(
            StreamedAttachment(
                element_id=element.get("Id"),
                content_id=strip_cid(labels.findtext(q("ContentId")) or ""),
                digest=decoder.digest,
                content=out,
                name=(labels.findtext(q("AttachmentName")) or "").strip() or None,
                content_type=(labels.findtext(q("ContentType")) or "").strip() or None,
                description=(labels.findtext(q("Description")) or "").strip() or None,
            )
        )
    parsed_package = ParsedPackage(kind=kind, root=root, attachments=attachments, notices=notices)
    if kind is PackageKind.STATUS:
        parsed_package._status, parsed_package.status_source = status_from_tree(root, notices)
    else:
        parsed_package._document, parsed_package.sources = document_from_tree(
            root, attachments, notices
        )
    return parsed_package


def _kind(root: etree._Element) -> PackageKind:
    if root.tag != q("edXML"):
        raise PackageStructureError(
            f"the root element must be edXML in namespace {QCVN}, not {root.tag}", element="/"
        )
    header = _path(root, "edXMLEnvelope", "edXMLHeader", "MessageHeader")
    return PackageKind.STATUS if header.find(q("StatusCode")) is not None else PackageKind.DOCUMENT


@dataclass(frozen=True, kw_only=True)
class Routing:
    """What a router needs of a package (unverified)."""

    kind: PackageKind
    sender: str
    #: A document's MessageHeader/To units; a status package names none.
    receivers: tuple[str, ...]
    document_id: str | None
    #: A status package's ResponseFor/OrganId (the document's sender); None for a document.
    response_to: str | None


class _PassOver:
    """A text sink that keeps nothing (attachment text a router does not read)."""

    def write(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def read_routing(
    source: bytes | IO[bytes] | Iterable[bytes], *, limits: Limits | None = None
) -> Routing:
    """The package's kind, sender and recipients and the document it is or answers — what an
    axis needs to route it — with the same hardened parser as :func:`read_package` and the same
    rules for those fields (unit codes read leniently; a document needs a To and a DocumentId, a
    status a ResponseFor). Attachment text is passed over, not decoded or hashed, and the rest of
    the header is not read, nor is anything after MessageHeader (the signature, the body, the
    attachments): this says nothing of whether the package is well-formed beyond that, intact or
    genuine (the receiving gateway reads and verifies it whole), and costs a fraction of a full
    read."""

    def choose(tag: str, parent: str | None) -> TextSink | None:
        if tag == q("ContentTransferEncoded") and parent == q("Attachment"):
            return _PassOver()
        return None

    root = parse_stream(_chunks_of(source), limits=limits, stream=choose, until=_HEADER_TAGS).root
    kind = _kind(root)
    header = _Reader(
        _path(root, "edXMLEnvelope", "edXMLHeader", "MessageHeader"), _HEADER_PATH, notices=[]
    )
    from_ = header.child("From", required=True)
    assert from_ is not None
    if kind is PackageKind.STATUS:
        response_for = header.child("ResponseFor", required=True)
        assert response_for is not None
        return Routing(
            kind=PackageKind.STATUS,
            sender=_organ_id(from_),
            receivers=(),
            document_id=response_for.text("DocumentId"),
            response_to=_organ_id(response_for),
        )
    recipients = header.children("To")
    if not recipients:
        raise PackageStructureError("at least one To is required", element=f"{header.path}/To")
    return Routing(
        kind=PackageKind.DOCUMENT,
        sender=_organ_id(from_),
        receivers=tuple(_organ_id(to) for to in recipients),
        document_id=header.required_text("DocumentId"),
        response_to=None,
    )


_HEADER_PATH = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"
_HEADER_TAGS = tuple(q(name) for name in _HEADER_PATH.split("/")[1:])


def _path(root: etree._Element, *names: str) -> etree._Element:
    element = root
    walked = "/edXML"
    for name in names:
        walked += f"/{name}"
        found = element.findall(q(name))
        if len(found) != 1:
            problem = "missing" if not found else f"repeated {len(found)} times"
            raise PackageStructureError(f"required element {problem}", element=walked)
        element = found[0]
    return element


_INTEGER = re.compile(r"-?[0-9]+")


class _Reader:
    """Lenient, order-agnostic access to one element's children, with paths for errors."""

    def __init__(self, element: etree._Element, path: str, notices: list[Notice]) -> None:
        self.element = element
        self.path = path
        self.notices = notices

    def children(self, name: str) -> list[_Reader]:
        return [
            _Reader(child, f"{self.path}/{name}", self.notices)
            for child in self.element.iterfind(q(name))
        ]

    def items(self, name: str) -> list[_Reader]:
        """The optional repeated children ``name``: an empty one is absent (with a notice)."""
        return [item for item in self.children(name) if not item.note_if_empty()]

    def texts(self, name: str) -> tuple[str, ...]:
        """The texts of the optional repeated children ``name`` (Place, Appendix …)."""
        return tuple((item.element.text or "").strip() for item in self.items(name))

    def is_empty(self) -> bool:
        """Self-closed, or holding only whitespace and empty children (attributes do not count:
        an ``Id`` carries nothing a reader reads)."""
        return not "".join(self.element.itertext()).strip()

    def note_if_empty(self) -> bool:
        """True, with an EMPTY_ELEMENT notice, when this element is empty."""
        if not self.is_empty():
            return False
        self.notices.append(
            Notice(
                code="EMPTY_ELEMENT",
                message=f"{etree.QName(self.element).localname} is present but empty: read as "
                "absent",
                element=self.path,
            )
        )
        return True

    def block(self, name: str) -> _Reader | None:
        """The optional child block ``name``; one present but empty reads as absent."""
        found = self.child(name)
        return None if found is None or found.note_if_empty() else found

    @functools.cached_property
    def _first_by_tag(self) -> dict[object, etree._Element]:
        """Each child tag's first element, in one pass: cheaper than an ElementPath ``find()``
        per field (a MessageHeader reads ~50 of them)."""
        first: dict[object, etree._Element] = {}
        for child in self.element:
            first.setdefault(child.tag, child)
        return first

    def _first(self, name: str, required: bool) -> etree._Element | None:
        found = self._first_by_tag.get(q(name))
        if found is None and required:
            raise PackageStructureError("required element missing", element=f"{self.path}/{name}")
        return found

    def child(self, name: str, *, required: bool = False) -> _Reader | None:
        found = self._first(name, required)
        return None if found is None else _Reader(found, f"{self.path}/{name}", self.notices)

    def text(self, name: str, *, required: bool = False) -> str | None:
        found = self._first(name, required)
        value = (found.text or "").strip() if found is not None else ""
        if not value:
            if required:
                raise PackageStructureError("required element empty", element=f"{self.path}/{name}")
            if found is not None:
                _Reader(found, f"{self.path}/{name}", self.notices).note_if_empty()
            return None
        return value

    def required_text(self, name: str) -> str:
        value = self.text(name, required=True)
        assert value is not None
        return value

    def integer(self, name: str, *, required: bool = False) -> int | None:
        value = self.text(name, required=required)
        if value is None:
            return None
        if not _INTEGER.fullmatch(value):  # int() would take "1_0" and other scripts' digits
            raise PackageStructureError(
                f"{value!r} is not a whole number", element=f"{self.path}/{name}"
            )
        return int(value)

    def date(self, name: str, *, required: bool = False) -> dt.date | None:
        value = self.text(name, required=required)
        if value is None:
            return None
        try:
            return parse_date(value)
        except ValueError:
            raise PackageStructureError(
                f"{value!r} is not a date (yyyy/MM/dd)", element=f"{self.path}/{name}"
            ) from None

    def timestamp(self, *names: str) -> dt.datetime | None:
        for name in names:
            value = self.text(name)
            if value is not None:
                try:
                    return parse_timestamp(value)
                except ValueError:
                    raise PackageStructureError(
                        f"{value!r} is not a timestamp (yyyy/MM/dd HH:mm:ss)",
                        element=f"{self.path}/{name}",
                    ) from None
        return None

    def note_unknown(self, known: Iterable[str]) -> None:
        allowed = {q(name) for name in known}
        for child in self.element:
            if child.tag not in allowed and not str(child.tag).startswith(f"{{{DSIG}}}"):
                local = etree.QName(child).localname
                self.notices.append(
                    Notice(
                        code="UNKNOWN_ELEMENT",
                        message=f"element {local} is not part of docgw's model and was ignored",
                        element=f"{self.path}/{local}",
                    )
                )


def _organ_id(reader: _Reader, name: str = "OrganId") -> str:
    code = parse_lenient(reader.required_text(name))
    if not code.is_conforming:
        reader.notices.append(
            Notice(
                code="NONCONFORMING_UNIT_CODE",
                message=f"unit code {code.value!r} has neither the QCVN 102 nor the QĐ 20 form",
                element=f"{reader.path}/{name}",
            )
        )
    return code.value


_ORGANIZATION_FIELDS = (
    "OrganId", "OrganizationInCharge", "OrganName", "OrganAdd", "Email", "Telephone", "Fax",
    "Website",
)  # fmt: skip


def _organization(reader: _Reader) -> Organization:
    reader.note_unknown(_ORGANIZATION_FIELDS)
    return Organization(
        organ_id=_organ_id(reader),
        organization_in_charge=reader.text("OrganizationInCharge"),
        organ_name=reader.text("OrganName"),
        organ_add=reader.text("OrganAdd"),
        email=reader.text("Email"),
        telephone=reader.text("Telephone"),
        fax=reader.text("Fax"),
        website=reader.text("Website"),
    )


def _response_for(reader: _Reader) -> ResponseFor:
    return ResponseFor(
        organ_id=_organ_id(reader),
        code=reader.text("Code"),
        promulgation_date=reader.date("PromulgationDate"),
        document_id=reader.text("DocumentId"),
    )


def _staff_info(reader: _Reader | None) -> StaffInfo | None:
    if reader is None:
        return None
    return StaffInfo(
        department=reader.text("Department"),
        staff=reader.text("Staff"),
        mobile=reader.text("Mobile"),
        email=reader.text("Email"),
    )


_HEADER_FIELDS = (
    "From", "To", "Code", "PromulgationInfo", "DocumentType", "Subject", "Content", "SignerInfo",
    "DueDate", "ToPlaces", "OtherInfo", "ResponseFor", "SteeringType", "DocumentId",
)  # fmt: skip


def header_from_element(element: etree._Element, notices: list[Notice]) -> MessageHeader:
    reader = _Reader(element, _HEADER_PATH, notices)
    reader.note_unknown(_HEADER_FIELDS)
    recipients = reader.children("To")
    if not recipients:
        raise PackageStructureError("at least one To is required", element=f"{reader.path}/To")
    code = reader.child("Code", required=True)
    promulgation = reader.child("PromulgationInfo", required=True)
    doc_type = reader.child("DocumentType", required=True)
    signer = reader.block("SignerInfo")
    places = reader.block("ToPlaces")
    assert code is not None and promulgation is not None and doc_type is not None
    promulgation_date = promulgation.date("PromulgationDate", required=True)
    doc_type_value = doc_type.integer("Type", required=True)
    assert promulgation_date is not None and doc_type_value is not None
    from_ = reader.child("From", required=True)
    assert from_ is not None
    return MessageHeader(
        from_=_organization(from_),
        to=tuple(_organization(to) for to in recipients),
        code=DocumentCode(
            number=code.text("CodeNumber") or "", notation=code.text("CodeNotation") or ""
        ),
        promulgation=PromulgationInfo(place=promulgation.text("Place"), date=promulgation_date),
        document_type=DocumentType(
            type=doc_type_value,
            type_detail=doc_type.integer("TypeDetail"),
            type_name=doc_type.text("TypeName") or "",
        ),
        subject=reader.required_text("Subject"),
        content=reader.text("Content"),
        signer=SignerInfo(
            competence=signer.text("Competence"),
            position=signer.text("Position"),
            full_name=signer.text("FullName"),
        )
        if signer is not None
        else None,
        due_date=reader.date("DueDate"),
        to_places=places.texts("Place") if places is not None else (),
        other_info=_other_info(reader.block("OtherInfo")),
        response_for=tuple(_response_for(r) for r in reader.items("ResponseFor")),
        steering_type=reader.integer("SteeringType"),
        document_id=reader.required_text("DocumentId"),
    )


def _other_info(reader: _Reader | None) -> OtherInfo:
    if reader is None:
        return OtherInfo()
    priority = reader.integer("Priority") or 0
    if priority not in Priority._value2member_map_:
        raise PackageStructureError(
            f"priority {priority} is not one of 0..4", element=f"{reader.path}/Priority"
        )
    direction = reader.text("Direction")
    appendixes = reader.block("Appendixes")
    return OtherInfo(
        priority=Priority(priority),
        sphere_of_promulgation=reader.text("SphereOfPromulgation"),
        typer_notation=reader.text("TyperNotation"),
        promulgation_amount=reader.integer("PromulgationAmount"),
        page_amount=reader.integer("PageAmount"),
        direction=None if direction is None else direction.lower() in ("true", "1"),
        appendixes=appendixes.texts("Appendix") if appendixes is not None else (),
    )


def business_from_element(element: etree._Element, notices: list[Notice]) -> Business | None:
    """The Bussiness block; None when it is present but empty (a new document, by default)."""
    reader = _Reader(element, "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness", notices)
    if reader.note_if_empty():
        return None
    doc_type = reader.integer("BussinessDocType", required=True)
    if doc_type not in BusinessDocType._value2member_map_:
        raise PackageStructureError(
            f"BussinessDocType {doc_type} is not one of 0..3",
            element=f"{reader.path}/BussinessDocType",
        )
    info = reader.block("BussinessDocumentInfo")
    update = None
    if info is not None:
        receivers_list = info.block("ReceiverList")
        update = UpdateInfo(
            document_info=info.text("DocumentInfo"),
            document_receiver=info.text("DocumentReceiver"),
            receivers=tuple(
                Receiver(organ_id=_organ_id(r), receiver_type=r.integer("ReceiverType"))
                for r in receivers_list.items("Receiver")
            )
            if receivers_list is not None
            else (),
        )
    replacements = []
    replacement_list = reader.block("ReplacementInfoList")
    for item in replacement_list.items("ReplacementInfo") if replacement_list else []:
        organs = item.block("OrganIdList")
        replacements.append(
            Replacement(
                document_id=item.required_text("DocumentId"),
                organ_ids=organs.texts("OrganId") if organs is not None else (),
            )
        )
    assert doc_type is not None  # required=True above
    return Business(
        doc_type=BusinessDocType(doc_type),
        document_id=reader.text("DocumentId"),
        reason=reader.text("BussinessDocReason"),
        paper=reader.integer("Paper") or 0,
        staff_info=_staff_info(reader.block("StaffInfo")),
        update=update,
        replacements=tuple(replacements),
    )


def traces_from_element(
    element: etree._Element | None, notices: list[Notice]
) -> tuple[TraceHeader, ...]:
    if element is None:
        return ()
    reader = _Reader(element, "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList", notices)
    traces = []
    for trace in reader.items("TraceHeader"):
        organ_id = trace.text("OrganId")
        traces.append(
            TraceHeader(
                organ_id=None if organ_id in (None, "null") else organ_id,
                timestamp=trace.timestamp("Timestamp", "TimeStamp"),
            )
        )
    return tuple(traces)


def attachments_from_manifest(
    manifest: etree._Element | None,
    streamed: list[StreamedAttachment],
    notices: list[Notice],
) -> tuple[AttachmentInfo, ...]:
    """Join the manifest's references with the streamed attachments on ContentId."""
    by_content_id = {a.content_id: a for a in streamed}
    if len(by_content_id) != len(streamed):
        raise AttachmentError(
            "two attachments share a ContentId", element="/edXML/AttachmentEncoded"
        )
    references = [] if manifest is None else list(manifest.iterfind(q("Reference")))
    infos = []
    for index, reference in enumerate(references, start=1):
        reader = _Reader(
            reference, f"/edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference[{index}]", notices
        )
        content_id = strip_cid(reader.required_text("ContentId"))
        attachment = by_content_id.pop(content_id, None)
        if attachment is None:
            notices.append(
                Notice(
                    code="MANIFEST_WITHOUT_ATTACHMENT",
                    message=f"the manifest names cid:{content_id} but no attachment carries it",
                    element=f"{reader.path}/ContentId",
                )
            )
            continue
        infos.append(
            _attachment_info(
                attachment,
                name=reader.text("AttachmentName") or content_id,
                content_type=reader.text("ContentType") or "application/octet-stream",
                description=reader.text("Description"),
                path=reader.path,
                notices=notices,
            )
        )
    for attachment in by_content_id.values():
        notices.append(
            Notice(
                code="ATTACHMENT_NOT_IN_MANIFEST",
                message=f"attachment cid:{attachment.content_id} is not in the manifest",
                element="/edXML/AttachmentEncoded",
            )
        )
        infos.append(
            _attachment_info(
                attachment,
                name=attachment.name or attachment.content_id,
                content_type=attachment.content_type or "application/octet-stream",
                description=attachment.description,
                path="/edXML/AttachmentEncoded/Attachment",
                notices=notices,
            )
        )
    return tuple(infos)


def _attachment_info(
    attachment: StreamedAttachment,
    *,
    name: str,
    content_type: str,
    description: str | None,
    path: str,
    notices: list[Notice],
) -> AttachmentInfo:
    sniffed = sniffed_mismatch(content_type, attachment.digest.head)
    if sniffed is not None:
        notices.append(
            Notice(
                code="ATTACHMENT_TYPE_MISMATCH",
                message=f"{name} is labelled {content_type} but its bytes are {sniffed}",
                element=f"{path}/ContentType",
            )
        )
    return AttachmentInfo(
        content_id=attachment.content_id,
        name=name,
        content_type=content_type,
        description=description,
        size=attachment.digest.size,
        sha256=attachment.digest.sha256_hex,
        sniffed_type=sniffed,
    )


@dataclass(frozen=True, kw_only=True)
class SourceElements:
    """The elements a document model was read from; verification reuses the model when the
    signature covers exactly these elements (it checks that they are where a reader reads)."""

    header: etree._Element
    business: etree._Element | None
    manifest: etree._Element | None


def document_from_tree(
    root: etree._Element, streamed: list[StreamedAttachment], notices: list[Notice]
) -> tuple[DocumentPackage, SourceElements]:
    xml_header = _path(root, "edXMLEnvelope", "edXMLHeader")
    trace_list = xml_header.find(q("TraceHeaderList"))
    sources = SourceElements(
        header=_path(root, "edXMLEnvelope", "edXMLHeader", "MessageHeader"),
        business=trace_list.find(q("Bussiness")) if trace_list is not None else None,
        manifest=root.find(f"{q('edXMLEnvelope')}/{q('edXMLBody')}/{q('edXMLManifest')}"),
    )
    _note_placeholder_signature(xml_header, notices)
    document = DocumentPackage(
        header=header_from_element(sources.header, notices),
        traces=traces_from_element(trace_list, notices),
        business=business_from_element(sources.business, notices)
        if sources.business is not None
        else None,
        attachments=attachments_from_manifest(sources.manifest, streamed, notices),
    )
    return document, sources


def _note_placeholder_signature(xml_header: etree._Element, notices: list[Notice]) -> None:
    if xml_header.find(q("Signature")) is not None:
        notices.append(
            Notice(
                code="PLACEHOLDER_SIGNATURE",
                message="a Signature element outside the XML-DSig namespace (the SDK's "
                "placeholder) was ignored: the package is unsigned",
                element="/edXML/edXMLEnvelope/edXMLHeader/Signature",
            )
        )


def status_from_element(element: etree._Element, notices: list[Notice]) -> StatusPackage:
    reader = _Reader(element, _HEADER_PATH, notices)
    reader.note_unknown(
        ("From", "ResponseFor", "StaffInfo", "StatusCode", "Description", "Timestamp", "TimeStamp")
    )
    code_text = reader.required_text("StatusCode")
    if code_text not in StatusCode._value2member_map_:
        raise PackageStructureError(
            f"status code {code_text!r} is not one of 01-06, 13, 15, 16",
            element=f"{reader.path}/StatusCode",
        )
    timestamp = reader.timestamp("Timestamp", "TimeStamp")
    if timestamp is None:
        raise PackageStructureError("required element missing", element=f"{reader.path}/Timestamp")
    from_ = reader.child("From", required=True)
    response_for = reader.child("ResponseFor", required=True)
    assert from_ is not None and response_for is not None
    status = StatusPackage(
        from_=_organization(from_),
        response_for=_response_for(response_for),
        status_code=StatusCode(code_text),
        timestamp=timestamp,
        description=reader.text("Description"),
        staff_info=_staff_info(reader.block("StaffInfo")),
    )
    if status.status_code.requires_reason and not status.description:
        raise PackageStructureError(
            f"status {code_text} requires a reason", element=f"{reader.path}/Description"
        )
    return status


def status_from_tree(
    root: etree._Element, notices: list[Notice]
) -> tuple[StatusPackage, etree._Element]:
    """The status model and the MessageHeader element it was read from."""
    xml_header = _path(root, "edXMLEnvelope", "edXMLHeader")
    _note_placeholder_signature(xml_header, notices)
    header = _path(root, "edXMLEnvelope", "edXMLHeader", "MessageHeader")
    return status_from_element(header, notices), header
