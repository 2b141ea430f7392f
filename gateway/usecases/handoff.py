"""The hand-off with the local document-management system through a drop folder.

* Pick-up: complete items of ``outbox/``, each renamed into place atomically by the local system,
  are submitted with an idempotency key made from the item, then moved to ``outbox/taken/`` — or
  to ``outbox/rejected/`` with the error code. A crash between submitting and moving resubmits the
  same item, which the key makes harmless. Two kinds of item: a ``NAME.ready/`` folder with
  ``metadata.json`` and the attachment files (built and signed by docgw like any submission), and
  a ready package ``NAME.edxml`` (built and signed by the local system, sent as it is, as
  unclassified: see :func:`~gateway.usecases.submit.submit_package`).
* Hand-over: every received package (documents and statuses) is written to ``inbox/`` as
  ``MESSAGE_ID.json`` then ``MESSAGE_ID.edxml``, each atomically, and marked handed off. A
  classified package is stored sealed for our unit: it is opened and handed over only by a gateway
  with ``profile = "secure"`` (the classified side's own LAN); elsewhere it waits for an operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from connectors.drop_folder import DropFolder, DropItemGone, OutboxItem, open_item_file
from envelopes.attachments import AttachmentSource
from envelopes.errors import GatewayError
from envelopes.metadata import parse_metadata
from gateway.bootstrap import Gateway
from gateway.store import queries
from gateway.store.records import MessageRecord
from gateway.usecases.packages import load_to_spool, open_sealed_for_us
from gateway.usecases.statuses import VIETNAM
from gateway.usecases.submit import submit_document, submit_package

log = logging.getLogger("docgw.handoff")


@dataclass(frozen=True, kw_only=True)
class PickUpReport:
    submitted: int = 0
    rejected: int = 0


async def pick_up(gateway: Gateway, channel: str, folder: DropFolder) -> PickUpReport:
    submitted = rejected = 0
    for item in await folder.scan_outbox():
        try:
            if item.is_package:
                message_id = await _submit_package(gateway, channel, item)
            else:
                message_id = await _submit(gateway, channel, item)
        except GatewayError as exc:
            with contextlib.suppress(DropItemGone):  # another scanner moved it meanwhile
                await folder.mark_rejected(item, exc.code, str(exc))
            rejected += 1
            continue
        await folder.mark_taken(item, message_id)
        submitted += 1
    return PickUpReport(submitted=submitted, rejected=rejected)


async def _submit(gateway: Gateway, channel: str, item: OutboxItem) -> str:
    assert item.metadata is not None  # a document folder always has it
    request = parse_metadata(item.metadata, today=gateway.clock().astimezone(VIETNAM).date())
    attachments = [
        AttachmentSource(name=path.name, open=_opener(path)) for path in item.attachments
    ]
    submitted = await submit_document(
        gateway,
        request,
        attachments,
        client=f"drop-folder:{channel}",
        actor=f"drop-folder:{channel}",
        idempotency_key=item.idempotency_key,
    )
    return submitted.message_id


async def _submit_package(gateway: Gateway, channel: str, item: OutboxItem) -> str:
    assert item.package_path is not None  # a ready package always has it
    with await asyncio.to_thread(_open_item_file, item.package_path) as package:
        submitted = await submit_package(
            gateway,
            package,
            client=f"drop-folder:{channel}",
            actor=f"drop-folder:{channel}",
            idempotency_key=item.idempotency_key,
        )
    return submitted.message_id


def _opener(path: Path) -> Callable[[], IO[bytes]]:
    return lambda: _open_item_file(path)


def _open_item_file(path: Path) -> IO[bytes]:
    try:
        return open_item_file(path)
    except OSError as exc:  # swapped for a link, or moved away, since the scan
        raise DropItemGone(f"{path.name} cannot be opened: {exc.strerror or exc}") from exc


async def hand_over(gateway: Gateway, folder: DropFolder, *, limit: int = 50) -> int:
    """Write received packages to the inbox; returns how many were handed over."""
    async with gateway.engine.connect() as conn:
        pending = await queries.not_handed_off(conn, limit=limit)
    handed = 0
    for message in pending:
        if message.classification != "thuong" and gateway.settings.gateway.profile != "secure":
            continue  # classified plaintext is written only on the classified side
        async with gateway.engine.connect() as conn:
            package = await load_to_spool(conn, message.package_sha256)
        with package:
            if message.classification != "thuong":
                with await asyncio.to_thread(open_sealed_for_us, gateway, package) as plain:
                    await folder.write_inbox(message.id, plain, _meta(message))
            else:
                await folder.write_inbox(message.id, package, _meta(message))
        async with gateway.engine.begin() as conn:
            await queries.mark_handed_off(conn, message.id, now=gateway.clock())
        handed += 1
    return handed


def _meta(message: MessageRecord) -> dict[str, object]:
    return {
        "message_id": message.id,
        "kind": message.kind,
        "document_id": message.document_id,
        "sender": message.sender,
        "classification": message.classification,
        "status_code": message.status_code,
        "related_message_id": message.related_message_id,
        "signed_by": message.signer_subject,
        "received_at": message.created_at.isoformat(),
    }
