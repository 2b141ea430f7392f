"""The hand-off with the local document-management system through a drop folder.

* Pick-up: complete items of ``outbox/``, each renamed into place atomically by the local system,
  are submitted with an idempotency key made from the item, then moved to ``outbox/taken/`` — or
  to ``outbox/rejected/`` with the error code. A crash between submitting and moving resubmits the
  same item, which the key makes harmless. Two kinds of item: a ``NAME.ready/`` folder with
  ``metadata.json`` and the attachment files (built and signed by docgw like any submission), and
  a ready package ``NAME.edxml`` (built and signed by the local system, sent as it is, as
  unclassified: see :func:`~gateway.usecases.submit.submit_package`; or, where the folder says
  ``sign_ready_packages``, built by the local system and signed by docgw when taken).
* Hand-over: every received package (documents and statuses) is written to ``inbox/`` as
  ``MESSAGE_ID.json`` then ``MESSAGE_ID.edxml``, each atomically, and marked handed off; before
  them, an attachment its sender's builder zipped is written unpacked in ``MESSAGE_ID.files/``
  and listed in the JSON (``unpacked``; a zip refused by envelopes.zipped in ``not_unpacked``,
  left in the package as it came). A classified package is stored sealed for our unit. A
  gateway with ``profile = "secure"`` (the classified side's own LAN) hands it over opened; a
  standard gateway (one with a secure inbox receives classified documents too) hands it over
  **sealed, as stored**, with ``"sealed": true`` in its JSON — as the drop-folder connector
  delivers classified packages: its plaintext is never written on the unclassified side, and it
  is opened where the unit's key is (``docgw package open``). It is not kept back: a package
  that waited for an operator, with nothing to tell one it was there, would be a document lost
  to the local system.
* Every tick hands over all that waits, in batches, oldest first. A package that cannot be handed
  over (a ``GatewayError``: a seal for a key this gateway no longer holds, a name another process
  is writing) is logged (``handover_failed``) and tried again at the next tick; the others do not
  wait behind it. A file-system error (disk full, permissions) stops the run: it would fail every
  package alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from connectors.drop_folder import (
    FILES_SUFFIX,
    DropFolder,
    DropItemGone,
    OutboxItem,
    open_item_file,
    safe_name,
)
from envelopes import zipped
from envelopes.attachments import checked_source
from envelopes.errors import GatewayError
from envelopes.metadata import parse_metadata
from envelopes.model import AttachmentInfo, Classification
from envelopes.reading import read_package
from gateway.store import message_queries
from gateway.store.records import MessageRecord
from gateway.usecases.packages import hands_over_opened, load_to_spool, open_sealed_for_us, spool
from gateway.usecases.statuses import VIETNAM
from gateway.usecases.submit import Submitting, submit_document, submit_package

log = logging.getLogger("docgw.handoff")


class Handoff(Submitting, Protocol):
    """What the drop folder's handover uses: what a submission uses (picked-up documents are
    submitted)."""


@dataclass(frozen=True, kw_only=True)
class PickUpReport:
    submitted: int = 0
    rejected: int = 0


async def pick_up(gateway: Handoff, channel: str, folder: DropFolder) -> PickUpReport:
    submitted = rejected = 0
    for item in await folder.scan_outbox():
        try:
            if item.is_package:
                message_id = await _submit_package(gateway, channel, item, folder)
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


async def _submit(gateway: Handoff, channel: str, item: OutboxItem) -> str:
    assert item.metadata is not None  # a document folder always has it
    request = parse_metadata(item.metadata, today=gateway.clock().astimezone(VIETNAM).date())
    # Held to the API's rules (a plain file name, at least one byte): a refusal sends the item to
    # rejected/ with its code, like any other.
    attachments = [
        checked_source(path.name, size=_size(path), open=_opener(path)) for path in item.attachments
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


async def _submit_package(
    gateway: Handoff, channel: str, item: OutboxItem, folder: DropFolder
) -> str:
    assert item.package_path is not None  # a ready package always has it
    with await asyncio.to_thread(_open_item_file, item.package_path) as package:
        submitted = await submit_package(
            gateway,
            package,
            client=f"drop-folder:{channel}",
            actor=f"drop-folder:{channel}",
            idempotency_key=item.idempotency_key,
            sign_unsigned=folder.sign_ready_packages,
        )
    return submitted.message_id


def _opener(path: Path) -> Callable[[], IO[bytes]]:
    return lambda: _open_item_file(path)


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError as exc:  # moved away since the scan
        raise DropItemGone(f"{path.name} cannot be read: {exc.strerror or exc}") from exc


def _open_item_file(path: Path) -> IO[bytes]:
    try:
        return open_item_file(path)
    except OSError as exc:  # swapped for a link, or moved away, since the scan
        raise DropItemGone(f"{path.name} cannot be opened: {exc.strerror or exc}") from exc


async def hand_over(gateway: Handoff, folder: DropFolder, *, limit: int = 50) -> int:
    """Write what was received and not yet handed over to the inbox, all of it, ``limit`` rows
    read at a time; returns how many were handed over."""
    handed = 0
    after: tuple[dt.datetime, str] | None = None
    while True:
        async with gateway.reader.connect() as conn:
            pending = await message_queries.not_handed_off(conn, limit=limit, after=after)
        for message in pending:
            try:
                await _hand_over_one(gateway, folder, message)
            except GatewayError as exc:
                log.warning(
                    "handover_failed",
                    extra={
                        "event": "handover_failed",
                        "message_id": message.id,
                        "error_code": exc.code,
                        "detail": exc.message,
                    },
                )
                continue
            handed += 1
        if len(pending) < limit:
            return handed
        after = (pending[-1].created_at, pending[-1].id)


async def _hand_over_one(gateway: Handoff, folder: DropFolder, message: MessageRecord) -> None:
    sealed = Classification(message.classification).is_classified
    async with gateway.engine.connect() as conn:
        package = await load_to_spool(conn, message.package_sha256)
    with package:
        if sealed and hands_over_opened(gateway):
            with await asyncio.to_thread(open_sealed_for_us, gateway, package) as plain:
                await _write_plain(folder, message, plain, expected_sha256=None)
        elif sealed:
            # The seal for our unit, off the classified side: its plaintext is never written here.
            await folder.write_inbox(
                message.id,
                package,
                _meta(message, sealed=True),
                expected_sha256=message.package_sha256,
            )
        else:
            # The package as received, checked against the stored digest.
            await _write_plain(folder, message, package, expected_sha256=message.package_sha256)
    async with gateway.engine.begin() as conn:
        await message_queries.mark_handed_off(conn, message.id, now=gateway.clock())


async def _write_plain(
    folder: DropFolder, message: MessageRecord, package: IO[bytes], *, expected_sha256: str | None
) -> None:
    """An edXML package, and first the attachments its sender's builder zipped, unpacked, in
    ``NAME.files/`` (listed in the JSON; one that would not unpack is listed as not unpacked and
    stays in the package as it came)."""
    meta = _meta(message, sealed=False)
    with contextlib.ExitStack() as spools:
        found: list[zipped.Unwrapping] = []
        streams: dict[str, IO[bytes]] = {}
        # The intake noted each zipped attachment: without such a notice there is none to read.
        if message.kind == "document" and zipped.NOTICE_CODES & set(message.notices or ()):
            found, streams = await asyncio.to_thread(_unpack, package, spools)
        files: list[tuple[str, IO[bytes]]] = []
        unpacked: list[dict[str, object]] = []
        for unwrapping in found:
            attachment, unzipped = unwrapping.attachment, unwrapping.unzipped
            if unzipped is None:
                continue
            # Its position and its name made safe; the JSON gives the name as written.
            file_name = safe_name(f"{len(files) + 1}-{attachment.name}")
            files.append((file_name, streams[attachment.content_id]))
            unpacked.append(
                {
                    "content_id": attachment.content_id,
                    "name": attachment.name,
                    "path": f"{message.id}{FILES_SUFFIX}/{file_name}",
                    "size": unzipped.size,
                    "sha256": unzipped.sha256,
                    "zip_entry": unzipped.entry_name,
                }
            )
        meta["unpacked"] = unpacked
        meta["not_unpacked"] = [
            {
                "content_id": u.attachment.content_id,
                "name": u.attachment.name,
                "error_code": u.refused.code,
                "message": u.refused.message,
            }
            for u in found
            if u.refused is not None
        ]
        await folder.write_inbox_files(message.id, files)
        package.seek(0)
        await folder.write_inbox(message.id, package, meta, expected_sha256=expected_sha256)


def _unpack(
    package: IO[bytes], spools: contextlib.ExitStack
) -> tuple[list[zipped.Unwrapping], dict[str, IO[bytes]]]:
    """The stored package (verified when it was received) read again, and each attachment its
    sender's builder zipped unpacked into a spool (by ContentId) that ``spools`` closes."""
    package.seek(0)
    parsed = read_package(package, sink_factory=zipped.ZipCandidateSpool)
    streams: dict[str, IO[bytes]] = {}

    def target(attachment: AttachmentInfo) -> IO[bytes]:
        streams[attachment.content_id] = spools.enter_context(spool())
        return streams[attachment.content_id]

    try:
        contents = {a.content_id: a.content for a in parsed.attachments}
        return zipped.unwrap_document(parsed.document(), contents, out=target), streams
    finally:
        for attachment in parsed.attachments:
            if attachment.content is not None:
                attachment.content.close()


def _meta(message: MessageRecord, *, sealed: bool) -> dict[str, object]:
    return {
        "message_id": message.id,
        "kind": message.kind,
        "document_id": message.document_id,
        "sender": message.sender,
        "classification": message.classification,
        "sealed": sealed,
        "status_code": message.status_code,
        "related_message_id": message.related_message_id,
        "signed_by": message.signer_subject,
        "received_at": message.created_at.isoformat(),
        # What was odd but tolerated on receipt (EMPTY_ELEMENT, ATTACHMENT_UNZIPPED, ZIP_* …).
        "notices": message.notices or [],
    }
