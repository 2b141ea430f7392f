"""A received package whose sender's builder zipped attachments, end to end on a real database
and real files: verified over the zips as they travelled, stored, deduplicated, and handed over
with each zip that unpacks within the bounds unpacked beside the package; every zip refused
(two entries, a path as its entry name, a bomb, over the size cap) keeps its own code and stays
in the package as it came, and nothing else of the package is lost."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import json
import struct
import zipfile
from pathlib import Path
from typing import Any

import pki  # tests/pki.py
import pytest
import sqlalchemy as sa
from integration_support import RECIPIENT, SENDER

from connectors.drop_folder import DropFolder
from envelopes.attachments import AttachmentSource
from envelopes.building import build_document_bytes
from envelopes.model import Organization
from envelopes.sealing import seal
from gateway.keystore import load_issued, unit_paths
from gateway.store.tables import messages
from gateway.usecases import intake
from gateway.usecases.handoff import hand_over

TEXT = "Báo cáo tình hình kết nối liên thông văn bản tháng 3\n".encode() * 300
PDF = b"%PDF-1.7\n" + TEXT


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def declaring(data: bytes, size: int) -> bytes:
    at = data.index(b"PK\x01\x02") + 24  # the central header's uncompressed size
    return data[:at] + struct.pack("<I", size) + data[at + 4 :]


#: name → (label, bytes, what docgw makes of it: None = unpacked, else the refusal's code).
ATTACHMENTS: dict[str, tuple[str, bytes, str | None]] = {
    "Báo cáo tháng 3.txt": ("application/zip", zip_of({"bao-cao.txt": TEXT}), None),
    "hai-tep.txt": ("application/zip", zip_of({"a.txt": TEXT, "b.txt": TEXT}), "ZIP_ENTRY_COUNT"),
    "len-tren.txt": ("application/zip", zip_of({"../x": TEXT}), "ZIP_ENTRY_PATH"),
    "tuyet-doi.txt": ("application/zip", zip_of({"/abs": TEXT}), "ZIP_ENTRY_PATH"),
    "thu-muc.txt": ("application/zip", zip_of({"a/b": TEXT}), "ZIP_ENTRY_PATH"),
    "bom.txt": ("application/zip", zip_of({"bom.txt": bytes(20 << 20)}), "ZIP_BOMB"),
    "qua-lon.txt": (
        "application/zip",
        declaring(zip_of({"qua-lon.txt": TEXT}), 600 << 20),
        "ZIP_TOO_LARGE",
    ),
    "Công văn 7816.pdf": ("application/pdf", PDF, None),  # not a zip: left alone
}


def signed_package(keys_dir: Path) -> bytes:
    signer = pki.signer_for(load_issued(*unit_paths(keys_dir, SENDER)))
    header = dataclasses.replace(
        pki.sample_header(), to=(Organization(organ_id=RECIPIENT, organ_name="UBND tỉnh"),)
    )
    sources = [
        AttachmentSource(name=name, content_type=label, open=lambda data=data: io.BytesIO(data))
        for name, (label, data, _) in ATTACHMENTS.items()
    ]
    data, _ = build_document_bytes(
        header, attachments=sources, business=pki.NEW_DOCUMENT, signer=signer
    )
    return data


def test_zipped_attachments_are_verified_stored_and_handed_over_unpacked_or_as_they_came(
    make_gateway: Any, keys_dir: Path, tmp_path: Path
) -> None:
    folder = DropFolder(root=tmp_path / "dms")
    data = signed_package(keys_dir)

    async def scenario() -> None:
        async with make_gateway(local_units=(RECIPIENT,)) as gateway:
            received = await intake.receive_package(gateway, io.BytesIO(data), via="axis")
            assert not received.duplicate and received.answers  # stored, and answered 01
            async with gateway.engine.connect() as conn:
                stored = await conn.scalar(
                    sa.select(messages.c.notices).where(messages.c.id == received.message_id)
                )
            refusals = {code for _, _, code in ATTACHMENTS.values() if code}
            assert {"ATTACHMENT_UNZIPPED", *refusals} <= set(stored)

            assert await hand_over(gateway, folder) == 1
            name = received.message_id
            # The package as it travelled, zips and all: what was signed.
            assert (folder.inbox / f"{name}.edxml").read_bytes() == data
            meta = json.loads((folder.inbox / f"{name}.json").read_text())
            [unpacked] = meta["unpacked"]
            assert unpacked["name"] == "Báo cáo tháng 3.txt"
            assert unpacked["zip_entry"] == "bao-cao.txt"
            assert unpacked["sha256"] == hashlib.sha256(TEXT).hexdigest()
            assert (folder.inbox / unpacked["path"]).read_bytes() == TEXT
            assert [p.name for p in (folder.inbox / f"{name}.files").iterdir()] == [
                Path(unpacked["path"]).name
            ]
            assert {u["name"]: u["error_code"] for u in meta["not_unpacked"]} == {
                name: code for name, (_, _, code) in ATTACHMENTS.items() if code
            }
            assert {"ATTACHMENT_UNZIPPED", *refusals} <= set(meta["notices"])
            assert not list(folder.inbox.glob("*.tmp"))

            # Written once: a second hand-over of the files changes nothing.
            again = await folder.write_inbox_files(name, [("khac.txt", io.BytesIO(b"khac"))])
            assert again == folder.inbox / f"{name}.files"
            assert not (again / "khac.txt").exists()
            # And the same package again is a duplicate, whatever its zips.
            twice = await intake.receive_package(gateway, io.BytesIO(data), via="axis")
            assert twice.duplicate and twice.message_id == received.message_id

    asyncio.run(scenario())


def test_a_package_without_zips_is_handed_over_with_empty_lists(
    make_gateway: Any, keys_dir: Path, tmp_path: Path
) -> None:
    folder = DropFolder(root=tmp_path / "dms")
    signer = pki.signer_for(load_issued(*unit_paths(keys_dir, SENDER)))
    header = dataclasses.replace(pki.sample_header(), to=(Organization(organ_id=RECIPIENT),))
    data, _ = build_document_bytes(
        header,
        attachments=[AttachmentSource(name="cv.pdf", open=lambda: io.BytesIO(PDF))],
        signer=signer,
    )

    async def scenario() -> None:
        async with make_gateway(local_units=(RECIPIENT,)) as gateway:
            received = await intake.receive_package(gateway, io.BytesIO(data), via="axis")
            assert await hand_over(gateway, folder) == 1
            meta = json.loads((folder.inbox / f"{received.message_id}.json").read_text())
            assert (meta["unpacked"], meta["not_unpacked"]) == ([], [])
            assert not (folder.inbox / f"{received.message_id}.files").exists()

    asyncio.run(scenario())


@pytest.mark.parametrize("profile", ["standard", "secure"])
def test_a_sealed_package_is_unpacked_only_where_it_is_handed_over_opened(
    make_gateway: Any, keys_dir: Path, tmp_path: Path, profile: str
) -> None:
    """A standard gateway hands a classified package over sealed: nothing of its plaintext, an
    unpacked attachment included, is written on that side. A secure gateway hands it over
    opened, with its zipped attachments unpacked."""
    folder = DropFolder(root=tmp_path / "dms")
    signer = pki.signer_for(load_issued(*unit_paths(keys_dir, SENDER)))
    header = dataclasses.replace(pki.sample_header(), to=(Organization(organ_id=RECIPIENT),))
    zipped = zip_of({"bao-cao.txt": TEXT})
    data, _ = build_document_bytes(
        header,
        attachments=[
            AttachmentSource(
                name="bao-cao.txt", content_type="application/zip", open=lambda: io.BytesIO(zipped)
            )
        ],
        signer=signer,
    )

    async def scenario() -> None:
        async with make_gateway(local_units=(RECIPIENT,)) as gateway:
            if profile == "secure":
                gateway.settings = gateway.settings.model_copy(
                    update={
                        "gateway": gateway.settings.gateway.model_copy(update={"profile": "secure"})
                    }
                )
            sealed = seal(data, gateway.signer(RECIPIENT).certificate)
            received = await intake.receive_package(gateway, io.BytesIO(sealed), via="secure")
            assert await hand_over(gateway, folder) == 1
            name = received.message_id
            meta = json.loads((folder.inbox / f"{name}.json").read_text())
            assert "ATTACHMENT_UNZIPPED" in meta["notices"]  # a code: nothing of the content
            files = folder.inbox / f"{name}.files"
            if profile == "standard":
                assert (folder.inbox / f"{name}.edxml").read_bytes() == sealed
                assert meta["sealed"] is True and "unpacked" not in meta
                assert not files.exists()
            else:
                assert (folder.inbox / f"{name}.edxml").read_bytes() == data
                [unpacked] = meta["unpacked"]
                assert (folder.inbox / unpacked["path"]).read_bytes() == TEXT

    asyncio.run(scenario())
