"""docgw's XML-DSig signature for edXML packages: what is signed, how, and how it is verified.

What the signature covers, and why
----------------------------------
The axis appends its own ``TraceHeader`` entries while relaying a package, so a signature over the
whole document (the official SDK's ``Reference URI=""``) breaks in transit. docgw signs, by ``Id``:

* ``MessageHeader``      (``#edxml-header``)    exclusive C14N
* ``Bussiness``          (``#edxml-business``)  exclusive C14N, when present
* ``edXMLManifest``      (``#edxml-manifest``)  exclusive C14N: names and types of the attachments
* each ``ContentTransferEncoded`` (``#edxml-att-N``) with the standard base64 transform, so the
  DigestValue is the SHA-256 of the attachment's decoded bytes.

The ``ds:Signature`` element stands in ``edXMLHeader`` after ``TraceHeaderList``, as the SDK places
its own. Signatures are RSA-SHA256 with the X.509 certificate (and any intermediates) in KeyInfo.
It is plain XML-DSig: Debian's ``xmlsec1 --verify`` checks it (see docs/reference/signature.md).

Why not signxml for this
------------------------
signxml's signer has no way to sign an attachment as a stream (its base64 support needs the whole
text in memory, and its verifier copies the whole document once per reference: about 5.6× the
package at peak). This profile is narrow on purpose — fixed algorithms, Id references with exactly
the transforms above, nothing else — so the verifier below stays small; digests of attachments come
from the streaming reader, and the tests check the result with both xmlsec1 and signxml.

Verification returns a :class:`VerifiedDocument` / :class:`VerifiedStatus` built only from what
was signed; they cannot be constructed elsewhere.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import verification
from lxml import etree

from envelopes import namespaces as ns
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
    SignatureMalformed,
    SignatureMissing,
    SignatureWrapping,
    SigningError,
    VerificationError,
)
from envelopes.namespaces import ds, q

HEADER_ID = "edxml-header"
BUSINESS_ID = "edxml-business"
MANIFEST_ID = "edxml-manifest"
ATTACHMENT_ID_PREFIX = "edxml-att-"
BASE64_TRANSFORM = "http://www.w3.org/2000/09/xmldsig#base64"

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    ns.RSA_SHA256: hashes.SHA256,
    ns.RSA_SHA1: hashes.SHA1,
    ns.SHA256: hashes.SHA256,
    ns.SHA1: hashes.SHA1,
}


def attachment_id(index: int) -> str:
    """The Id of the N-th (1-based) attachment's ContentTransferEncoded element."""
    return f"{ATTACHMENT_ID_PREFIX}{index}"


@dataclass(frozen=True, kw_only=True)
class Signer:
    """A unit's signing key and certificate (plus intermediates to embed)."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    @functools.cached_property
    def key_info_certificates(self) -> tuple[str, ...]:
        """The base64 DER of the certificate and its chain, as KeyInfo carries them (computed
        once per signer: a unit signs every package with the same ones)."""
        return tuple(
            base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
            for cert in (self.certificate, *self.chain)
        )

    @classmethod
    def from_pem(cls, key_pem: bytes, cert_pem: bytes, password: bytes | None = None) -> Signer:
        try:
            key = serialization.load_pem_private_key(key_pem, password=password)
            certs = x509.load_pem_x509_certificates(cert_pem)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise SigningError(f"unusable key or certificate: {exc}") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise SigningError("only RSA keys are supported for package signatures")
        if certs[0].public_key().public_numbers() != key.public_key().public_numbers():  # type: ignore[union-attr]
            raise SigningError("the certificate does not belong to the private key")
        return cls(private_key=key, certificate=certs[0], chain=tuple(certs[1:]))


@dataclass(frozen=True, kw_only=True)
class TrustPolicy:
    """What a verifier accepts.

    ``anchors`` are CA certificates; ``pinned`` are end-entity certificates trusted as they are
    (a unit's registered certificate). RSA-SHA1 is accepted only where a peer is configured for it.
    """

    anchors: tuple[x509.Certificate, ...] = ()
    pinned: tuple[x509.Certificate, ...] = ()
    allow_sha1: bool = False
    at: dt.datetime | None = None  # verification time; now when None

    def __post_init__(self) -> None:
        if not self.anchors and not self.pinned:
            raise ValueError("a TrustPolicy needs at least one anchor or pinned certificate")

    @classmethod
    def from_pem(cls, pem: bytes, *, allow_sha1: bool = False) -> TrustPolicy:
        """Trust the certificates in a PEM bundle: CAs as anchors, the others pinned."""
        certs = x509.load_pem_x509_certificates(pem)
        anchors = tuple(c for c in certs if _is_ca(c))
        pinned = tuple(c for c in certs if not _is_ca(c))
        return cls(anchors=anchors, pinned=pinned, allow_sha1=allow_sha1)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


@dataclass(frozen=True, kw_only=True)
class SignerIdentity:
    subject: str
    issuer: str
    serial_number: int
    fingerprint_sha256: str
    not_after: dt.datetime

    @classmethod
    def of(cls, cert: x509.Certificate) -> SignerIdentity:
        # A peer signs many packages with one certificate: describe each certificate once.
        return _identity_of(cert.public_bytes(serialization.Encoding.DER))

    @classmethod
    def _describe(cls, cert: x509.Certificate) -> SignerIdentity:
        return cls(
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            serial_number=cert.serial_number,
            fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
            not_after=cert.not_valid_after_utc,
        )


@functools.lru_cache(maxsize=256)
def _identity_of(der: bytes) -> SignerIdentity:
    return SignerIdentity._describe(x509.load_der_x509_certificate(der))


# --------------------------------------------------------------------------------------- signing


def _c14n(element: etree._Element) -> bytes:
    canonical: bytes = etree.tostring(element, method="c14n", exclusive=True, with_comments=False)
    return canonical


def _reference(signed_info: etree._Element, uri: str, transform: str, digest: bytes) -> None:
    reference = etree.SubElement(signed_info, ds("Reference"), URI=f"#{uri}")
    transforms = etree.SubElement(reference, ds("Transforms"))
    etree.SubElement(transforms, ds("Transform"), Algorithm=transform)
    etree.SubElement(reference, ds("DigestMethod"), Algorithm=ns.SHA256)
    etree.SubElement(reference, ds("DigestValue")).text = base64.b64encode(digest).decode()


def sign(root: etree._Element, signer: Signer, *, attachment_digests: Mapping[str, bytes]) -> None:
    """Add docgw's signature to a built skeleton, in place.

    ``attachment_digests`` maps each attachment element Id to the SHA-256 of its decoded bytes
    (computed while streaming, so the attachment never needs to be in the tree).
    """
    xml_header = root.find(f"{q('edXMLEnvelope')}/{q('edXMLHeader')}")
    if xml_header is None:
        raise SigningError("no edXMLEnvelope/edXMLHeader to sign")
    signature = etree.SubElement(xml_header, ds("Signature"), nsmap={"ds": ns.DSIG})
    signed_info = etree.SubElement(signature, ds("SignedInfo"))
    etree.SubElement(signed_info, ds("CanonicalizationMethod"), Algorithm=ns.EXC_C14N)
    etree.SubElement(signed_info, ds("SignatureMethod"), Algorithm=ns.RSA_SHA256)
    ids = _ids(root)
    for element_id in (HEADER_ID, BUSINESS_ID, MANIFEST_ID):
        for element in ids.get(element_id, [])[:1]:
            _reference(
                signed_info, element_id, ns.EXC_C14N, hashlib.sha256(_c14n(element)).digest()
            )
    for element_id, digest in attachment_digests.items():
        _reference(signed_info, element_id, BASE64_TRANSFORM, digest)
    value = signer.private_key.sign(_c14n(signed_info), padding.PKCS1v15(), hashes.SHA256())
    etree.SubElement(signature, ds("SignatureValue")).text = base64.b64encode(value).decode()
    x509_data = etree.SubElement(etree.SubElement(signature, ds("KeyInfo")), ds("X509Data"))
    for encoded in signer.key_info_certificates:
        etree.SubElement(x509_data, ds("X509Certificate")).text = encoded


# ---------------------------------------------------------------------------------- verification


@dataclass(frozen=True, kw_only=True)
class SignedReferences:
    """What a valid signature vouches for: the signed elements and the signer."""

    elements: Mapping[str, etree._Element]  # Id → the signed element (header, business, manifest)
    attachment_ids: tuple[str, ...]  # in signed order
    signer: SignerIdentity
    algorithm: str


_EXPECTED_PARENT = {
    HEADER_ID: (q("MessageHeader"), q("edXMLHeader")),
    BUSINESS_ID: (q("Bussiness"), q("TraceHeaderList")),
    MANIFEST_ID: (q("edXMLManifest"), q("edXMLBody")),
}
_TAMPERED: dict[str, type[VerificationError]] = {
    HEADER_ID: HeaderTampered,
    BUSINESS_ID: BusinessTampered,
    MANIFEST_ID: ManifestTampered,
}


def _one(parent: etree._Element, tag: str, what: str) -> etree._Element:
    found = parent.findall(tag)
    if len(found) != 1:
        raise SignatureMalformed(f"expected one {what}, found {len(found)}", element=what)
    return found[0]


def _find_signature(root: etree._Element) -> etree._Element:
    signatures = root.findall(f".//{ds('Signature')}")
    expected_parent = root.find(f"{q('edXMLEnvelope')}/{q('edXMLHeader')}")
    if not signatures:
        if root.findall(f".//{q('Signature')}") or root.findall(".//Signature"):
            raise SignatureMissing(
                "the Signature element is not in the XML-DSig namespace (the SDK's placeholder); "
                "the package is unsigned",
                element="edXMLHeader/Signature",
            )
        raise SignatureMissing("the package carries no XML-DSig signature")
    if len(signatures) > 1 or signatures[0].getparent() is not expected_parent:
        raise SignatureWrapping(
            "a ds:Signature stands outside edXMLEnvelope/edXMLHeader or is repeated",
            element="Signature",
        )
    return signatures[0]


def _signer_certificate(
    signature: etree._Element,
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    texts = signature.findall(f"{ds('KeyInfo')}/{ds('X509Data')}/{ds('X509Certificate')}")
    if not texts:
        raise SignatureMalformed("no X509Certificate in KeyInfo", element="KeyInfo")
    try:
        certs = [x509.load_der_x509_certificate(base64.b64decode(t.text or "")) for t in texts]
    except ValueError as exc:
        raise SignatureMalformed(f"unreadable X509Certificate: {exc}", element="KeyInfo") from exc
    return certs[0], certs[1:]


def _check_trust(cert: x509.Certificate, chain: list[x509.Certificate], trust: TrustPolicy) -> None:
    at = trust.at or dt.datetime.now(dt.UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise CertificateExpired(
            f"certificate {cert.subject.rfc4514_string()} is valid from "
            f"{cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d}, "
            f"not at {at:%Y-%m-%d %H:%M}"
        )
    if any(cert == pinned for pinned in trust.pinned):
        return
    if not trust.anchors:
        raise CertificateUntrusted(f"certificate {cert.subject.rfc4514_string()} is not trusted")
    builder = (
        verification.PolicyBuilder()
        .store(verification.Store(list(trust.anchors)))
        .time(at)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
    )
    try:
        builder.build_client_verifier().verify(cert, chain)
    except verification.VerificationError as exc:
        raise CertificateUntrusted(
            f"certificate {cert.subject.rfc4514_string()} does not chain to a trusted CA: {exc}"
        ) from exc


def _algorithm(element: etree._Element, child: str, allowed: Sequence[str]) -> str:
    found = element.find(ds(child))
    algorithm = found.get("Algorithm", "") if found is not None else ""
    if algorithm not in allowed:
        raise AlgorithmNotAllowed(f"{child} {algorithm or '(none)'} is not allowed", element=child)
    return algorithm


def verify_signature(root: etree._Element, trust: TrustPolicy) -> SignedReferences:
    """Check the signature, the certificate and every non-attachment digest of a skeleton.

    Attachment digests are returned for the caller to compare with the streamed ones; everything
    else that could be wrong raises a VerificationError subclass with its own code.
    """
    signature = _find_signature(root)
    signed_info = _one(signature, ds("SignedInfo"), "SignedInfo")
    signature_methods = (ns.RSA_SHA256, ns.RSA_SHA1) if trust.allow_sha1 else (ns.RSA_SHA256,)
    digest_methods = (ns.SHA256, ns.SHA1) if trust.allow_sha1 else (ns.SHA256,)
    _algorithm(signed_info, "CanonicalizationMethod", (ns.EXC_C14N,))
    method = _algorithm(signed_info, "SignatureMethod", signature_methods)
    cert, chain = _signer_certificate(signature)
    _check_trust(cert, chain, trust)
    _check_signature_value(signature, signed_info, cert, method)
    elements: dict[str, etree._Element] = {}
    attachment_ids: list[str] = []
    ids = _ids(root)
    for reference in signed_info.findall(ds("Reference")):
        element_id, transform, digest_method, expected = _read_reference(reference, digest_methods)
        target = _resolve(ids, element_id)
        if element_id in elements or element_id in attachment_ids:
            raise SignatureMalformed(f"#{element_id} is referenced twice", element="Reference")
        if element_id.startswith(ATTACHMENT_ID_PREFIX):
            _require(transform == BASE64_TRANSFORM, f"#{element_id} must use the base64 transform")
            if digest_method != ns.SHA256:  # streamed digests are SHA-256, whatever the policy
                raise AlgorithmNotAllowed(
                    f"#{element_id}: attachments are digested with SHA-256 only",
                    element="DigestMethod",
                )
            _check_attachment_place(target, element_id)
            attachment_ids.append(element_id)
            continue
        if element_id not in _EXPECTED_PARENT:
            raise SignatureMalformed(f"unexpected reference #{element_id}", element="Reference")
        _require(transform == ns.EXC_C14N, f"#{element_id} must use exclusive C14N")
        _check_place(root, target, element_id)
        actual = hashlib.new(_HASHES[digest_method]().name, _c14n(target)).digest()
        if actual != expected:
            raise _TAMPERED[element_id](f"the signed {target.tag.split('}')[1]} was changed")
        elements[element_id] = target
    _require_everything_signed(root, elements, attachment_ids)
    return SignedReferences(
        elements=elements,
        attachment_ids=tuple(attachment_ids),
        signer=SignerIdentity.of(cert),
        algorithm=method,
    )


def attachment_digests(root: etree._Element) -> dict[str, tuple[str, bytes]]:
    """Id → (digest method, expected digest) of the signed attachments (no checks of their own)."""
    signature = _find_signature(root)
    result = {}
    for reference in signature.findall(f"{ds('SignedInfo')}/{ds('Reference')}"):
        uri = reference.get("URI", "")
        if uri.startswith(f"#{ATTACHMENT_ID_PREFIX}"):
            method = reference.find(ds("DigestMethod"))
            value = reference.find(ds("DigestValue"))
            result[uri[1:]] = (
                method.get("Algorithm", "") if method is not None else "",
                base64.b64decode((value.text or "") if value is not None else ""),
            )
    return result


def check_attachment_digest(element_id: str, expected: bytes, sha256: bytes) -> None:
    if expected != sha256:
        raise AttachmentTampered(f"the bytes of attachment #{element_id} were changed")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise SignatureMalformed(message, element="Reference")


def _check_signature_value(
    signature: etree._Element, signed_info: etree._Element, cert: x509.Certificate, method: str
) -> None:
    value_element = _one(signature, ds("SignatureValue"), "SignatureValue")
    try:
        value = base64.b64decode(value_element.text or "", validate=False)
    except ValueError as exc:
        raise SignatureMalformed("SignatureValue is not base64", element="SignatureValue") from exc
    public_key = cert.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise AlgorithmNotAllowed("only RSA signing keys are accepted", element="KeyInfo")
    try:
        public_key.verify(value, _c14n(signed_info), padding.PKCS1v15(), _HASHES[method]())
    except InvalidSignature as exc:
        raise SignatureInvalid(
            "the signature does not verify with the certificate in KeyInfo (wrong key, or "
            "SignedInfo was changed)"
        ) from exc


def _read_reference(
    reference: etree._Element, digest_methods: Sequence[str]
) -> tuple[str, str, str, bytes]:
    uri = reference.get("URI", "")
    if not uri.startswith("#") or len(uri) < 2:
        raise SignatureMalformed(
            f"reference URI {uri!r} is not a same-document Id reference (a whole-document "
            "signature breaks when the axis appends trace entries, so it is not accepted)",
            element="Reference",
        )
    transforms = reference.findall(f"{ds('Transforms')}/{ds('Transform')}")
    if len(transforms) != 1:
        raise SignatureMalformed(f"{uri} must have exactly one transform", element="Reference")
    digest_method = _algorithm(reference, "DigestMethod", digest_methods)
    value = reference.find(ds("DigestValue"))
    try:
        expected = base64.b64decode((value.text or "") if value is not None else "")
    except ValueError as exc:
        raise SignatureMalformed(f"{uri} DigestValue is not base64", element="Reference") from exc
    return uri[1:], transforms[0].get("Algorithm", ""), digest_method, expected


def _ids(root: etree._Element) -> dict[str, list[etree._Element]]:
    """Every element carrying an Id, by Id (one pass over the skeleton)."""
    index: dict[str, list[etree._Element]] = {}
    for element in root.iter():
        element_id = element.get("Id")
        if element_id is not None:
            index.setdefault(element_id, []).append(element)
    return index


def _resolve(ids: dict[str, list[etree._Element]], element_id: str) -> etree._Element:
    matches = ids.get(element_id, [])
    if not matches:
        if element_id.startswith(ATTACHMENT_ID_PREFIX):
            raise AttachmentRemoved(f"the signed attachment #{element_id} is missing")
        raise _TAMPERED.get(element_id, SignatureMalformed)(
            f"the signed element #{element_id} is missing"
        )
    if len(matches) > 1:
        raise SignatureWrapping(f"{len(matches)} elements carry Id {element_id!r}")
    return matches[0]


def _check_place(root: etree._Element, target: etree._Element, element_id: str) -> None:
    """The signed element must be the one a reader reads: wrapping attacks move it elsewhere."""
    tag, parent_tag = _EXPECTED_PARENT[element_id]
    parent = target.getparent()
    if target.tag != tag or parent is None or parent.tag != parent_tag:
        raise SignatureWrapping(f"#{element_id} is not where a reader would look for it")
    if len(root.findall(f".//{tag}")) != 1:
        raise SignatureWrapping(f"more than one {tag.split('}')[1]} in the package")


def _check_attachment_place(target: etree._Element, element_id: str) -> None:
    attachment = target.getparent()
    encoded = attachment.getparent() if attachment is not None else None
    if (
        target.tag != q("ContentTransferEncoded")
        or attachment is None
        or attachment.tag != q("Attachment")
        or encoded is None
        or encoded.tag != q("AttachmentEncoded")
    ):
        raise SignatureWrapping(f"#{element_id} is not an attachment's ContentTransferEncoded")


def _require_everything_signed(
    root: etree._Element, elements: Mapping[str, etree._Element], attachment_ids: Sequence[str]
) -> None:
    if HEADER_ID not in elements:
        raise HeaderTampered("the MessageHeader is not signed")
    if root.find(f".//{q('Bussiness')}") is not None and BUSINESS_ID not in elements:
        raise BusinessTampered("the Bussiness block is not signed")
    manifest = root.find(f".//{q('edXMLManifest')}")
    if manifest is not None and len(manifest) and MANIFEST_ID not in elements:
        raise ManifestTampered("the edXMLManifest is not signed")
    signed = set(attachment_ids)
    for content in root.iterfind(f"{q('AttachmentEncoded')}/{q('Attachment')}"):
        encoded = content.find(q("ContentTransferEncoded"))
        if encoded is None or encoded.get("Id") not in signed:
            raise AttachmentAdded("an attachment is not covered by the signature")


@dataclass(frozen=True, kw_only=True)
class _Seal:
    """Only this module can make one; it marks objects built from verified data."""


_VERIFIED = _Seal()


@dataclass(frozen=True, kw_only=True)
class VerifiedBase:
    signer: SignerIdentity
    algorithm: str
    _seal: _Seal = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._seal is not _VERIFIED:
            raise TypeError(f"{type(self).__name__} is only made by envelopes.verification")


def seal_token() -> _Seal:
    """For envelopes.verification alone: the token that makes a Verified* object."""
    return _VERIFIED
