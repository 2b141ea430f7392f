"""Sealing (envelopes.sealing over envelopes.cms): the CMS AuthEnvelopedData container docgw writes,
its structure, every way it can be wrong, the pluggable content cipher, and the old DGWSEAL1
container still opening. Interoperability with ``openssl cms`` is tests/integration/
test_sealing_openssl.py.

Keys and certificates are generated here, per test module; none is ever written to disk.
"""

from __future__ import annotations

import io
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from test_dgwseal1 import Recipient, TrickleReader, _ec, _flip, _rsa, _x25519

from envelopes import cms, der, dgwseal1, sealing
from envelopes.cms import ID_AES256_GCM, ID_AUTH_ENVELOPED_DATA, ID_DATA, RSAES_OAEP
from envelopes.errors import SealError
from envelopes.sealing import SealFormat, open_sealed, open_stream, read_seal_header, seal, sniff

PAYLOAD = "Công văn mật số 12/VPCP — nội dung chỉ người nhận được đọc.".encode() * 40


@pytest.fixture(scope="module")
def rsa_recipient() -> Recipient:
    return _rsa("cms-rsa-2048")


@pytest.fixture(scope="module")
def ec_recipient() -> Recipient:
    return _ec("cms-ec-p256", ec.SECP256R1())


@pytest.fixture(scope="module")
def p384_recipient() -> Recipient:
    return _ec("cms-ec-p384", ec.SECP384R1())


@pytest.fixture(scope="module", params=["rsa", "p256", "p384"])
def recipient(
    request: pytest.FixtureRequest,
    rsa_recipient: Recipient,
    ec_recipient: Recipient,
    p384_recipient: Recipient,
) -> Recipient:
    return {"rsa": rsa_recipient, "p256": ec_recipient, "p384": p384_recipient}[request.param]


def _parse(sealed: bytes) -> list[der.Element]:
    """ContentInfo → the AuthEnvelopedData fields."""
    content_info = der.read_one(sealed, "test").expect(der.SEQUENCE, "ContentInfo").children()
    assert content_info[0].as_oid("type") == ID_AUTH_ENVELOPED_DATA
    [auth_enveloped] = content_info[1].expect(0xA0, "[0]").children()
    return auth_enveloped.expect(der.SEQUENCE, "AuthEnvelopedData").children()


# --- what docgw writes ---------------------------------------------------------------------------


def test_round_trip(recipient: Recipient) -> None:
    sealed = seal(PAYLOAD, recipient.cert)
    assert sniff(sealed) is SealFormat.CMS
    assert PAYLOAD not in sealed
    assert open_sealed(sealed, recipient.key) == PAYLOAD


def test_round_trip_empty(rsa_recipient: Recipient) -> None:
    assert open_sealed(seal(b"", rsa_recipient.cert), rsa_recipient.key) == b""


def test_round_trip_streams_several_megabytes_from_a_trickle(ec_recipient: Recipient) -> None:
    payload = os.urandom(3 * der.CHUNK_SIZE + 17)
    sealed = io.BytesIO()
    sealing.seal_stream(TrickleReader(payload[:100_000]), sealed, ec_recipient.cert, length=100_000)
    assert open_sealed(sealed.getvalue(), ec_recipient.key) == payload[:100_000]
    sealed = io.BytesIO()
    sealing.seal_stream(io.BytesIO(payload), sealed, ec_recipient.cert)
    opened = io.BytesIO()
    open_stream(TrickleReader(sealed.getvalue()), opened, ec_recipient.key)
    assert opened.getvalue() == payload


def test_a_source_of_unknown_length_is_sealed_in_the_indefinite_form(recipient: Recipient) -> None:
    payload = os.urandom(2 * der.CHUNK_SIZE + 5)
    out = io.BytesIO()
    sealing.seal_stream(TrickleReader(payload), out, recipient.cert)
    sealed = out.getvalue()
    assert sealed[:2] == b"\x30\x80" and sealed.endswith(b"\x00\x00" * 3)
    assert sniff(sealed) is SealFormat.CMS
    header = read_seal_header(sealed[:1024])
    assert header.is_for(recipient.cert) and header.sealed_length is None
    assert open_sealed(sealed, recipient.key) == payload
    # Same checks as the DER form: the end-of-contents octets and the mac are where they must be.
    for cut in (len(sealed) - 1, len(sealed) - 7, len(sealed) - 12):
        with pytest.raises(SealError):
            open_sealed(sealed[:cut], recipient.key)
    with pytest.raises(SealError, match="after the sealed container"):
        open_sealed(sealed + b"\x00", recipient.key)


@settings(max_examples=25, deadline=None)
@given(payload=st.binary(max_size=4096), known_length=st.booleans())
def test_round_trip_property(
    payload: bytes, known_length: bool, rsa_recipient: Recipient, ec_recipient: Recipient
) -> None:
    for recipient in (rsa_recipient, ec_recipient):
        out = io.BytesIO()
        source = io.BytesIO(payload) if known_length else TrickleReader(payload)
        sealing.seal_stream(source, out, recipient.cert)
        opened = io.BytesIO()
        open_stream(TrickleReader(out.getvalue()), opened, recipient.key)
        assert opened.getvalue() == payload


def test_the_container_is_der_auth_enveloped_data_with_aes_256_gcm(recipient: Recipient) -> None:
    sealed = seal(PAYLOAD, recipient.cert)
    assert sealed[1] != 0x80  # definite length: the container announces its size
    version, infos, content, mac = _parse(sealed)
    assert version.as_int("version") == 0
    [info] = infos.expect(der.SET, "recipientInfos").children()
    content_type, algorithm, encrypted = content.children()
    assert content_type.as_oid("type") == ID_DATA
    cipher_oid, parameters = algorithm.children()
    assert cipher_oid.as_oid("cipher") == ID_AES256_GCM
    nonce, icv = parameters.children()
    assert len(nonce.as_octets("nonce")) == 12 and icv.as_int("icv") == 16
    assert encrypted.tag == 0x80 and len(encrypted.content) == len(PAYLOAD)
    assert len(mac.as_octets("mac")) == 16
    header = read_seal_header(sealed)
    assert header.sealed_length == len(sealed)
    assert header.is_for(recipient.cert)
    if isinstance(recipient.key, rsa.RSAPrivateKey):
        assert info.tag == der.SEQUENCE  # KeyTransRecipientInfo
        fields = info.children()
        assert fields[0].as_int("version") == 0
        issuer, serial = fields[1].children()
        assert serial.as_int("serial") == recipient.cert.serial_number
        assert issuer.encoded() == recipient.cert.issuer.public_bytes()
        assert fields[2].children()[0].as_oid("alg") == RSAES_OAEP
    else:
        assert info.tag == 0xA1  # KeyAgreeRecipientInfo
        assert info.children()[0].as_int("version") == 3


def test_two_seals_of_one_package_share_nothing(rsa_recipient: Recipient) -> None:
    first, second = seal(PAYLOAD, rsa_recipient.cert), seal(PAYLOAD, rsa_recipient.cert)
    assert first[-len(PAYLOAD) - 18 :] != second[-len(PAYLOAD) - 18 :]


def test_header_from_the_first_bytes_names_only_its_recipient(
    recipient: Recipient, rsa_recipient: Recipient, ec_recipient: Recipient
) -> None:
    sealed = seal(os.urandom(2 * der.CHUNK_SIZE), recipient.cert)
    header = read_seal_header(sealed[:1024])
    assert header.is_for(recipient.cert)
    others = [r for r in (rsa_recipient, ec_recipient) if r is not recipient]
    assert not any(header.is_for(other.cert) for other in others)
    assert header.sealed_length == len(sealed)


# --- the old container ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rsa", "p256", "x25519"])
def test_stored_dgwseal1_copies_still_open(
    kind: str, rsa_recipient: Recipient, ec_recipient: Recipient
) -> None:
    recipient = {"rsa": rsa_recipient, "p256": ec_recipient}.get(kind) or _x25519("old-x25519")
    old = dgwseal1.seal(PAYLOAD, recipient.cert)
    assert sniff(old) is SealFormat.DGWSEAL1
    assert open_sealed(old, recipient.key) == PAYLOAD
    opened = io.BytesIO()
    open_stream(TrickleReader(old), opened, recipient.key)
    assert opened.getvalue() == PAYLOAD
    header = read_seal_header(old[:600])
    assert header.is_for(recipient.cert) and header.sealed_length == len(old)
    with pytest.raises(SealError, match="authentication failed"):
        open_sealed(_flip(old, len(old) - 20), recipient.key)


def test_sniff_tells_packages_from_seals(rsa_recipient: Recipient) -> None:
    assert sniff(b'<?xml version="1.0"?><edXMLEnvelope/>') is None
    assert sniff(b"\xef\xbb\xbf<edXML") is None
    assert sniff(b"") is None
    assert sniff(seal(b"x", rsa_recipient.cert)[: sealing.SNIFF_LENGTH]) is SealFormat.CMS
    with pytest.raises(SealError, match="neither CMS nor DGWSEAL1"):
        open_sealed(b"<edXMLEnvelope/>", rsa_recipient.key)


# --- every way a container can be wrong ----------------------------------------------------------


@pytest.fixture(scope="module", params=["rsa", "p256"])
def small_seal(
    request: pytest.FixtureRequest, rsa_recipient: Recipient, ec_recipient: Recipient
) -> tuple[bytes, Recipient]:
    recipient = rsa_recipient if request.param == "rsa" else ec_recipient
    return seal(b"Mat: 12 byte", recipient.cert), recipient


def test_every_single_byte_change_is_refused_or_renames_the_recipient(
    small_seal: tuple[bytes, Recipient],
) -> None:
    """GCM authenticates the content; the rest changes the key or nonce, so the tag fails — except
    the recipient identifier (issuer and serial), which CMS leaves unauthenticated: a change
    there opens, but the seal then no longer names its certificate (routing sees it)."""
    sealed, recipient = small_seal
    renamed = 0
    for index in range(len(sealed)):
        for mask in (0x01, 0x80):
            changed = _flip(sealed, index, mask)
            try:
                open_sealed(changed, recipient.key)
            except SealError:
                continue
            assert not read_seal_header(changed).is_for(recipient.cert), (index, mask)
            renamed += 1
    assert renamed  # the exception above is real: the issuer's name is in the container


def test_every_truncation_and_any_appended_byte_is_refused(
    small_seal: tuple[bytes, Recipient],
) -> None:
    sealed, recipient = small_seal
    for cut in range(len(sealed)):
        with pytest.raises(SealError):
            open_sealed(sealed[:cut], recipient.key)
    for tail in (b"\x00", b"\x00\x00", b"x" * 100):
        with pytest.raises(SealError, match="after the sealed container"):
            open_sealed(sealed + tail, recipient.key)


def test_a_wrong_key_fails_before_anything_is_written(
    rsa_recipient: Recipient, ec_recipient: Recipient
) -> None:
    for sealed_for, wrong in (
        (rsa_recipient, _rsa("cms-other-rsa").key),
        (ec_recipient, _ec("cms-other-ec", ec.SECP256R1()).key),
        (rsa_recipient, ec_recipient.key),
        (ec_recipient, rsa_recipient.key),
        (ec_recipient, _ec("cms-p384-wrong", ec.SECP384R1()).key),
    ):
        out = io.BytesIO()
        with pytest.raises(SealError, match="cannot unwrap the content key"):
            open_stream(io.BytesIO(seal(PAYLOAD, sealed_for.cert)), out, wrong)
        assert out.getvalue() == b""


def test_a_tampered_tag_raises_after_writing_and_open_sealed_returns_nothing(
    ec_recipient: Recipient,
) -> None:
    sealed = _flip(seal(PAYLOAD, ec_recipient.cert), -1)
    out = io.BytesIO()
    with pytest.raises(SealError, match="authentication failed"):
        open_stream(io.BytesIO(sealed), out, ec_recipient.key)
    assert out.getvalue()  # streamed before the tag: the caller must discard it
    with pytest.raises(SealError, match="authentication failed"):
        open_sealed(sealed, ec_recipient.key)


def _auth_enveloped(fields: list[bytes]) -> bytes:
    body = der.sequence(*fields)
    return der.sequence(der.oid(ID_AUTH_ENVELOPED_DATA), der.tlv(0xA0, body))


def test_auth_attributes_are_refused(rsa_recipient: Recipient) -> None:
    fields = [f.encoded() for f in _parse(seal(PAYLOAD, rsa_recipient.cert))]
    attrs = der.tlv(
        0xA1, der.sequence(der.oid("1.2.840.113549.1.9.3"), der.der_set(der.oid(ID_DATA)))
    )
    forged = _auth_enveloped([*fields[:3], attrs, fields[3]])
    with pytest.raises(SealError, match="authAttrs"):
        open_sealed(forged, rsa_recipient.key)


def test_unauthenticated_attributes_are_read_past(rsa_recipient: Recipient) -> None:
    fields = [f.encoded() for f in _parse(seal(PAYLOAD, rsa_recipient.cert))]
    attrs = der.tlv(
        0xA2, der.sequence(der.oid("1.2.840.113549.1.9.3"), der.der_set(der.oid(ID_DATA)))
    )
    assert open_sealed(_auth_enveloped([*fields, attrs]), rsa_recipient.key) == PAYLOAD
    with pytest.raises(SealError, match="after the mac"):
        open_sealed(_auth_enveloped([*fields, der.octet_string(b"x")]), rsa_recipient.key)


def test_other_cms_content_types_are_refused(rsa_recipient: Recipient) -> None:
    enveloped = der.sequence(der.oid("1.2.840.113549.1.7.3"), der.tlv(0xA0, der.sequence()))
    assert sniff(enveloped) is SealFormat.CMS
    with pytest.raises(SealError, match="not AuthEnvelopedData"):
        open_sealed(enveloped, rsa_recipient.key)


def test_a_short_gcm_tag_is_refused(rsa_recipient: Recipient) -> None:
    sealed = seal(PAYLOAD, rsa_recipient.cert)
    short = sealed.replace(b"\x02\x01\x10", b"\x02\x01\x0c", 1)  # aes-ICVlen 16 → 12
    with pytest.raises(SealError, match="12-byte tag"):
        open_sealed(short, rsa_recipient.key)


def test_a_forged_huge_head_is_refused_before_allocating(rsa_recipient: Recipient) -> None:
    # ContentInfo announcing a 2^40-byte recipientInfos: refused on its length, not read.
    forged = (
        der.header(der.SEQUENCE, 2**41)
        + der.oid(ID_AUTH_ENVELOPED_DATA)
        + der.header(0xA0, 2**41 - 20)
        + der.header(der.SEQUENCE, 2**41 - 40)
        + der.integer(0)
        + der.header(der.SET, 2**40)
    )
    with pytest.raises(SealError, match="exceeds the limit"):
        open_sealed(forged, rsa_recipient.key)


def test_unsupported_recipient_keys_are_refused() -> None:
    for recipient, message in (
        (_rsa("rsa-1024", 1024), "at least 2048"),
        (_ec("p521", ec.SECP521R1()), "P-256 and P-384"),
        (_x25519("x25519"), "RSA and EC"),
    ):
        with pytest.raises(SealError, match=message):
            seal(b"x", recipient.cert)


def test_a_source_of_the_wrong_length_is_refused(rsa_recipient: Recipient) -> None:
    for length in (len(PAYLOAD) + 1, len(PAYLOAD) - 1):
        with pytest.raises(SealError, match="source"):
            sealing.seal_stream(
                io.BytesIO(PAYLOAD), io.BytesIO(), rsa_recipient.cert, length=length
            )


# --- the content cipher is a provider -------------------------------------------------------------


class Aes128Gcm(cms.Aes256Gcm):
    """A stand-in for a deployment's cipher: AES-128-GCM (id-aes128-GCM, RFC 5084)."""

    oid = "2.16.840.1.101.3.4.1.6"
    name = "AES-128-GCM"
    key_length = 16


def test_a_registered_content_cipher_seals_and_opens(
    rsa_recipient: Recipient, ec_recipient: Recipient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cms, "_ciphers", dict(cms._ciphers))
    monkeypatch.setattr(sealing, "_default_cipher", sealing._default_cipher)
    out = io.BytesIO()
    sealing.seal_stream(io.BytesIO(PAYLOAD), out, rsa_recipient.cert, cipher=Aes128Gcm())
    with pytest.raises(SealError, match=r"2\.16\.840\.1\.101\.3\.4\.1\.6 is not one docgw opens"):
        open_sealed(out.getvalue(), rsa_recipient.key)
    sealing.set_default_content_cipher(Aes128Gcm())
    assert open_sealed(out.getvalue(), rsa_recipient.key) == PAYLOAD
    sealed = seal(PAYLOAD, ec_recipient.cert)
    [_, algorithm, _] = _parse(sealed)[2].children()
    assert algorithm.children()[0].as_oid("cipher") == Aes128Gcm.oid
    assert open_sealed(sealed, ec_recipient.key) == PAYLOAD


def test_header_type_is_for_certificates(rsa_recipient: Recipient) -> None:
    header = read_seal_header(seal(b"x", rsa_recipient.cert))
    assert isinstance(header, cms.CmsHeader)
    assert isinstance(rsa_recipient.cert, x509.Certificate)
    assert header.recipients[0].serial == rsa_recipient.cert.serial_number
