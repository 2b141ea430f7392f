"""The DGWSEAL1 container (envelopes.dgwseal1): round trips, the header, every way it can be wrong.

Keys and certificates are generated here, per test module; none is ever written to disk.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from envelopes import dgwseal1 as sealing
from envelopes.dgwseal1 import (
    CHUNK_SIZE,
    MAGIC,
    TAG_LENGTH,
    Curve,
    KeyTransport,
    SealHeader,
    certificate_fingerprint,
    open_sealed,
    open_stream,
    read_seal_header,
    seal,
    seal_stream,
)
from envelopes.errors import GatewayError, SealError

VIETNAMESE = (
    "Công văn số 123/UBND-VP ngày 15 tháng 3 năm 2024 của Ủy ban nhân dân tỉnh Thừa Thiên Huế "
    "về việc triển khai Nghị định 30/2020/NĐ-CP — Độ mật: Tối mật. Nơi nhận: Văn phòng Chính phủ."
)


# --- keys and certificates -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Recipient:
    name: str
    key: PrivateKeyTypes
    cert: x509.Certificate


def _certificate(
    subject_public_key: CertificatePublicKeyTypes,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    common_name: str,
) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cơ quan thử nghiệm"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    # Ed25519/Ed448 issuers sign without a separate hash.
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(subject_public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(issuer_key, algorithm)
    )


def _rsa(name: str, bits: int = 2048) -> Recipient:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return Recipient(name=name, key=key, cert=_certificate(key.public_key(), key, name))


def _ec(name: str, curve: ec.EllipticCurve) -> Recipient:
    key = ec.generate_private_key(curve)
    return Recipient(name=name, key=key, cert=_certificate(key.public_key(), key, name))


def _x25519(name: str) -> Recipient:
    # An X25519 key cannot sign, so its certificate is issued by a separate Ed25519 key.
    key = x25519.X25519PrivateKey.generate()
    issuer = ed25519.Ed25519PrivateKey.generate()
    return Recipient(name=name, key=key, cert=_certificate(key.public_key(), issuer, name))


@pytest.fixture(scope="module")
def rsa_recipient() -> Recipient:
    return _rsa("rsa-2048")


@pytest.fixture(scope="module")
def ec_recipient() -> Recipient:
    return _ec("ec-p256", ec.SECP256R1())


@pytest.fixture(scope="module")
def p384_recipient() -> Recipient:
    return _ec("ec-p384", ec.SECP384R1())


@pytest.fixture(scope="module")
def x25519_recipient() -> Recipient:
    return _x25519("x25519")


@pytest.fixture(scope="module")
def other_rsa() -> Recipient:
    return _rsa("other-rsa-2048")


@pytest.fixture(scope="module")
def other_ec() -> Recipient:
    return _ec("other-ec-p256", ec.SECP256R1())


@pytest.fixture(scope="module", params=["rsa", "p256", "p384", "x25519"])
def recipient(
    request: pytest.FixtureRequest,
    rsa_recipient: Recipient,
    ec_recipient: Recipient,
    p384_recipient: Recipient,
    x25519_recipient: Recipient,
) -> Recipient:
    return {
        "rsa": rsa_recipient,
        "p256": ec_recipient,
        "p384": p384_recipient,
        "x25519": x25519_recipient,
    }[request.param]


@pytest.fixture(scope="module", params=["rsa", "p256"])
def main_recipient(
    request: pytest.FixtureRequest, rsa_recipient: Recipient, ec_recipient: Recipient
) -> Recipient:
    """The two key types the brief requires; the expensive tests run on these only."""
    return rsa_recipient if request.param == "rsa" else ec_recipient


# --- helpers -------------------------------------------------------------------------------------


class TrickleReader(io.BytesIO):
    """A pipe-like source: at most 7 bytes per read(), and not seekable."""

    def read(self, size: int | None = -1) -> bytes:
        limit = 7 if size is None or size < 0 else min(size, 7)
        return super().read(limit)

    def seekable(self) -> bool:
        return False


def _prefix_length(sealed: bytes) -> int:
    (header_length,) = struct.unpack(">I", sealed[8:12])
    return 12 + int(header_length)


def _header_fields(sealed: bytes) -> dict[str, object]:
    fields = json.loads(sealed[12 : _prefix_length(sealed)])
    assert isinstance(fields, dict)
    return fields


def _with_header(sealed: bytes, fields: dict[str, object] | bytes) -> bytes:
    """``sealed`` with its header replaced (and the length prefix fixed up)."""
    raw = (
        fields
        if isinstance(fields, bytes)
        else json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    )
    return MAGIC + struct.pack(">I", len(raw)) + raw + sealed[_prefix_length(sealed) :]


def _flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    changed = bytearray(data)
    changed[index] ^= mask
    return bytes(changed)


# --- round trips ---------------------------------------------------------------------------------


def test_round_trip_bytes(recipient: Recipient) -> None:
    payload = b"<edXMLEnvelope>" + os.urandom(1000) + b"</edXMLEnvelope>"
    sealed = seal(payload, recipient.cert)
    assert payload not in sealed
    assert open_sealed(sealed, recipient.key) == payload


def test_round_trip_empty_payload(recipient: Recipient) -> None:
    sealed = seal(b"", recipient.cert)
    assert len(sealed) == _prefix_length(sealed) + TAG_LENGTH
    assert open_sealed(sealed, recipient.key) == b""

    dst = io.BytesIO()
    seal_stream(io.BytesIO(b""), dst, recipient.cert)
    out = io.BytesIO()
    open_stream(io.BytesIO(dst.getvalue()), out, recipient.key)
    assert out.getvalue() == b""


def test_round_trip_vietnamese_text(main_recipient: Recipient) -> None:
    payload = VIETNAMESE.encode("utf-8")
    sealed = seal(payload, main_recipient.cert)
    assert open_sealed(sealed, main_recipient.key).decode("utf-8") == VIETNAMESE


def test_round_trip_stream_several_megabytes(main_recipient: Recipient) -> None:
    # Not a multiple of the chunk size, so the last chunk is a partial one.
    payload = os.urandom(3 * CHUNK_SIZE + 12_345)
    sealed = io.BytesIO()
    seal_stream(io.BytesIO(payload), sealed, main_recipient.cert)
    assert len(sealed.getvalue()) == _prefix_length(sealed.getvalue()) + len(payload) + TAG_LENGTH

    sealed.seek(0)
    opened = io.BytesIO()
    open_stream(sealed, opened, main_recipient.key)
    assert opened.getvalue() == payload
    assert open_sealed(sealed.getvalue(), main_recipient.key) == payload


def test_stream_sources_that_return_short_reads(ec_recipient: Recipient) -> None:
    payload = VIETNAMESE.encode() * 50
    sealed = io.BytesIO()
    seal_stream(TrickleReader(payload), sealed, ec_recipient.cert, length=len(payload))
    opened = io.BytesIO()
    open_stream(TrickleReader(sealed.getvalue()), opened, ec_recipient.key)
    assert opened.getvalue() == payload


def test_seal_stream_seals_from_the_current_position(ec_recipient: Recipient) -> None:
    src = io.BytesIO(b"already consumed|the package")
    src.seek(len(b"already consumed|"))
    dst = io.BytesIO()
    seal_stream(src, dst, ec_recipient.cert)
    assert open_sealed(dst.getvalue(), ec_recipient.key) == b"the package"


def test_open_stream_leaves_the_source_after_the_tag(ec_recipient: Recipient) -> None:
    sealed = seal(b"package", ec_recipient.cert)
    src = io.BytesIO(sealed)
    open_stream(src, io.BytesIO(), ec_recipient.key)
    assert src.tell() == len(sealed)


def test_two_seals_of_the_same_plaintext_differ(main_recipient: Recipient) -> None:
    first = seal(VIETNAMESE.encode(), main_recipient.cert)
    second = seal(VIETNAMESE.encode(), main_recipient.cert)
    assert first != second
    one, two = _header_fields(first), _header_fields(second)
    assert one["nonce"] != two["nonce"]
    assert one["wrapped_key"] != two["wrapped_key"]
    assert first[_prefix_length(first) :] != second[_prefix_length(second) :]


@settings(max_examples=25, deadline=None)
@given(payload=st.binary(max_size=4096))
def test_round_trip_property(
    payload: bytes, rsa_recipient: Recipient, ec_recipient: Recipient
) -> None:
    for who in (rsa_recipient, ec_recipient):
        assert open_sealed(seal(payload, who.cert), who.key) == payload


# --- the header ----------------------------------------------------------------------------------


def test_header_names_the_recipient_certificate(recipient: Recipient) -> None:
    payload = b"x" * 100
    sealed = seal(payload, recipient.cert)
    header = read_seal_header(sealed)

    assert isinstance(header, SealHeader)
    assert header.recipient_fingerprint == recipient.cert.fingerprint(hashes.SHA256()).hex()
    assert header.recipient_fingerprint == certificate_fingerprint(recipient.cert)
    assert header.is_for(recipient.cert)
    assert header.version == 1
    assert header.content_algorithm == "A256GCM"
    assert header.plaintext_length == len(payload)
    assert len(header.nonce) == 12
    if isinstance(recipient.key, rsa.RSAPrivateKey):
        assert header.key_transport is KeyTransport.RSA_OAEP_256
        assert header.curve is None
        assert header.ephemeral_key is None
    else:
        assert header.key_transport is KeyTransport.ECDH_ES_A256KW
        assert header.curve in (Curve.P256, Curve.P384, Curve.X25519)
        assert header.ephemeral_key


def test_header_is_not_for_another_certificate(
    rsa_recipient: Recipient, other_rsa: Recipient
) -> None:
    header = read_seal_header(seal(b"x", rsa_recipient.cert))
    assert not header.is_for(other_rsa.cert)


def test_header_can_be_read_from_the_beginning_of_a_stream(ec_recipient: Recipient) -> None:
    sealed = seal(os.urandom(10_000), ec_recipient.cert)
    # A gateway can route on the first few KiB, without a key and without the whole package.
    stream = io.BytesIO(sealed[:4096])
    header = read_seal_header(stream)
    assert header.is_for(ec_recipient.cert)
    assert stream.tell() == _prefix_length(sealed)


def test_header_is_plain_json_in_the_documented_layout(rsa_recipient: Recipient) -> None:
    sealed = seal(b"abc", rsa_recipient.cert)
    assert sealed.startswith(b"DGWSEAL1")
    assert set(_header_fields(sealed)) == {
        "version",
        "content_alg",
        "key_alg",
        "recipient_sha256",
        "wrapped_key",
        "nonce",
        "plaintext_length",
    }
    assert len(sealed) == _prefix_length(sealed) + 3 + TAG_LENGTH


# --- tampering -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sealed_rsa(rsa_recipient: Recipient) -> bytes:
    return seal(VIETNAMESE.encode() * 20, rsa_recipient.cert)


@pytest.fixture(scope="module")
def sealed_ec(ec_recipient: Recipient) -> bytes:
    return seal(VIETNAMESE.encode() * 20, ec_recipient.cert)


@pytest.fixture(params=["rsa", "ec"])
def sealed_case(
    request: pytest.FixtureRequest,
    sealed_rsa: bytes,
    sealed_ec: bytes,
    rsa_recipient: Recipient,
    ec_recipient: Recipient,
) -> tuple[bytes, Recipient]:
    return (sealed_rsa, rsa_recipient) if request.param == "rsa" else (sealed_ec, ec_recipient)


def test_the_untampered_fixture_opens(sealed_case: tuple[bytes, Recipient]) -> None:
    sealed, who = sealed_case
    assert open_sealed(sealed, who.key) == VIETNAMESE.encode() * 20


def test_bad_magic(sealed_case: tuple[bytes, Recipient]) -> None:
    sealed, who = sealed_case
    with pytest.raises(SealError, match="bad magic"):
        open_sealed(b"DGWSEAL2" + sealed[8:], who.key)
    with pytest.raises(SealError, match="bad magic"):
        read_seal_header(b"PK\x03\x04" + sealed[4:])


def test_flipped_byte_in_the_header_fingerprint(sealed_case: tuple[bytes, Recipient]) -> None:
    sealed, who = sealed_case
    fingerprint = certificate_fingerprint(who.cert).encode()
    at = sealed.index(fingerprint)
    # Still a well-formed header naming a (different) certificate: only authentication catches it.
    replacement = b"0" if sealed[at : at + 1] != b"0" else b"1"
    changed = sealed[:at] + replacement + sealed[at + 1 :]
    assert read_seal_header(changed).recipient_fingerprint != fingerprint.decode()
    with pytest.raises(SealError, match="authentication failed") as info:
        open_sealed(changed, who.key)
    assert isinstance(info.value.__cause__, InvalidTag)


@pytest.mark.parametrize("field", ["nonce", "plaintext_length", "recipient_sha256"])
def test_rewritten_but_well_formed_header(sealed_case: tuple[bytes, Recipient], field: str) -> None:
    sealed, who = sealed_case
    fields = _header_fields(sealed)
    if field == "nonce":
        fields["nonce"] = "AAAAAAAAAAAAAAAA"  # 12 zero bytes
    elif field == "plaintext_length":
        fields["plaintext_length"] = int(str(fields["plaintext_length"])) - 1
    else:
        fields["recipient_sha256"] = "ab" * 32
    with pytest.raises(SealError):
        open_sealed(_with_header(sealed, fields), who.key)


def test_flipped_byte_in_the_ciphertext(sealed_case: tuple[bytes, Recipient]) -> None:
    sealed, who = sealed_case
    start = _prefix_length(sealed)
    for index in (start, (start + len(sealed) - TAG_LENGTH) // 2, len(sealed) - TAG_LENGTH - 1):
        with pytest.raises(SealError, match="authentication failed"):
            open_sealed(_flip(sealed, index), who.key)


def test_flipped_byte_in_the_tag(sealed_case: tuple[bytes, Recipient]) -> None:
    sealed, who = sealed_case
    for index in range(len(sealed) - TAG_LENGTH, len(sealed)):
        with pytest.raises(SealError, match="authentication failed"):
            open_sealed(_flip(sealed, index, 0x80), who.key)


def test_truncated(sealed_case: tuple[bytes, Recipient]) -> None:
    sealed, who = sealed_case
    prefix = _prefix_length(sealed)
    cuts = [0, 3, 8, 10, 12, prefix - 1, prefix, prefix + 5, len(sealed) - TAG_LENGTH]
    cuts += [len(sealed) - 1]
    for cut in cuts:
        with pytest.raises(SealError, match="truncated"):
            open_sealed(sealed[:cut], who.key)


def test_bytes_appended_after_the_tag(sealed_case: tuple[bytes, Recipient]) -> None:
    sealed, who = sealed_case
    with pytest.raises(SealError, match="after the authentication tag"):
        open_sealed(sealed + b"\x00", who.key)


def test_wrong_recipient_key_of_the_same_type(
    sealed_rsa: bytes, sealed_ec: bytes, other_rsa: Recipient, other_ec: Recipient
) -> None:
    with pytest.raises(SealError, match="wrong private key"):
        open_sealed(sealed_rsa, other_rsa.key)
    with pytest.raises(SealError, match="wrong private key"):
        open_sealed(sealed_ec, other_ec.key)


def test_wrong_recipient_key_of_another_type(
    sealed_rsa: bytes,
    sealed_ec: bytes,
    rsa_recipient: Recipient,
    ec_recipient: Recipient,
    p384_recipient: Recipient,
    x25519_recipient: Recipient,
) -> None:
    with pytest.raises(SealError, match="RSA key needed"):
        open_sealed(sealed_rsa, ec_recipient.key)
    for key in (rsa_recipient.key, x25519_recipient.key):
        with pytest.raises(SealError, match="P-256 key needed"):
            open_sealed(sealed_ec, key)
    with pytest.raises(SealError, match="sealed on P-256"):
        open_sealed(sealed_ec, p384_recipient.key)
    with pytest.raises(SealError, match="wrong private key"):
        open_sealed(sealed_ec, ed25519.Ed25519PrivateKey.generate())


def test_wrong_key_fails_before_anything_is_written(
    sealed_rsa: bytes, other_rsa: Recipient
) -> None:
    dst = io.BytesIO()
    with pytest.raises(SealError):
        open_stream(io.BytesIO(sealed_rsa), dst, other_rsa.key)
    assert dst.getvalue() == b""


@pytest.mark.parametrize("mask", [0x01, 0x80])
def test_every_single_byte_change_is_rejected(main_recipient: Recipient, mask: int) -> None:
    """The core promise: change any one byte anywhere and opening fails, always with SealError."""
    # A short payload keeps this exhaustive walk quick; the header dominates the length anyway.
    sealed = seal(b"short classified payload", main_recipient.cert)
    for index in range(len(sealed)):
        with pytest.raises(SealError):
            open_sealed(_flip(sealed, index, mask), main_recipient.key)


def test_tampered_stream_raises_after_writing(ec_recipient: Recipient) -> None:
    """open_stream cannot know until the end; the caller must discard dst when it raises."""
    payload = os.urandom(2 * CHUNK_SIZE + 1)
    sealed = _flip(seal(payload, ec_recipient.cert), -1)
    with pytest.raises(SealError, match="authentication failed"):
        open_stream(io.BytesIO(sealed), io.BytesIO(), ec_recipient.key)


def test_open_sealed_leaves_no_plaintext_in_the_traceback(ec_recipient: Recipient) -> None:
    marker = b"TUYET-MAT-PLAINTEXT "
    sealed = _flip(seal(marker * (CHUNK_SIZE // len(marker) + 10), ec_recipient.cert), -1)
    with pytest.raises(SealError) as info:
        open_sealed(sealed, ec_recipient.key)
    tb: TracebackType | None = info.tb
    frames = 0
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_filename == sealing.__file__:
            frames += 1
            for name, value in frame.f_locals.items():
                if isinstance(value, io.BytesIO) and not value.closed:
                    value = value.getvalue()
                if isinstance(value, bytes | bytearray):
                    assert marker not in value, f"plaintext in local {name!r}"
            # Nor the content key, with which the ciphertext next to it could be decrypted.
            assert "content_key" not in frame.f_locals
        tb = tb.tb_next
    assert frames >= 2


# --- malformed headers ---------------------------------------------------------------------------


def _valid_fields(sealed: bytes) -> dict[str, object]:
    return dict(_header_fields(sealed))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.update(version=2), "version 2"),
        (lambda f: f.update(version=True), "must be an integer"),
        (lambda f: f.update(content_alg="A128GCM"), "content encryption"),
        (lambda f: f.update(key_alg="RSA1_5"), "key transport"),
        (lambda f: f.update(extra="x"), "unknown \\['extra'\\]"),
        (lambda f: f.pop("nonce"), "missing \\['nonce'\\]"),
        (lambda f: f.update(nonce="AAAA"), "nonce has 3 bytes"),
        (lambda f: f.update(nonce="not base64!"), "not valid base64"),
        (lambda f: f.update(wrapped_key=""), "is empty"),
        (lambda f: f.update(plaintext_length=-1), "out of range"),
        (lambda f: f.update(plaintext_length=2**40), "out of range"),
        (lambda f: f.update(plaintext_length="12"), "must be an integer"),
        (lambda f: f.update(recipient_sha256="AB" * 32), "fingerprint"),
        (lambda f: f.update(recipient_sha256="ab" * 20), "fingerprint"),
    ],
)
def test_malformed_header_fields(
    sealed_rsa: bytes,
    rsa_recipient: Recipient,
    change: Callable[[dict[str, object]], object],
    message: str,
) -> None:
    fields = _valid_fields(sealed_rsa)
    change(fields)
    changed = _with_header(sealed_rsa, fields)
    with pytest.raises(SealError, match=message):
        read_seal_header(changed)
    with pytest.raises(SealError, match=message):
        open_sealed(changed, rsa_recipient.key)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.pop("curve"), "missing \\['curve'\\]"),
        (lambda f: f.update(curve="P-521"), "unsupported curve"),
        (lambda f: f.update(ephemeral_key="AAAA"), "unusable ephemeral key"),
    ],
)
def test_malformed_ecdh_header_fields(
    sealed_ec: bytes,
    ec_recipient: Recipient,
    change: Callable[[dict[str, object]], object],
    message: str,
) -> None:
    fields = _valid_fields(sealed_ec)
    change(fields)
    with pytest.raises(SealError, match=message):
        open_sealed(_with_header(sealed_ec, fields), ec_recipient.key)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[1, 2]", "not a JSON object"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[" * 15_000, "not valid JSON"),  # nesting deep enough to exhaust recursion
        (b'{"version":1,"version":1}', "repeats the field 'version'"),
    ],
)
def test_malformed_header_json(sealed_rsa: bytes, raw: bytes, message: str) -> None:
    with pytest.raises(SealError, match=message):
        read_seal_header(_with_header(sealed_rsa, raw))


@pytest.mark.parametrize("declared", [0, 16 * 1024 + 1, 0xFFFFFFFF])
def test_header_length_out_of_range(sealed_rsa: bytes, declared: int) -> None:
    forged = MAGIC + struct.pack(">I", declared) + sealed_rsa[12:]
    with pytest.raises(SealError, match="header length"):
        read_seal_header(forged)


# --- sealing errors ------------------------------------------------------------------------------


def test_unsupported_recipient_key_types() -> None:
    ed_key = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(SealError, match="unsupported recipient key type"):
        seal(b"x", _certificate(ed_key.public_key(), ed_key, "ed25519"))
    with pytest.raises(SealError, match="unsupported EC curve secp521r1"):
        seal(b"x", _ec("p521", ec.SECP521R1()).cert)
    with pytest.raises(SealError, match="1024 bits"):
        seal(b"x", _rsa("rsa-1024", bits=1024).cert)


def test_seal_stream_needs_a_length_for_unseekable_sources(ec_recipient: Recipient) -> None:
    with pytest.raises(SealError, match="not seekable"):
        seal_stream(TrickleReader(b"abc"), io.BytesIO(), ec_recipient.cert)


def test_seal_stream_rejects_a_source_of_the_wrong_length(ec_recipient: Recipient) -> None:
    with pytest.raises(SealError, match="source ended after 3 of 4"):
        seal_stream(io.BytesIO(b"abc"), io.BytesIO(), ec_recipient.cert, length=4)
    with pytest.raises(SealError, match="longer than the declared 2 bytes"):
        seal_stream(io.BytesIO(b"abc"), io.BytesIO(), ec_recipient.cert, length=2)
    with pytest.raises(SealError, match="cannot seal -1 bytes"):
        seal_stream(io.BytesIO(b"abc"), io.BytesIO(), ec_recipient.cert, length=-1)


def test_seal_error_is_a_gateway_error_with_its_stable_code(ec_recipient: Recipient) -> None:
    with pytest.raises(SealError) as info:
        open_sealed(b"nonsense", ec_recipient.key)
    assert isinstance(info.value, GatewayError)
    assert info.value.code == "SEAL_INVALID"
    assert str(info.value).startswith("SEAL_INVALID: ")
