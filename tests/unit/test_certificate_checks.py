"""The upload checks that need no database (gateway/usecases/certificates.py): which keys pass,
the key usages that sign, the chain to the configured anchors, a CRL's entry and its reason, the
distribution points read from a certificate."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from gateway.keystore import create_ca
from gateway.settings import Settings
from gateway.usecases import certificates

NOW = dt.datetime.now(dt.UTC)
CA = create_ca()


def cert(
    key: object,
    *,
    usage: x509.KeyUsage | None = None,
    points: list[str] = (),  # type: ignore[assignment]
    issuer_key: object = CA.key,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "000.00.00.G22")]))
        .issuer_name(CA.certificate.subject)
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(minutes=5))
        .not_valid_after(NOW + dt.timedelta(days=30))
    )
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    if points:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier(p)],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                    for p in points
                ]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]


def usage(
    *,
    digital_signature: bool = False,
    content_commitment: bool = False,
    key_encipherment: bool = True,
    key_agreement: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=key_agreement,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


RSA_2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("key", "passes"),
    [
        (RSA_2048, True),
        (ec.generate_private_key(ec.SECP256R1()), True),
        (ec.generate_private_key(ec.SECP384R1()), True),
        (ec.generate_private_key(ec.SECP256K1()), False),
        (ed25519.Ed25519PrivateKey.generate(), False),
    ],
)
def test_which_keys_pass(key: object, passes: bool) -> None:
    issuer = CA.key
    certificate = cert(key, issuer_key=issuer)
    if passes:
        certificates.check_key(Settings(), certificate, element="certificate")
    else:
        with pytest.raises(certificates.CertificateKeyTooWeak) as refused:
            certificates.check_key(Settings(), certificate, element="certificate")
        assert refused.value.element == "certificate"


def test_the_rsa_minimum_is_a_setting() -> None:
    stricter = Settings(certificates={"min_rsa_bits": 3072})  # type: ignore[arg-type]
    with pytest.raises(certificates.CertificateKeyTooWeak, match="2048 bits"):
        certificates.check_key(stricter, cert(RSA_2048), element="certificate")


@pytest.mark.parametrize(
    ("given", "signs"),
    [
        (usage(digital_signature=True), True),
        (usage(content_commitment=True), True),
        (usage(), False),
        (None, False),
        # It also receives classified copies sealed for its key.
        (usage(digital_signature=True, key_encipherment=False), False),
        (usage(digital_signature=True, key_encipherment=False, key_agreement=True), True),
    ],
)
def test_the_key_usages_that_sign(given: x509.KeyUsage | None, signs: bool) -> None:
    certificate = cert(RSA_2048, usage=given)
    if signs:
        certificates.check_key_usage(certificate, element="certificates[0]")
    else:
        with pytest.raises(certificates.CertificateKeyUsage) as refused:
            certificates.check_key_usage(certificate, element="certificates[0]")
        assert refused.value.element == "certificates[0]"


def test_the_chain_needs_a_configured_anchor_that_signed_it() -> None:
    mine = cert(RSA_2048)
    certificates.check_chain(mine, [], NOW, element="certificate")  # none configured
    certificates.check_chain(mine, [CA.certificate], NOW, element="certificate")
    # create_ca gives every CA the same name: only the signature tells them apart.
    with pytest.raises(certificates.CertificateUntrusted):
        certificates.check_chain(mine, [create_ca().certificate], NOW, element="certificate")
    # An anchor no longer valid at the time checked does not count.
    with pytest.raises(certificates.CertificateUntrusted):
        later = NOW + dt.timedelta(days=4000)
        certificates.check_chain(mine, [CA.certificate], later, element="certificate")


def test_a_crl_entry_and_its_reason() -> None:
    listed, other = cert(RSA_2048), cert(RSA_2048)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(CA.certificate.subject)
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=1))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(listed.serial_number)
            .revocation_date(NOW)
            .add_extension(x509.CRLReason(x509.ReasonFlags.superseded), critical=False)
            .build()
        )
        .sign(CA.key, hashes.SHA256())
    )
    found = certificates.revoked_by(listed, [crl])
    assert found is not None
    assert "superseded" in certificates.revocation_reason(*found)
    assert certificates.revoked_by(other, [crl]) is None


def test_distribution_points_are_the_http_ones() -> None:
    points = ["http://ca.gov.vn/ca.crl", "ldap://ca.gov.vn/cn=ca", "https://ca.gov.vn/b.crl"]
    assert certificates.distribution_points(cert(RSA_2048, points=points)) == [
        "http://ca.gov.vn/ca.crl",
        "https://ca.gov.vn/b.crl",
    ]
    assert certificates.distribution_points(cert(RSA_2048)) == []
