"""PDFs for the documents' own signatures, made by the tests: laid out with ReportLab, signed with
pyHanko by the test PKI's keys (tests/pki.py), then changed the ways a verifier must tell apart.
Nothing here is written anywhere but memory or a test's tmp_path."""

from __future__ import annotations

import io
from collections.abc import Sequence

import pki  # tests/pki.py (tests/ is on sys.path through tests/conftest.py)
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization

from gateway.keystore import Issued


def plain_pdf(text: str = "Công văn số 7816/VPCP-TTĐT", *, pages: int = 1) -> bytes:
    """A small unsigned PDF (ReportLab)."""
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    page = canvas.Canvas(out)
    for number in range(pages):
        page.drawString(72, 720, f"{text} — trang {number + 1}")
        page.showPage()
    page.save()
    return out.getvalue()


def _asn1(issued: Issued) -> tuple[asn1_x509.Certificate, asn1_keys.PrivateKeyInfo]:
    cert = asn1_x509.Certificate.load(issued.certificate.public_bytes(serialization.Encoding.DER))
    key = asn1_keys.PrivateKeyInfo.load(
        issued.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


def timestamp_authority(ca: Issued) -> Issued:
    """A time-stamping authority's certificate issued by ``ca`` (extended key usage
    timeStamping, critical, as RFC 3161 requires). Not cached: each call makes a new key."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "docgw test TSA")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(key=key, certificate=certificate)


def sign(
    pdf: bytes, issued: Issued, *, field: str = "Signature1", tsa: Issued | None = None
) -> bytes:
    """``pdf`` signed (PAdES baseline B; B-T with a timestamp from ``tsa``) by ``issued`` in a
    new signature field ``field``, as an incremental update (an earlier signature stays
    valid)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    cert, key = _asn1(issued)
    ca = asn1_x509.Certificate.load(
        pki.dev_ca().certificate.public_bytes(serialization.Encoding.DER)
    )
    signer = signers.SimpleSigner(
        signing_cert=cert,
        signing_key=key,
        cert_registry=SimpleCertificateStore.from_certs([cert, ca]),
    )
    timestamper = None
    if tsa is not None:
        from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

        tsa_cert, tsa_key = _asn1(tsa)
        timestamper = DummyTimeStamper(tsa_cert=tsa_cert, tsa_key=tsa_key)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    meta = signers.PdfSignatureMetadata(field_name=field, subfilter=None)
    out = signers.sign_pdf(writer, meta, signer=signer, timestamper=timestamper)
    return bytes(out.getbuffer())


def change_page(signed: bytes, text: str = "ĐÃ SỬA SAU KHI KÝ") -> bytes:
    """An incremental update that replaces the first page's content: what a forger does."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(signed), strict=False)
    page_ref = writer.root["/Pages"]["/Kids"][0]
    page = page_ref.get_object()
    shown = text.encode("ascii", "replace")
    content = generic.StreamObject(stream_data=b"BT /F1 24 Tf 72 600 Td (" + shown + b") Tj ET")
    page["/Contents"] = writer.add_object(content)
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def add_annotation(signed: bytes, comment: str = "Đã xem") -> bytes:
    """An incremental update that only adds a comment (a text annotation) to the first page."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(signed), strict=False)
    page_ref = writer.root["/Pages"]["/Kids"][0]
    page = page_ref.get_object()
    annotation = generic.DictionaryObject(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/Annot"),
            generic.pdf_name("/Subtype"): generic.pdf_name("/Text"),
            generic.pdf_name("/Rect"): generic.ArrayObject(
                [generic.NumberObject(n) for n in (100, 100, 120, 120)]
            ),
            generic.pdf_name("/Contents"): generic.TextStringObject(comment),
            generic.pdf_name("/P"): page_ref,
        }
    )
    annotations = page.get("/Annots")
    refs: Sequence[generic.PdfObject] = list(annotations) if annotations is not None else []
    page["/Annots"] = generic.ArrayObject([*refs, writer.add_object(annotation)])
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def encrypted_pdf(password: str = "mật khẩu") -> bytes:
    """A PDF encrypted with a user password (ReportLab's standard encryption)."""
    from reportlab.lib import pdfencrypt
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    page = canvas.Canvas(out, encrypt=pdfencrypt.StandardEncryption(password, canPrint=0))
    page.drawString(72, 720, "Tài liệu mật")
    page.showPage()
    page.save()
    return out.getvalue()


def malformed_pdf() -> bytes:
    """A header, a signature dictionary's shape, and nothing a reader can follow."""
    return (
        b"%PDF-1.7\n1 0 obj << /Type /Sig /ByteRange [0 10 20 30] /Contents <00> >>\n"
        b"trailer << /Root 9 0 R >>\nstartxref\n999999\n%%EOF\n"
    )


def with_large_stream(pdf: bytes, size: int) -> bytes:
    """``pdf`` with an incompressible stream of ``size`` bytes referenced from its catalog (as an
    embedded scan would be), for the memory bound."""
    import os

    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    payload = generic.StreamObject(stream_data=os.urandom(size))
    writer.root[generic.pdf_name("/DocgwTestPayload")] = writer.add_object(payload)
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
