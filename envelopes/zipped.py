"""The official builder's zip wrapping of attachments, undone within bounds.

The official SDK zips every attachment that is not pdf/doc/docx/xls/xlsx/zip into a one-entry zip
labelled ``application/zip`` under the original name, and its reader unzips it (DOMAIN.md §3); in
the field a zip also travels labelled ``application/pdf`` under a ``.pdf`` name (the test axis
sample). The signature covers the bytes as they travelled, the zip: it is verified first, and the
file the sender meant is derived from the verified bytes afterwards, here. A zip that breaks a
bound is refused with its own :class:`~envelopes.errors.ZipRefused` code, which the caller reports
as a notice and hands the zip over as it came: nothing else of the package is lost.
"""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO

from envelopes.attachments import PDF_MAGIC, check_name, sniff
from envelopes.errors import (
    AttachmentNameInvalid,
    ZipBomb,
    ZipEntryCount,
    ZipEntryPath,
    ZipRefused,
    ZipTooLarge,
    ZipUnreadable,
)
from envelopes.model import AttachmentInfo, DocumentPackage
from envelopes.reading import Notice

#: The labels the builder gives its zips.
ZIP_LABELS = frozenset({"application/zip", "application/x-zip-compressed"})
#: Formats that are zips themselves: never unpacked, whatever their label says.
ZIP_BASED_SUFFIXES = frozenset({".zip", ".docx", ".xlsx", ".pptx", ".odt", ".ods", ".odp"})
#: What the SDK's java.util.zip writes. Other methods (bzip2, lzma) decompress without a bound on
#: one read's output in CPython's zipfile, so they are refused rather than trusted.
_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_CHUNK = 1 << 20
#: The notice of an attachment handed over unpacked.
UNZIPPED = "ATTACHMENT_UNZIPPED"
#: Every notice an :class:`Unwrapping` gives: a message without one has nothing to unpack.
NOTICE_CODES = frozenset(
    {
        UNZIPPED,
        *(e.code for e in (ZipEntryCount, ZipEntryPath, ZipTooLarge, ZipBomb, ZipUnreadable)),
    }
)


@dataclass(frozen=True, kw_only=True)
class UnzipLimits:
    """Bounds on unpacking one attachment. Constants, not settings: they guard memory and disk,
    not a policy an operator tunes, and a refused zip still reaches the local system as it came."""

    #: The largest unpacked file: the API's default ``max_upload_bytes`` (512 MiB), the largest
    #: file docgw takes from its own local system.
    max_bytes: int = 512 << 20
    #: Unpacked size over the zip's size. Office files and PDFs compress 1–10×, plain text and
    #: XML up to ~30×; a deflate bomb reaches ~1,000×.
    max_ratio: int = 100
    #: Below this many unpacked bytes the ratio is not checked: a small file is no bomb, however
    #: well it compresses (a page of blanks).
    ratio_floor: int = 1 << 20


@dataclass(frozen=True, kw_only=True)
class Unzipped:
    """The one file inside a zipped attachment."""

    entry_name: str
    size: int
    sha256: str


@dataclass(frozen=True, kw_only=True)
class Unwrapping:
    """What became of one attachment the sender's builder zipped: unpacked, or refused."""

    attachment: AttachmentInfo
    #: The attachment's element, for notices and logs.
    element: str
    unzipped: Unzipped | None = None
    refused: ZipRefused | None = None

    @property
    def notice(self) -> Notice:
        if self.refused is not None:
            return Notice(
                code=self.refused.code,
                message=f"{self.attachment.name} is handed over zipped, as it came: "
                f"{self.refused.message}",
                element=self.element,
            )
        assert self.unzipped is not None
        return Notice(
            code=UNZIPPED,
            message=f"{self.attachment.name} came as a one-entry zip "
            f"({self.unzipped.entry_name!r}): handed over unpacked, {self.unzipped.size} bytes",
            element=self.element,
        )


def is_wrapped(attachment: AttachmentInfo) -> bool:
    """Whether the bytes are a zip the sender's builder made around the file it meant: a zip
    labelled as one under a name that is not a zip format, or a zip under a PDF label."""
    label = attachment.content_type.split(";")[0].strip().lower()
    if attachment.sniffed_type is None:
        is_zip = label in ZIP_LABELS  # a zip label the bytes do not contradict
    else:
        is_zip = attachment.sniffed_type == "application/zip"
    return is_zip and PurePosixPath(attachment.name.lower()).suffix not in ZIP_BASED_SUFFIXES


def unzip(
    source: IO[bytes],
    out: IO[bytes] | None,
    *,
    element: str,
    limits: UnzipLimits | None = None,
) -> Unzipped:
    """Unpack the one entry of the zip ``source`` (seekable) into ``out`` in chunks, or only
    check it when ``out`` is None. Raises a :class:`ZipRefused` naming ``element``; ``out`` may
    then hold a part of the entry, which the caller discards."""
    limits = limits or UnzipLimits()
    zip_size = source.seek(0, 2)
    source.seek(0)
    #: The unpacked size the ratio allows, against the attachment's real size (the sizes the zip
    #: declares are the sender's word).
    ratio_cap = max(limits.max_ratio * zip_size, limits.ratio_floor)
    try:
        archive = zipfile.ZipFile(source)
    except _UNREADABLE as exc:
        raise ZipUnreadable(f"not a readable zip: {exc}", element=element) from exc
    with archive:
        entry = _the_entry(archive, element)
        _check_size(entry.file_size, limits, ratio_cap, element)  # before unpacking anything
        hasher = hashlib.sha256()
        size = 0
        with _open(archive, entry, element) as stream:
            while chunk := _read(stream, element):
                size += len(chunk)
                _check_size(size, limits, ratio_cap, element)
                hasher.update(chunk)
                if out is not None:
                    out.write(chunk)  # a failure here (disk full) is the caller's, not the zip's
    return Unzipped(entry_name=entry.filename, size=size, sha256=hasher.hexdigest())


#: What a broken or hostile zip makes zipfile raise while it is read (an offset before the start
#: of the file is an OSError on a file, a ValueError on BytesIO; a version or a flag zipfile does
#: not implement, NotImplementedError).
_UNREADABLE = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    ValueError,
    OSError,
    NotImplementedError,
)


def _open(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, element: str) -> IO[bytes]:
    try:
        return archive.open(entry)
    except _UNREADABLE as exc:
        raise ZipUnreadable(f"the entry cannot be opened: {exc}", element=element) from exc


def _read(stream: IO[bytes], element: str) -> bytes:
    try:
        return stream.read(_CHUNK)
    except _UNREADABLE as exc:
        # zipfile's CRC check at the end of the entry also stops an entry longer than declared:
        # it never returns more than the declared size, which was checked against the caps.
        raise ZipUnreadable(f"the entry cannot be read: {exc}", element=element) from exc


def _the_entry(archive: zipfile.ZipFile, element: str) -> zipfile.ZipInfo:
    entries = archive.infolist()
    if len(entries) != 1:
        raise ZipEntryCount(
            f"the zip holds {len(entries)} entries; the builder writes exactly one",
            element=element,
        )
    [entry] = entries
    name = entry.orig_filename  # before zipfile cuts it at a NUL
    try:
        check_name(name, element=element)  # the rule an attachment name to send meets
    except AttachmentNameInvalid as exc:
        raise ZipEntryPath(
            f"the entry name {name!r} is not a plain file name: {exc.message}", element=element
        ) from exc
    if entry.flag_bits & 0x1:
        raise ZipUnreadable("the entry is encrypted", element=element)
    if entry.compress_type not in _METHODS:
        raise ZipUnreadable(
            f"compression method {entry.compress_type} is not stored or deflate", element=element
        )
    return entry


def _check_size(size: int, limits: UnzipLimits, ratio_cap: int, element: str) -> None:
    if size > limits.max_bytes:
        raise ZipTooLarge(f"the entry is over {limits.max_bytes} bytes unpacked", element=element)
    if size > ratio_cap:
        raise ZipBomb(
            f"the entry unpacks to over {limits.max_ratio} times the zip's size", element=element
        )


def unwrap_document(
    document: DocumentPackage,
    contents: Mapping[str, IO[bytes] | None],
    *,
    out: Callable[[AttachmentInfo], IO[bytes]] | None = None,
    limits: UnzipLimits | None = None,
) -> list[Unwrapping]:
    """Unpack (or, without ``out``, only check) every attachment of a verified document that
    :func:`is_wrapped`. ``contents`` maps each ContentId to the attachment's bytes as received;
    ``out`` makes the stream each unpacked file is written to."""
    done = []
    for index, attachment in enumerate(document.attachments, start=1):
        content = contents.get(attachment.content_id)
        if content is None or not is_wrapped(attachment):
            continue
        element = f"/edXML/AttachmentEncoded/Attachment[{index}]"
        try:
            target = out(attachment) if out is not None else None
            unzipped = unzip(content, target, element=element, limits=limits)
        except ZipRefused as refused:
            done.append(Unwrapping(attachment=attachment, element=element, refused=refused))
            continue
        done.append(Unwrapping(attachment=attachment, element=element, unzipped=unzipped))
    return done


#: The first bytes that decide whether a spool keeps an attachment: the longest magic it keeps
#: ("%PDF-"; a zip's is 4).
_DECIDING_BYTES = len(PDF_MAGIC)


class ZipCandidateSpool(tempfile.SpooledTemporaryFile[bytes]):
    """A sink for :func:`~envelopes.reading.read_package` that keeps an attachment's bytes only
    when they begin as a zip (in memory up to ``max_size``, then a temporary file): the first
    bytes decide, so a large PDF is not copied for nothing."""

    #: The sniffed types whose bytes are kept.
    KEEP: frozenset[str] = frozenset({"application/zip"})

    def __init__(self, max_size: int = 8 << 20) -> None:
        super().__init__(max_size=max_size)
        self._head = b""
        self.dropped = False

    def write(self, s: bytes) -> int:  # type: ignore[override]  # bytes only, as the decoder writes
        if self.dropped:
            return len(s)
        if len(self._head) < _DECIDING_BYTES:
            self._head += s[: _DECIDING_BYTES - len(self._head)]
            if len(self._head) == _DECIDING_BYTES and sniff(self._head) not in self.KEEP:
                self.dropped = True
                self.seek(0)
                self.truncate()
                return len(s)
        return super().write(s)


class ZipOrPdfSpool(ZipCandidateSpool):
    """Keeps PDFs too: their own signatures are verified after the package's
    (gateway/usecases/document_signatures.py)."""

    KEEP = frozenset({"application/zip", "application/pdf"})
