"""The drop-folder hand-off with the local document-management system, on real files and a real
database: complete outbox items are submitted once and moved; received packages are written to
the inbox atomically, once."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from integration_support import EXAMPLES, RECIPIENT, SENDER

from connectors.drop_folder import DropFolder
from connectors.fake import FakeConnector
from envelopes.building import build_document_bytes, build_status
from envelopes.metadata import DocumentRequest, parse_metadata
from envelopes.model import Organization, ResponseFor, StatusCode, StatusPackage
from envelopes.sealing import open_sealed, seal
from gateway.bootstrap import Gateway
from gateway.store.tables import messages, recipients
from gateway.usecases import delivery, intake, submit
from gateway.usecases.handoff import hand_over, pick_up


def put_document(folder: DropFolder, name: str, metadata: bytes, files: dict[str, bytes]) -> None:
    """As the local system does: write NAME.tmp/, then rename it to NAME.ready/ in one step."""
    staging = folder.outbox / f"{name}.tmp"
    staging.mkdir(parents=True)
    (staging / "metadata.json").write_bytes(metadata)
    for file_name, data in files.items():
        (staging / file_name).write_bytes(data)
    staging.rename(folder.outbox / f"{name}.ready")


def test_outbox_items_are_submitted_once_and_bad_ones_rejected(
    make_gateway: Any, tmp_path: Path
) -> None:
    folder = DropFolder(root=tmp_path / "dms")
    meta = (EXAMPLES / "new-document.json").read_bytes()

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": FakeConnector(name="axis")}) as gateway:
            put_document(folder, "cv-7816", meta, {"van-ban.txt": b"noi dung"})
            (folder.outbox / "half.tmp").mkdir(parents=True)  # still being written: ignored
            bad = json.loads(meta)
            bad["to"][0]["organ_id"] = "not a unit"
            put_document(folder, "cv-bad", json.dumps(bad).encode(), {})
            report = await pick_up(gateway, "dms", folder)
            assert (report.submitted, report.rejected) == (1, 1)
            assert (folder.taken / "cv-7816.ready" / "van-ban.txt").read_bytes() == b"noi dung"
            error = json.loads((folder.rejected / "cv-bad.error.json").read_text())
            assert error["error_code"] == "METADATA_INVALID"
            assert (folder.outbox / "half.tmp").is_dir()
            again = await pick_up(gateway, "dms", folder)
            assert (again.submitted, again.rejected) == (0, 0)
            async with gateway.engine.connect() as conn:
                count = await conn.scalar(sa.select(sa.func.count()).select_from(messages))
            assert count == 1

    asyncio.run(scenario())


def test_outbox_attachments_are_held_to_the_api_rules(make_gateway: Any, tmp_path: Path) -> None:
    """A zero-byte file, or a file name with a tab, a line feed or bytes that are not UTF-8 (a
    Linux file name holds all three), is refused as the API refuses it: the item goes to
    rejected/ with the code in NAME.error.json, and nothing is stored."""
    folder = DropFolder(root=tmp_path / "dms")
    meta = (EXAMPLES / "new-document.json").read_bytes()
    refused = {
        "cv-empty": ("rong.pdf", b"", "ATTACHMENT_EMPTY"),
        "cv-tab": ("a\tb.pdf", b"%PDF-1.7 x", "ATTACHMENT_NAME_INVALID"),
        "cv-lf": ("a\nb.pdf", b"%PDF-1.7 x", "ATTACHMENT_NAME_INVALID"),
        "cv-bytes": (os.fsdecode(b"ten-\xff.pdf"), b"%PDF-1.7 x", "ATTACHMENT_NAME_INVALID"),
    }

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": FakeConnector(name="axis")}) as gateway:
            for item, (file_name, data, _) in refused.items():
                put_document(folder, item, meta, {"van-ban.txt": b"noi dung", file_name: data})
            report = await pick_up(gateway, "dms", folder)
            assert (report.submitted, report.rejected) == (0, len(refused))
            for item, (file_name, _, code) in refused.items():
                error = json.loads((folder.rejected / f"{item}.error.json").read_text())
                assert error["error_code"] == code, error
                assert (folder.rejected / f"{item}.ready" / file_name).is_file()
            assert await stored_messages(gateway) == 0

    asyncio.run(scenario())


def test_received_packages_are_handed_over_once(
    make_gateway: Any, databases: Callable[[], str], tmp_path: Path
) -> None:
    folder = DropFolder(root=tmp_path / "dms")
    axis = FakeConnector(name="axis")
    url_b = databases()

    async def scenario() -> None:
        async with (
            make_gateway(connectors={"axis": axis}) as a,
            make_gateway(local_units=(RECIPIENT,), url=url_b) as b,
        ):
            request = parse_metadata(
                (EXAMPLES / "new-document.json").read_bytes(),
                today=a.clock().date(),
            )
            await submit.submit_document(a, request, [], client="t", actor="t")
            await delivery.deliver_due(a, "w")
            received = await intake.receive_package(b, io.BytesIO(axis.packages[0]), via="axis")
            assert await hand_over(b, folder) == 1
            assert await hand_over(b, folder) == 0
            package = folder.inbox / f"{received.message_id}.edxml"
            assert package.read_bytes() == axis.packages[0]
            meta = json.loads((folder.inbox / f"{received.message_id}.json").read_text())
            assert meta["document_id"] == received.document_id and meta["kind"] == "document"
            assert not list(folder.inbox.glob("*.tmp"))

    asyncio.run(scenario())


# ------------------------------------------------------------------------------ ready packages


def example_request(gateway: Gateway) -> DocumentRequest:
    return parse_metadata(
        (EXAMPLES / "new-document.json").read_bytes(), today=gateway.clock().date()
    )


def signed_package(gateway: Gateway, *, signed: bool = True) -> bytes:
    """A package as the local document-management system builds it, signed with our unit's key."""
    request = example_request(gateway)
    data, _ = build_document_bytes(
        request.header,
        business=request.business,
        signer=gateway.signer(SENDER) if signed else None,
    )
    return data


def put_package(folder: DropFolder, name: str, data: bytes) -> None:
    """As the local system does: write NAME.edxml.tmp, then rename it to NAME.edxml."""
    folder.outbox.mkdir(parents=True, exist_ok=True)
    staging = folder.outbox / f"{name}.edxml.tmp"
    staging.write_bytes(data)
    staging.rename(folder.outbox / f"{name}.edxml")


async def stored_messages(gateway: Gateway) -> int:
    async with gateway.engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(messages)) or 0)


def test_a_ready_package_is_sent_byte_for_byte(make_gateway: Any, tmp_path: Path) -> None:
    folder = DropFolder(root=tmp_path / "dms")
    axis = FakeConnector(name="axis")

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": axis}) as gateway:
            data = signed_package(gateway)
            put_package(folder, "cv-7816", data)
            report = await pick_up(gateway, "dms", folder)
            assert (report.submitted, report.rejected) == (1, 0)
            taken = json.loads((folder.taken / "cv-7816.taken.json").read_text())
            assert (folder.taken / "cv-7816.edxml").read_bytes() == data
            async with gateway.engine.connect() as conn:
                message = (
                    await conn.execute(
                        sa.select(messages).where(messages.c.id == taken["message_id"])
                    )
                ).one()
                states = (
                    await conn.execute(
                        sa.select(recipients.c.unit_code, recipients.c.state).where(
                            recipients.c.message_id == message.id
                        )
                    )
                ).all()
            header = example_request(gateway).header
            assert (message.sender, message.document_id) == (SENDER, header.document_id)
            assert (message.classification, message.subject) == ("thuong", header.subject)
            assert states == [(RECIPIENT, "queued")]
            await delivery.deliver_due(gateway, "w")
            # The local system's signature is what the recipient verifies: nothing re-signed.
            assert axis.packages == [data]

    asyncio.run(scenario())


def test_a_ready_package_picked_up_twice_is_sent_once(make_gateway: Any, tmp_path: Path) -> None:
    """A crash between submitting and moving the item: the next scan submits it again."""
    folder = DropFolder(root=tmp_path / "dms")

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": FakeConnector(name="axis")}) as gateway:
            put_package(folder, "cv-7816", signed_package(gateway))
            (item,) = await folder.scan_outbox()
            assert item.package_path is not None
            ids = set()
            for _ in range(2):
                with item.package_path.open("rb") as package:
                    submitted = await submit.submit_package(
                        gateway,
                        package,
                        client="drop-folder:dms",
                        actor="drop-folder:dms",
                        idempotency_key=item.idempotency_key,
                    )
                ids.add(submitted.message_id)
            assert len(ids) == 1 and await stored_messages(gateway) == 1

    asyncio.run(scenario())


def _unsigned(gateway: Gateway) -> bytes:
    return signed_package(gateway, signed=False)


def _tampered(gateway: Gateway) -> bytes:
    data = signed_package(gateway)
    subject = example_request(gateway).header.subject.encode()
    assert subject in data
    return data.replace(subject, subject.upper(), 1)


def _from_another_unit(gateway: Gateway) -> bytes:
    request = example_request(gateway)
    header = dataclasses.replace(
        request.header, from_=dataclasses.replace(request.header.from_, organ_id=RECIPIENT)
    )
    return build_document_bytes(header, business=request.business)[0]


def _a_status(gateway: Gateway) -> bytes:
    header = example_request(gateway).header
    status = StatusPackage(
        from_=Organization(organ_id=SENDER, organ_name="Văn phòng Chính phủ"),
        response_for=ResponseFor(
            organ_id=RECIPIENT,
            code=str(header.code),
            promulgation_date=header.promulgation.date,
            document_id=header.document_id,
        ),
        status_code=StatusCode.ACCEPTED,
        timestamp=dt.datetime(2024, 3, 15, 9, 5, 0),
    )
    return build_status(status, signer=gateway.signer(SENDER))


@pytest.mark.parametrize(
    ("make_package", "code"),
    [
        (_unsigned, "SIGNATURE_MISSING"),
        (_tampered, "SIGNED_HEADER_CHANGED"),
        (_from_another_unit, "READY_PACKAGE_REFUSED"),
        (_a_status, "READY_PACKAGE_REFUSED"),
        (lambda gateway: b"<edXMLEnvelope>not a package", "XML_MALFORMED"),
    ],
    ids=["unsigned", "tampered", "from-another-unit", "status", "malformed"],
)
def test_a_ready_package_docgw_cannot_send_as_it_is_is_rejected(
    make_gateway: Any, tmp_path: Path, make_package: Callable[[Gateway], bytes], code: str
) -> None:
    folder = DropFolder(root=tmp_path / "dms")
    axis = FakeConnector(name="axis")

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": axis}) as gateway:
            put_package(folder, "cv-bad", make_package(gateway))
            report = await pick_up(gateway, "dms", folder)
            assert (report.submitted, report.rejected) == (0, 1)
            error = json.loads((folder.rejected / "cv-bad.error.json").read_text())
            assert error["error_code"] == code, error
            assert (folder.rejected / "cv-bad.edxml").is_file()
            assert await stored_messages(gateway) == 0
            await delivery.deliver_due(gateway, "w")
            assert axis.packages == []

    asyncio.run(scenario())


def test_a_secure_gateway_takes_no_ready_packages(make_gateway: Any, tmp_path: Path) -> None:
    """edXML cannot say a package is classified: on the classified side, where everything is,
    a ready package would be sent without its classification."""
    folder = DropFolder(root=tmp_path / "dms")

    async def scenario() -> None:
        async with make_gateway() as gateway:
            gateway.settings = gateway.settings.model_copy(
                update={
                    "gateway": gateway.settings.gateway.model_copy(update={"profile": "secure"})
                }
            )
            put_package(folder, "cv-7816", signed_package(gateway))
            report = await pick_up(gateway, "dms", folder)
            assert (report.submitted, report.rejected) == (0, 1)
            error = json.loads((folder.rejected / "cv-7816.error.json").read_text())
            assert error["error_code"] == "READY_PACKAGE_REFUSED"
            assert await stored_messages(gateway) == 0

    asyncio.run(scenario())


def test_a_package_swapped_for_a_link_after_the_scan_is_not_read(
    make_gateway: Any, tmp_path: Path
) -> None:
    """Between the scan and the read the local system's folder changes: a link to another file of
    the host (another agency's document, a key) must not be sent."""
    folder = DropFolder(root=tmp_path / "dms")
    axis = FakeConnector(name="axis")

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": axis}) as gateway:
            elsewhere = tmp_path / "elsewhere.edxml"
            elsewhere.write_bytes(signed_package(gateway))
            put_package(folder, "cv-7816", signed_package(gateway))
            scan = folder.scan_outbox

            async def scan_then_swap() -> Any:
                items = await scan()
                path = folder.outbox / "cv-7816.edxml"
                path.unlink()
                path.symlink_to(elsewhere)
                return items

            folder_with_swap = dataclasses.replace(folder)
            object.__setattr__(folder_with_swap, "scan_outbox", scan_then_swap)
            report = await pick_up(gateway, "dms", folder_with_swap)
            assert (report.submitted, report.rejected) == (0, 1)
            error = json.loads((folder.rejected / "cv-7816.error.json").read_text())
            assert error["error_code"] == "DROP_ITEM_GONE"
            assert (folder.rejected / "cv-7816.edxml").is_symlink()
            assert await stored_messages(gateway) == 0

    asyncio.run(scenario())


def test_real_packages_from_other_units_are_refused_with_a_code(
    make_gateway: Any, tmp_path: Path, samples: Path
) -> None:
    """Packages from the field (other agencies' documents and statuses) dropped in the outbox by
    mistake: read with the hardened parser, refused with a stable code, nothing stored."""
    folder = DropFolder(root=tmp_path / "dms")
    names = sorted(path.stem for path in samples.glob("*.edxml"))
    assert names

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": FakeConnector(name="axis")}) as gateway:
            for name in names:
                put_package(folder, name, (samples / f"{name}.edxml").read_bytes())
            report = await pick_up(gateway, "dms", folder)
            assert (report.submitted, report.rejected) == (0, len(names))
            for name in names:
                error = json.loads((folder.rejected / f"{name}.error.json").read_text())
                # edoc_update is from 000.00.00.G22, this gateway's own unit in the tests, and
                # carries the SDK's placeholder instead of a signature; the others are from
                # units that are not ours, or statuses.
                expected = "SIGNATURE_MISSING" if name == "edoc_update" else "READY_PACKAGE_REFUSED"
                assert error["error_code"] == expected, (name, error)
            assert await stored_messages(gateway) == 0

    asyncio.run(scenario())


# ---------------------------------------------------------------------- classified hand-over


class Ticking:
    """A clock one second further at each reading: received rows get distinct ages in order."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now


def numbered_package(sender: Gateway, number: int) -> bytes:
    """A document from SENDER to RECIPIENT, signed; ``number`` makes its DocumentId its own."""
    metadata = json.loads((EXAMPLES / "new-document.json").read_bytes())
    metadata["code"]["number"] = str(number)
    request = parse_metadata(json.dumps(metadata).encode(), today=sender.clock().date())
    data, _ = build_document_bytes(
        request.header, business=request.business, signer=sender.signer(SENDER)
    )
    return data


async def receive(receiver: Gateway, data: bytes) -> str:
    return (await intake.receive_package(receiver, io.BytesIO(data), via="test")).message_id


def secure_profile(gateway: Gateway) -> None:
    gateway.settings = gateway.settings.model_copy(
        update={"gateway": gateway.settings.gateway.model_copy(update={"profile": "secure"})}
    )


def test_classified_packages_waiting_do_not_hold_up_the_others(
    make_gateway: Any, databases: Callable[[], str], tmp_path: Path
) -> None:
    """A standard gateway with a secure inbox: more sealed packages than one batch wait before an
    unclassified one. All are handed over — the sealed ones sealed, as they came — the newest
    unclassified one included."""
    folder = DropFolder(root=tmp_path / "dms")
    url_b = databases()

    async def scenario() -> None:
        async with (
            make_gateway() as a,
            make_gateway(local_units=(RECIPIENT,), url=url_b) as b,
        ):
            b.clock = Ticking()
            certificate = b.signer(RECIPIENT).certificate
            plain = {n: numbered_package(a, n) for n in range(8001, 8005)}
            sealed = {n: seal(data, certificate) for n, data in plain.items()}
            classified = {await receive(b, sealed[n]): n for n in sorted(sealed)}
            open_id = await receive(b, numbered_package(a, 9001))
            assert await hand_over(b, folder, limit=3) == 5
            assert await hand_over(b, folder, limit=3) == 0
            assert (folder.inbox / f"{open_id}.edxml").read_bytes().startswith(b"<")
            assert json.loads((folder.inbox / f"{open_id}.json").read_text())["sealed"] is False
            for message_id, n in classified.items():
                written = (folder.inbox / f"{message_id}.edxml").read_bytes()
                assert written == sealed[n]  # never its plaintext on this side
                assert open_sealed(written, b.signer(RECIPIENT).private_key) == plain[n]
                meta = json.loads((folder.inbox / f"{message_id}.json").read_text())
                assert (meta["classification"], meta["sealed"]) == ("mat", True)
            assert not list(folder.inbox.glob("*.tmp"))
            async with b.engine.connect() as conn:
                waiting = await conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(messages)
                    .where(messages.c.direction == "in", messages.c.handed_off_at.is_(None))
                )
            assert waiting == 0

    asyncio.run(scenario())


def test_a_secure_gateway_hands_classified_packages_over_opened(
    make_gateway: Any, databases: Callable[[], str], tmp_path: Path
) -> None:
    folder = DropFolder(root=tmp_path / "dms")
    url_b = databases()

    async def scenario() -> None:
        async with (
            make_gateway() as a,
            make_gateway(local_units=(RECIPIENT,), url=url_b) as b,
        ):
            secure_profile(b)
            data = numbered_package(a, 8001)
            message_id = await receive(b, seal(data, b.signer(RECIPIENT).certificate))
            assert await hand_over(b, folder) == 1
            assert (folder.inbox / f"{message_id}.edxml").read_bytes() == data
            meta = json.loads((folder.inbox / f"{message_id}.json").read_text())
            assert (meta["classification"], meta["sealed"]) == ("mat", False)

    asyncio.run(scenario())


def test_a_package_that_cannot_be_handed_over_is_logged_and_does_not_block(
    make_gateway: Any,
    databases: Callable[[], str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On the secure side, a seal for a key this gateway no longer holds (say, after a key change)
    cannot be opened: it is logged with its code and tried again at the next tick, and the
    packages after it — more than a batch of them — are handed over meanwhile."""
    folder = DropFolder(root=tmp_path / "dms")
    url_b = databases()

    async def scenario() -> None:
        async with (
            make_gateway() as a,
            make_gateway(local_units=(RECIPIENT,), url=url_b) as b,
        ):
            secure_profile(b)
            b.clock = Ticking()
            stuck = await receive(
                b, seal(numbered_package(a, 8001), b.signer(RECIPIENT).certificate)
            )
            others = [await receive(b, numbered_package(a, n)) for n in (9001, 9002, 9003)]
            signers, b.signers = b.signers, {}  # the key the seal is for is gone
            with caplog.at_level(logging.WARNING, logger="docgw.handoff"):
                assert await hand_over(b, folder, limit=1) == 3
            failed = [r for r in caplog.records if getattr(r, "event", None) == "handover_failed"]
            assert [(r.message_id, r.error_code) for r in failed] == [(stuck, "SEAL_INVALID")]  # type: ignore[attr-defined]
            assert sorted(p.stem for p in folder.inbox.glob("*.edxml")) == sorted(others)
            assert not (folder.inbox / f"{stuck}.json").exists()  # nothing half handed over
            b.signers = signers  # the key is back: the next tick hands it over
            assert await hand_over(b, folder, limit=1) == 1
            assert (folder.inbox / f"{stuck}.edxml").is_file()

    asyncio.run(scenario())
