"""The drop-folder hand-off with the local document-management system, on real files and a real
database: complete outbox items are submitted once and moved; received packages are written to
the inbox atomically, once."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from integration_support import EXAMPLES, RECIPIENT

from connectors.drop_folder import DropFolder
from connectors.fake import FakeConnector
from envelopes.metadata import parse_metadata
from gateway.store.tables import messages
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
