"""DGWSEAL1: docgw's own earlier sealed container (see :mod:`envelopes.sealing` for sealing).

docgw now writes the standard CMS container (:mod:`envelopes.cms`); this module stays so that
copies stored in this format still open (``envelopes.sealing.open_stream`` detects the format).
Its writer, ``seal_stream``, is kept for the tests and the benchmark that check exactly that, and
is not used by the gateway.

The container, all integers big-endian::

    offset  size  field
    0       8     magic  b"DGWSEAL1"
    8       4     n = length of the header (1 .. MAX_HEADER_LENGTH)
    12      n     header: JSON object, ASCII, sorted keys, no spaces
    12+n    L     ciphertext, exactly L = header["plaintext_length"] bytes (GCM does not pad)
    12+n+L  16    AES-GCM authentication tag
                  (nothing may follow)

Header fields (``SealHeader`` is their typed form)::

    version            1
    content_alg        "A256GCM"
    key_alg            "RSA-OAEP-256" | "ECDH-ES+A256KW"
    recipient_sha256   SHA-256 of the recipient certificate's DER, lowercase hex
    wrapped_key        base64: the content key, wrapped for the recipient
    ephemeral_key      base64, ECDH only: the sender's one-time public key (X9.62 uncompressed
                       point for P-256/P-384, 32 raw bytes for X25519)
    curve              ECDH only: "P-256" | "P-384" | "X25519"
    nonce              base64: the 12-byte GCM nonce
    plaintext_length   number of plaintext bytes

Why it is built this way:

* The content key is fresh and random for every seal, so a random 96-bit nonce can never repeat
  under one key, and two seals of the same package share nothing.
* The key transport follows the recipient certificate's key: RSA-OAEP with SHA-256 and MGF1-SHA-256
  for RSA keys (the usual Vietnamese CA certificates); for EC keys an ephemeral ECDH, HKDF-SHA-256
  bound to both public keys and the curve, then AES key wrap (RFC 3394). Wrapping a random content
  key, rather than using the derived key directly, keeps one content-encryption path for every key
  type. The names are JOSE's (RFC 7518) so they read familiarly; the container is not JWE.
* Everything before the ciphertext (magic, length prefix, header) is GCM associated data, so a
  change to any byte of the file, header included, fails authentication. The header is readable
  without a key (``read_seal_header``) so a gateway can route a sealed package to the right
  certificate; until the package is opened, that header is an unauthenticated hint.
* The plaintext length is in the header so that ``open_stream`` knows where the ciphertext stops and
  the tag starts without buffering, and reports truncation and appended bytes precisely.
* Packages can be hundreds of MB, so both directions stream in 1 MiB chunks. GCM authenticates
  only at the end: ``open_stream`` writes plaintext before it knows the package is genuine, and the
  caller must discard what it wrote if it raises. ``open_sealed`` does that for in-memory use.

This module only encrypts. Choosing a trusted, current certificate for the recipient (chain, expiry,
key usage, revocation) is the caller's job.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import BinaryIO, Final

from cryptography import x509
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, keywrap
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers import (
    AEADDecryptionContext,
    AEADEncryptionContext,
    Cipher,
    algorithms,
    modes,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from envelopes import sealed_bytes
from envelopes.errors import SealError

MAGIC: Final = b"DGWSEAL1"
FORMAT_VERSION: Final = 1
CONTENT_ALGORITHM: Final = "A256GCM"
CHUNK_SIZE: Final = 1024 * 1024
KEY_LENGTH: Final = 32  # AES-256
NONCE_LENGTH: Final = 12  # GCM's native nonce size; other sizes are hashed and weaker
TAG_LENGTH: Final = 16  # full-length tag; truncated tags weaken GCM
#: A real header is under 1 KiB even with RSA-4096; the cap stops a forged length prefix from making
#: a reader allocate gigabytes before anything is authenticated.
MAX_HEADER_LENGTH: Final = 16 * 1024
#: GCM's limit for one key and nonce: 2^39 - 256 bits of plaintext.
MAX_PLAINTEXT_LENGTH: Final = 2**36 - 32
#: Below 2048 bits RSA is no longer acceptable for new encryption; refuse to seal for such a key.
MIN_RSA_BITS: Final = 2048

_LENGTH_PREFIX: Final = struct.Struct(">I")
_FINGERPRINT: Final = re.compile(r"[0-9a-f]{64}")
_OAEP: Final = padding.OAEP(
    mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)
#: HKDF "info" prefix: the derived key is for this format and this use only.
_KDF_CONTEXT: Final = b"DGWSEAL1 ECDH-ES+A256KW"
_BASE_FIELDS: Final = frozenset(
    {
        "version",
        "content_alg",
        "key_alg",
        "recipient_sha256",
        "wrapped_key",
        "nonce",
        "plaintext_length",
    }
)
_ECDH_FIELDS: Final = _BASE_FIELDS | {"ephemeral_key", "curve"}


class KeyTransport(StrEnum):
    """How the content key travels to the recipient."""

    RSA_OAEP_256 = "RSA-OAEP-256"
    ECDH_ES_A256KW = "ECDH-ES+A256KW"


class Curve(StrEnum):
    P256 = "P-256"
    P384 = "P-384"
    X25519 = "X25519"


#: cryptography's curve names for the NIST curves docgw accepts.
_EC_CURVES: Final[dict[str, Curve]] = {"secp256r1": Curve.P256, "secp384r1": Curve.P384}


@dataclass(frozen=True, kw_only=True)
class SealHeader:
    """The readable part of a sealed package. Unauthenticated until the package is opened."""

    version: int
    content_algorithm: str
    key_transport: KeyTransport
    #: SHA-256 of the recipient certificate (DER), lowercase hex; see ``certificate_fingerprint``.
    recipient_fingerprint: str
    wrapped_key: bytes
    nonce: bytes
    plaintext_length: int
    #: ECDH only: the sender's ephemeral public key and its curve; None for RSA.
    ephemeral_key: bytes | None = None
    curve: Curve | None = None
    #: The whole container's size (prefix, ciphertext, tag), known once the header is read.
    sealed_length: int | None = None

    def is_for(self, cert: x509.Certificate) -> bool:
        """Whether the package was sealed for ``cert`` (by fingerprint)."""
        return self.recipient_fingerprint == certificate_fingerprint(cert)


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint of ``cert``'s DER, lowercase hex, as ``SealHeader`` carries it."""
    return cert.fingerprint(hashes.SHA256()).hex()


def seal_stream(
    src: BinaryIO, dst: BinaryIO, recipient_cert: x509.Certificate, *, length: int | None = None
) -> None:
    """Read a package from ``src`` and write it to ``dst`` sealed for ``recipient_cert``.

    The header comes first and holds the plaintext length, so it must be known up front: pass
    ``length``, or give a seekable ``src`` and everything from its current position to its end is
    sealed. ``src`` must then yield exactly that many bytes. Raises ``SealError`` for an unsupported
    recipient key or a source of the wrong length; ``dst`` then holds an unusable partial seal.
    """
    plaintext_length = _source_length(src) if length is None else length
    if not 0 <= plaintext_length <= MAX_PLAINTEXT_LENGTH:
        raise SealError(f"cannot seal {plaintext_length} bytes (limit {MAX_PLAINTEXT_LENGTH})")
    prefix, encryptor = _start_sealing(recipient_cert, plaintext_length)
    dst.write(prefix)
    copied = 0
    for chunk in _chunks(src, plaintext_length):
        dst.write(encryptor.update(chunk))
        copied += len(chunk)
    if copied != plaintext_length:
        raise SealError(f"source ended after {copied} of {plaintext_length} declared bytes")
    if src.read(1):
        raise SealError(f"source is longer than the declared {plaintext_length} bytes")
    dst.write(encryptor.finalize())
    dst.write(encryptor.tag)


def open_stream(src: BinaryIO, dst: BinaryIO, private_key: PrivateKeyTypes) -> None:
    """Read a sealed package from ``src`` and write the plaintext to ``dst``.

    **If this raises, the caller must discard everything written to ``dst``.** GCM authenticates
    only at the end, so plaintext is written chunk by chunk before the tag is checked; until this
    returns normally that plaintext may be forged or truncated. Write to a temporary file or
    buffer and keep it only on success.

    Raises ``SealError`` for a wrong key, bad magic, a malformed or altered header, truncated input,
    bytes after the tag, or altered ciphertext or tag.
    """
    header, aad = _read_prefix(src)
    # The content key stays inside _start_opening: a traceback from a failed tag check then holds
    # no key that could decrypt the ciphertext.
    decryptor = _start_opening(header, aad, private_key)
    opened = 0
    for chunk in _chunks(src, header.plaintext_length):
        dst.write(decryptor.update(chunk))
        opened += len(chunk)
    if opened != header.plaintext_length:
        raise SealError(
            f"truncated: ciphertext ends after {opened} of {header.plaintext_length} bytes"
        )
    tag = _read_exact(src, TAG_LENGTH, "authentication tag")
    if src.read(1):
        raise SealError("unexpected bytes after the authentication tag")
    try:
        dst.write(decryptor.finalize_with_tag(tag))
    except InvalidTag as exc:
        raise SealError(
            "authentication failed: the sealed package was altered (header, ciphertext or tag)"
        ) from exc


def seal(data: bytes, recipient_cert: x509.Certificate) -> bytes:
    """``data`` sealed for ``recipient_cert``; see ``seal_stream``."""
    return sealed_bytes.seal_bytes(seal_stream, data, recipient_cert)


def open_sealed(data: bytes, private_key: PrivateKeyTypes) -> bytes:
    """The plaintext of the sealed package ``data``; on any failure ``SealError`` and no bytes."""
    return sealed_bytes.open_bytes(open_stream, data, private_key)


def read_seal_header(src: BinaryIO | bytes) -> SealHeader:
    """The header of a sealed package, without a key, to tell which certificate it is for.

    Accepts the sealed bytes (or just their beginning) or a stream, which is left positioned at the
    ciphertext. The header is not authenticated until the package is opened: use it to route and
    to pick a key, never to trust anything. Raises ``SealError`` if it cannot be read.
    """
    stream = io.BytesIO(src) if isinstance(src, bytes) else src
    header, _ = _read_prefix(stream)
    return header


# --- sealing -------------------------------------------------------------------------------------


def _source_length(src: BinaryIO) -> int:
    if not src.seekable():
        raise SealError("source stream is not seekable: pass length= to seal_stream")
    here = src.tell()
    end = src.seek(0, io.SEEK_END)
    src.seek(here)
    return end - here


def _start_sealing(
    recipient_cert: x509.Certificate, plaintext_length: int
) -> tuple[bytes, AEADEncryptionContext]:
    """The container prefix and an encryptor that has already authenticated it."""
    content_key = os.urandom(KEY_LENGTH)
    nonce = os.urandom(NONCE_LENGTH)
    header = _wrap_content_key(content_key, recipient_cert, nonce, plaintext_length)
    prefix = _encode_prefix(header)
    encryptor = Cipher(algorithms.AES(content_key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(prefix)
    return prefix, encryptor


def _wrap_content_key(
    content_key: bytes, cert: x509.Certificate, nonce: bytes, plaintext_length: int
) -> SealHeader:
    try:
        public_key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SealError(f"recipient certificate has an unusable public key: {exc}") from exc
    fingerprint = certificate_fingerprint(cert)
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise SealError(
                f"recipient RSA key has {public_key.key_size} bits; at least {MIN_RSA_BITS} needed"
            )
        return SealHeader(
            version=FORMAT_VERSION,
            content_algorithm=CONTENT_ALGORITHM,
            key_transport=KeyTransport.RSA_OAEP_256,
            recipient_fingerprint=fingerprint,
            wrapped_key=public_key.encrypt(content_key, _OAEP),
            nonce=nonce,
            plaintext_length=plaintext_length,
        )
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = _ec_curve(public_key.curve)
        ec_ephemeral = ec.generate_private_key(public_key.curve)
        shared = ec_ephemeral.exchange(ec.ECDH(), public_key)
        ephemeral_key = _ec_point(ec_ephemeral.public_key())
        recipient_key = _ec_point(public_key)
    elif isinstance(public_key, x25519.X25519PublicKey):
        curve = Curve.X25519
        x_ephemeral = x25519.X25519PrivateKey.generate()
        shared = x_ephemeral.exchange(public_key)
        ephemeral_key = x_ephemeral.public_key().public_bytes_raw()
        recipient_key = public_key.public_bytes_raw()
    else:
        raise SealError(
            f"unsupported recipient key type {type(public_key).__name__}: "
            "sealing needs an RSA, EC P-256/P-384 or X25519 certificate"
        )
    key_encryption_key = _derive_kek(curve, shared, ephemeral_key, recipient_key)
    return SealHeader(
        version=FORMAT_VERSION,
        content_algorithm=CONTENT_ALGORITHM,
        key_transport=KeyTransport.ECDH_ES_A256KW,
        recipient_fingerprint=fingerprint,
        wrapped_key=keywrap.aes_key_wrap(key_encryption_key, content_key),
        nonce=nonce,
        plaintext_length=plaintext_length,
        ephemeral_key=ephemeral_key,
        curve=curve,
    )


def _ec_curve(curve: ec.EllipticCurve) -> Curve:
    try:
        return _EC_CURVES[curve.name]
    except KeyError:
        raise SealError(
            f"unsupported EC curve {curve.name}: sealing accepts P-256 and P-384"
        ) from None


def _ec_point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def _derive_kek(curve: Curve, shared: bytes, ephemeral_key: bytes, recipient_key: bytes) -> bytes:
    # Binding both public keys into the derivation (as HPKE does) ties the wrapped key to this one
    # exchange; the length prefixes keep the concatenation unambiguous.
    info = _KDF_CONTEXT + b"".join(
        _LENGTH_PREFIX.pack(len(part)) + part
        for part in (curve.value.encode("ascii"), ephemeral_key, recipient_key)
    )
    return HKDF(algorithm=hashes.SHA256(), length=KEY_LENGTH, salt=None, info=info).derive(shared)


def _encode_prefix(header: SealHeader) -> bytes:
    fields: dict[str, object] = {
        "version": header.version,
        "content_alg": header.content_algorithm,
        "key_alg": header.key_transport.value,
        "recipient_sha256": header.recipient_fingerprint,
        "wrapped_key": _b64(header.wrapped_key),
        "nonce": _b64(header.nonce),
        "plaintext_length": header.plaintext_length,
    }
    if header.ephemeral_key is not None and header.curve is not None:
        fields["ephemeral_key"] = _b64(header.ephemeral_key)
        fields["curve"] = header.curve.value
    raw = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("ascii")
    return MAGIC + _LENGTH_PREFIX.pack(len(raw)) + raw


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- opening -------------------------------------------------------------------------------------


def _read_prefix(src: BinaryIO) -> tuple[SealHeader, bytes]:
    """The parsed header and the exact prefix bytes, which are the GCM associated data."""
    magic = _read_exact(src, len(MAGIC), "magic")
    if magic != MAGIC:
        raise SealError("not a docgw sealed package (bad magic)")
    length_bytes = _read_exact(src, _LENGTH_PREFIX.size, "header length")
    (header_length,) = _LENGTH_PREFIX.unpack(length_bytes)
    if not 0 < header_length <= MAX_HEADER_LENGTH:
        raise SealError(f"header length {header_length} is outside 1..{MAX_HEADER_LENGTH}")
    raw = _read_exact(src, header_length, "header")
    prefix = magic + length_bytes + raw
    header = _parse_header(raw)
    sealed_length = len(prefix) + header.plaintext_length + TAG_LENGTH
    return replace(header, sealed_length=sealed_length), prefix


def _parse_header(raw: bytes) -> SealHeader:
    try:
        fields = json.loads(raw.decode("ascii"), object_pairs_hook=_unique_fields)
    # UnicodeDecodeError and JSONDecodeError are ValueErrors; deep nesting raises RecursionError.
    except (ValueError, RecursionError) as exc:
        raise SealError("header is not valid JSON") from exc
    if not isinstance(fields, dict):
        raise SealError("header is not a JSON object")

    version = _int_field(fields, "version")
    if version != FORMAT_VERSION:
        raise SealError(f"unsupported seal format version {version}")
    content_algorithm = _str_field(fields, "content_alg")
    if content_algorithm != CONTENT_ALGORITHM:
        raise SealError(f"unsupported content encryption {content_algorithm!r}")
    key_alg = _str_field(fields, "key_alg")
    try:
        key_transport = KeyTransport(key_alg)
    except ValueError:
        raise SealError(f"unsupported key transport {key_alg!r}") from None

    ecdh = key_transport is KeyTransport.ECDH_ES_A256KW
    expected = _ECDH_FIELDS if ecdh else _BASE_FIELDS
    if set(fields) != expected:
        unknown = sorted(set(fields) - expected)
        missing = sorted(expected - set(fields))
        raise SealError(
            f"header fields do not match {key_alg}: unknown {unknown}, missing {missing}"
        )

    fingerprint = _str_field(fields, "recipient_sha256")
    if not _FINGERPRINT.fullmatch(fingerprint):
        raise SealError("recipient_sha256 is not a lowercase hex SHA-256 fingerprint")
    nonce = _bytes_field(fields, "nonce")
    if len(nonce) != NONCE_LENGTH:
        raise SealError(f"nonce has {len(nonce)} bytes, expected {NONCE_LENGTH}")
    plaintext_length = _int_field(fields, "plaintext_length")
    if not 0 <= plaintext_length <= MAX_PLAINTEXT_LENGTH:
        raise SealError(f"plaintext_length {plaintext_length} is out of range")
    curve: Curve | None = None
    if ecdh:
        curve_name = _str_field(fields, "curve")
        try:
            curve = Curve(curve_name)
        except ValueError:
            raise SealError(f"unsupported curve {curve_name!r}") from None
    return SealHeader(
        version=version,
        content_algorithm=content_algorithm,
        key_transport=key_transport,
        recipient_fingerprint=fingerprint,
        wrapped_key=_bytes_field(fields, "wrapped_key"),
        nonce=nonce,
        plaintext_length=plaintext_length,
        ephemeral_key=_bytes_field(fields, "ephemeral_key") if ecdh else None,
        curve=curve,
    )


def _unique_fields(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # Two readers of a header with a repeated key could disagree on its value (json keeps the
    # last); refuse it so what read_seal_header reports is what open_stream uses.
    fields: dict[str, object] = {}
    for key, value in pairs:
        if key in fields:
            raise SealError(f"header repeats the field {key!r}")
        fields[key] = value
    return fields


def _int_field(fields: dict[str, object], name: str) -> int:
    value = fields.get(name)
    # bool is an int in Python; a header saying "version": true is malformed, not version 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise SealError(f"header field {name!r} must be an integer")
    return value


def _str_field(fields: dict[str, object], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str):
        raise SealError(f"header field {name!r} must be a string")
    return value


def _bytes_field(fields: dict[str, object], name: str) -> bytes:
    try:
        value = base64.b64decode(_str_field(fields, name), validate=True)
    except binascii.Error as exc:
        raise SealError(f"header field {name!r} is not valid base64") from exc
    if not value:
        raise SealError(f"header field {name!r} is empty")
    return value


def _start_opening(
    header: SealHeader, aad: bytes, private_key: PrivateKeyTypes
) -> AEADDecryptionContext:
    """A decryptor keyed with the unwrapped content key that has already authenticated ``aad``."""
    content_key = _unwrap_content_key(header, private_key)
    decryptor = Cipher(algorithms.AES(content_key), modes.GCM(header.nonce)).decryptor()
    decryptor.authenticate_additional_data(aad)
    return decryptor


def _unwrap_content_key(header: SealHeader, private_key: PrivateKeyTypes) -> bytes:
    failure = (
        "cannot unwrap the content key: wrong private key (the package is sealed for certificate "
        f"{header.recipient_fingerprint}) or an altered header"
    )
    if header.key_transport is KeyTransport.RSA_OAEP_256:
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise SealError(f"{failure}; RSA key needed, got {type(private_key).__name__}")
        try:
            content_key = private_key.decrypt(header.wrapped_key, _OAEP)
        except ValueError as exc:
            raise SealError(failure) from exc
    else:
        key_encryption_key = _agree(header, private_key, failure)
        try:
            content_key = keywrap.aes_key_unwrap(key_encryption_key, header.wrapped_key)
        except (keywrap.InvalidUnwrap, ValueError) as exc:
            raise SealError(failure) from exc
    if len(content_key) != KEY_LENGTH:
        raise SealError(f"content key has {len(content_key)} bytes, expected {KEY_LENGTH}")
    return content_key


def _agree(header: SealHeader, private_key: PrivateKeyTypes, failure: str) -> bytes:
    """The key-encryption key, re-derived from the header's ephemeral key and ``private_key``."""
    curve, ephemeral_key = header.curve, header.ephemeral_key
    if curve is None or ephemeral_key is None:  # _parse_header never builds such a header
        raise SealError("ECDH header lacks its curve or ephemeral key")
    try:
        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            if _EC_CURVES.get(private_key.curve.name) is not curve:
                raise SealError(f"{failure}; the package is sealed on {curve.value}")
            recipient_key = _ec_point(private_key.public_key())
            peer = ec.EllipticCurvePublicKey.from_encoded_point(private_key.curve, ephemeral_key)
            shared = private_key.exchange(ec.ECDH(), peer)
        elif isinstance(private_key, x25519.X25519PrivateKey) and curve is Curve.X25519:
            recipient_key = private_key.public_key().public_bytes_raw()
            x_peer = x25519.X25519PublicKey.from_public_bytes(ephemeral_key)
            shared = private_key.exchange(x_peer)
        else:
            raise SealError(
                f"{failure}; {curve.value} key needed, got {type(private_key).__name__}"
            )
    # Invalid points, and low-order X25519 points (all-zero secret), end up here.
    except ValueError as exc:
        raise SealError(f"header carries an unusable ephemeral key: {exc}") from exc
    return _derive_kek(curve, shared, ephemeral_key, recipient_key)


# --- streams -------------------------------------------------------------------------------------


def _chunks(src: BinaryIO, length: int) -> Iterator[bytes]:
    """Up to ``length`` bytes of ``src`` in chunks of at most CHUNK_SIZE; stops early at EOF."""
    remaining = length
    while remaining:
        chunk = src.read(min(CHUNK_SIZE, remaining))
        if not chunk:
            return
        remaining -= len(chunk)
        yield chunk


def _read_exact(src: BinaryIO, length: int, what: str) -> bytes:
    # read() may return fewer bytes than asked (pipes, raw files) without being at EOF.
    data = b"".join(_chunks(src, length))
    if len(data) != length:
        raise SealError(f"truncated: {what} ends after {len(data)} of {length} bytes")
    return data
