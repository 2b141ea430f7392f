"""Sealing: a whole signed edXML package encrypted for one recipient certificate (DOMAIN.md §6).

Classified packages (Mật, Tối mật, Tuyệt mật) must be encrypted for their recipient before they
leave the sender's process, so the database, the queue and the wire only ever hold ciphertext. A
seal is made *after* signing: the recipient opens it and then verifies the signatures inside as for
any package. Sealing gives confidentiality and tamper evidence; it does not say who sealed (anyone
holding the recipient's certificate can seal), which is what the signatures inside are for.

Two containers, told apart by their first byte:

* **CMS AuthEnvelopedData** (RFC 5652 / 5083, AES-256-GCM per RFC 5084), :mod:`envelopes.cms`:
  what docgw writes. Any CMS implementation opens it (``openssl cms -decrypt``), and docgw opens
  one sealed by another (``openssl cms -encrypt -aes-256-gcm``). Starts with ``0x30``.
* **DGWSEAL1**, :mod:`envelopes.dgwseal1`: docgw's own earlier container. Copies stored in it still
  open; docgw no longer writes it. Starts with ``DGWSEAL1``.

Packages can be hundreds of MB, so both directions stream in 1 MiB chunks. The authentication tag
comes last: ``open_stream`` writes plaintext before it knows the package is genuine, and the caller
must discard what it wrote if it raises. ``open_sealed`` does that for in-memory use.

This module only encrypts. Choosing a trusted, current certificate for the recipient (chain, expiry,
key usage, revocation) is the caller's job.
"""

from __future__ import annotations

import io
from enum import StrEnum
from typing import BinaryIO, Final, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from envelopes import cms, der, dgwseal1, sealed_bytes
from envelopes.cms import ContentCipher
from envelopes.errors import SealError

#: How many leading bytes ``sniff`` needs to recognize a sealed package.
SNIFF_LENGTH: Final = 32


class SealFormat(StrEnum):
    CMS = "cms"
    DGWSEAL1 = "dgwseal1"


class SealHeader(Protocol):
    """What can be read from a sealed package without a key. A hint until it is opened."""

    @property
    def sealed_length(self) -> int | None:
        """The whole container's size, if the container announces it."""
        ...

    def is_for(self, cert: x509.Certificate) -> bool:
        """Whether it names ``cert`` as its recipient."""
        ...


_default_cipher: ContentCipher = cms.AES_256_GCM


def set_default_content_cipher(cipher: ContentCipher) -> None:
    """Seal with ``cipher`` from now on (and open it): the hook for a deployment whose cipher
    authority prescribes another content cipher (docs/reference/sealing.md)."""
    global _default_cipher
    cms.register_content_cipher(cipher)
    _default_cipher = cipher


def sniff(head: bytes) -> SealFormat | None:
    """Which sealed container ``head`` (the first SNIFF_LENGTH bytes or more) begins, if any.

    A CMS ContentInfo (a SEQUENCE starting with an OBJECT IDENTIFIER) counts whatever its content
    type, so that opening names what is wrong with, say, an EnvelopedData; an edXML package, being
    XML, can never begin so.
    """
    if head.startswith(dgwseal1.MAGIC):
        return SealFormat.DGWSEAL1
    reader = der.Reader(io.BytesIO(head[:SNIFF_LENGTH]))
    try:
        tag, _ = reader.head("ContentInfo")
        if tag == der.SEQUENCE and reader.head("contentType")[0] == der.OID:
            return SealFormat.CMS
    except SealError:
        pass
    return None


def is_sealed(head: bytes) -> bool:
    return sniff(head) is not None


def seal_stream(
    src: BinaryIO,
    dst: BinaryIO,
    recipient_cert: x509.Certificate,
    *,
    length: int | None = None,
    cipher: ContentCipher | None = None,
) -> None:
    """Read a package from ``src`` and write it to ``dst`` sealed for ``recipient_cert`` (CMS).

    With a known length — ``length``, or a seekable ``src``, sealed from its current position to
    its end — the container is DER and announces its size (what the gateway always writes);
    ``src`` must then yield exactly that many bytes. A source that is neither (a pipe) is sealed to
    its end in the indefinite-length form. Raises ``SealError`` for an unsupported recipient key or
    a source of the wrong length; ``dst`` then holds an unusable partial seal.
    """
    if length is None and src.seekable():
        length = _source_length(src)
    cms.seal_stream(src, dst, recipient_cert, length=length, cipher=cipher or _default_cipher)


def open_stream(src: BinaryIO, dst: BinaryIO, private_key: PrivateKeyTypes) -> None:
    """Read a sealed package (either container) from ``src`` and write the plaintext to ``dst``.

    **If this raises, the caller must discard everything written to ``dst``.** The tag is checked
    only at the end; until this returns normally the plaintext written may be forged or
    truncated. Raises ``SealError`` for a wrong key, a container that is neither format, a
    malformed or altered one, truncated input or bytes after the end.
    """
    container, stream = _detect(src)
    if container is SealFormat.DGWSEAL1:
        dgwseal1.open_stream(stream, dst, private_key)
    else:
        cms.open_stream(stream, dst, private_key)


def seal(data: bytes, recipient_cert: x509.Certificate) -> bytes:
    """``data`` sealed for ``recipient_cert``; see ``seal_stream``."""
    return sealed_bytes.seal_bytes(seal_stream, data, recipient_cert)


def open_sealed(data: bytes, private_key: PrivateKeyTypes) -> bytes:
    """The plaintext of the sealed package ``data``; on any failure ``SealError`` and no bytes."""
    return sealed_bytes.open_bytes(open_stream, data, private_key)


def read_seal_header(src: BinaryIO | bytes) -> SealHeader:
    """The header of a sealed package (either container), without a key: whom it is for.

    Accepts the sealed bytes (or just their beginning: a few hundred bytes suffice) or a stream.
    Not authenticated until the package is opened: use it to route and to pick a key, never to
    trust anything. Raises ``SealError`` if it cannot be read.
    """
    container, stream = _detect(io.BytesIO(src) if isinstance(src, bytes) else src)
    if container is SealFormat.DGWSEAL1:
        return dgwseal1.read_seal_header(stream)
    return cms.read_header(stream)


def _detect(src: BinaryIO) -> tuple[SealFormat, BinaryIO]:
    """The container of ``src`` by its first byte, and a stream that still starts with it."""
    first = src.read(1)
    if first == dgwseal1.MAGIC[:1]:
        container = SealFormat.DGWSEAL1
    elif first == bytes([der.SEQUENCE]):
        container = SealFormat.CMS
    else:
        raise SealError("not a sealed package: neither CMS nor DGWSEAL1")
    return container, _Rejoined(first, src)  # type: ignore[return-value]


class _Rejoined:
    """``rest`` with ``head`` put back in front: sources need not be seekable."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._rest.read(size)
        head, self._head = self._head, b""
        if size < 0:
            return head + self._rest.read()
        if size <= len(head):
            self._head = head[size:]
            return head[:size]
        return head  # a short read, which every reader here allows


def _source_length(src: BinaryIO) -> int:
    here = src.tell()
    end = src.seek(0, io.SEEK_END)
    src.seek(here)
    return end - here
