"""Units' certificates over their life: what an uploaded certificate must meet, the CRLs docgw
holds and applies, and the expiry list.

An upload (``docgw units add --cert``, ``POST /api/v1/units``, a unit request and its approval)
is refused with its own code, naming the field: a key too weak or of a kind docgw does not take
(``CERT_KEY_TOO_WEAK``), a key usage that does not allow signing (``CERT_KEY_USAGE``: neither
digitalSignature nor nonRepudiation), expired (``CERT_EXPIRED``) or not yet valid
(``CERT_NOT_YET_VALID``), not issued by a configured trust anchor (``CERT_UNTRUSTED``, only where
``keys.trust_anchors`` names one), or listed by a CRL docgw holds (``CERT_REVOKED``).

CRLs come from ``[certificates] crl_dir``, ``crl_urls`` and, where allowed, the distribution
points of registered certificates; :func:`refresh_crls` (the ``crls`` job, ``docgw units crls
refresh``) stores the latest of each source and revokes every registered certificate a CRL
lists — the registry's one revocation (``unit_certificates.revoked_at``), so a CRL-revoked
certificate stops verifying and sealing exactly as one an operator revoked, and the unit shows
why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy.ext.asyncio import AsyncConnection

from envelopes.errors import GatewayError
from gateway.settings import Settings
from gateway.store import certificates as store
from gateway.store.records import CertificateRecord
from gateway.usecases.errors import NotFound
from gateway.usecases.packages import load_certificate, overlap
from gateway.usecases.ports import StoreAndConfig

log = logging.getLogger("docgw.certificates")

#: A CRL larger than this is refused (a government CA's full CRL is a few MB at most).
MAX_CRL_BYTES = 32 << 20


class CertificateKeyTooWeak(GatewayError):
    code = "CERT_KEY_TOO_WEAK"


class CertificateKeyUsage(GatewayError):
    code = "CERT_KEY_USAGE"


class CertificateExpired(GatewayError):
    code = "CERT_EXPIRED"


class CertificateNotYetValid(GatewayError):
    code = "CERT_NOT_YET_VALID"


class CertificateUntrusted(GatewayError):
    code = "CERT_UNTRUSTED"


class CertificateRevoked(GatewayError):
    code = "CERT_REVOKED"


class CrlInvalid(GatewayError):
    code = "CRL_INVALID"


# ------------------------------------------------------------------------------------ uploads


def check_key(settings: Settings, cert: x509.Certificate, *, element: str) -> None:
    """RSA of at least ``min_rsa_bits``, or EC on one of ``ec_curves``; nothing else."""
    rules = settings.certificates
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < rules.min_rsa_bits:
            raise CertificateKeyTooWeak(
                f"khoá RSA {key.key_size} bit — an RSA key of {key.key_size} bits "
                f"(at least {rules.min_rsa_bits})",
                element=element,
            )
        return
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in rules.ec_curves:
            raise CertificateKeyTooWeak(
                f"an EC key on {key.curve.name} (allowed: {', '.join(rules.ec_curves)})",
                element=element,
            )
        return
    raise CertificateKeyTooWeak(
        f"a {type(key).__name__} key: docgw takes RSA or EC keys", element=element
    )


def check_key_usage(cert: x509.Certificate, *, element: str) -> None:
    """Signing needs digitalSignature or nonRepudiation (contentCommitment), sealing
    keyEncipherment or keyAgreement. A certificate without the extension is refused too: a unit's
    certificate from a CA always has it."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise CertificateKeyUsage(
            "không có Key Usage — the certificate has no key usage extension (signing needs "
            "digitalSignature or nonRepudiation)",
            element=element,
        ) from None
    if not (usage.digital_signature or usage.content_commitment):
        raise CertificateKeyUsage(
            "the key usage allows neither digitalSignature nor nonRepudiation: it cannot sign",
            element=element,
        )
    # A unit's one certificate also receives its classified copies, sealed for its key.
    if not (usage.key_encipherment or usage.key_agreement):
        raise CertificateKeyUsage(
            "the key usage allows neither keyEncipherment nor keyAgreement: a classified copy "
            "cannot be sealed for it",
            element=element,
        )


def check_dates(cert: x509.Certificate, now: dt.datetime, *, element: str) -> None:
    if cert.not_valid_after_utc <= now:
        raise CertificateExpired(
            f"hết hạn — expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC", element=element
        )
    if cert.not_valid_before_utc > now:
        raise CertificateNotYetValid(
            f"chưa có hiệu lực — valid only from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
            element=element,
        )


def trust_anchors(settings: Settings) -> list[x509.Certificate]:
    """The CA certificates of ``keys.trust_anchors`` (each file may hold several; intermediate
    CAs among them complete a chain)."""
    found: list[x509.Certificate] = []
    for path in settings.keys.trust_anchors:
        try:
            found += x509.load_pem_x509_certificates(settings.resolve(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise GatewayError(
                f"keys.trust_anchors: cannot read {path}: {exc}", element="keys.trust_anchors"
            ) from exc
    return found


def check_chain(
    cert: x509.Certificate,
    anchors: Sequence[x509.Certificate],
    now: dt.datetime,
    *,
    element: str,
) -> None:
    """``cert`` is issued by one of ``anchors`` (the signature checked, the CA valid at ``now``).
    Every configured CA is trusted, a root or an intermediate put there by the operator. No anchor
    configured: nothing to check."""
    if not anchors or _issuer_among(cert, anchors, now) is not None:
        return
    raise CertificateUntrusted(
        f"không do CA tin cậy cấp — issued by {cert.issuer.rfc4514_string()}, which is none of "
        "the configured trust anchors (keys.trust_anchors)",
        element=element,
    )


def _issuer_among(
    cert: x509.Certificate, candidates: Sequence[x509.Certificate], now: dt.datetime
) -> x509.Certificate | None:
    for candidate in candidates:
        if candidate.subject != cert.issuer:
            continue
        if not (candidate.not_valid_before_utc <= now < candidate.not_valid_after_utc):
            continue
        try:
            cert.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return candidate
    return None


def revoked_by(
    cert: x509.Certificate, crls: Sequence[x509.CertificateRevocationList]
) -> tuple[x509.CertificateRevocationList, x509.RevokedCertificate] | None:
    """The CRL (of ``cert``'s issuer) that lists ``cert``, and its entry; None when none does."""
    for crl in crls:
        if crl.issuer != cert.issuer:
            continue
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if entry is not None:
            return crl, entry
    return None


def revocation_reason(crl: x509.CertificateRevocationList, entry: x509.RevokedCertificate) -> str:
    """How the registry records a CRL's revocation."""
    try:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
    except x509.ExtensionNotFound:
        reason = "unspecified"
    return (
        f"CRL of {crl.issuer.rfc4514_string()}: {reason}, "
        f"{entry.revocation_date_utc:%Y-%m-%d %H:%M} UTC"
    )


async def check_upload(
    gateway: StoreAndConfig, conn: AsyncConnection, record: CertificateRecord, *, element: str
) -> None:
    """Every check an uploaded certificate must pass (the module's docstring), in that order."""
    cert = load_certificate(record.pem)
    settings = gateway.settings
    now = gateway.clock()
    check_key(settings, cert, element=element)
    check_key_usage(cert, element=element)
    check_dates(cert, now, element=element)
    check_chain(cert, trust_anchors(settings), now, element=element)
    found = revoked_by(cert, await _held_crls(conn))
    if found is not None:
        raise CertificateRevoked(
            f"đã bị thu hồi — revoked: {revocation_reason(*found)}", element=element
        )


async def _held_crls(conn: AsyncConnection) -> list[x509.CertificateRevocationList]:
    return [_load_crl(der) for der in await store.crl_ders(conn)]


def _load_crl(data: bytes) -> x509.CertificateRevocationList:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise CrlInvalid(f"not a CRL (DER or PEM): {exc}") from exc


# --------------------------------------------------------------------------------------- CRLs


@dataclass(frozen=True, kw_only=True)
class CrlRefresh:
    """What one refresh did: the sources read, those that failed (and why), and the registered
    certificates it revoked (fingerprint → unit)."""

    read: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    revoked: tuple[tuple[str, str], ...] = ()


async def refresh_crls(gateway: StoreAndConfig, *, actor: str = "crls") -> CrlRefresh:
    """Read every configured CRL source, keep the valid ones (signed by a trust anchor where one
    is configured), and revoke the registered certificates they list."""
    settings = gateway.settings.certificates
    now = gateway.clock()
    sources: list[str] = []
    if settings.crl_dir is not None:
        folder = gateway.settings.resolve(settings.crl_dir)
        sources += (
            sorted(str(p) for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        )
    sources += list(settings.crl_urls)
    async with gateway.engine.connect() as conn:
        registered = await store.unrevoked_certificates(conn)
    if settings.crl_from_distribution_points:
        for record in registered:
            for url in distribution_points(load_certificate(record.pem)):
                if url not in sources:
                    sources.append(url)
    anchors = trust_anchors(gateway.settings)
    result = CrlRefresh()
    fetched: list[tuple[str, bytes, x509.CertificateRevocationList]] = []
    for source in sources:
        try:
            data = await _read_source(source, timeout=settings.crl_timeout_seconds)
            crl = _load_crl(data)
            _check_crl_signature(crl, anchors)
        except (TimeoutError, CrlInvalid, OSError, aiohttp.ClientError) as exc:
            reason = f"{getattr(exc, 'code', type(exc).__name__)}: {exc}"
            log.warning("crl_refresh_failed", extra={"source": source, "detail": reason})
            result = dataclasses.replace(result, failed=(*result.failed, (source, reason)))
            continue
        fetched.append((source, crl.public_bytes(serialization.Encoding.DER), crl))
        result = dataclasses.replace(result, read=(*result.read, source))
    async with gateway.engine.begin() as conn:
        for source, der, crl in fetched:
            await store.keep_crl(
                conn,
                source=source,
                issuer=crl.issuer.rfc4514_string(),
                this_update=crl.last_update_utc,
                next_update=crl.next_update_utc,
                der=der,
                now=now,
            )
        # Every CRL held applies, a source that failed this time keeping its last one.
        crls = await _held_crls(conn)
    # Imported here: registrations imports this module for the upload checks.
    from gateway.usecases import registrations

    for record in registered:
        found = revoked_by(load_certificate(record.pem), crls)
        if found is None:
            continue
        try:
            code = await registrations.revoke_certificate(
                gateway, record.fingerprint_sha256, reason=revocation_reason(*found), actor=actor
            )
        except NotFound:
            continue  # revoked meanwhile (an operator, or another process's refresh)
        result = dataclasses.replace(
            result, revoked=(*result.revoked, (record.fingerprint_sha256, code))
        )
    log.info(
        "crls_refreshed",
        extra={"read": len(result.read), "failed": len(result.failed),
               "revoked": len(result.revoked)},
    )  # fmt: skip
    return result


def distribution_points(cert: x509.Certificate) -> list[str]:
    """The HTTP(S) URLs of ``cert``'s CRL distribution points."""
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [
        name.value
        for point in points
        for name in point.full_name or ()
        if isinstance(name, x509.UniformResourceIdentifier)
        and name.value.lower().startswith(("http://", "https://"))
    ]


async def _read_source(source: str, *, timeout: float) -> bytes:
    if not source.lower().startswith(("http://", "https://")):
        data = await asyncio.to_thread(Path(source).read_bytes)
        if len(data) > MAX_CRL_BYTES:
            raise CrlInvalid(f"larger than {MAX_CRL_BYTES} bytes")
        return data
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.get(source) as response,
    ):
        if response.status != 200:
            raise CrlInvalid(f"HTTP {response.status}")
        data = await response.content.read(MAX_CRL_BYTES + 1)
        if len(data) > MAX_CRL_BYTES:
            raise CrlInvalid(f"larger than {MAX_CRL_BYTES} bytes")
        return data


def _check_crl_signature(
    crl: x509.CertificateRevocationList, anchors: Sequence[x509.Certificate]
) -> None:
    """A CRL counts only when a configured CA signed it (no anchor configured: any CRL)."""
    if not anchors:
        return
    for anchor in anchors:
        if anchor.subject == crl.issuer and crl.is_signature_valid(anchor.public_key()):  # type: ignore[arg-type]
            return
    raise CrlInvalid(
        f"the CRL of {crl.issuer.rfc4514_string()} is signed by none of keys.trust_anchors"
    )


# ------------------------------------------------------------------------------------- expiry


@dataclass(frozen=True, kw_only=True)
class Expiring:
    unit_code: str
    is_local: bool
    fingerprint_sha256: str
    subject: str
    not_after: dt.datetime
    days_left: int


async def expiring(gateway: StoreAndConfig, *, days: int) -> list[Expiring]:
    """The registered certificates that still count (unrevoked, unexpired, not retired by a
    rollover) and expire within ``days``, soonest first."""
    if days < 0:
        raise GatewayError("must be 0 or more", element="days")
    now = gateway.clock()
    async with gateway.engine.connect() as conn:
        rows = await store.expiring(
            conn, now=now, before=now + dt.timedelta(days=days), overlap=overlap(gateway)
        )
    return [
        Expiring(
            unit_code=row.unit_code,
            is_local=row.is_local,
            fingerprint_sha256=row.fingerprint_sha256,
            subject=row.subject,
            not_after=row.not_after,
            days_left=(row.not_after - now).days,
        )
        for row in rows
    ]


async def held_crls(gateway: StoreAndConfig) -> list[store.HeldCrl]:
    async with gateway.engine.connect() as conn:
        return await store.held_crls(conn)
