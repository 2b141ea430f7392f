"""The standard sealed container: CMS AuthEnvelopedData (RFC 5652, RFC 5083) with AES-256-GCM
(RFC 5084), for one recipient certificate, written and read as streams.

What docgw writes (DER, definite lengths; ``[n]`` are context tags)::

    ContentInfo SEQUENCE
      contentType        id-ct-authEnvelopedData (1.2.840.113549.1.9.16.1.23)
      [0] AuthEnvelopedData SEQUENCE
        version          0
        recipientInfos   SET OF one RecipientInfo (below)
        authEncryptedContentInfo SEQUENCE
          contentType    id-data
          algorithm      the content cipher's AlgorithmIdentifier (AES-256-GCM: id-aes256-GCM,
                         GCMParameters { 12-byte nonce, ICV length 16 })
          [0]            the ciphertext, primitive, its length announced up front
        mac              OCTET STRING: the 16-byte GCM tag
      (no originatorInfo, authAttrs or unauthAttrs)

The recipient follows the certificate's key, and is named by the certificate's issuer and serial
number (``IssuerAndSerialNumber``):

* RSA (2048 bits or more): KeyTransRecipientInfo, RSAES-OAEP with SHA-256 and MGF1-SHA-256
  (RFC 8017, parameters as RFC 4055);
* EC P-256 / P-384: KeyAgreeRecipientInfo, ephemeral-static ECDH with the ANSI X9.63 KDF
  (dhSinglePass-stdDH-sha256kdf-scheme / -sha384kdf-scheme, RFC 5753) and AES-256 key wrap
  (RFC 3394) of the content key.

Definite lengths when the length is known, although CMS streaming usually means the indefinite
form: the gateway always knows a package's length before sealing (a file or a spool), and with
AES-GCM the ciphertext is exactly as long, so every length can be written before the first
ciphertext byte. Memory stays flat all the same (1 MiB chunks), the result is DER, and the
container announces its own size, which the connectors check before sending (a truncated or padded
seal is never sent). A source of unknown length (a pipe) is sealed in the indefinite-length form,
one OCTET STRING segment per chunk, as ``openssl cms -stream`` writes it; reading accepts both.

What is authenticated: GCM covers the ciphertext only (RFC 5083 feeds authAttrs to GCM, and docgw
writes none). The rest of the container is not covered, but a change to anything opening uses
(wrapped key, ephemeral key, algorithm parameters) changes the content key or the nonce, and the
tag then fails. The recipient identifier is not used to open: a change to it goes unnoticed by
opening, and makes the seal name another certificate (an unauthenticated routing hint, as the old
container's header was until opened). ``authAttrs``
come *after* the ciphertext yet must be authenticated *before* it, so a reader that streams cannot
honour them: a container with authAttrs is refused (OpenSSL writes none by default either).

The content cipher is a provider (:class:`ContentCipher`): AES-256-GCM by default; a deployment
registers the cipher its cipher authority approves (docs/reference/sealing.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, keywrap
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from envelopes import der
from envelopes.errors import SealError

ID_DATA: Final = "1.2.840.113549.1.7.1"
ID_AUTH_ENVELOPED_DATA: Final = "1.2.840.113549.1.9.16.1.23"
ID_AES256_GCM: Final = "2.16.840.1.101.3.4.1.46"
RSAES_OAEP: Final = "1.2.840.113549.1.1.7"
RSA_ENCRYPTION: Final = "1.2.840.113549.1.1.1"
MGF1: Final = "1.2.840.113549.1.1.8"
P_SPECIFIED: Final = "1.2.840.113549.1.1.9"
ID_EC_PUBLIC_KEY: Final = "1.2.840.10045.2.1"
AES256_WRAP: Final = "2.16.840.1.101.3.4.1.45"

_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "1.3.14.3.2.26": hashes.SHA1,
    "2.16.840.1.101.3.4.2.1": hashes.SHA256,
    "2.16.840.1.101.3.4.2.2": hashes.SHA384,
    "2.16.840.1.101.3.4.2.3": hashes.SHA512,
}
_HASH_OIDS: Final = {value: key for key, value in _HASHES.items()}
#: RFC 5753 single-pass ECDH schemes by their KDF hash (read: all; written: SHA-256 / SHA-384).
#: SHA-1 is what ``openssl cms`` uses unless told otherwise; as a KDF it is still sound.
_ECDH_SCHEMES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "1.3.133.16.840.63.0.2": hashes.SHA1,
    "1.3.132.1.11.1": hashes.SHA256,
    "1.3.132.1.11.2": hashes.SHA384,
    "1.3.132.1.11.3": hashes.SHA512,
}
_AES_WRAPS: Final = {"2.16.840.1.101.3.4.1.5": 16, "2.16.840.1.101.3.4.1.25": 24, AES256_WRAP: 32}
#: The curve docgw seals on, and the KDF hash it uses there (RFC 5008's pairing).
_CURVES: Final[dict[str, tuple[str, type[hashes.HashAlgorithm]]]] = {
    "secp256r1": ("1.3.132.1.11.1", hashes.SHA256),
    "secp384r1": ("1.3.132.1.11.2", hashes.SHA384),
}
MIN_RSA_BITS: Final = 2048
#: The part before the ciphertext is a few hundred bytes; a forged one is refused before it can
#: make a reader allocate much.
MAX_HEAD_SIZE: Final = 64 * 1024
#: AES-GCM's limit for one key and nonce (2^39 - 256 bits).
MAX_PLAINTEXT_LENGTH: Final = 2**36 - 32


# --- the content cipher provider -----------------------------------------------------------------


class ContentEncryptor(Protocol):
    def update(self, data: bytes) -> bytes: ...
    def finalize(self) -> bytes: ...
    @property
    def tag(self) -> bytes: ...


class ContentDecryptor(Protocol):
    def update(self, data: bytes) -> bytes: ...
    def finalize_with_tag(self, tag: bytes) -> bytes:
        """The last plaintext; raises ``SealError`` if ``tag`` does not authenticate it."""
        ...


class ContentCipher(Protocol):
    """An authenticated content cipher for AuthEnvelopedData, named by its algorithm OID.

    It must be an AEAD whose tag goes in ``mac``, with a fresh key per seal (docgw makes one), and
    stream: ``update`` takes and returns any amount.
    """

    #: The AlgorithmIdentifier OID (dotted).
    oid: str
    name: str
    key_length: int
    tag_length: int

    def new_parameters(self) -> bytes:
        """The AlgorithmIdentifier parameters for one seal, DER (a fresh nonce, typically)."""
        ...

    def ciphertext_length(self, plaintext_length: int) -> int: ...

    def encryptor(self, key: bytes, parameters: bytes) -> ContentEncryptor: ...

    def decryptor(self, key: bytes, parameters: bytes) -> ContentDecryptor:
        """Raises ``SealError`` for parameters this cipher does not accept."""
        ...


class _GcmDecryptor:
    def __init__(self, key: bytes, nonce: bytes) -> None:
        self._context = Cipher(algorithms.AES(key), modes.GCM(nonce)).decryptor()

    def update(self, data: bytes) -> bytes:
        return self._context.update(data)

    def finalize_with_tag(self, tag: bytes) -> bytes:
        try:
            return self._context.finalize_with_tag(tag)
        except (InvalidTag, ValueError) as exc:
            raise SealError(
                "authentication failed: the sealed package was altered (ciphertext or tag)"
            ) from exc


class Aes256Gcm:
    """AES-256-GCM (RFC 5084): 12-byte random nonce, 16-byte tag."""

    oid = ID_AES256_GCM
    name = "AES-256-GCM"
    key_length = 32
    tag_length = 16
    nonce_length = 12  # GCM's native size; other sizes are hashed and weaker

    def new_parameters(self) -> bytes:
        # The key is fresh for every seal, so a random nonce can never repeat under one key.
        return der.sequence(
            der.octet_string(os.urandom(self.nonce_length)), der.integer(self.tag_length)
        )

    def ciphertext_length(self, plaintext_length: int) -> int:
        return plaintext_length  # GCM does not pad

    def encryptor(self, key: bytes, parameters: bytes) -> ContentEncryptor:
        return Cipher(algorithms.AES(key), modes.GCM(self._nonce(parameters))).encryptor()

    def decryptor(self, key: bytes, parameters: bytes) -> ContentDecryptor:
        return _GcmDecryptor(key, self._nonce(parameters))

    def _nonce(self, parameters: bytes) -> bytes:
        fields = der.read_one(parameters, "GCMParameters").expect(der.SEQUENCE, "GCMParameters")
        items = fields.children()
        if not 1 <= len(items) <= 2:
            raise SealError("GCMParameters: nonce and ICV length expected")
        nonce = items[0].as_octets("GCM nonce")
        # aes-ICVlen DEFAULT 12: absent means a 12-byte tag, which docgw does not accept.
        icv = items[1].as_int("GCM ICV length") if len(items) == 2 else 12
        if len(nonce) != self.nonce_length or icv != self.tag_length:
            raise SealError(
                f"AES-GCM with a {len(nonce)}-byte nonce and a {icv}-byte tag: docgw accepts "
                f"{self.nonce_length} and {self.tag_length}"
            )
        return nonce


AES_256_GCM: Final = Aes256Gcm()
_ciphers: dict[str, ContentCipher] = {AES_256_GCM.oid: AES_256_GCM}


def register_content_cipher(cipher: ContentCipher) -> None:
    """Let ``open_stream`` read containers sealed with ``cipher`` (found by its OID)."""
    _ciphers[cipher.oid] = cipher


def content_cipher(oid: str) -> ContentCipher:
    try:
        return _ciphers[oid]
    except KeyError:
        raise SealError(
            f"content encryption {oid} is not one docgw opens (registered: {sorted(_ciphers)}); "
            "an EnvelopedData-style cipher without authentication (CBC) is never accepted"
        ) from None


# --- the head (everything before the ciphertext) -------------------------------------------------


@dataclass(frozen=True)
class RecipientId:
    """How a RecipientInfo names its certificate: issuer and serial, or a subject key identifier."""

    issuer: bytes | None = None  # the issuer Name, DER
    serial: int | None = None
    key_identifier: bytes | None = None

    def matches(self, cert: x509.Certificate) -> bool:
        if self.key_identifier is not None:
            return self.key_identifier == _subject_key_identifier(cert)
        return self.serial == cert.serial_number and self.issuer == _issuer_der(cert)


@dataclass(frozen=True)
class CmsHeader:
    """The readable part of a sealed package: who it is for. Unauthenticated until opened."""

    recipients: tuple[RecipientId, ...]
    content_cipher: str  # the content encryption algorithm's OID
    #: The whole container's size in bytes when its outer length is definite (docgw always writes
    #: it so), else None.
    sealed_length: int | None

    def is_for(self, cert: x509.Certificate) -> bool:
        return any(recipient.matches(cert) for recipient in self.recipients)


@dataclass(frozen=True)
class _Head:
    header: CmsHeader
    recipient_infos: list[der.Element]
    parameters: bytes
    #: The ends of the open containers, outermost first (an offset, or None: indefinite).
    open_ends: list[int | None]
    content_tag: int
    content_length: int | None


def read_header(src: BinaryIO) -> CmsHeader:
    """The head of a sealed package; ``src`` is left at the start of the ciphertext."""
    return _read_head(der.Reader(src)).header


def _read_head(reader: der.Reader) -> _Head:
    ends: list[int | None] = []

    def enter(tag: int, what: str) -> None:
        found, length = reader.head(what)
        if found != tag:
            raise SealError(f"{what}: expected tag 0x{tag:02x}, found 0x{found:02x}")
        ends.append(None if length is None else reader.offset + length)

    def element(what: str) -> der.Element:
        return reader.element(max_size=MAX_HEAD_SIZE, what=what)

    enter(der.SEQUENCE, "ContentInfo")
    sealed_length = ends[0]
    content_type = element("ContentInfo contentType").as_oid("ContentInfo contentType")
    if content_type != ID_AUTH_ENVELOPED_DATA:
        raise SealError(
            f"CMS content type {content_type} is not AuthEnvelopedData "
            f"({ID_AUTH_ENVELOPED_DATA}): docgw opens only authenticated encryption"
        )
    enter(der.context(0, constructed=True), "ContentInfo content")
    enter(der.SEQUENCE, "AuthEnvelopedData")
    if element("AuthEnvelopedData version").as_int("AuthEnvelopedData version") != 0:
        raise SealError("AuthEnvelopedData version must be 0")
    infos = element("recipientInfos")
    if infos.tag == der.context(0, constructed=True):  # originatorInfo: certificates, not needed
        infos = element("recipientInfos")
    recipient_infos = infos.expect(der.SET, "recipientInfos").children()
    if not recipient_infos:
        raise SealError("recipientInfos is empty")
    enter(der.SEQUENCE, "authEncryptedContentInfo")
    if element("contentType").as_oid("contentType") != ID_DATA:
        raise SealError("the encrypted content type is not id-data")
    cipher_id = element("contentEncryptionAlgorithm").expect(
        der.SEQUENCE, "contentEncryptionAlgorithm"
    )
    fields = cipher_id.children()
    if not 1 <= len(fields) <= 2:
        raise SealError("contentEncryptionAlgorithm: malformed AlgorithmIdentifier")
    content_tag, content_length = reader.head("encryptedContent")
    if content_tag & ~der.CONSTRUCTED != der.context(0, constructed=False):
        raise SealError("authEncryptedContentInfo has no encryptedContent")
    return _Head(
        header=CmsHeader(
            recipients=tuple(_recipient_ids(recipient_infos)),
            content_cipher=fields[0].as_oid("contentEncryptionAlgorithm"),
            sealed_length=sealed_length,
        ),
        recipient_infos=recipient_infos,
        parameters=fields[1].encoded() if len(fields) == 2 else b"",
        open_ends=ends,
        content_tag=content_tag,
        content_length=content_length,
    )


def _recipient_ids(recipient_infos: list[der.Element]) -> Iterator[RecipientId]:
    for info in recipient_infos:
        if info.tag == der.SEQUENCE:  # KeyTransRecipientInfo
            yield _recipient_id(info.children()[1:2], "KeyTransRecipientInfo rid")
        elif info.tag == der.context(1, constructed=True):  # KeyAgreeRecipientInfo
            for key in _kari_fields(info).encrypted_keys:
                fields = key.expect(der.SEQUENCE, "RecipientEncryptedKey").children()
                yield _recipient_id(fields[:1], "RecipientEncryptedKey rid")
        # Other kinds (kekri, pwri, ori) name no certificate: they are not for docgw's keys.


def _recipient_id(found: list[der.Element], what: str) -> RecipientId:
    if not found:
        raise SealError(f"{what} is missing")
    rid = found[0]
    if rid.tag == der.SEQUENCE:
        parts = rid.children()
        if len(parts) != 2 or parts[0].tag != der.SEQUENCE:
            raise SealError(f"{what}: malformed IssuerAndSerialNumber")
        return RecipientId(issuer=parts[0].encoded(), serial=parts[1].as_int(f"{what} serial"))
    if rid.tag in (der.context(0, constructed=False), der.context(0, constructed=True)):
        # subjectKeyIdentifier [0] (KeyTrans) or rKeyId [0] (KeyAgree, its first field)
        content = rid.content if not rid.tag & der.CONSTRUCTED else rid.children()[0].content
        return RecipientId(key_identifier=content)
    raise SealError(f"{what}: unknown recipient identifier (tag 0x{rid.tag:02x})")


# --- sealing -------------------------------------------------------------------------------------


def seal_stream(
    src: BinaryIO,
    dst: BinaryIO,
    recipient_cert: x509.Certificate,
    *,
    length: int | None,
    cipher: ContentCipher = AES_256_GCM,
) -> None:
    """Seal ``src`` for ``recipient_cert`` into ``dst``.

    With ``length``, exactly that many bytes of ``src``, in DER: every length is written before the
    first ciphertext byte. Without (a pipe, say), ``src`` to its end, in the indefinite-length BER
    form, one OCTET STRING segment per chunk of ciphertext. Raises ``SealError`` for an unsupported
    recipient key or a source of another length; ``dst`` then holds an unusable partial container.
    """
    if length is not None and not 0 <= length <= MAX_PLAINTEXT_LENGTH:
        raise SealError(f"cannot seal {length} bytes (limit {MAX_PLAINTEXT_LENGTH})")
    content_key = os.urandom(cipher.key_length)
    recipient_info = _recipient_info(recipient_cert, content_key)
    parameters = cipher.new_parameters()
    encryptor = cipher.encryptor(content_key, parameters)
    del content_key  # a traceback from here on holds no key that opens the ciphertext
    leading = der.integer(0) + der.der_set(recipient_info)
    content_head = der.oid(ID_DATA) + der.algorithm(cipher.oid, parameters)
    if length is None:
        _seal_indefinite(src, dst, leading, content_head, encryptor, cipher)
        return

    ciphertext_length = cipher.ciphertext_length(length)
    content_head += der.header(der.context(0, constructed=False), ciphertext_length)
    content_info_length = len(content_head) + ciphertext_length
    mac_length = len(der.octet_string(b"\x00" * cipher.tag_length))
    auth_length = len(leading) + len(der.header(der.SEQUENCE, content_info_length))
    auth_length += content_info_length + mac_length
    explicit_length = len(der.header(der.SEQUENCE, auth_length)) + auth_length
    type_oid = der.oid(ID_AUTH_ENVELOPED_DATA)
    outer_length = len(type_oid) + len(der.header(0xA0, explicit_length)) + explicit_length
    dst.write(
        der.header(der.SEQUENCE, outer_length)
        + type_oid
        + der.header(der.context(0, constructed=True), explicit_length)
        + der.header(der.SEQUENCE, auth_length)
        + leading
        + der.header(der.SEQUENCE, content_info_length)
        + content_head
    )
    copied, written = _encrypt(src, dst, encryptor, length, segments=False)
    if copied != length:
        raise SealError(f"source ended after {copied} of {length} declared bytes")
    if src.read(1):
        raise SealError(f"source is longer than the declared {length} bytes")
    written += _write(dst, encryptor.finalize())
    if written != ciphertext_length or len(encryptor.tag) != cipher.tag_length:
        raise SealError(f"the content cipher {cipher.name} broke its announced lengths")
    dst.write(der.octet_string(encryptor.tag))


_INDEFINITE: Final = 0x80
_END: Final = b"\x00\x00"  # end-of-contents


def _seal_indefinite(
    src: BinaryIO,
    dst: BinaryIO,
    leading: bytes,
    content_head: bytes,
    encryptor: ContentEncryptor,
    cipher: ContentCipher,
) -> None:
    def open_(tag: int) -> bytes:
        return bytes([tag, _INDEFINITE])

    dst.write(
        open_(der.SEQUENCE)
        + der.oid(ID_AUTH_ENVELOPED_DATA)
        + open_(der.context(0, constructed=True))
        + open_(der.SEQUENCE)
        + leading
        + open_(der.SEQUENCE)
        + content_head
        + open_(der.context(0, constructed=True))
    )
    _encrypt(src, dst, encryptor, None, segments=True)
    _write_segment(dst, encryptor.finalize())
    if len(encryptor.tag) != cipher.tag_length:
        raise SealError(f"the content cipher {cipher.name} broke its announced tag length")
    # ends: encryptedContent, authEncryptedContentInfo; mac; AuthEnvelopedData, [0], ContentInfo
    dst.write(_END * 2 + der.octet_string(encryptor.tag) + _END * 3)


def _encrypt(
    src: BinaryIO, dst: BinaryIO, encryptor: ContentEncryptor, length: int | None, *, segments: bool
) -> tuple[int, int]:
    """Encrypt ``src`` (``length`` bytes, or to its end) into ``dst``, each piece of ciphertext an
    OCTET STRING of its own if ``segments``; (plaintext bytes read, ciphertext bytes written)."""
    write = _write_segment if segments else _write
    copied = written = 0
    for chunk in _chunks(src, length):
        copied += len(chunk)
        if copied > MAX_PLAINTEXT_LENGTH:
            raise SealError(f"cannot seal more than {MAX_PLAINTEXT_LENGTH} bytes")
        # No name holds the ciphertext past this line: three 1 MiB buffers alive, not four.
        written += write(dst, encryptor.update(chunk))
    return copied, written


def _recipient_info(cert: x509.Certificate, content_key: bytes) -> bytes:
    try:
        public_key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SealError(f"recipient certificate has an unusable public key: {exc}") from exc
    rid = der.sequence(_issuer_der(cert), der.integer(cert.serial_number))
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise SealError(
                f"recipient RSA key has {public_key.key_size} bits; at least {MIN_RSA_BITS} needed"
            )
        encrypted_key = public_key.encrypt(content_key, _oaep(hashes.SHA256()))
        return der.sequence(der.integer(0), rid, _OAEP_SHA256, der.octet_string(encrypted_key))
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in _CURVES:
            raise SealError(
                f"unsupported EC curve {public_key.curve.name}: sealing accepts P-256 and P-384"
            )
        scheme, kdf_hash = _CURVES[public_key.curve.name]
        ephemeral = ec.generate_private_key(public_key.curve)
        shared = ephemeral.exchange(ec.ECDH(), public_key)
        wrap = der.algorithm(AES256_WRAP)
        key_encryption_key = _x963_kek(kdf_hash(), shared, wrap, 32, ukm=None)
        point = ephemeral.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        originator = der.tlv(
            der.context(1, constructed=True),
            der.algorithm(ID_EC_PUBLIC_KEY) + der.bit_string(point),
        )
        return der.tlv(
            der.context(1, constructed=True),
            der.integer(3)
            + der.tlv(der.context(0, constructed=True), originator)
            + der.algorithm(scheme, wrap)
            + der.sequence(
                der.sequence(
                    rid, der.octet_string(keywrap.aes_key_wrap(key_encryption_key, content_key))
                )
            ),
        )
    raise SealError(
        f"unsupported recipient key type {type(public_key).__name__}: the standard container "
        "seals for RSA and EC P-256/P-384 certificates"
    )


def _oaep(digest: hashes.HashAlgorithm, label: bytes | None = None) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=label)


#: RSAES-OAEP with SHA-256 and MGF1-SHA-256, hash parameters absent (as OpenSSL writes them).
_OAEP_SHA256: Final = der.algorithm(
    RSAES_OAEP,
    der.sequence(
        der.tlv(der.context(0, constructed=True), der.algorithm(_HASH_OIDS[hashes.SHA256])),
        der.tlv(
            der.context(1, constructed=True),
            der.algorithm(MGF1, der.algorithm(_HASH_OIDS[hashes.SHA256])),
        ),
    ),
)


def _x963_kek(
    kdf_hash: hashes.HashAlgorithm, shared: bytes, wrap: bytes, length: int, ukm: bytes | None
) -> bytes:
    """RFC 5753 §7.2: the key-encryption key from the ECDH secret and ECC-CMS-SharedInfo."""
    shared_info = der.sequence(
        wrap,
        der.tlv(der.context(0, constructed=True), der.octet_string(ukm)) if ukm else b"",
        der.tlv(
            der.context(2, constructed=True), der.octet_string((8 * length).to_bytes(4, "big"))
        ),
    )
    return X963KDF(algorithm=kdf_hash, length=length, sharedinfo=shared_info).derive(shared)


# --- opening -------------------------------------------------------------------------------------


def open_stream(src: BinaryIO, dst: BinaryIO, private_key: PrivateKeyTypes) -> None:
    """Write the plaintext of the container ``src`` to ``dst``.

    **If this raises, the caller must discard everything written to ``dst``**: the tag comes
    last, so plaintext is written before it is authenticated. A wrong key fails before anything
    is written.
    """
    reader = der.Reader(src)
    head = _read_head(reader)
    cipher = content_cipher(head.header.content_cipher)
    decryptor = cipher.decryptor(_content_key(head.recipient_infos, private_key), head.parameters)
    for chunk in reader.octet_chunks(head.content_tag, head.content_length, "encryptedContent"):
        dst.write(decryptor.update(chunk))
    ends = head.open_ends
    _close(reader, ends.pop(), "authEncryptedContentInfo")
    tag, length = reader.head("mac")
    if tag == der.context(1, constructed=True):
        raise SealError(
            "the container carries authAttrs: they precede the mac but are authenticated before "
            "the content, which a streaming reader cannot do; docgw does not open such seals"
        )
    if tag != der.OCTET_STRING or length != cipher.tag_length:
        raise SealError(f"mac: a {cipher.tag_length}-byte OCTET STRING expected")
    mac = reader.read(length, "mac")
    _finish_auth_enveloped_data(reader, ends.pop())
    while ends:
        _close(reader, ends.pop(), "container")
    if not reader.at_end():
        raise SealError("unexpected bytes after the sealed container")
    dst.write(decryptor.finalize_with_tag(mac))


def _close(reader: der.Reader, end: int | None, what: str) -> None:
    if end is None:
        reader.end_of_contents(what)
    elif reader.offset != end:
        raise SealError(f"{what}: its content does not end where its length says")


def _finish_auth_enveloped_data(reader: der.Reader, end: int | None) -> None:
    """Read to the end of AuthEnvelopedData: past unauthAttrs [2], if any, which as their name
    says are not trusted (docgw writes none)."""
    if end is not None and reader.offset == end:
        return
    tag, length = reader.head("AuthEnvelopedData end")
    if end is None and (tag, length) == (0, 0):
        return
    if tag != der.context(2, constructed=True):
        raise SealError(f"unexpected element 0x{tag:02x} after the mac")
    if length is None or length > MAX_HEAD_SIZE:
        raise SealError("unauthAttrs: indefinite or too large")
    reader.read(length, "unauthAttrs")
    _close(reader, end, "AuthEnvelopedData")


def _content_key(recipient_infos: list[der.Element], private_key: PrivateKeyTypes) -> bytes:
    """The content key, from the first RecipientInfo that ``private_key`` opens."""
    attempts = 0
    for info in recipient_infos:
        if isinstance(private_key, rsa.RSAPrivateKey) and info.tag == der.SEQUENCE:
            attempts += 1
            key = _unwrap_key_transport(info, private_key)
        elif isinstance(private_key, ec.EllipticCurvePrivateKey) and info.tag == 0xA1:
            attempts += 1
            key = _unwrap_key_agreement(info, private_key)
        else:
            continue
        if key is not None:
            return key
    raise SealError(
        f"cannot unwrap the content key: none of {len(recipient_infos)} recipient(s) "
        f"({attempts} of this key's type) opens with this {type(private_key).__name__}"
    )


def _unwrap_key_transport(info: der.Element, private_key: rsa.RSAPrivateKey) -> bytes | None:
    fields = info.children()
    if len(fields) != 4:
        raise SealError("KeyTransRecipientInfo: four fields expected")
    # version 0 goes with IssuerAndSerialNumber, 2 with a subjectKeyIdentifier (RFC 5652 6.2.1)
    if fields[0].as_int("KeyTransRecipientInfo version") != (
        0 if fields[1].tag == der.SEQUENCE else 2
    ):
        raise SealError("KeyTransRecipientInfo: version does not match its recipient identifier")
    algorithm = fields[2].expect(der.SEQUENCE, "keyEncryptionAlgorithm").children()
    algorithm_oid = algorithm[0].as_oid("keyEncryptionAlgorithm")
    if algorithm_oid == RSA_ENCRYPTION:
        raise SealError(
            "the content key is encrypted with RSA PKCS#1 v1.5, which docgw does not accept "
            "(padding-oracle attacks); seal with RSAES-OAEP (openssl: -keyopt "
            "rsa_padding_mode:oaep)"
        )
    if algorithm_oid != RSAES_OAEP:
        raise SealError(f"key transport {algorithm_oid} is not RSAES-OAEP")
    oaep = _oaep_parameters(algorithm[1] if len(algorithm) > 1 else None)
    try:
        return private_key.decrypt(fields[3].as_octets("encryptedKey"), oaep)
    except ValueError:
        return None  # another recipient's, or altered


def _oaep_parameters(parameters: der.Element | None) -> padding.OAEP:
    """RSAES-OAEP-params (RFC 8017 A.2.1) with their SHA-1 defaults."""
    digest: hashes.HashAlgorithm = hashes.SHA1()
    mgf_digest: hashes.HashAlgorithm = hashes.SHA1()
    label: bytes | None = None
    fields = []
    if parameters is not None and parameters.tag != der.NULL:
        fields = parameters.expect(der.SEQUENCE, "RSAES-OAEP-params").children()
    for field in fields:
        inner = field.children()
        if len(inner) != 1:
            raise SealError("RSAES-OAEP-params: malformed field")
        parts = inner[0].expect(der.SEQUENCE, "RSAES-OAEP-params").children()
        if field.tag == der.context(0, constructed=True):
            digest = _hash(parts[0])
        elif field.tag == der.context(1, constructed=True):
            if parts[0].as_oid("maskGenAlgorithm") != MGF1 or len(parts) != 2:
                raise SealError("RSAES-OAEP-params: only MGF1 is supported")
            mgf_digest = _hash(parts[1].expect(der.SEQUENCE, "MGF1 hash").children()[0])
        elif field.tag == der.context(2, constructed=True):
            if parts[0].as_oid("pSourceAlgorithm") != P_SPECIFIED:
                raise SealError("RSAES-OAEP-params: unknown pSourceAlgorithm")
            label = parts[1].as_octets("OAEP label") if len(parts) > 1 else None
        else:
            raise SealError("RSAES-OAEP-params: unknown field")
    return padding.OAEP(mgf=padding.MGF1(mgf_digest), algorithm=digest, label=label or None)


def _hash(identifier: der.Element) -> hashes.HashAlgorithm:
    dotted = identifier.as_oid("hash algorithm")
    if dotted not in _HASHES:
        raise SealError(f"hash algorithm {dotted} is not supported")
    return _HASHES[dotted]()


@dataclass(frozen=True)
class _KariFields:
    originator: der.Element
    ukm: bytes | None
    scheme: str
    wrap: der.Element
    encrypted_keys: list[der.Element]


def _kari_fields(info: der.Element) -> _KariFields:
    fields = info.children()
    if len(fields) < 4 or fields[0].as_int("KeyAgreeRecipientInfo version") != 3:
        raise SealError("KeyAgreeRecipientInfo: version 3 and four or five fields expected")
    ukm = None
    rest = fields[2:]
    if fields[2].tag == der.context(1, constructed=True):
        ukm = fields[2].children()[0].as_octets("ukm")
        rest = fields[3:]
    if len(rest) != 2:
        raise SealError("KeyAgreeRecipientInfo: malformed")
    algorithm = rest[0].expect(der.SEQUENCE, "keyEncryptionAlgorithm").children()
    if len(algorithm) != 2:
        raise SealError("KeyAgreeRecipientInfo: the key wrap algorithm is missing")
    return _KariFields(
        originator=fields[1].expect(der.context(0, constructed=True), "originator"),
        ukm=ukm,
        scheme=algorithm[0].as_oid("keyEncryptionAlgorithm"),
        wrap=algorithm[1].expect(der.SEQUENCE, "key wrap algorithm"),
        encrypted_keys=rest[1].expect(der.SEQUENCE, "recipientEncryptedKeys").children(),
    )


def _unwrap_key_agreement(
    info: der.Element, private_key: ec.EllipticCurvePrivateKey
) -> bytes | None:
    kari = _kari_fields(info)
    if kari.scheme not in _ECDH_SCHEMES:
        raise SealError(f"key agreement {kari.scheme} is not a supported ECDH scheme (RFC 5753)")
    wrap_oid = kari.wrap.children()[0].as_oid("key wrap algorithm")
    if wrap_oid not in _AES_WRAPS:
        raise SealError(f"key wrap {wrap_oid} is not AES key wrap")
    # originator [0] { originatorKey [1] { algorithm, publicKey BIT STRING } }
    chosen = kari.originator.children()
    if len(chosen) != 1 or chosen[0].tag != der.context(1, constructed=True):
        raise SealError("KeyAgreeRecipientInfo: the originator must be an ephemeral public key")
    key_fields = chosen[0].children()
    key_algorithm = key_fields[0].expect(der.SEQUENCE, "originatorKey algorithm").children()
    if len(key_fields) != 2 or key_algorithm[0].as_oid("originatorKey") != (ID_EC_PUBLIC_KEY):
        raise SealError("KeyAgreeRecipientInfo: the originator key is not an EC key")
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(
            private_key.curve, key_fields[1].as_bits("originator public key")
        )
        shared = private_key.exchange(ec.ECDH(), peer)
    except ValueError:  # a point not on this key's curve: another recipient's, or altered
        return None
    kek = _x963_kek(
        _ECDH_SCHEMES[kari.scheme](), shared, kari.wrap.encoded(), _AES_WRAPS[wrap_oid], kari.ukm
    )
    for encrypted in kari.encrypted_keys:
        fields = encrypted.expect(der.SEQUENCE, "RecipientEncryptedKey").children()
        if len(fields) != 2:
            raise SealError("RecipientEncryptedKey: malformed")
        try:
            return keywrap.aes_key_unwrap(kek, fields[1].as_octets("encryptedKey"))
        except (keywrap.InvalidUnwrap, ValueError):
            continue  # another recipient's, or altered
    return None


# --- certificates and streams --------------------------------------------------------------------


def _issuer_der(cert: x509.Certificate) -> bytes:
    """The issuer Name exactly as encoded in the certificate (what IssuerAndSerialNumber copies)."""
    fields = der.read_one(cert.tbs_certificate_bytes, "TBSCertificate").children()
    if fields[0].tag == der.context(0, constructed=True):  # version
        fields = fields[1:]
    return fields[2].encoded()  # serialNumber, signature, issuer


def _subject_key_identifier(cert: x509.Certificate) -> bytes | None:
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return None
    return extension.value.digest


def _write(dst: BinaryIO, data: bytes) -> int:
    dst.write(data)
    return len(data)


def _write_segment(dst: BinaryIO, data: bytes) -> int:
    if data:  # an empty segment would be legal BER, but says nothing
        dst.write(der.header(der.OCTET_STRING, len(data)))
        dst.write(data)
    return len(data)


def _chunks(src: BinaryIO, length: int | None) -> Iterator[bytes]:
    """``length`` bytes of ``src`` (None: to its end) in chunks of at most CHUNK_SIZE; stops
    early at the end of ``src``."""
    remaining = length
    while remaining is None or remaining:
        chunk = src.read(der.CHUNK_SIZE if remaining is None else min(der.CHUNK_SIZE, remaining))
        if not chunk:
            return
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk
