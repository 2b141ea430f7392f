"""Attachments: where their bytes come from, how they are streamed as one-line base64, digested,
and sniffed.

Nothing here holds a whole attachment in memory: sources are opened as streams (twice when
building: once to digest, once to encode), and received base64 is decoded chunk by chunk into a
caller-chosen sink while its SHA-256 is computed.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

import pybase64

from envelopes.errors import AttachmentEmpty, AttachmentError, AttachmentNameInvalid
from envelopes.xmltext import describe, first_unsafe

#: Bytes read per step; a multiple of 3 so that base64 chunks concatenate into one line.
ENCODE_CHUNK = 3 << 18  # 768 KiB
HEAD_SIZE = 16

ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
PDF_MAGIC = b"%PDF-"
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .doc, .xls


#: "C:" starts an absolute or drive-relative path on Windows, where a recipient may save the file.
_DRIVE = re.compile(r"[A-Za-z]:")
#: XML carries tab, LF and CR, but a file name has no business holding them (nor DEL): a line
#: break in a name breaks the Content-Disposition header a recipient serves it under.
_NAME_CONTROL = re.compile("[\t\n\r\x7f]")


def check_name(name: str, *, element: str = "attachment") -> str:
    """The name an attachment travels under (stripped): a plain file name, never a path.

    The name is signed into the package and recipients save the file under it, so ``.``, ``..``,
    anything with ``/`` or ``\\`` (absolute paths, ``../`` and ``..\\`` sequences), a drive
    letter, control characters and characters XML cannot carry (a name that was not UTF-8 among
    them) are refused
    rather than cut down or replaced: the sender learns its name was not used.
    """
    stripped = name.strip()
    if not stripped:
        raise AttachmentNameInvalid("an attachment needs a file name", element=element)
    unsafe = first_unsafe(stripped)
    if unsafe is None and (control := _NAME_CONTROL.search(stripped)):
        unsafe = (control.start(), control.group())
    if unsafe is not None:
        raise AttachmentNameInvalid(
            f"character {unsafe[0] + 1} ({describe(unsafe[1])}) cannot be in a file name",
            element=element,
        )
    if stripped in (".", ".."):
        raise AttachmentNameInvalid(f"{stripped!r} is not a file name", element=element)
    if "/" in stripped or "\\" in stripped or _DRIVE.match(stripped):
        raise AttachmentNameInvalid(
            f"{stripped!r} is a path: send the file name alone", element=element
        )
    return stripped


def checked_source(
    name: str,
    *,
    size: int,
    open: Callable[[], IO[bytes]],
    content_type: str | None = None,
    element: str = "attachment",
) -> AttachmentSource:
    """An attachment a caller gives us to send (an API part, a ``docgw send --attach`` file, a
    drop-folder file), held to the rules every such attachment meets: a plain file name
    (:func:`check_name`) and at least one byte (an empty file is a mistake, not a document;
    :class:`AttachmentEmpty`)."""
    name = check_name(name, element=element)
    if size <= 0:
        raise AttachmentEmpty(f"{name} has no bytes", element=element)
    return AttachmentSource(name=name, open=open, content_type=content_type)


@dataclass(frozen=True, kw_only=True)
class AttachmentSource:
    """An attachment to send. ``open`` returns a fresh binary stream each time it is called."""

    name: str
    open: Callable[[], IO[bytes]]
    content_type: str | None = None
    description: str | None = None
    content_id: str | None = None

    @property
    def effective_content_type(self) -> str:
        if self.content_type:
            return self.content_type
        guessed, _ = mimetypes.guess_type(self.name)
        return guessed or "application/octet-stream"


@dataclass(frozen=True, kw_only=True)
class Digest:
    size: int
    sha256: bytes
    head: bytes  # the first bytes, for sniffing

    @property
    def sha256_hex(self) -> str:
        return self.sha256.hex()


def sniff(head: bytes) -> str | None:
    """The type the bytes announce, for the few types that carry a magic number."""
    if head.startswith(ZIP_MAGICS):
        return "application/zip"
    if head.startswith(PDF_MAGIC):
        return "application/pdf"
    if head.startswith(OLE2_MAGIC):
        return "application/x-ole-storage"
    return None


def sniffed_mismatch(label: str, head: bytes) -> str | None:
    """The sniffed type where it contradicts the label, else None.

    Senders label zips as application/pdf (DOMAIN.md §3): a PDF label is checked against the PDF
    magic, a zip label against the zip magic. Zip-based formats (docx, xlsx) are labelled as
    themselves and are not flagged.
    """
    label = label.split(";")[0].strip().lower()
    actual = sniff(head)
    if label == "application/pdf" and actual != "application/pdf":
        return actual or "application/octet-stream"
    if label in ("application/zip", "application/x-zip-compressed") and actual != "application/zip":
        return actual or "application/octet-stream"
    return None


def digest_stream(stream: IO[bytes]) -> Digest:
    hasher = hashlib.sha256()
    size = 0
    head = b""
    while chunk := stream.read(ENCODE_CHUNK):
        if len(head) < HEAD_SIZE:
            head = (head + chunk)[:HEAD_SIZE]
        hasher.update(chunk)
        size += len(chunk)
    return Digest(size=size, sha256=hasher.digest(), head=head)


def encode_base64(stream: IO[bytes], write: Callable[[bytes], object]) -> None:
    """Write the stream as base64 on ONE line (what the SDK and the axis expect), chunk by chunk."""
    while chunk := stream.read(ENCODE_CHUNK):
        # Every chunk but the last is a multiple of 3 bytes, so no padding appears mid-line.
        while len(chunk) % 3 and (more := stream.read(3 - len(chunk) % 3)):
            chunk += more
        write(pybase64.b64encode(chunk))


_WHITESPACE = str.maketrans("", "", " \t\r\n")


class Base64Decoder:
    """A :class:`envelopes.xmlsafe.TextSink` that decodes base64 text as it streams in.

    Whitespace (line-wrapped base64 from other senders) is tolerated; any other non-alphabet
    character or misplaced padding is an AttachmentError naming the element.
    """

    def __init__(self, out: IO[bytes] | None, *, element: str) -> None:
        self._out = out
        self._element = element
        self._pending = ""
        self._hasher = hashlib.sha256()
        self._size = 0
        self._head = b""
        self._closed = False
        self._padded = False  # a quantum with "=" was decoded: nothing may follow it

    def write(self, text: str) -> None:
        # docgw and the SDK write one line: skip the translate pass (a copy) when there is nothing
        # to remove; a one-character `in` is a memchr, some 20 times faster than translate.
        if "\n" in text or " " in text or "\r" in text or "\t" in text:
            text = text.translate(_WHITESPACE)
        text = self._pending + text
        usable = len(text) - len(text) % 4
        self._pending = text[usable:]
        if usable:
            self._emit(text[:usable])

    def _emit(self, text: str) -> None:
        # strict_mode sees one piece at a time; padding at the end of an earlier piece must end
        # the data however the text was split into pieces.
        if self._padded:
            raise AttachmentError("invalid base64: data after padding", element=self._element)
        self._padded = text.endswith("=")
        try:
            # pybase64 (SIMD) takes an ASCII str as it is; validate=True refuses what binascii's
            # strict mode refuses (non-alphabet bytes, padding mid-text, a short quantum) and
            # also "====" runs. CPython's decoder does ~0.2–0.6 GB/s: base64 was the largest cost
            # of reading a large package.
            data = pybase64.b64decode(text, validate=True)
        except ValueError as exc:  # binascii.Error is a ValueError
            raise AttachmentError(f"invalid base64: {exc}", element=self._element) from exc
        if len(self._head) < HEAD_SIZE:
            self._head = (self._head + data)[:HEAD_SIZE]
        self._hasher.update(data)
        self._size += len(data)
        if self._out is not None:
            self._out.write(data)

    def close(self) -> None:
        if self._pending:
            raise AttachmentError("base64 text ends mid-quantum", element=self._element)
        self._closed = True

    @property
    def digest(self) -> Digest:
        return Digest(size=self._size, sha256=self._hasher.digest(), head=self._head)
