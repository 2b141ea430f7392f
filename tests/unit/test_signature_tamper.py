"""docgw's package signature (envelopes.signing, envelopes.verification) against tampering.

A signed package is built with two attachments (a PDF, and a zip labelled application/pdf, as real
senders do) and Vietnamese text everywhere. Each attack edits the package's lxml tree, serializes
it again and reads + verifies the result; every attack must fail with its own error code. The
baseline test checks that re-serializing alone changes nothing, so each failure is the attack's.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import hashlib
import io
import zipfile
from collections.abc import Callable

import pki  # tests/pki.py (tests/ is on sys.path through tests/conftest.py)
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from envelopes import namespaces as ns
from envelopes.building import build_status
from envelopes.errors import (
    AlgorithmNotAllowed,
    AttachmentAdded,
    AttachmentRemoved,
    AttachmentTampered,
    BusinessTampered,
    CertificateExpired,
    CertificateUntrusted,
    HeaderTampered,
    ManifestTampered,
    SignatureInvalid,
    SignatureMissing,
    SignatureWrapping,
    VerificationError,
)
from envelopes.model import DocumentPackage, StatusCode, TraceHeader
from envelopes.namespaces import ds, q
from envelopes.reading import read_package
from envelopes.signing import Signer, TrustPolicy
from envelopes.verification import VerifiedDocument, verify_document, verify_status


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("danh_sach_don_vi.txt", date_time=(2024, 3, 15, 8, 0, 0))
        archive.writestr(info, "Danh sách đơn vị đã kết nối: Bộ Nội vụ, UBND tỉnh Huế\n" * 40)
    return buffer.getvalue()


ATTACHMENTS = {
    "Công văn 7816-VPCP-TTĐT.pdf": b"%PDF-1.7\n"
    + "Nội dung: kết nối, liên thông văn bản".encode()
    + bytes(range(256)) * 16,
    # A zip named and therefore labelled as a PDF (DOMAIN.md §3).
    "Phụ lục danh sách.pdf": _zip_bytes(),
}

Mutation = Callable[[etree._Element], None]


@pytest.fixture
def built() -> tuple[bytes, DocumentPackage]:
    return pki.build_package(ATTACHMENTS, pki.signer(), traces=pki.sample_traces())


@pytest.fixture
def signed(built: tuple[bytes, DocumentPackage]) -> bytes:
    return built[0]


# --------------------------------------------------------------------------------------- helpers


def _verify(data: bytes, trust: TrustPolicy | None = None) -> VerifiedDocument:
    return verify_document(read_package(data), trust or pki.trust())


def _tampered(data: bytes, mutate: Mutation) -> bytes:
    root = etree.fromstring(data)
    mutate(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _rejected(
    data: bytes, error: type[VerificationError], code: str, trust: TrustPolicy | None = None
) -> VerificationError:
    with pytest.raises(error) as caught:
        _verify(data, trust)
    assert caught.value.code == code, str(caught.value)
    return caught.value


def _xml_header(root: etree._Element) -> etree._Element:
    found = root.find(f"{q('edXMLEnvelope')}/{q('edXMLHeader')}")
    assert found is not None
    return found


def _one(root: etree._Element, tag: str, index: int = 0) -> etree._Element:
    return root.findall(f".//{tag}")[index]


def _signature(root: etree._Element) -> etree._Element:
    return _one(root, ds("Signature"))


def _resign(root: etree._Element, key: rsa.RSAPrivateKey, algorithm: hashes.HashAlgorithm) -> None:
    """Sign SignedInfo again (exclusive C14N, as the profile says) with ``key``."""
    signed_info = _one(root, ds("SignedInfo"))
    c14n = etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False)
    value = key.sign(c14n, padding.PKCS1v15(), algorithm)
    _one(root, ds("SignatureValue")).text = base64.b64encode(value).decode()


def _wrap(tag: str, into: str, *, copy_keeps_id: bool) -> Mutation:
    """Move the signed ``tag`` element into a new element (in TraceHeaderList) or a ds:Object (in
    the Signature), and put a modified copy where a reader looks for it."""

    def mutate(root: etree._Element) -> None:
        signed = _one(root, q(tag))
        forged = copy.deepcopy(signed)
        if not copy_keeps_id:
            del forged.attrib["Id"]
        for text_holder in forged.iter(q("Subject"), q("BussinessDocType"), q("AttachmentName")):
            text_holder.text = "1" if text_holder.tag == q("BussinessDocType") else "GIẢ MẠO"
        parent = signed.getparent()
        assert parent is not None
        parent.replace(signed, forged)
        if into == "trace":
            holder = etree.SubElement(_one(root, q("TraceHeaderList")), q("Extension"))
        else:
            holder = etree.SubElement(_signature(root), ds("Object"))
        holder.append(signed)

    return mutate


# --------------------------------------------------------------------------------- the good path


def test_signed_package_verifies_to_the_built_model(built: tuple[bytes, DocumentPackage]) -> None:
    data, model = built
    verified = _verify(data)
    assert verified.package.header == pki.sample_header() == model.header
    # Trace entries are not signed: they come back apart, never in the verified package.
    assert verified.package == dataclasses.replace(model, traces=())
    assert verified.unsigned_traces == model.traces == pki.sample_traces()
    assert [a.sha256 for a in verified.package.attachments] == [
        hashlib.sha256(content).hexdigest() for content in ATTACHMENTS.values()
    ]
    assert [a.name for a in verified.package.attachments] == list(ATTACHMENTS)
    assert verified.package.attachments[1].content_type == "application/pdf"
    assert verified.package.attachments[1].sniffed_type == "application/zip"
    assert [n.code for n in verified.notices] == ["ATTACHMENT_TYPE_MISMATCH"]
    assert verified.algorithm == ns.RSA_SHA256
    unit_cert = pki.unit().certificate
    assert verified.signer.subject == unit_cert.subject.rfc4514_string()
    assert verified.signer.serial_number == unit_cert.serial_number


def test_reserializing_alone_changes_nothing(signed: bytes) -> None:
    """The attacks below go through lxml; this shows that the round trip itself is harmless."""
    again = _tampered(signed, lambda root: None)
    assert again != signed
    assert _verify(again).package == _verify(signed).package


#: What the test axis appends in transit (../shared/samples/real/axis_download_*.edxml): a
#: TraceHeader with a Timestamp and no OrganId.
AXIS_TRACE = TraceHeader(organ_id=None, timestamp=dt.datetime(2024, 3, 15, 8, 31, 5))
AXIS_TRACE_XML = (
    b"<edXML:TraceHeader><edXML:Timestamp>2024/03/15 08:31:05</edXML:Timestamp></edXML:TraceHeader>"
)


def test_trace_appended_at_the_end_of_the_list_keeps_the_signature(signed: bytes) -> None:
    """Spliced into the bytes, after Bussiness: nothing else in the package changes."""
    end = b"</edXML:TraceHeaderList>"
    assert signed.count(end) == 1
    data = signed.replace(end, AXIS_TRACE_XML + end)
    verified = _verify(data)
    assert verified.unsigned_traces == (*pki.sample_traces(), AXIS_TRACE)
    assert verified.package.header == pki.sample_header()


def test_trace_appended_before_bussiness_keeps_the_signature(signed: bytes) -> None:
    def append_trace(root: etree._Element) -> None:
        trace = etree.Element(q("TraceHeader"))
        etree.SubElement(trace, q("OrganId")).text = "000.00.00.A01"
        etree.SubElement(trace, q("Timestamp")).text = "2024/03/15 08:31:05"
        _one(root, q("Bussiness")).addprevious(trace)

    verified = _verify(_tampered(signed, append_trace))
    relay = dataclasses.replace(AXIS_TRACE, organ_id="000.00.00.A01")
    assert verified.unsigned_traces == (*pki.sample_traces(), relay)
    assert verified.package.business == pki.NEW_DOCUMENT


def test_a_comment_cannot_split_signed_text(signed: bytes) -> None:
    """Exclusive C14N without comments ignores comments; the reader drops them too, so a comment
    inside a signed field neither breaks the signature nor truncates what is read."""

    def split_subject(root: etree._Element) -> None:
        subject = _one(root, q("Subject"))
        text = subject.text or ""
        subject.text = text[:10]
        comment = etree.Comment(" chèn ")
        comment.tail = text[10:]
        subject.append(comment)

    verified = _verify(_tampered(signed, split_subject))
    assert verified.package.header.subject == pki.sample_header().subject


def test_pinned_unit_certificate_is_trusted_without_a_ca(signed: bytes) -> None:
    verified = _verify(signed, TrustPolicy(pinned=(pki.unit().certificate,)))
    assert verified.package.header == pki.sample_header()
    other = TrustPolicy(pinned=(pki.unit(pki.RECEIVER).certificate,))
    _rejected(signed, CertificateUntrusted, "CERT_UNTRUSTED", other)


def test_status_package_round_trip_and_tamper() -> None:
    status = pki.sample_status()
    data = build_status(status, signer=pki.signer(pki.RECEIVER))
    parsed = read_package(data)
    verified = verify_status(parsed, pki.trust())
    assert verified.status == status
    assert verified.status is parsed.status()  # read once: the signed element is the one read
    assert verified.signer.subject.startswith(f"CN={pki.RECEIVER},")

    def change_code(root: etree._Element) -> None:
        _one(root, q("StatusCode")).text = StatusCode.COMPLETED.value

    with pytest.raises(HeaderTampered) as caught:
        verify_status(read_package(_tampered(data, change_code)), pki.trust())
    assert caught.value.code == "SIGNED_HEADER_CHANGED"


# ------------------------------------------------------------------------------------- the attacks


def _change_subject(root: etree._Element) -> None:
    _one(root, q("Subject")).text = "V/v hủy bỏ kết nối"


def _revoke_business(root: etree._Element) -> None:
    _one(root, q("BussinessDocType")).text = "1"  # "new" becomes "thu hồi"


def _rename_in_manifest(root: etree._Element) -> None:
    _one(root, f"{q('edXMLManifest')}/{q('Reference')}/{q('AttachmentName')}").text = "Khác.pdf"


def _flip_attachment_byte(root: etree._Element) -> None:
    encoded = _one(root, q("ContentTransferEncoded"), 1)
    content = bytearray(base64.b64decode(encoded.text or ""))
    content[len(content) // 2] ^= 0x01
    encoded.text = base64.b64encode(bytes(content)).decode()


def _new_attachment(root: etree._Element, *, in_manifest: bool) -> None:
    if in_manifest:
        manifest = _one(root, q("edXMLManifest"))
        reference = copy.deepcopy(manifest[0])
        reference.find(q("ContentId")).text = "cid:3"  # type: ignore[union-attr]
        reference.find(q("AttachmentName")).text = "Thêm.pdf"  # type: ignore[union-attr]
        manifest.append(reference)
    attachment = copy.deepcopy(_one(root, q("Attachment")))
    attachment.find(q("ContentId")).text = "cid:3"  # type: ignore[union-attr]
    encoded = attachment.find(q("ContentTransferEncoded"))
    assert encoded is not None
    encoded.set("Id", "edxml-att-3")
    encoded.text = base64.b64encode(b"%PDF-1.7\nTai lieu them vao").decode()
    _one(root, q("AttachmentEncoded")).append(attachment)


def _remove_attachment(root: etree._Element) -> None:
    attachment = _one(root, q("Attachment"), 1)
    attachment.getparent().remove(attachment)  # type: ignore[union-attr]


def _strip_attachment_id(root: etree._Element) -> None:
    del _one(root, q("ContentTransferEncoded"), 1).attrib["Id"]


def _swap_content_ids(root: etree._Element) -> None:
    first, second = (a.find(q("ContentId")) for a in root.iter(q("Attachment")))
    assert first is not None and second is not None
    first.text, second.text = second.text, first.text


def _duplicate_id(tag: str, element_id: str) -> Mutation:
    def mutate(root: etree._Element) -> None:
        _one(root, q(tag)).set("Id", element_id)

    return mutate


def _remove_signature(root: etree._Element) -> None:
    signature = _signature(root)
    signature.getparent().remove(signature)  # type: ignore[union-attr]


#: The official SDK's placeholder (see ../shared/samples/real/edoc_new.edxml), in the package's
#: default namespace, or in no namespace at all.
_PLACEHOLDER = """<Signature xmlns="{namespace}"><SignedInfo>
  <CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>
  <SignatureMethod Algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1"/>
  <Reference URI=""><DigestValue>FwgIqsSYJshUS2+wlOM61L+q7Aw=</DigestValue></Reference>
</SignedInfo><SignatureValue>GbVb8n9+qFxz466Ag0sbpVdLPs2R0+9J</SignatureValue>
<KeyInfo><X509Data><X509SubjectName>CN=user05</X509SubjectName>
<X509Certificate>MIIFqTCCBJG</X509Certificate></X509Data></KeyInfo></Signature>"""


def _placeholder_signature(namespace: str) -> Mutation:
    def mutate(root: etree._Element) -> None:
        _remove_signature(root)
        _xml_header(root).append(etree.fromstring(_PLACEHOLDER.format(namespace=namespace)))

    return mutate


def _wrong_key(root: etree._Element) -> None:
    # A key that is not the one in KeyInfo's certificate (the receiving unit's, trusted CA).
    _resign(root, pki.unit(pki.RECEIVER).key, hashes.SHA256())


def _rsa_sha1(root: etree._Element) -> None:
    method = _one(root, ds("SignatureMethod"))
    method.set("Algorithm", ns.RSA_SHA1)
    _resign(root, pki.unit().key, hashes.SHA1())


def _attack(
    name: str,
    mutate: Mutation,
    error: type[VerificationError],
    code: str,
    *marks: pytest.MarkDecorator,
) -> object:
    return pytest.param(mutate, error, code, id=name, marks=marks)


ATTACKS = [
    _attack("header Subject changed", _change_subject, HeaderTampered, "SIGNED_HEADER_CHANGED"),
    _attack("Bussiness changed", _revoke_business, BusinessTampered, "SIGNED_BUSINESS_CHANGED"),
    _attack(
        "manifest AttachmentName changed",
        _rename_in_manifest,
        ManifestTampered,
        "SIGNED_MANIFEST_CHANGED",
    ),
    _attack(
        "one attachment byte flipped",
        _flip_attachment_byte,
        AttachmentTampered,
        "SIGNED_ATTACHMENT_CHANGED",
    ),
    # The attachments' own ContentIds are not signed; swapping them would pair each signed
    # manifest entry (name, type) with the other attachment's bytes.
    _attack(
        "attachment ContentIds swapped",
        _swap_content_ids,
        AttachmentTampered,
        "SIGNED_ATTACHMENT_CHANGED",
    ),
    # An attachment added with its manifest entry changes the signed manifest, and that reference
    # is checked (SignedInfo order: header, business, manifest, attachments) before the rule that
    # every attachment is signed: SIGNED_MANIFEST_CHANGED, not ATTACHMENT_NOT_SIGNED.
    _attack(
        "attachment added with a manifest entry",
        lambda root: _new_attachment(root, in_manifest=True),
        ManifestTampered,
        "SIGNED_MANIFEST_CHANGED",
    ),
    # Added without a manifest entry, the manifest still verifies: the rule that every attachment
    # is signed answers (the reader only notes ATTACHMENT_NOT_IN_MANIFEST).
    _attack(
        "attachment added, manifest untouched",
        lambda root: _new_attachment(root, in_manifest=False),
        AttachmentAdded,
        "ATTACHMENT_NOT_SIGNED",
    ),
    _attack(
        "attachment removed",
        _remove_attachment,
        AttachmentRemoved,
        "SIGNED_ATTACHMENT_MISSING",
    ),
    # The same verdict when the bytes are still there but no longer under the signed Id.
    _attack(
        "Id of a signed attachment removed",
        _strip_attachment_id,
        AttachmentRemoved,
        "SIGNED_ATTACHMENT_MISSING",
    ),
    _attack(
        "header moved into TraceHeaderList, copy without Id",
        _wrap("MessageHeader", "trace", copy_keeps_id=False),
        SignatureWrapping,
        "SIGNATURE_WRAPPING",
    ),
    _attack(
        "header moved into TraceHeaderList, copy with the same Id",
        _wrap("MessageHeader", "trace", copy_keeps_id=True),
        SignatureWrapping,
        "SIGNATURE_WRAPPING",
    ),
    _attack(
        "header moved into ds:Object, copy without Id",
        _wrap("MessageHeader", "object", copy_keeps_id=False),
        SignatureWrapping,
        "SIGNATURE_WRAPPING",
    ),
    _attack(
        "header moved into ds:Object, copy with the same Id",
        _wrap("MessageHeader", "object", copy_keeps_id=True),
        SignatureWrapping,
        "SIGNATURE_WRAPPING",
    ),
    _attack(
        "Bussiness moved into ds:Object, copy without Id",
        _wrap("Bussiness", "object", copy_keeps_id=False),
        SignatureWrapping,
        "SIGNATURE_WRAPPING",
    ),
    _attack(
        "manifest moved into TraceHeaderList, copy without Id",
        _wrap("edXMLManifest", "trace", copy_keeps_id=False),
        SignatureWrapping,
        "SIGNATURE_WRAPPING",
    ),
    _attack(
        "duplicate Id of the header",
        _duplicate_id("TraceHeader", "edxml-header"),
        SignatureWrapping,
        "SIGNATURE_WRAPPING",
    ),
    _attack(
        "duplicate Id of the manifest",
        _duplicate_id("edXMLBody", "edxml-manifest"),
        SignatureWrapping,
        "SIGNATURE_WRAPPING",
    ),
    _attack(
        "duplicate Id of an attachment",
        _duplicate_id("Attachment", "edxml-att-1"),
        SignatureWrapping,
        "SIGNATURE_WRAPPING",
    ),
    _attack("wrong key, original certificate", _wrong_key, SignatureInvalid, "SIGNATURE_INVALID"),
    _attack("RSA-SHA1", _rsa_sha1, AlgorithmNotAllowed, "SIGNATURE_ALGORITHM_NOT_ALLOWED"),
    _attack("signature removed", _remove_signature, SignatureMissing, "SIGNATURE_MISSING"),
    _attack(
        "SDK placeholder Signature (package namespace)",
        _placeholder_signature(ns.QCVN),
        SignatureMissing,
        "SIGNATURE_MISSING",
    ),
    _attack(
        "SDK placeholder Signature (no namespace)",
        _placeholder_signature(""),
        SignatureMissing,
        "SIGNATURE_MISSING",
    ),
]


@pytest.mark.parametrize(("mutate", "error", "code"), ATTACKS)
def test_attack_is_rejected_with_its_own_code(
    signed: bytes, mutate: Mutation, error: type[VerificationError], code: str
) -> None:
    _rejected(_tampered(signed, mutate), error, code)


def test_rsa_sha1_is_accepted_where_the_peer_is_configured_for_it(signed: bytes) -> None:
    data = _tampered(signed, _rsa_sha1)
    verified = _verify(data, pki.trust(allow_sha1=True))
    assert verified.algorithm == ns.RSA_SHA1
    assert verified.package.header == pki.sample_header()


@pytest.mark.parametrize(
    ("make_signer", "error", "code"),
    [
        pytest.param(
            lambda: pki.signer_for(pki.untrusted_unit()),
            CertificateUntrusted,
            "CERT_UNTRUSTED",
            id="certificate from another CA (same CA name)",
        ),
        pytest.param(
            lambda: pki.signer_for(pki.expired_unit()),
            CertificateExpired,
            "CERT_EXPIRED",
            id="expired certificate",
        ),
        pytest.param(
            lambda: pki.signer_for(pki.future_unit()),
            CertificateExpired,
            "CERT_EXPIRED",
            id="not yet valid certificate",
        ),
    ],
)
def test_signer_certificate_is_checked(
    make_signer: Callable[[], Signer], error: type[VerificationError], code: str
) -> None:
    _rejected(pki.build_signed(ATTACHMENTS, make_signer()), error, code)


def test_certificate_swapped_in_keyinfo_is_untrusted(signed: bytes) -> None:
    """KeyInfo is not signed: replacing its certificate by one from another CA is caught by the
    trust check before the signature value is even looked at."""
    pem = pki.untrusted_unit().cert_pem

    def swap(root: etree._Element) -> None:
        body = b"".join(pem.splitlines()[1:-1]).decode()
        _one(root, ds("X509Certificate")).text = body

    _rejected(_tampered(signed, swap), CertificateUntrusted, "CERT_UNTRUSTED")


def test_the_signer_is_reported_not_matched_with_from(signed: bytes) -> None:
    """A trusted CA vouches for every unit it certified: the receiving unit's valid certificate
    verifies a package whose From is the sending unit. Binding the signer to From/OrganId is the
    caller's job (pinned certificates per sender, or a check of ``signer``), so the identity is
    reported as it is."""
    forged = pki.build_signed(ATTACHMENTS, pki.signer(pki.RECEIVER))
    verified = _verify(forged)
    assert verified.package.header.from_.organ_id == pki.SENDER
    assert verified.signer.subject.startswith(f"CN={pki.RECEIVER},")
    sender_only = TrustPolicy(pinned=(pki.unit(pki.SENDER).certificate,))
    _rejected(forged, CertificateUntrusted, "CERT_UNTRUSTED", sender_only)
