"""Development keys: a local CA and one signing certificate per unit code, kept in ``keys/``.

For development and tests only. Production signing keys and certificates come from the
government CA (Ban Cơ yếu Chính phủ); docgw then trusts that CA instead of this one.
Private keys are written with mode 0600 and are never committed (``keys/`` is ignored by git).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from envelopes.errors import GatewayError
from envelopes.unit_codes import parse_strict

CA_KEY = "ca.key.pem"
CA_CERT = "ca.cert.pem"


class KeystoreError(GatewayError):
    code = "KEYSTORE_ERROR"


@dataclass(frozen=True, kw_only=True)
class Issued:
    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "docgw development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def create_ca(*, days: int = 3650, now: dt.datetime | None = None) -> Issued:
    now = now or dt.datetime.now(dt.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = _name("docgw development CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key=key, certificate=cert)


def issue_unit_certificate(
    ca: Issued,
    unit_code: str,
    *,
    days: int = 730,
    now: dt.datetime | None = None,
    not_before: dt.datetime | None = None,
) -> Issued:
    """A signing (and key-encipherment, for sealing) certificate whose CN is the unit code."""
    parse_strict(unit_code, field="unit_code")
    now = now or dt.datetime.now(dt.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    start = not_before or now - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(unit_code))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _UNIT_KEY_USAGE,
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(_dns_label(unit_code))]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(key=key, certificate=cert)


#: A unit's key: it signs packages (and, non-repudiation, their documents) and opens the copies
#: sealed for it.
_UNIT_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=True,
    key_encipherment=True,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
_BOTH_TLS_ROLES = x509.ExtendedKeyUsage(
    [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
)


def _dns_label(unit_code: str) -> str:
    """A SAN for the unit (mutual TLS later): ``000.00.00.G22`` → ``000-00-00-g22.unit.docgw``."""
    return unit_code.lower().replace(".", "-") + ".unit.docgw"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def init_keys(directory: Path, unit_codes: list[str], *, force: bool = False) -> list[Path]:
    """Create the development CA (unless present) and a certificate per unit; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    ca_key, ca_cert = directory / CA_KEY, directory / CA_CERT
    if ca_key.exists() and ca_cert.exists() and not force:
        ca = load_issued(ca_key, ca_cert)
    else:
        ca = create_ca()
        _write_private(ca_key, ca.key_pem)
        ca_cert.write_bytes(ca.cert_pem)
        written += [ca_key, ca_cert]
    for code in unit_codes:
        key_path, cert_path = unit_paths(directory, code)
        if key_path.exists() and cert_path.exists() and not force:
            continue
        issued = issue_unit_certificate(ca, code)
        _write_private(key_path, issued.key_pem)
        cert_path.write_bytes(issued.cert_pem)
        written += [key_path, cert_path]
    return written


def unit_paths(directory: Path, unit_code: str) -> tuple[Path, Path]:
    return directory / f"{unit_code}.key.pem", directory / f"{unit_code}.cert.pem"


def load_issued(key_path: Path, cert_path: Path) -> Issued:
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise KeystoreError(f"cannot load {key_path} / {cert_path}: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeystoreError(f"{key_path} is not an RSA key")
    return Issued(key=key, certificate=cert)


@dataclass(frozen=True, kw_only=True)
class KeyEntry:
    path: Path
    subject: str
    not_after: dt.datetime
    is_ca: bool
    has_private_key: bool


def list_keys(directory: Path) -> list[KeyEntry]:
    entries = []
    for cert_path in sorted(directory.glob("*.cert.pem")):
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except ValueError as exc:
            raise KeystoreError(f"{cert_path} is not a PEM certificate: {exc}") from exc
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        key_path = cert_path.with_name(cert_path.name.replace(".cert.pem", ".key.pem"))
        entries.append(
            KeyEntry(
                path=cert_path,
                subject=cert.subject.rfc4514_string(),
                not_after=cert.not_valid_after_utc,
                is_ca=is_ca,
                has_private_key=key_path.exists(),
            )
        )
    return entries


# ------------------------------------------------------------------------------ our own keys


def pending_paths(directory: Path, unit_code: str) -> tuple[Path, Path]:
    """The new key ``docgw keys rotate`` made and its certificate request, awaiting the CA."""
    return directory / f"{unit_code}.next.key.pem", directory / f"{unit_code}.next.csr.pem"


def previous_paths(directory: Path, unit_code: str) -> tuple[Path, Path]:
    """The key and certificate ``docgw keys install`` replaced: kept so that copies sealed for
    the old certificate still open during the overlap."""
    return directory / f"{unit_code}.previous.key.pem", directory / f"{unit_code}.previous.cert.pem"


def rotate(directory: Path, unit_code: str, *, key_size: int = 3072) -> tuple[Path, Path]:
    """A new signing key for ``unit_code`` (mode 0600) and a certificate request (CSR) for the
    CA, subject and extensions taken from the current certificate where there is one. The key
    signs nothing until :func:`install` puts the issued certificate beside it. Returns (key, CSR).
    """
    parse_strict(unit_code, field="unit_code")
    directory.mkdir(parents=True, exist_ok=True)
    _, cert_path = unit_paths(directory, unit_code)
    subject = _name(unit_code)
    if cert_path.exists():
        try:
            subject = x509.load_pem_x509_certificate(cert_path.read_bytes()).subject
        except ValueError as exc:
            raise KeystoreError(f"{cert_path} is not a PEM certificate: {exc}") from exc
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(
            _UNIT_KEY_USAGE,
            critical=True,
        )
        .add_extension(_BOTH_TLS_ROLES, critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(_dns_label(unit_code))]), False)
        .sign(key, hashes.SHA256())
    )
    key_path, csr_path = pending_paths(directory, unit_code)
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return key_path, csr_path


def check_issued_for_pending(directory: Path, unit_code: str, cert_pem: bytes) -> x509.Certificate:
    """The issued certificate, when it certifies the pending key ``rotate`` made."""
    key_path, _ = pending_paths(directory, unit_code)
    if not key_path.exists():
        raise KeystoreError(
            f"no pending key for {unit_code} ({key_path}): run `docgw keys rotate` first"
        )
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except ValueError as exc:
        raise KeystoreError(f"cannot read the certificate or the pending key: {exc}") from exc
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(
        serialization.Encoding.DER, public
    ) != key.public_key().public_bytes(serialization.Encoding.DER, public):
        raise KeystoreError(
            f"the certificate does not certify the pending key of {unit_code} ({key_path})"
        )
    return cert


def install(directory: Path, unit_code: str, cert_pem: bytes) -> Path:
    """Make the pending key and its issued certificate ``unit_code``'s signing pair; the pair it
    replaces becomes the previous one (:func:`previous_paths`). Returns the certificate's path."""
    check_issued_for_pending(directory, unit_code, cert_pem)
    key_path, cert_path = unit_paths(directory, unit_code)
    next_key, csr_path = pending_paths(directory, unit_code)
    old_key, old_cert = previous_paths(directory, unit_code)
    if key_path.exists() and cert_path.exists():
        _write_private(old_key, key_path.read_bytes())
        old_cert.write_bytes(cert_path.read_bytes())
    _write_private(key_path, next_key.read_bytes())
    cert_path.write_bytes(cert_pem)
    next_key.unlink()
    csr_path.unlink(missing_ok=True)
    return cert_path
