"""The archive: every document sent or received, once settled, in an ASiC-E container
(envelopes/asic.py) with the statuses about it and its history, signed by a local unit's key and
timestamped where a timestamp authority is configured; and the retention purge.

When: a received document at once; a sent one when no recipient is left queued, sending,
retrying or unconfirmed. A status that arrives later, or a recipient that moves (a resend, a
cancel), makes the container out of date: the job archives the message again (a new container
replaces the old one). Retention purges a container
only when it is current, past ``[archive] retention_days`` and not under legal hold.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from connectors import timestamping
from envelopes import asic
from envelopes.signing import Signer
from gateway.store import archive, audit_queries, blobs, message_queries
from gateway.usecases.errors import NotFound
from gateway.usecases.ports import Config, Http, Signing, Store

log = logging.getLogger("docgw.archive")
ACTOR = "archive"
EDXML = "application/xml"


class Archiving(Store, Config, Http, Signing, Protocol):
    """What the archive uses: the store, the settings, the timestamp authority's HTTP client, a
    local unit's key (the container's signature)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArchiveRun:
    archived: tuple[str, ...]
    timestamped: int


async def archive_due(gateway: Archiving) -> ArchiveRun:
    """Archive (or archive again) up to ``[archive] batch`` messages."""
    async with gateway.reader.connect() as conn:
        due = await archive.due(conn, gateway.settings.archive.batch)
    done: list[str] = []
    stamped = 0
    for message_id, status_count in due:
        stamped += await archive_message(gateway, message_id, status_count)
        done.append(message_id)
    return ArchiveRun(archived=tuple(done), timestamped=stamped)


async def archive_message(gateway: Archiving, message_id: str, status_count: int) -> bool:
    """Build and store one message's container; True when it carries a timestamp."""
    settings = gateway.settings.archive
    read_at = gateway.clock()  # a change after this makes the container out of date
    async with gateway.reader.connect() as conn:
        objects = await _data_objects(conn, message_id)
    signed = asic.sign_manifest(objects, _signer(gateway))
    token = None
    if settings.tsa_url:
        assert gateway.http is not None
        token = await timestamping.timestamp(
            gateway.http,
            settings.tsa_url,
            signed.signature,
            timeout_seconds=settings.tsa_timeout_seconds,
        )
    container = asic.write_container(objects, signed, timestamp=token)
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        ref = await blobs.put_bytes(
            conn, container, inline_limit=gateway.settings.gateway.inline_blob_bytes, now=now
        )
        replaced = await archive.store(
            conn,
            message_id=message_id,
            container_sha256=ref.sha256,
            status_count=status_count,
            timestamped=token is not None,
            now=read_at,
        )
        if replaced is not None:
            await archive.delete_container_blob(conn, replaced)
        await audit_queries.audit(
            conn,
            now=now,
            actor=ACTOR,
            action="archived",
            message_id=message_id,
            reason=f"container {ref.sha256}, {status_count} statuses"
            + (", timestamped" if token is not None else ""),
        )
    log.info("archived", extra={"message_id": message_id, "container": ref.sha256})
    return token is not None


def _signer(gateway: Archiving) -> Signer:
    unit = gateway.settings.archive.signer_unit
    if unit is None:
        units = gateway.settings.gateway.local_units
        unit = units[0] if units else ""
    return gateway.signer(unit)


async def _data_objects(conn: AsyncConnection, message_id: str) -> list[asic.DataObject]:
    message = await message_queries.get_message(conn, message_id)
    if message is None:
        raise NotFound(f"no message {message_id}")
    objects = [
        asic.DataObject(
            name="package.edxml",
            media_type=EDXML,
            data=await blobs.read_bytes(conn, message.package_sha256),
        )
    ]
    for index, row in enumerate(await archive.status_packages(conn, message_id), start=1):
        objects.append(
            asic.DataObject(
                name=f"statuses/{index:03d}-{row.status_code}-{row.direction}-{row.sender}.edxml",
                media_type=EDXML,
                data=await blobs.read_bytes(conn, row.package_sha256),
            )
        )
    history = {
        "message": dataclasses.asdict(message),
        **await message_queries.message_history(conn, message_id),
    }
    objects.append(
        asic.DataObject(
            name="history.json",
            media_type="application/json",
            data=json.dumps(history, default=_json, ensure_ascii=False, indent=1).encode(),
        )
    )
    return objects


def _json(value: object) -> object:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return str(value)


async def export(gateway: Archiving, message_id: str) -> bytes:
    async with gateway.reader.connect() as conn:
        item = await archive.get(conn, message_id)
        if item is None or item.container_sha256 is None:
            raise NotFound(f"message {message_id} has no archive container")
        return await blobs.read_bytes(conn, item.container_sha256)


async def set_hold(gateway: Archiving, message_id: str, *, hold: bool, reason: str) -> None:
    """Put an archived message under legal hold (never purged) or release it."""
    now = gateway.clock()
    async with gateway.engine.begin() as conn:
        if not await archive.set_hold(conn, message_id, hold=hold, reason=reason):
            raise NotFound(f"message {message_id} is not archived (yet)")
        await audit_queries.audit(
            conn,
            now=now,
            actor=ACTOR,
            action="legal_hold" if hold else "legal_hold_released",
            message_id=message_id,
            reason=reason,
        )


async def purge_expired(gateway: Archiving) -> tuple[str, ...]:
    """Purge the containers past retention; each purge logged and audited."""
    days = gateway.settings.archive.retention_days
    if days <= 0:
        return ()
    now = gateway.clock()
    before = now - dt.timedelta(days=days)
    async with gateway.reader.connect() as conn:
        candidates = await archive.purgeable(
            conn, before=before, limit=gateway.settings.archive.batch
        )
    purged = []
    for message_id in candidates:
        async with gateway.engine.begin() as conn:
            container = await archive.mark_purged(conn, message_id, now)
            if container is None:
                continue  # put under hold (or purged) since the look-up
            await archive.delete_container_blob(conn, container)
            await audit_queries.audit(
                conn,
                now=now,
                actor=ACTOR,
                action="archive_purged",
                message_id=message_id,
                reason=f"retention {days} days: container {container} purged",
            )
        log.info("archive_purged", extra={"message_id": message_id, "container": container})
        purged.append(message_id)
    return tuple(purged)


async def run_job(gateway: Archiving) -> None:
    """The scheduled job: archive what is due, then purge what retention allows."""
    await archive_due(gateway)
    await purge_expired(gateway)
