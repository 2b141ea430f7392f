"""``docgw import``: the edXML document and status packages an old system exported become history
in docgw — never traffic. Nothing imported is queued, sent, acknowledged or handed over: each
recipient row is ``sent`` with no due time, received documents count as handed over already.

Per file, in ONE transaction: its outcome is recorded by the SHA-256 of its bytes with what it
imported, so a run killed at any point and started again skips exactly what was done. Sent or
received: the package's sender (``From/OrganId``) is a local unit, or not. Signatures: verified
against the sender's registered certificates where it has some; otherwise — or where they do not
verify, as the old systems' placeholder signatures do not — the package is imported as
*unverified history* with an ``IMPORT_UNVERIFIED`` notice naming why, never as verified. What
cannot be read is refused with the reader's code. A status whose document is not held yet is kept
(``status_events.message_id`` NULL) and attaches when the document is imported, in report order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from envelopes import sealing
from envelopes.errors import GatewayError
from envelopes.model import DocumentPackage, StatusCode, StatusPackage
from envelopes.reading import Notice, PackageKind, ParsedPackage, read_package
from envelopes.verification import verify_document, verify_status
from gateway.domain.imports import ImportOutcome
from gateway.domain.lifecycle import TransportState
from gateway.store import audit_queries, blobs, imports, message_queries, status_queries
from gateway.usecases.errors import (
    ImportNotOurs,
    ImportSealed,
    ImportSourceUnreadable,
    ImportTooLarge,
)
from gateway.usecases.packages import trust_for
from gateway.usecases.ports import Config, Store
from gateway.usecases.statuses import VIETNAM, move_business_status

ACTOR = "import"
UNVERIFIED = "IMPORT_UNVERIFIED"


class Importing(Store, Config, Protocol):
    """What an import uses: the store and the settings (local units, trust, inline blobs)."""


@dataclass(frozen=True, kw_only=True)
class FileOutcome:
    name: str
    sha256: str
    outcome: ImportOutcome
    reason: str | None = None
    message_id: str | None = None
    kind: str | None = None
    #: "out" (a local unit sent it) | "in"
    direction: str | None = None
    verified: bool = False


@dataclass(kw_only=True)
class ImportReport:
    files: list[FileOutcome] = field(default_factory=list)

    def count(self, outcome: ImportOutcome) -> int:
        return sum(1 for f in self.files if f.outcome == outcome)

    def summary(self) -> dict[str, int]:
        return {o: self.count(o) for o in ImportOutcome}


@dataclass(frozen=True, kw_only=True)
class _Read:
    """A package read, and verified where it could be."""

    kind: PackageKind
    document: DocumentPackage | None
    status: StatusPackage | None
    notices: tuple[Notice, ...]
    signer_subject: str | None

    @property
    def verified(self) -> bool:
        return self.signer_subject is not None


def source_files(source: Path, *, max_bytes: int) -> Iterator[tuple[str, bytes | None]]:
    """(name, bytes) of every file in a folder (recursively, in name order) or a ZIP's entries;
    None for the bytes of a file over ``max_bytes`` (not read)."""
    try:
        if source.is_dir():
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                name = str(path.relative_to(source))
                too_large = path.stat().st_size > max_bytes
                yield name, None if too_large else path.read_bytes()
            return
        with zipfile.ZipFile(source) as archive:
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                if info.is_dir():
                    continue
                too_large = info.file_size > max_bytes
                yield info.filename, None if too_large else archive.read(info)
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError) as exc:
        raise ImportSourceUnreadable(f"cannot read {source}: {exc}") from exc


async def import_source(
    gateway: Importing, source: Path, *, also_local: tuple[str, ...] = ()
) -> ImportReport:
    """``also_local``: units this run counts as local besides the configured and registered
    ones (an old system's units this gateway now answers for, without a key here)."""
    report = ImportReport()
    limit = gateway.settings.api.max_upload_bytes
    async with gateway.reader.connect() as conn:
        local = await local_units(gateway, conn) | set(also_local)  # once per run
    for name, data in source_files(source, max_bytes=limit):
        report.files.append(await import_file(gateway, name, data, local=local))
    return report


async def import_file(
    gateway: Importing, name: str, data: bytes | None, *, local: set[str] | None = None
) -> FileOutcome:
    """Import one file (``data`` None: too large to read). ``local``: the local units, when the
    caller looked them up already."""
    if data is None:
        reason = f"{ImportTooLarge.code}: over [api] max_upload_bytes"
        return FileOutcome(name=name, sha256="", outcome=ImportOutcome.REFUSED, reason=reason)
    sha256 = hashlib.sha256(data).hexdigest()
    async with gateway.reader.connect() as conn:
        done = await imports.file_outcome(conn, sha256)
    if done is not None:
        return FileOutcome(
            name=name,
            sha256=sha256,
            outcome=ImportOutcome.SKIPPED,
            reason=f"IMPORT_ALREADY_PROCESSED: an earlier run recorded it {done[0]}",
        )
    try:
        read = await _read(gateway, data)
        async with gateway.engine.begin() as conn:
            if local is None:
                local = await local_units(gateway, conn)
            outcome = await _store(gateway, conn, read, data, local, name=name, sha256=sha256)
            await imports.record_file(
                conn,
                sha256=sha256,
                name=name,
                outcome=outcome.outcome,
                reason=outcome.reason,
                message_id=outcome.message_id,
                now=gateway.clock(),
            )
        return outcome
    except GatewayError as exc:
        async with gateway.engine.begin() as conn:
            await imports.record_file(
                conn,
                sha256=sha256,
                name=name,
                outcome=ImportOutcome.REFUSED,
                reason=str(exc),
                message_id=None,
                now=gateway.clock(),
            )
        return FileOutcome(name=name, sha256=sha256, outcome=ImportOutcome.REFUSED, reason=str(exc))


async def _read(gateway: Importing, data: bytes) -> _Read:
    if sealing.is_sealed(data[: sealing.SNIFF_LENGTH]):
        raise ImportSealed("a sealed (classified) package: import it where it can be opened")
    parsed = read_package(data)
    sender = _sender(parsed)
    try:
        async with gateway.reader.connect() as conn:
            trust = await trust_for(gateway, conn, sender)
        if parsed.kind is PackageKind.DOCUMENT:
            doc = verify_document(parsed, trust)
            return _Read(
                kind=parsed.kind,
                document=doc.package,
                status=None,
                notices=doc.notices,
                signer_subject=doc.signer.subject,
            )
        st = verify_status(parsed, trust)
        return _Read(
            kind=parsed.kind,
            document=None,
            status=st.status,
            notices=st.notices,
            signer_subject=st.signer.subject,
        )
    except GatewayError as exc:
        unverified = Notice(code=UNVERIFIED, message=f"imported unverified: {exc}")
        return _Read(
            kind=parsed.kind,
            document=parsed.document() if parsed.kind is PackageKind.DOCUMENT else None,
            status=parsed.status() if parsed.kind is PackageKind.STATUS else None,
            notices=(*parsed.notices, unverified),
            signer_subject=None,
        )


def _sender(parsed: ParsedPackage) -> str:
    if parsed.kind is PackageKind.DOCUMENT:
        return parsed.document().header.from_.organ_id
    return parsed.status().from_.organ_id


async def local_units(gateway: Importing, conn: AsyncConnection) -> set[str]:
    """The configured local units and those the registry marks local (an old system's units
    this gateway answers for without signing for them)."""
    return set(gateway.settings.gateway.local_units) | await imports.local_unit_codes(conn)


async def _store(
    gateway: Importing,
    conn: AsyncConnection,
    read: _Read,
    data: bytes,
    local: set[str],
    *,
    name: str,
    sha256: str,
) -> FileOutcome:
    if read.document is not None:
        return await _store_document(gateway, conn, read, read.document, data, local, name, sha256)
    assert read.status is not None
    return await _store_status(gateway, conn, read, read.status, data, local, name, sha256)


def _outcome(name: str, sha256: str, read: _Read, **values: Any) -> FileOutcome:
    if not read.verified and "reason" not in values:  # why it is unverified, in the report
        values["reason"] = next(
            f"{n.code}: {n.message}" for n in read.notices if n.code == UNVERIFIED
        )
    return FileOutcome(
        name=name, sha256=sha256, kind=read.kind.value, verified=read.verified, **values
    )


async def _message_row(
    gateway: Importing, conn: AsyncConnection, read: _Read, data: bytes
) -> dict[str, Any]:
    now = gateway.clock()
    ref = await blobs.put_bytes(
        conn, data, inline_limit=gateway.settings.gateway.inline_blob_bytes, now=now
    )
    return {
        "id": str(uuid.uuid4()),
        "classification": "thuong",
        "package_sha256": ref.sha256,
        "client": ACTOR,
        "route": None,
        "notices": [n.code for n in read.notices],
        "signer_subject": read.signer_subject,
        "created_at": now,
    }


async def _store_document(
    gateway: Importing,
    conn: AsyncConnection,
    read: _Read,
    document: DocumentPackage,
    data: bytes,
    local: set[str],
    name: str,
    sha256: str,
) -> FileOutcome:
    header = document.header
    sender = header.from_.organ_id
    direction = "out" if sender in local else "in"
    existing = await imports.find_document(
        conn, direction=direction, sender=sender, document_id=header.document_id
    )
    if existing is not None:
        return _outcome(
            name,
            sha256,
            read,
            outcome=ImportOutcome.SKIPPED,
            direction=direction,
            message_id=existing,
            reason=f"IMPORT_DUPLICATE: already held as message {existing}",
        )
    units = [to.organ_id for to in header.to]
    if direction == "in":
        units = [u for u in units if u in local]
        if not units:
            raise ImportNotOurs(
                f"neither the sender {sender} nor any recipient is a local unit of this gateway"
            )
    row = await _message_row(gateway, conn, read, data)
    now = row["created_at"]
    await message_queries.insert_message(
        conn,
        **row,
        direction=direction,
        kind="document",
        document_id=header.document_id,
        sender=sender,
        subject=header.subject,
        code=str(header.code),
        promulgation_date=header.promulgation.date,
        priority=int(header.other_info.priority),
        dedup_key=f"{sender}|{header.document_id}",
        # History: nothing imported is handed over to the local system again.
        handed_off_at=now if direction == "in" else None,
    )
    audit_rows: list[dict[str, Any]] = []
    for unit_code in dict.fromkeys(units):
        await message_queries.insert_recipient(
            conn,
            message_id=row["id"],
            unit_code=unit_code,
            channel=None,
            state=TransportState.SENT,
            now=now,
            actor=ACTOR,
            reason=f"imported from {name}" + ("" if read.verified else " (unverified)"),
            audit_rows=audit_rows,
        )
    await audit_queries.insert_audit_rows(conn, audit_rows)
    await _attach_pending(conn, row["id"], header.document_id, {sender, *units}, now)
    return _outcome(
        name,
        sha256,
        read,
        outcome=ImportOutcome.IMPORTED,
        direction=direction,
        message_id=row["id"],
    )


async def _store_status(
    gateway: Importing,
    conn: AsyncConnection,
    read: _Read,
    status: StatusPackage,
    data: bytes,
    local: set[str],
    name: str,
    sha256: str,
) -> FileOutcome:
    reporter = status.from_.organ_id
    direction = "out" if reporter in local else "in"
    document_id = status.response_for.document_id or ""
    # edXML writes Vietnamese local time; the store keeps UTC.
    reported_at = status.timestamp.replace(tzinfo=VIETNAM).astimezone(dt.UTC)
    code = status.status_code.value
    existing = await imports.find_status(
        conn,
        direction=direction,
        reporter=reporter,
        document_id=document_id,
        code=code,
        reported_at=reported_at,
    )
    if existing is not None:
        return _outcome(
            name,
            sha256,
            read,
            outcome=ImportOutcome.SKIPPED,
            direction=direction,
            message_id=existing,
            reason=f"IMPORT_DUPLICATE: already held as message {existing}",
        )
    row = await _message_row(gateway, conn, read, data)
    now = row["created_at"]
    target = await imports.document_for_status(conn, document_id=document_id, reporter=reporter)
    await message_queries.insert_message(
        conn,
        **row,
        direction=direction,
        kind="status",
        document_id=document_id,
        sender=reporter,
        subject=status.description,
        priority=0,
        status_code=code,
        related_message_id=target,
        dedup_key=f"{reporter}|{document_id}|{code}|{status.timestamp.isoformat()}",
        handed_off_at=now if direction == "in" else None,
    )
    await status_queries.insert_status_event(
        conn,
        direction=direction,
        status_message_id=row["id"],
        message_id=None,
        recipient_id=None,
        reporter=reporter,
        document_id=document_id,
        status_code=code,
        description=status.description,
        reported_at=reported_at,
        recorded_at=now,
        out_of_order=False,
    )
    if target is not None:
        await _attach_pending(conn, target, document_id, {reporter}, now)
    return _outcome(
        name,
        sha256,
        read,
        outcome=ImportOutcome.IMPORTED,
        direction=direction,
        message_id=row["id"],
    )


async def _attach_pending(
    conn: AsyncConnection,
    message_id: str,
    document_id: str,
    reporters: set[str],
    now: dt.datetime,
) -> None:
    """Attach the statuses about ``document_id`` that no document held yet — those reported by
    its sender or one of its recipients (``reporters``) — oldest report first, moving each
    reporter's business status as a live status would."""
    if not document_id:
        return
    for pending in await imports.pending_statuses(conn, document_id):
        if pending.reporter not in reporters:
            continue
        # A status about a sent document comes from its recipient; about a received one, from
        # the local unit that received it. A sender's own 13 names no recipient row.
        found = await imports.recipient_of(conn, message_id, pending.reporter)
        out_of_order = False
        recipient_id = None
        if found is not None:
            recipient_id, current = found
            out_of_order = await move_business_status(
                conn, recipient_id, current, StatusCode(pending.status_code), now=now
            )
        await imports.attach_status(
            conn,
            pending,
            message_id=message_id,
            recipient_id=recipient_id,
            out_of_order=out_of_order,
        )
