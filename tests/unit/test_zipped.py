"""The official builder's one-entry zip (envelopes.zipped): which attachments are its zips, the
bounds on unpacking one, and each refusal's own code. Zips are made here with the stdlib."""

from __future__ import annotations

import functools
import hashlib
import io
import struct
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pki  # tests/pki.py
import pytest

from envelopes.attachments import AttachmentSource
from envelopes.building import build_document_bytes
from envelopes.errors import (
    ZipBomb,
    ZipEntryCount,
    ZipEntryPath,
    ZipRefused,
    ZipTooLarge,
    ZipUnreadable,
)
from envelopes.model import AttachmentInfo
from envelopes.reading import ParsedPackage, read_package
from envelopes.verification import check_zipped, verify_document
from envelopes.zipped import UnzipLimits, ZipCandidateSpool, is_wrapped, unwrap_document, unzip

TEXT = "Danh sách đơn vị đã kết nối: Bộ Nội vụ, UBND tỉnh Thừa Thiên Huế\n".encode() * 200
ELEMENT = "/edXML/AttachmentEncoded/Attachment[1]"


def zip_of(entries: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, data in entries.items():
            entry = zipfile.ZipInfo(name, date_time=(2024, 3, 15, 8, 0, 0))
            archive.writestr(entry, data, compress_type=method)
    return buffer.getvalue()


def declaring(data: bytes, size: int) -> bytes:
    """``data`` (a one-entry zip) with the central directory declaring ``size`` bytes unpacked."""
    at = data.index(b"PK\x01\x02") + 24  # the central header's uncompressed size
    return data[:at] + struct.pack("<I", size) + data[at + 4 :]


def needing_version(data: bytes, version: int) -> bytes:
    """``data`` with the central header's "version needed to extract" set to ``version``."""
    at = data.index(b"PK\x01\x02") + 6
    return data[:at] + struct.pack("<H", version) + data[at + 2 :]


def refused(data: bytes, error: type[ZipRefused], limits: UnzipLimits | None = None) -> ZipRefused:
    with pytest.raises(error) as caught:
        unzip(io.BytesIO(data), io.BytesIO(), element=ELEMENT, limits=limits)
    assert caught.value.element == ELEMENT
    return caught.value


def package(attachments: dict[str, tuple[str, bytes]], *, signed: bool = True) -> bytes:
    """A package of pki's sample document with (name → (label, bytes)) attachments."""
    sources = [
        AttachmentSource(name=name, content_type=label, open=functools.partial(io.BytesIO, data))
        for name, (label, data) in attachments.items()
    ]
    data, _ = build_document_bytes(
        pki.sample_header(),
        attachments=sources,
        business=pki.NEW_DOCUMENT,
        signer=pki.signer() if signed else None,
    )
    return data


@pytest.fixture
def closing() -> Iterator[Callable[[ParsedPackage], None]]:
    """Closes the sinks of the packages it is given when the test ends."""
    read: list[ParsedPackage] = []
    yield read.append
    for parsed in read:
        for attachment in parsed.attachments:
            if attachment.content is not None:
                attachment.content.close()


def info(name: str, content_type: str, sniffed: str | None = None) -> AttachmentInfo:
    return AttachmentInfo(
        content_id="1", name=name, content_type=content_type, size=1, sha256="0" * 64,
        sniffed_type=sniffed,
    )  # fmt: skip


# ------------------------------------------------------------------------ which are the builder's


@pytest.mark.parametrize(
    ("attachment", "wrapped"),
    [
        (info("bao-cao.txt", "application/zip"), True),  # the builder's rule
        (info("Bảng kê.csv", "application/x-zip-compressed"), True),
        (info("bao-cao.pdf", "application/pdf", sniffed="application/zip"), True),  # the axis
        (info("ho-so.zip", "application/zip"), False),  # the sender meant a zip
        (info("du-toan.xlsx", "application/zip"), False),  # a zip by nature
        (info("to-trinh.DOCX", "application/zip"), False),
        (info("bao-cao.txt", "application/zip", sniffed="application/octet-stream"), False),
        (info("cong-van.pdf", "application/pdf"), False),
        (info("anh.png", "image/png"), False),
    ],
)
def test_the_builders_zips_are_told_apart(attachment: AttachmentInfo, wrapped: bool) -> None:
    assert is_wrapped(attachment) is wrapped


# ------------------------------------------------------------------------------------ unpacking


def test_a_one_entry_zip_unpacks_in_chunks_to_the_file_the_sender_meant() -> None:
    out = io.BytesIO()
    unzipped = unzip(io.BytesIO(zip_of({"bao-cao.txt": TEXT})), out, element=ELEMENT)
    assert out.getvalue() == TEXT
    assert (unzipped.entry_name, unzipped.size) == ("bao-cao.txt", len(TEXT))
    assert unzipped.sha256 == hashlib.sha256(TEXT).hexdigest()


def test_a_stored_entry_unpacks_and_a_check_writes_nothing() -> None:
    data = zip_of({"bao-cao.txt": TEXT}, method=zipfile.ZIP_STORED)
    assert unzip(io.BytesIO(data), None, element=ELEMENT).size == len(TEXT)


def test_a_small_file_that_compresses_well_is_no_bomb() -> None:
    blank = bytes(500_000)  # ~1000:1, under the 1 MiB floor
    assert unzip(io.BytesIO(zip_of({"trang-trang.txt": blank})), None, element=ELEMENT).size == (
        len(blank)
    )


@pytest.mark.parametrize("count", [0, 2])
def test_not_exactly_one_entry_is_refused(count: int) -> None:
    entries = {f"tep-{i}.txt": TEXT for i in range(count)}
    assert refused(zip_of(entries), ZipEntryCount).code == "ZIP_ENTRY_COUNT"


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "a\\b", "..", "C:x.txt", "thu-muc/"])
def test_an_entry_name_that_is_a_path_is_refused(name: str) -> None:
    assert refused(zip_of({name: TEXT}), ZipEntryPath).code == "ZIP_ENTRY_PATH"


def test_an_entry_name_with_a_nul_is_refused() -> None:
    # zipfile cuts a name at a NUL (and would then write "x"): the bytes are patched instead.
    data = zip_of({"x#.txt": TEXT}).replace(b"x#.txt", b"x\x00.txt")
    assert refused(data, ZipEntryPath).code == "ZIP_ENTRY_PATH"


@pytest.mark.parametrize("name", ["x\ufffe.txt", "x\uffff.txt", "x\t.txt", " ", "x.txt\x7f"])
def test_an_entry_name_xml_or_a_file_name_cannot_carry_is_refused(name: str) -> None:
    """The entry name is held to the one plain-file-name rule (attachments.check_name): U+FFFE
    and U+FFFF too, which the zip's own copy of the rule let through."""
    assert refused(zip_of({name: TEXT}), ZipEntryPath).code == "ZIP_ENTRY_PATH"


def test_a_ratio_bomb_is_refused_before_it_is_unpacked() -> None:
    bomb = zip_of({"bom.txt": bytes(20 << 20)})  # 20 MiB of zeros in ~20 KiB
    assert len(bomb) < 100_000
    assert refused(bomb, ZipBomb).code == "ZIP_BOMB"


def test_an_entry_over_the_size_cap_is_refused() -> None:
    data = zip_of({"bao-cao.txt": TEXT})
    assert refused(data, ZipTooLarge, UnzipLimits(max_bytes=len(TEXT) - 1)).code == "ZIP_TOO_LARGE"
    # What the zip declares is refused before anything is unpacked: 600 MiB over the 512 MiB cap.
    assert refused(declaring(data, 600 << 20), ZipTooLarge).code == "ZIP_TOO_LARGE"


def test_an_entry_longer_than_it_declares_is_cut_at_the_declared_size_and_refused() -> None:
    data = declaring(zip_of({"bao-cao.txt": TEXT}), 100)
    out = io.BytesIO()
    with pytest.raises(ZipUnreadable):
        unzip(io.BytesIO(data), out, element=ELEMENT)
    assert len(out.getvalue()) <= 100


@pytest.mark.parametrize(
    "data",
    [
        b"PK\x03\x04 not a zip at all",
        zip_of({"bao-cao.txt": TEXT})[:-30],  # truncated: no end of central directory
        zip_of({"bao-cao.txt": TEXT}, method=zipfile.ZIP_BZIP2),
        needing_version(zip_of({"bao-cao.txt": TEXT}), 99),  # zipfile: NotImplementedError
    ],
    ids=["garbage", "truncated", "bzip2", "version-9.9"],
)
def test_an_unreadable_zip_is_refused(data: bytes) -> None:
    assert refused(data, ZipUnreadable).code == "ZIP_UNREADABLE"


def test_an_encrypted_entry_is_refused() -> None:
    data = bytearray(zip_of({"bao-cao.txt": TEXT}))
    at = data.index(b"PK\x01\x02") + 8  # the central header's flags: bit 0, encrypted
    data[at] |= 1
    assert refused(bytes(data), ZipUnreadable).message == "the entry is encrypted"


# ------------------------------------------------------------------ in a package, after verifying


def test_a_signed_package_verifies_over_the_zip_and_unpacks_after(
    closing: Callable[[ParsedPackage], None],
) -> None:
    zipped = zip_of({"bao-cao.txt": TEXT})
    bomb = zip_of({"bom.txt": bytes(20 << 20)})
    data = package(
        {
            "bao-cao.txt": ("application/zip", zipped),
            "bom.txt": ("application/zip", bomb),
            "cong-van.pdf": ("application/pdf", b"%PDF-1.7\n" + TEXT),
        }
    )
    parsed = read_package(data, sink_factory=ZipCandidateSpool)
    closing(parsed)
    verified = verify_document(parsed, pki.trust())
    by_name = {a.name: a for a in verified.package.attachments}
    # What was signed and verified is the zip as it travelled.
    assert by_name["bao-cao.txt"].sha256 == hashlib.sha256(zipped).hexdigest()
    checked = check_zipped(verified, parsed)
    codes = {(n.code, n.element) for n in checked.notices}
    assert ("ATTACHMENT_UNZIPPED", "/edXML/AttachmentEncoded/Attachment[1]") in codes
    assert ("ZIP_BOMB", "/edXML/AttachmentEncoded/Attachment[2]") in codes
    assert len(checked.notices) == len(verified.notices) + 2  # the PDF is left alone
    assert checked.package == verified.package


def test_the_sink_keeps_only_what_begins_as_a_zip(closing: Callable[[ParsedPackage], None]) -> None:
    zipped = zip_of({"bao-cao.txt": TEXT})
    data = package(
        {
            "bao-cao.txt": ("application/zip", zipped),
            "cong-van.pdf": ("application/pdf", b"%PDF-1.7\n" + TEXT),
        },
        signed=False,
    )
    parsed = read_package(data, sink_factory=ZipCandidateSpool)
    closing(parsed)
    kept = [a.content.read() if a.content else None for a in parsed.attachments]
    assert kept == [zipped, b""]


def test_the_real_samples_zips_unpack(
    samples: Path, closing: Callable[[ParsedPackage], None]
) -> None:
    for name, entry, head in [
        ("edoc_new.edxml", "32da2890-1a55-4ccd-9ac9-cd0d98559e67.edxml", b"<?xml"),
        ("axis_download_874e0f18.edxml", "7091b48b-9e89-4b11-bdb8-4265d0200f0e.pdf", b"%PDF-"),
    ]:
        parsed = read_package((samples / name).read_bytes(), sink_factory=ZipCandidateSpool)
        closing(parsed)
        out = io.BytesIO()
        contents = {a.content_id: a.content for a in parsed.attachments}
        [done] = unwrap_document(parsed.document(), contents, out=lambda _, out=out: out)
        assert done.unzipped is not None and done.unzipped.entry_name == entry
        assert out.getvalue().startswith(head) and len(out.getvalue()) == done.unzipped.size
        assert done.notice.code == "ATTACHMENT_UNZIPPED"


@pytest.mark.parametrize("on_disk", [False, True])
def test_an_entry_offset_before_the_start_of_the_file_is_unreadable(
    on_disk: bool, tmp_path: Path
) -> None:
    data = bytearray(zip_of({"bao-cao.txt": TEXT}))
    at = data.index(b"PK\x05\x06") + 16  # the end record's central directory offset
    (offset,) = struct.unpack("<I", data[at : at + 4])
    data[at : at + 4] = struct.pack("<I", offset + 100)  # the entry now starts at -100
    path = tmp_path / "zip"
    path.write_bytes(data)
    source = path.open("rb") if on_disk else io.BytesIO(data)
    with source, pytest.raises(ZipUnreadable) as caught:
        unzip(source, None, element=ELEMENT)
    # zipfile seeks to -100: an OSError on a file, a ValueError on BytesIO.
    assert isinstance(caught.value.__cause__, OSError if on_disk else ValueError)


def test_a_failure_to_write_the_unpacked_file_is_not_blamed_on_the_zip() -> None:
    class Full(io.BytesIO):
        def write(self, data: object) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left") as caught:
        unzip(io.BytesIO(zip_of({"bao-cao.txt": TEXT})), Full(), element=ELEMENT)
    assert not isinstance(caught.value, ZipRefused)
