"""ASiC-E containers (ETSI EN 319 162-1) with a CAdES detached signature: proof of what was
exchanged that anyone can check without docgw (``unzip``, ``openssl cms -verify``, ``openssl ts
-verify``).

The container is a ZIP: ``mimetype`` first and stored (``application/vnd.etsi.asic-e+zip``), the
data objects, ``META-INF/ASiCManifest.xml`` naming each data object with its SHA-256, and
``META-INF/signature.p7s``: a detached CMS signature (SHA-256, the signer's certificate embedded)
over the manifest's bytes. Where a timestamp authority answered, ``META-INF/timestamp.tst`` is its
RFC 3161 token over the bytes of ``signature.p7s`` — kept beside the signature rather than inside
it as a CAdES unsigned attribute, so ``openssl ts -verify -data META-INF/signature.p7s`` checks
it as it is.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from lxml import etree

from envelopes.signing import Signer

MIMETYPE = "application/vnd.etsi.asic-e+zip"
ASIC_NS = "http://uri.etsi.org/02918/v1.2.1#"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
SHA256_URI = "http://www.w3.org/2001/04/xmlenc#sha256"
MANIFEST = "META-INF/ASiCManifest.xml"
SIGNATURE = "META-INF/signature.p7s"
TIMESTAMP = "META-INF/timestamp.tst"


@dataclass(frozen=True, kw_only=True)
class DataObject:
    """One file of the container: its path inside the ZIP, media type and bytes."""

    name: str
    media_type: str
    data: bytes


@dataclass(frozen=True, kw_only=True)
class SignedManifest:
    manifest: bytes
    signature: bytes


def manifest_xml(objects: Sequence[DataObject]) -> bytes:
    """The ASiCManifest: the signature it belongs to, and each data object's SHA-256."""
    nsmap = {"asic": ASIC_NS, "ds": DS_NS}
    root = etree.Element(f"{{{ASIC_NS}}}ASiCManifest", nsmap=nsmap)
    etree.SubElement(
        root,
        f"{{{ASIC_NS}}}SigReference",
        URI=SIGNATURE,
        MimeType="application/pkcs7-signature",
    )
    for item in objects:
        reference = etree.SubElement(
            root, f"{{{ASIC_NS}}}DataObjectReference", URI=item.name, MimeType=item.media_type
        )
        etree.SubElement(reference, f"{{{DS_NS}}}DigestMethod", Algorithm=SHA256_URI)
        digest = etree.SubElement(reference, f"{{{DS_NS}}}DigestValue")
        digest.text = base64.b64encode(hashlib.sha256(item.data).digest()).decode("ascii")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def sign_manifest(objects: Sequence[DataObject], signer: Signer) -> SignedManifest:
    manifest = manifest_xml(objects)
    builder = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(manifest)
        .add_signer(signer.certificate, signer.private_key, hashes.SHA256())
    )
    for certificate in signer.chain:
        builder = builder.add_certificate(certificate)
    signature = builder.sign(
        serialization.Encoding.DER,
        [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
    )
    return SignedManifest(manifest=manifest, signature=signature)


def write_container(
    objects: Sequence[DataObject], signed: SignedManifest, *, timestamp: bytes | None = None
) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        # ETSI: the first entry, stored, no extra field, so its bytes sit at a fixed offset.
        archive.writestr(zipfile.ZipInfo("mimetype"), MIMETYPE, compress_type=zipfile.ZIP_STORED)
        for item in objects:
            archive.writestr(item.name, item.data, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr(MANIFEST, signed.manifest, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr(SIGNATURE, signed.signature, compress_type=zipfile.ZIP_STORED)
        if timestamp is not None:
            archive.writestr(TIMESTAMP, timestamp, compress_type=zipfile.ZIP_STORED)
    return out.getvalue()
