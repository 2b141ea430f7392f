"""Ready packages (``outbox/NAME.edxml``) in a drop folder that signs on hand-over
(``sign_ready_packages``), on real files, a real database and real keys: a package the local
system could not sign — the official SDK writes a placeholder ``<Signature>`` — is signed with the
sending unit's key when docgw takes it, and sent; a package that carries a signature is verified
either way, and refused with its code when that signature is not the unit's or no longer holds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from integration_support import EXAMPLES, RECIPIENT, SENDER
from pki import unit

from connectors.drop_folder import DropFolder
from connectors.fake import FakeConnector
from envelopes.attachments import AttachmentSource
from envelopes.building import build_document_bytes
from envelopes.metadata import DocumentRequest, parse_metadata
from envelopes.reading import read_package
from envelopes.signing import Signer, TrustPolicy
from envelopes.verification import verify_document
from gateway.bootstrap import Gateway
from gateway.scheduler import create_scheduler
from gateway.settings import SettingsError, load_settings
from gateway.store.records import UnitRecord
from gateway.store.tables import messages
from gateway.usecases import delivery, registry, submit
from gateway.usecases.handoff import pick_up
from gateway.usecases.jobs import scheduled_jobs

PDF = b"%PDF-1.7\n" + "Công văn số 7816\n".encode() * 300


def signing_folder(tmp_path: Path, *, sign: bool = True) -> DropFolder:
    return DropFolder(root=tmp_path / "dms", sign_ready_packages=sign)


def example_request(gateway: Gateway) -> DocumentRequest:
    return parse_metadata(
        (EXAMPLES / "new-document.json").read_bytes(), today=gateway.clock().date()
    )


def package(gateway: Gateway, *, signer: Signer | None = None, **header_changes: Any) -> bytes:
    """A package as the local system builds it, with one attachment."""
    request = example_request(gateway)
    header = dataclasses.replace(request.header, **header_changes)
    data, _ = build_document_bytes(
        header,
        business=request.business,
        attachments=[AttachmentSource(name="cv-7816.pdf", open=lambda: io.BytesIO(PDF))],
        signer=signer,
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


def ours(gateway: Gateway) -> TrustPolicy:
    """What a recipient trusts: our unit's registered certificate."""
    return TrustPolicy(pinned=(gateway.signer(SENDER).certificate,))


def error_of(folder: DropFolder, name: str) -> str:
    code: str = json.loads((folder.rejected / f"{name}.error.json").read_text())["error_code"]
    return code


def test_an_sdk_package_with_the_placeholder_signature_is_signed_on_hand_over_and_sent(
    make_gateway: Any, tmp_path: Path, samples: Path
) -> None:
    """edoc_update is a package from the field, from 000.00.00.G22 (this gateway's unit in the
    tests), carrying the SDK's placeholder instead of a signature: refused without the setting
    (test_handoff.py), signed by docgw and sent with it."""
    folder = signing_folder(tmp_path)
    axis = FakeConnector(name="axis")
    original = (samples / "edoc_update.edxml").read_bytes()
    as_read = read_package(original)
    assert "PLACEHOLDER_SIGNATURE" in [n.code for n in as_read.notices]

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": axis}) as gateway:
            # Its third recipient is not one of the test units.
            await registry.register_unit(
                gateway,
                UnitRecord(code="000.00.00.G17", name="Hải Phòng", channel="axis"),
                certificate_pem=None,
                actor="test",
            )
            put_package(folder, "edoc-update", original)
            report = await pick_up(gateway, "dms", folder)
            assert (report.submitted, report.rejected) == (1, 0), list(folder.rejected.iterdir())
            assert (folder.taken / "edoc-update.edxml").read_bytes() == original
            await delivery.deliver_due(gateway, "w")
            (sent,) = axis.packages
            verified = verify_document(read_package(sent), ours(gateway))
            expected = as_read.document()
            assert verified.package.header == expected.header
            assert verified.package.business == expected.business
            assert [(a.name, a.sha256) for a in verified.package.attachments] == [
                (a.name, a.sha256) for a in expected.attachments
            ]
            assert verified.signer.subject  # docgw's signature, by our unit's certificate

    asyncio.run(scenario())


def test_an_unsigned_package_is_signed_with_the_sending_units_key_once(
    make_gateway: Any, tmp_path: Path
) -> None:
    """Same idempotency as a document folder: a crash between submitting and moving the item
    submits it again, and the item's key makes that the same message."""
    folder = signing_folder(tmp_path)
    axis = FakeConnector(name="axis")

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": axis}) as gateway:
            put_package(folder, "cv-7816", package(gateway))
            (item,) = await folder.scan_outbox()
            assert item.package_path is not None
            ids = set()
            for _ in range(2):
                with item.package_path.open("rb") as data:
                    submitted = await submit.submit_package(
                        gateway,
                        data,
                        client="drop-folder:dms",
                        actor="drop-folder:dms",
                        idempotency_key=item.idempotency_key,
                        sign_unsigned=True,
                    )
                ids.add(submitted.message_id)
            assert len(ids) == 1 and await stored_messages(gateway) == 1
            await delivery.deliver_due(gateway, "w")
            (sent,) = axis.packages
            verified = verify_document(read_package(sent), ours(gateway))
            assert (
                verified.package.header.document_id == example_request(gateway).header.document_id
            )
            (attachment,) = verified.package.attachments
            assert (attachment.name, attachment.size) == ("cv-7816.pdf", len(PDF))

    asyncio.run(scenario())


def test_a_package_signed_by_the_local_unit_is_sent_byte_for_byte_by_a_signing_folder(
    make_gateway: Any, tmp_path: Path
) -> None:
    folder = signing_folder(tmp_path)
    axis = FakeConnector(name="axis")

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": axis}) as gateway:
            data = package(gateway, signer=gateway.signer(SENDER))
            put_package(folder, "cv-7816", data)
            report = await pick_up(gateway, "dms", folder)
            assert (report.submitted, report.rejected) == (1, 0)
            await delivery.deliver_due(gateway, "w")
            assert axis.packages == [data]

    asyncio.run(scenario())


def _unknown_key(gateway: Gateway) -> bytes:
    """Signed for our unit's code, but with a key and certificate the registry does not hold
    (another CA's): whoever holds that key is not our unit as docgw knows it."""
    issued = unit(SENDER)
    return package(gateway, signer=Signer(private_key=issued.key, certificate=issued.certificate))


def _tampered(gateway: Gateway) -> bytes:
    data = package(gateway, signer=gateway.signer(SENDER))
    subject = example_request(gateway).header.subject.encode()
    assert subject in data
    return data.replace(subject, subject.upper(), 1)


def _from_another_unit(gateway: Gateway) -> bytes:
    header = example_request(gateway).header
    return package(gateway, from_=dataclasses.replace(header.from_, organ_id=RECIPIENT))


def _manifest_without_its_attachment(gateway: Gateway) -> bytes:
    data = package(gateway)
    start = data.index(b"<AttachmentEncoded")
    end = data.index(b"</AttachmentEncoded>") + len(b"</AttachmentEncoded>")
    return data[:start] + data[end:]


def _promulgated_tomorrow(gateway: Gateway) -> bytes:
    header = example_request(gateway).header
    tomorrow = gateway.clock().date() + dt.timedelta(days=2)
    return package(gateway, promulgation=dataclasses.replace(header.promulgation, date=tomorrow))


@pytest.mark.parametrize(
    ("make_package", "code"),
    [
        (_unknown_key, "CERT_UNTRUSTED"),
        (_tampered, "SIGNED_HEADER_CHANGED"),
        (_from_another_unit, "READY_PACKAGE_REFUSED"),
        (_manifest_without_its_attachment, "READY_PACKAGE_REFUSED"),
        (_promulgated_tomorrow, "READY_PACKAGE_REFUSED"),
    ],
    ids=["unknown-key", "tampered", "from-another-unit", "manifest-mismatch", "future-date"],
)
@pytest.mark.parametrize("sign", [True, False], ids=["signing-folder", "plain-folder"])
def test_a_ready_package_that_is_not_our_units_is_refused_signing_or_not(
    make_gateway: Any,
    tmp_path: Path,
    make_package: Callable[[Gateway], bytes],
    code: str,
    sign: bool,
) -> None:
    """A signature that fails is never signed over: the package changed after it was signed, or
    was signed by someone docgw does not know as the unit."""
    folder = signing_folder(tmp_path, sign=sign)
    axis = FakeConnector(name="axis")
    if not sign and make_package is _manifest_without_its_attachment:
        code = "SIGNATURE_MISSING"  # unsigned, so refused before the manifest matters

    async def scenario() -> None:
        async with make_gateway(connectors={"axis": axis}) as gateway:
            put_package(folder, "cv-bad", make_package(gateway))
            report = await pick_up(gateway, "dms", folder)
            assert (report.submitted, report.rejected) == (0, 1)
            assert error_of(folder, "cv-bad") == code
            assert (folder.rejected / "cv-bad.edxml").is_file()
            assert await stored_messages(gateway) == 0
            await delivery.deliver_due(gateway, "w")
            assert axis.packages == []

    asyncio.run(scenario())


# ------------------------------------------------------------------------------- the setting


def test_sign_ready_packages_is_a_drop_folder_setting(tmp_path: Path) -> None:
    config = tmp_path / "docgw.toml"
    base = '[gateway]\nlocal_units = ["000.00.00.G22"]\n'
    config.write_text(base + '[channels.dms]\nkind = "drop_folder"\nroot = "dms"\n'
                      "sign_ready_packages = true\n")  # fmt: skip
    assert load_settings(config, {}).channel("dms").sign_ready_packages is True
    config.write_text(base + '[channels.lgsp]\nkind = "soap"\nendpoint = "http://127.0.0.1:9"\n'
                      "sign_ready_packages = true\n")  # fmt: skip
    with pytest.raises(SettingsError) as refused:
        load_settings(config, {})
    assert refused.value.element == "channels.lgsp.sign_ready_packages"


def test_the_configured_gateway_signs_in_its_pickup_job_and_limits_soap_packages(
    make_gateway: Any, tmp_path: Path
) -> None:
    """From the configuration file to the scheduled job: the drop folder's setting reaches the
    pick-up, and [api] max_upload_bytes the SOAP connector's package limit."""
    root = tmp_path / "dms"
    extra = (
        "[api]\nmax_upload_bytes = 3000000\n"
        '[channels.lgsp]\nkind = "soap"\nendpoint = "http://127.0.0.1:9/DocumentService"\n'
        "poll_seconds = 0\n"
        f'[channels.dms]\nkind = "drop_folder"\nroot = "{root}"\npoll_seconds = 3\n'
        "sign_ready_packages = true\n"
    )

    async def scenario() -> None:
        async with make_gateway(extra=extra) as gateway:
            assert gateway.connectors["lgsp"].max_package_bytes == 3_000_000  # type: ignore[attr-defined]
            put_package(DropFolder(root=root), "cv-7816", package(gateway))
            scheduler = create_scheduler(gateway, scheduled_jobs(gateway))
            scheduler.start(paused=True)
            try:
                job = scheduler.get_job("pickup:dms")
                assert job is not None
                await job.func()
            finally:
                scheduler.shutdown(wait=False)
            taken = json.loads((root / "outbox" / "taken" / "cv-7816.taken.json").read_text())
            assert taken["message_id"]
            assert await stored_messages(gateway) == 1

    asyncio.run(scenario())
