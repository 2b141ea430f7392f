"""docgw's package signature is plain XML-DSig: independent implementations agree with it.

* docgw → xmlsec1: Debian's ``xmlsec1 --verify`` accepts docgw's packages, trusting the CA or a
  pinned unit certificate, and refuses tampered ones.
* xmlsec1 → docgw: a signature template with docgw's profile (envelopes/signing.py), signed by
  ``xmlsec1 --sign``, verifies in docgw, and its digests and signature value are byte for byte
  the ones docgw computes itself.
* signxml: ``XMLVerifier`` accepts docgw's packages (it resolves ``Id`` references and applies
  the base64 transform to attachments).

The xmlsec1 command lines are the ones for the docs; they run in a directory holding ``ca.pem``,
``unit.cert.pem`` and ``unit.key.pem``. Two flags matter besides the trust anchor:

* ``--id-attr:Id <namespace>:<element>``: edXML has no DTD, so xmlsec1 must be told which
  attribute is an ID on which element, or ``URI="#edxml-header"`` resolves to nothing.
* ``--enabled-key-data``: by default xmlsec1 1.2.x also takes a key from a ``ds:KeyValue`` that
  the document itself carries, and then trusts it whatever ``--trusted-pem`` or
  ``--pubkey-cert-pem`` say (measured with 1.2.37; see
  ``test_a_key_carried_in_the_document_is_not_trusted``). With the CA, only ``x509`` key data is
  enabled; with a pinned certificate, only ``key-name`` (the key comes from the file, nothing in
  KeyInfo is used). Never ``--insecure``: it trusts whatever certificate the sender embedded.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pki
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree
from signxml.exceptions import InvalidSignature
from signxml.verifier import SignatureConfiguration, XMLVerifier

from envelopes import namespaces as ns
from envelopes.errors import SignatureInvalid, SignatureMalformed, SignatureWrapping
from envelopes.model import DocumentPackage
from envelopes.namespaces import ds, q
from envelopes.reading import read_package
from envelopes.verification import VerifiedDocument, verify_document
from gateway.keystore import Issued

pytestmark = pytest.mark.interop

XMLSEC1 = shutil.which("xmlsec1")
needs_xmlsec1 = pytest.mark.skipif(
    XMLSEC1 is None,
    reason="xmlsec1 is not installed (Debian: apt-get install xmlsec1); it is the independent "
    "XML-DSig implementation these tests check docgw against",
)

ATTACHMENTS = {
    "Công văn 7816-VPCP-TTĐT.pdf": b"%PDF-1.7\nN\xe1\xbb\x99i dung c\xc3\xb4ng v\xc4\x83n\n"
    + bytes(range(256)) * 8,
    "Phụ lục.pdf": b"PK\x03\x04" + b"zip labelled as a PDF" * 50,  # sniffed as a zip
}
#: References in docgw's signature: header, Bussiness, manifest and one per attachment.
REFERENCES = 3 + len(ATTACHMENTS)

#: ``--id-attr:Id <namespace>:<element>`` for every element docgw's signature references.
ID_ATTRIBUTES: tuple[str, ...] = tuple(
    argument
    for element in ("MessageHeader", "Bussiness", "edXMLManifest", "ContentTransferEncoded")
    for argument in ("--id-attr:Id", f"{ns.QCVN}:{element}")
)
#: Trust the development CA; take the signer's certificate from KeyInfo/X509Data only.
TRUST_CA = ("--enabled-key-data", "x509", "--trusted-pem", "ca.pem")
#: Trust one unit's certificate as it is; nothing in KeyInfo is used.
PIN_UNIT = ("--enabled-key-data", "key-name", "--pubkey-cert-pem", "unit.cert.pem")
TRUST_MODES = [pytest.param(TRUST_CA, id="trusted CA"), pytest.param(PIN_UNIT, id="pinned cert")]

#: docgw's profile (envelopes/signing.py) as an xmlsec1 template: exclusive C14N, RSA-SHA256,
#: SHA-256 digests, references by Id, the base64 transform for attachments, empty values for
#: xmlsec1 to fill in, and an empty X509Certificate for the signer's certificate.
SIGNATURE_TEMPLATE = """\
<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>\
<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>\
<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>\
{references}</ds:SignedInfo><ds:SignatureValue/>\
<ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo></ds:Signature>"""
REFERENCE_TEMPLATE = """\
<ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="{transform}"/></ds:Transforms>\
<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/>\
</ds:Reference>"""
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
BASE64 = "http://www.w3.org/2000/09/xmldsig#base64"

Mutation = Callable[[etree._Element], None]


# --------------------------------------------------------------------------------------- helpers


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The trust material and the unit's key, as files xmlsec1 reads."""
    (tmp_path / "ca.pem").write_bytes(pki.dev_ca().cert_pem)
    (tmp_path / "unit.cert.pem").write_bytes(pki.unit().cert_pem)
    key = tmp_path / "unit.key.pem"
    key.touch(mode=0o600)
    key.write_bytes(pki.unit().key_pem)
    return tmp_path


@pytest.fixture
def built() -> tuple[bytes, DocumentPackage]:
    return pki.build_package(ATTACHMENTS, pki.signer())


def xmlsec1(workdir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    assert XMLSEC1 is not None
    return subprocess.run(
        [XMLSEC1, *arguments],
        cwd=workdir,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
        check=False,
    )


def xmlsec1_verify(
    workdir: Path, trust: Sequence[str], data: bytes, name: str = "package.edxml"
) -> subprocess.CompletedProcess[str]:
    """``xmlsec1 --verify <trust> <id attributes> FILE``."""
    (workdir / name).write_bytes(data)
    return xmlsec1(workdir, "--verify", *trust, *ID_ATTRIBUTES, name)


def assert_verified(result: subprocess.CompletedProcess[str]) -> None:
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "OK" in report.splitlines(), report
    assert f"SignedInfo References (ok/all): {REFERENCES}/{REFERENCES}" in report, report


def docgw_verify(data: bytes) -> VerifiedDocument:
    return verify_document(read_package(data), pki.trust())


def tampered(data: bytes, mutate: Mutation) -> bytes:
    root = etree.fromstring(data)
    mutate(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _first(root: etree._Element, tag: str) -> etree._Element:
    found = root.find(f".//{tag}")
    assert found is not None, tag
    return found


def _change_subject(root: etree._Element) -> None:
    _first(root, q("Subject")).text = "V/v hủy bỏ kết nối"


def _revoke(root: etree._Element) -> None:
    _first(root, q("BussinessDocType")).text = "1"


def _rename_attachment(root: etree._Element) -> None:
    _first(root, q("AttachmentName")).text = "Khác.pdf"


def _flip_attachment_byte(root: etree._Element) -> None:
    encoded = _first(root, q("ContentTransferEncoded"))
    content = bytearray(base64.b64decode(encoded.text or ""))
    content[-1] ^= 0x01
    encoded.text = base64.b64encode(bytes(content)).decode()


def signature_template(unsigned: bytes) -> bytes:
    """Insert docgw's profile as a template into an unsigned package, after TraceHeaderList."""
    root = etree.fromstring(unsigned)
    ids = [
        (_first(root, q("MessageHeader")).get("Id"), EXC_C14N),
        (_first(root, q("Bussiness")).get("Id"), EXC_C14N),
        (_first(root, q("edXMLManifest")).get("Id"), EXC_C14N),
        *((element.get("Id"), BASE64) for element in root.iter(q("ContentTransferEncoded"))),
    ]
    references = "".join(
        REFERENCE_TEMPLATE.format(id=element_id, transform=transform)
        for element_id, transform in ids
    )
    _first(root, q("TraceHeaderList")).addnext(
        etree.fromstring(SIGNATURE_TEMPLATE.format(references=references))
    )
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _signature_values(data: bytes) -> tuple[list[bytes], bytes]:
    """The decoded DigestValues (in order) and SignatureValue of a package."""
    root = etree.fromstring(data)
    digests = [base64.b64decode(d.text or "") for d in root.iter(ds("DigestValue"))]
    return digests, base64.b64decode(_first(root, ds("SignatureValue")).text or "")


# ------------------------------------------------------------------------------ docgw → xmlsec1


@needs_xmlsec1
@pytest.mark.parametrize("trust", TRUST_MODES)
def test_xmlsec1_verifies_a_docgw_package(
    workdir: Path, built: tuple[bytes, DocumentPackage], trust: Sequence[str]
) -> None:
    assert_verified(xmlsec1_verify(workdir, trust, built[0]))


@needs_xmlsec1
@pytest.mark.parametrize("trust", TRUST_MODES)
@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(_change_subject, id="header Subject"),
        pytest.param(_revoke, id="Bussiness"),
        pytest.param(_rename_attachment, id="manifest AttachmentName"),
        pytest.param(_flip_attachment_byte, id="attachment byte"),
    ],
)
def test_xmlsec1_refuses_a_tampered_docgw_package(
    workdir: Path, built: tuple[bytes, DocumentPackage], trust: Sequence[str], mutate: Mutation
) -> None:
    result = xmlsec1_verify(workdir, trust, tampered(built[0], mutate))
    assert result.returncode != 0, result.stderr
    assert "FAIL" in result.stderr.splitlines(), result.stderr


@needs_xmlsec1
@pytest.mark.parametrize(
    "issued",
    [
        pytest.param(pki.untrusted_unit, id="another CA"),
        pytest.param(pki.expired_unit, id="expired"),
        pytest.param(pki.future_unit, id="not yet valid"),
    ],
)
def test_xmlsec1_refuses_a_signer_the_ca_does_not_vouch_for(
    workdir: Path, issued: Callable[[], Issued]
) -> None:
    data = pki.build_signed(ATTACHMENTS, pki.signer_for(issued()))
    result = xmlsec1_verify(workdir, TRUST_CA, data)
    assert result.returncode != 0, result.stderr
    assert "certificate verification failed" in result.stderr, result.stderr


@needs_xmlsec1
def test_xmlsec1_pinned_cert_refuses_another_units_signature(workdir: Path) -> None:
    data = pki.build_signed(ATTACHMENTS, pki.signer(pki.RECEIVER))
    result = xmlsec1_verify(workdir, PIN_UNIT, data)
    assert result.returncode != 0, result.stderr


@needs_xmlsec1
def test_xmlsec1_pinned_cert_ignores_its_validity_period(workdir: Path) -> None:
    """``--pubkey-cert-pem`` only loads the public key: an expired pinned certificate still
    verifies in xmlsec1, while docgw refuses it (CERT_EXPIRED). Measured, for the docs."""
    expired = pki.expired_unit()
    (workdir / "unit.cert.pem").write_bytes(expired.cert_pem)
    data = pki.build_signed(ATTACHMENTS, pki.signer_for(expired))
    assert_verified(xmlsec1_verify(workdir, PIN_UNIT, data))


@needs_xmlsec1
@pytest.mark.parametrize("trust", TRUST_MODES)
def test_a_key_carried_in_the_document_is_not_trusted(
    workdir: Path, built: tuple[bytes, DocumentPackage], trust: Sequence[str]
) -> None:
    """A forger changes the header, signs with their own key and puts that key in KeyInfo as a
    ds:KeyValue. xmlsec1 1.2.37 without ``--enabled-key-data`` answers OK to this (with either
    trust option); the commands above refuse it, and so does docgw."""
    forger = pki.untrusted_unit().key

    def forge(root: etree._Element) -> None:
        _change_subject(root)
        header = _first(root, q("MessageHeader"))
        c14n = etree.tostring(header, method="c14n", exclusive=True, with_comments=False)
        digest = _first(root, ds("DigestValue"))  # the first reference is the header's
        digest.text = base64.b64encode(hashlib.sha256(c14n).digest()).decode()
        signed_info = _first(root, ds("SignedInfo"))
        c14n = etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False)
        value = forger.sign(c14n, padding.PKCS1v15(), hashes.SHA256())
        _first(root, ds("SignatureValue")).text = base64.b64encode(value).decode()
        numbers = forger.public_key().public_numbers()
        key_value = etree.Element(ds("KeyValue"))
        rsa_value = etree.SubElement(key_value, ds("RSAKeyValue"))
        for name, number in (("Modulus", numbers.n), ("Exponent", numbers.e)):
            raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
            etree.SubElement(rsa_value, ds(name)).text = base64.b64encode(raw).decode()
        _first(root, ds("KeyInfo")).insert(0, key_value)

    data = tampered(built[0], forge)
    result = xmlsec1_verify(workdir, trust, data)
    assert result.returncode != 0, result.stderr
    with pytest.raises(SignatureInvalid):
        docgw_verify(data)


@needs_xmlsec1
def test_xmlsec1_only_checks_references_docgw_also_checks_where_they_are(
    workdir: Path, built: tuple[bytes, DocumentPackage]
) -> None:
    """Signature wrapping: the signed MessageHeader moved into a ds:Object, a forged one without
    Id in its place. Every reference still verifies, so xmlsec1 says OK; a reader would read the
    forgery. docgw refuses it: "OK" from xmlsec1 is necessary, not sufficient."""

    def wrap(root: etree._Element) -> None:
        signed = _first(root, q("MessageHeader"))
        forged = etree.fromstring(etree.tostring(signed))
        del forged.attrib["Id"]
        _first(forged, q("Subject")).text = "GIẢ MẠO"
        signed.addprevious(forged)
        etree.SubElement(_first(root, ds("Signature")), ds("Object")).append(signed)

    data = tampered(built[0], wrap)
    assert_verified(xmlsec1_verify(workdir, TRUST_CA, data))
    with pytest.raises(SignatureWrapping):
        docgw_verify(data)


# ------------------------------------------------------------------------------ xmlsec1 → docgw


@needs_xmlsec1
def test_docgw_verifies_a_package_signed_by_xmlsec1(
    workdir: Path, built: tuple[bytes, DocumentPackage]
) -> None:
    unsigned, model = pki.build_package(ATTACHMENTS, None)
    (workdir / "tpl.xml").write_bytes(signature_template(unsigned))
    result = xmlsec1(
        workdir,
        "--sign",
        "--privkey-pem",
        "unit.key.pem,unit.cert.pem",
        *ID_ATTRIBUTES,
        "--output",
        "out.xml",
        "tpl.xml",
    )
    assert result.returncode == 0, result.stderr
    signed = (workdir / "out.xml").read_bytes()
    assert_verified(xmlsec1_verify(workdir, TRUST_CA, signed, "out-check.xml"))

    verified = docgw_verify(signed)
    assert verified.package == dataclasses.replace(model, traces=())
    assert verified.package.header == pki.sample_header()
    assert [a.sha256 for a in verified.package.attachments] == [
        hashlib.sha256(content).hexdigest() for content in ATTACHMENTS.values()
    ]
    assert verified.signer.serial_number == pki.unit().certificate.serial_number
    assert verified.algorithm == ns.RSA_SHA256

    # Same profile, same canonical SignedInfo: RSA PKCS#1 v1.5 is deterministic, so xmlsec1 and
    # docgw produce the very same digests and signature value over the same package.
    assert _signature_values(signed) == _signature_values(built[0])


# ------------------------------------------------------------------------------------- signxml


def test_signxml_verifies_a_docgw_package(
    tmp_path: Path, built: tuple[bytes, DocumentPackage]
) -> None:
    data, _ = built
    config = SignatureConfiguration(expect_references=REFERENCES)
    pinned = XMLVerifier().verify(
        data, x509_cert=pki.unit().cert_pem.decode(), expect_config=config
    )
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(pki.dev_ca().cert_pem)
    chained = XMLVerifier().verify(data, ca_pem_file=str(ca_file), expect_config=config)
    for results in (pinned, chained):
        assert isinstance(results, list) and len(results) == REFERENCES
        header, business, manifest, *attachments = results
        assert header.signed_xml is not None and business.signed_xml is not None
        assert header.signed_xml.findtext(q("Subject")) == pki.sample_header().subject
        assert business.signed_xml.tag == q("Bussiness")
        assert manifest.signed_xml is not None and manifest.signed_xml.tag == q("edXMLManifest")
        # The base64 transform: what is digested is each attachment's decoded bytes.
        assert [a.signed_data for a in attachments] == list(ATTACHMENTS.values())


def test_signxml_refuses_a_tampered_docgw_package(built: tuple[bytes, DocumentPackage]) -> None:
    config = SignatureConfiguration(expect_references=REFERENCES)
    for mutate in (_change_subject, _flip_attachment_byte):
        with pytest.raises(InvalidSignature):
            XMLVerifier().verify(
                tampered(built[0], mutate),
                x509_cert=pki.unit().cert_pem.decode(),
                expect_config=config,
            )


def test_docgw_refuses_keyinfo_without_a_certificate(built: tuple[bytes, DocumentPackage]) -> None:
    """docgw takes the signer only from X509Certificate: a KeyValue alone is not enough."""

    def only_key_value(root: etree._Element) -> None:
        key_info = _first(root, ds("KeyInfo"))
        for child in list(key_info):
            key_info.remove(child)
        etree.SubElement(etree.SubElement(key_info, ds("KeyValue")), ds("RSAKeyValue"))

    with pytest.raises(SignatureMalformed):
        docgw_verify(tampered(built[0], only_key_value))
