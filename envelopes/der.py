"""Just enough ASN.1 for the sealed container (envelopes/cms.py): a DER writer and a BER reader
that works on a stream, so a 100 MB seal is never held in memory.

``cryptography`` parses certificates and keys but has no general ASN.1 API, and no streaming CMS
at all; this module is the small part of ASN.1 that the CMS structures need (tags below 31,
lengths up to 2^63). Writing is always DER with definite lengths. Reading takes BER: definite
lengths and the indefinite form (``0x80`` … ``00 00``) that streaming CMS writers such as
``openssl cms -stream`` emit, with the same checks either way.

Errors are ``SealError``: everything read here is a sealed package.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from envelopes.errors import SealError

# Universal tags (the whole identifier octet, class and constructed bit included).
INTEGER: Final = 0x02
BIT_STRING: Final = 0x03
OCTET_STRING: Final = 0x04
NULL: Final = 0x05
OID: Final = 0x06
SEQUENCE: Final = 0x30
SET: Final = 0x31
CONSTRUCTED: Final = 0x20
CONTEXT: Final = 0x80

#: Nesting deeper than this is never needed by CMS; a forged package cannot recurse further.
MAX_DEPTH: Final = 32
#: Read chunk when streaming content: the same 1 MiB as the rest of docgw's package I/O.
CHUNK_SIZE: Final = 1024 * 1024


def context(number: int, *, constructed: bool) -> int:
    """The identifier octet of ``[number]`` (context-specific)."""
    return CONTEXT | (CONSTRUCTED if constructed else 0) | number


# --- writing (DER) -------------------------------------------------------------------------------


def length_octets(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + length_octets(len(content)) + content


def header(tag: int, length: int) -> bytes:
    """Identifier and length octets only, for content that is written afterwards (streamed)."""
    return bytes([tag]) + length_octets(length)


def sequence(*items: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(items))


def der_set(*items: bytes) -> bytes:
    # DER orders SET OF elements by their encodings.
    return tlv(SET, b"".join(sorted(items)))


def integer(value: int) -> bytes:
    length = value.bit_length() // 8 + 1  # room for the sign bit
    return tlv(INTEGER, value.to_bytes(length, "big", signed=True))


def octet_string(value: bytes) -> bytes:
    return tlv(OCTET_STRING, value)


def bit_string(value: bytes) -> bytes:
    return tlv(BIT_STRING, b"\x00" + value)  # no unused bits


def oid(dotted: str) -> bytes:
    arcs = [int(arc) for arc in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        septets = [arc & 0x7F]
        while arc := arc >> 7:
            septets.append(0x80 | (arc & 0x7F))
        body.extend(reversed(septets))
    return tlv(OID, bytes(body))


def algorithm(dotted: str, parameters: bytes | None = None) -> bytes:
    """An AlgorithmIdentifier; ``parameters`` already encoded, or None for absent."""
    return sequence(oid(dotted), parameters or b"")


# --- reading (BER) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Element:
    """One decoded TLV held in memory: its identifier octet and its content octets."""

    tag: int
    content: bytes

    def children(self) -> list[Element]:
        """The elements inside a constructed value."""
        return read_all(self.content)

    def expect(self, tag: int, what: str) -> Element:
        if self.tag != tag:
            raise SealError(f"{what}: expected tag 0x{tag:02x}, found 0x{self.tag:02x}")
        return self

    def as_oid(self, what: str) -> str:
        return decode_oid(self.expect(OID, what).content, what)

    def as_int(self, what: str) -> int:
        content = self.expect(INTEGER, what).content
        if not content:
            raise SealError(f"{what}: empty INTEGER")
        return int.from_bytes(content, "big", signed=True)

    def as_octets(self, what: str) -> bytes:
        return self.expect(OCTET_STRING, what).content

    def as_bits(self, what: str) -> bytes:
        content = self.expect(BIT_STRING, what).content
        if not content or content[0] != 0:
            raise SealError(f"{what}: a BIT STRING of whole octets expected")
        return content[1:]

    def encoded(self) -> bytes:
        """The element re-encoded with a definite length (its DER form, when it was DER)."""
        return tlv(self.tag, self.content)


def decode_oid(content: bytes, what: str) -> str:
    if not content or content[-1] & 0x80:
        raise SealError(f"{what}: malformed OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for octet in content:
        value = (value << 7) | (octet & 0x7F)
        if not octet & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in (first, arcs[0] - 40 * first, *arcs[1:]))


def read_all(data: bytes) -> list[Element]:
    """Every element in ``data``, which must hold whole elements and nothing else."""
    reader = Reader(io.BytesIO(data))
    elements = []
    while reader.offset < len(data):
        elements.append(reader.element(max_size=len(data)))
    return elements


def read_one(data: bytes, what: str) -> Element:
    elements = read_all(data)
    if len(elements) != 1:
        raise SealError(f"{what}: one element expected, found {len(elements)}")
    return elements[0]


class Reader:
    """Reads BER elements from a stream, counting the octets it has consumed (``offset``)."""

    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self.offset = 0

    def read(self, count: int, what: str) -> bytes:
        parts = []
        remaining = count
        while remaining:
            part = self._src.read(min(remaining, CHUNK_SIZE))
            if not part:
                raise SealError(
                    f"truncated: {what} ends after {count - remaining} of {count} bytes"
                )
            parts.append(part)
            remaining -= len(part)
        self.offset += count
        return b"".join(parts)

    def at_end(self) -> bool:
        """Whether the stream has ended (reads one octet if it has not, so only call it last)."""
        return not self._src.read(1)

    def head(self, what: str) -> tuple[int, int | None]:
        """The next identifier octet and its length (None: indefinite)."""
        tag = self.read(1, what)[0]
        if tag & 0x1F == 0x1F:
            raise SealError(f"{what}: high tag numbers are not used by CMS")
        first = self.read(1, what)[0]
        if first < 0x80:
            return tag, first
        if first == 0x80:
            if not tag & CONSTRUCTED:
                raise SealError(f"{what}: indefinite length on a primitive value")
            return tag, None
        count = first & 0x7F
        if count > 8:
            raise SealError(f"{what}: length of {count} octets")
        return tag, int.from_bytes(self.read(count, what), "big")

    def end_of_contents(self, what: str) -> None:
        if self.read(2, what) != b"\x00\x00":
            raise SealError(f"{what}: end-of-contents expected")

    def element(self, *, max_size: int, what: str = "element", depth: int = 0) -> Element:
        """The next whole element, read into memory; at most ``max_size`` content octets."""
        tag, length = self.head(what)
        if length is not None:
            if length > max_size:
                raise SealError(f"{what}: {length} bytes exceeds the limit of {max_size}")
            return Element(tag, self.read(length, what))
        # Indefinite: the content is the children's encodings up to the end-of-contents octets,
        # kept in their definite form so that the in-memory parser needs one form only.
        if depth >= MAX_DEPTH:
            raise SealError(f"{what}: nested deeper than {MAX_DEPTH}")
        parts: list[bytes] = []
        size = 0
        while (child := self.element(max_size=max_size - size, what=what, depth=depth + 1)).tag:
            parts.append(child.encoded())
            size += len(parts[-1])
        if child.content:
            raise SealError(f"{what}: malformed end-of-contents")
        return Element(tag, b"".join(parts))

    def octet_chunks(
        self, tag: int, length: int | None, what: str, depth: int = 0
    ) -> Iterator[bytes]:
        """The content of an OCTET STRING-like value whose identifier and length were just read,
        in chunks of at most CHUNK_SIZE: primitive, or constructed of OCTET STRING segments."""
        if not tag & CONSTRUCTED:
            yield from self._primitive_chunks(length or 0, what)
            return
        if depth >= MAX_DEPTH:
            raise SealError(f"{what}: nested deeper than {MAX_DEPTH}")
        end = None if length is None else self.offset + length
        while end is None or self.offset < end:
            segment_tag, segment_length = self.head(what)
            if end is None and segment_tag == 0 and segment_length == 0:
                return
            if segment_tag & ~CONSTRUCTED != OCTET_STRING:
                raise SealError(f"{what}: segment with tag 0x{segment_tag:02x}, not OCTET STRING")
            yield from self.octet_chunks(segment_tag, segment_length, what, depth + 1)
        if self.offset != end:
            raise SealError(f"{what}: segments overrun the announced length")

    def _primitive_chunks(self, length: int, what: str) -> Iterator[bytes]:
        remaining = length
        while remaining:
            size = min(remaining, CHUNK_SIZE)
            yield self.read(size, what)
            remaining -= size
