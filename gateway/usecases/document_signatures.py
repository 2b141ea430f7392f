"""The documents' own signatures (docs/reference/document-signatures.md): every PDF attachment of a
document received or sent is verified with pyHanko (envelopes/pdf_signatures.py), its verdict
stored with the message, shown in the API, the webhooks and ``docgw package verify``, and counted
in the reports. It never blocks delivery by default; ``documents.hold_unsigned`` and
``documents.hold_failing`` name the sending units whose outgoing documents are held instead.

Bounded: each PDF is verified in another process whose address space is limited
(``documents.memory_mb``) and which is killed after ``documents.timeout_seconds``; a PDF over
``documents.max_pdf_bytes`` is not read. The processes are a small persistent pool (started once,
pyHanko imported once, each replaced after :data:`TASKS_PER_PROCESS` PDFs); a PDF that times out
takes its pool with it (killed, a fresh one started for the next PDF), and a PDF whose pool
process died is verified again alone, in a process of its own (``python -m
envelopes.pdf_signatures``), for a verdict that is its own. Whatever a PDF does, the intake gets a
verdict (PDF_TIMEOUT, PDF_LIMIT_EXCEEDED, PDF_MALFORMED…), never an exception; the event loop
only waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import multiprocessing
import shutil
import sys
import tempfile
import threading
import weakref
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from connectors.offload import stream_size
from envelopes import pdf_signatures as pdf
from envelopes.attachments import AttachmentSource, sniff
from envelopes.model import AttachmentInfo, Classification
from envelopes.zipped import is_wrapped
from gateway.settings import DocumentSignatureSettings, Settings
from gateway.store import document_signatures as store
from gateway.store.document_signatures import DocumentSignatureRow

log = logging.getLogger("docgw.documents")

#: PDFs verified at once per gateway process: the pool's processes.
CONCURRENCY = 2
#: PDFs a pool process verifies before it is replaced by a fresh one: bounds what pyHanko's
#: caches and the allocator's fragments grow to under the address-space limit.
TASKS_PER_PROCESS = 50
#: Bytes read at a time by the pre-scan, and the overlap kept between reads.
_SCAN_CHUNK = 1 << 20
_SCAN_MARKERS = (b"/ByteRange", b"/Encrypt")
#: The trust folder's files taken as CA certificates.
_CERT_SUFFIXES = (".pem", ".crt", ".cer", ".der")


@dataclass(frozen=True, kw_only=True)
class Attachment:
    """One attachment to check: its place in the package, labels and bytes (seekable)."""

    position: int
    name: str
    content_type: str
    content: IO[bytes]


def is_pdf_attachment(name: str, content_type: str | None, head: bytes) -> bool:
    """A PDF by its bytes, or by its label or name (then bytes that are no PDF fail:
    PDF_MALFORMED). A zip is not (the sender's builder's zip around a file is unpacked on
    hand-over; a PDF inside is not verified)."""
    if sniff(head) == "application/zip":
        return False
    label = (content_type or "").split(";")[0].strip().lower()
    named_pdf = PurePosixPath(name.lower()).suffix == ".pdf"
    return pdf.is_pdf(head) or label == "application/pdf" or named_pdf


def pdf_attachments(
    infos: Sequence[AttachmentInfo], contents: dict[str, IO[bytes] | None]
) -> list[Attachment]:
    """The PDFs among a package's attachments (``contents``: each ContentId's bytes as read with
    a sink that keeps PDFs, :class:`~envelopes.zipped.ZipOrPdfSpool`)."""
    found = []
    for position, info in enumerate(infos, start=1):
        content = contents.get(info.content_id)
        if content is None or is_wrapped(info):
            continue
        content.seek(0)
        head = content.read(1024)
        content.seek(0)
        if is_pdf_attachment(info.name, info.content_type, head):
            found.append(
                Attachment(
                    position=position,
                    name=info.name,
                    content_type=info.content_type,
                    content=content,
                )
            )
    return found


async def check_sources(
    settings: Settings, sources: Sequence[AttachmentSource], *, now: dt.datetime
) -> list[DocumentSignatureRow]:
    """The verdicts of the PDFs among the attachments of a document to send."""
    if not settings.documents.enabled:
        return []
    with contextlib.ExitStack() as streams:
        found = []
        for position, source in enumerate(sources, start=1):
            with source.open() as first:
                head = first.read(1024)
            if not is_pdf_attachment(source.name, source.content_type, head):
                continue
            stream = streams.enter_context(source.open())
            if stream_size(stream) is None:  # not seekable: spooled
                spooled = streams.enter_context(tempfile.SpooledTemporaryFile(8 << 20))
                await asyncio.to_thread(shutil.copyfileobj, stream, spooled, _SCAN_CHUNK)
                stream = spooled
            found.append(
                Attachment(
                    position=position,
                    name=source.name,
                    content_type=source.content_type or "",
                    content=stream,
                )
            )
        return await check_attachments(settings, found, now=now)


def trust_files(settings: Settings) -> tuple[list[Path], list[Path]]:
    """(CA certificate files, CRL files) of the documents' trust, resolved: ``documents.
    trust_anchors`` and the files of ``documents.trust_dir``, else ``keys.trust_anchors``."""
    documents = settings.documents
    anchors = [settings.resolve(p) for p in documents.trust_anchors]
    if documents.trust_dir is not None:
        folder = settings.resolve(documents.trust_dir)
        if folder.is_dir():
            anchors += sorted(
                p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _CERT_SUFFIXES
            )
    if not anchors:
        anchors = [settings.resolve(p) for p in settings.keys.trust_anchors]
    return anchors, [settings.resolve(p) for p in documents.crl_files]


async def check_attachments(
    settings: Settings, attachments: Sequence[Attachment], *, now: dt.datetime
) -> list[DocumentSignatureRow]:
    """The verdict of every attachment given (the caller picks the PDFs), in their order."""
    if not attachments or not settings.documents.enabled:
        return []
    anchors, crls = trust_files(settings)
    return await check_with(settings.documents, attachments, anchors=anchors, crls=crls, now=now)


async def check_with(
    documents: DocumentSignatureSettings,
    attachments: Sequence[Attachment],
    *,
    anchors: Sequence[Path],
    crls: Sequence[Path],
    now: dt.datetime,
) -> list[DocumentSignatureRow]:
    """:func:`check_attachments` with the trust given (``docgw package verify``)."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(attachment: Attachment) -> DocumentSignatureRow:
        async with gate:
            result = await check_bounded(attachment.content, documents, anchors=anchors, crls=crls)
        return _row(attachment, result, now)

    return list(await asyncio.gather(*(one(a) for a in attachments)))


def _row(attachment: Attachment, result: pdf.PdfCheck, now: dt.datetime) -> DocumentSignatureRow:
    reason = result.reason
    return DocumentSignatureRow(
        position=attachment.position,
        attachment=attachment.name,
        verdict=result.verdict.value,
        reason=None if reason is None else reason.code,
        detail=None if reason is None else reason.message,
        signatures=result.to_json()["signatures"],
        checked_at=now,
    )


async def check_bounded(
    content: IO[bytes],
    documents: DocumentSignatureSettings,
    *,
    anchors: Iterable[Path],
    crls: Iterable[Path] = (),
) -> pdf.PdfCheck:
    """One PDF's verdict, within the settings' size, time and memory bounds."""
    content.seek(0)
    size = stream_size(content) or 0
    if size > documents.max_pdf_bytes:
        return pdf.failed(
            pdf.PDF_TOO_LARGE,
            f"{size} bytes, over documents.max_pdf_bytes ({documents.max_pdf_bytes}): not read",
        )
    found = await asyncio.to_thread(_prescan, content)
    if not found.pdf:
        return pdf.failed(pdf.PDF_MALFORMED, "the bytes are not a PDF (no %PDF- header)")
    if not found.markers:
        # No signature dictionary anywhere in the file (a signature's /ByteRange cannot be in a
        # compressed object stream) and no encryption: unsigned, without starting a process.
        return pdf.PdfCheck(verdict=pdf.Verdict.UNSIGNED)
    with tempfile.TemporaryDirectory(prefix="docgw-pdf-") as folder:
        path = Path(folder) / "document.pdf"
        await asyncio.to_thread(_copy, content, path)
        async with _gate():
            return await _run_in_pool(path, documents, anchors=list(anchors), crls=list(crls))


@dataclass(frozen=True)
class _Scan:
    pdf: bool
    markers: bool


def _prescan(content: IO[bytes]) -> _Scan:
    content.seek(0)
    head = content.read(1024)
    found = any(m in head for m in _SCAN_MARKERS)
    tail = head[-16:]
    while not found and (chunk := content.read(_SCAN_CHUNK)):
        window = tail + chunk
        found = any(m in window for m in _SCAN_MARKERS)
        tail = chunk[-16:]
    content.seek(0)
    return _Scan(pdf=pdf.is_pdf(head), markers=found)


def _copy(content: IO[bytes], path: Path) -> None:
    content.seek(0)
    with path.open("wb") as out:
        shutil.copyfileobj(content, out, _SCAN_CHUNK)
    content.seek(0)


# ---------------------------------------------------------------------------------- the pool

#: The pools, one per memory limit (a process's limit is set when it starts).
_POOLS: dict[int, ProcessPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()
#: Per event loop: at most CONCURRENCY PDFs handed to the pool at once, so that a PDF's timeout
#: runs from when a process takes it, never while it waits behind another's.
_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _gate() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    gate = _GATES.get(loop)
    if gate is None:
        gate = _GATES[loop] = asyncio.Semaphore(CONCURRENCY)
    return gate


def _pool(memory_mb: int) -> ProcessPoolExecutor:
    with _POOLS_LOCK:
        pool = _POOLS.get(memory_mb)
        if pool is None:
            pool = _POOLS[memory_mb] = ProcessPoolExecutor(
                max_workers=CONCURRENCY,
                # A clean interpreter (not a fork of the gateway's threads and sockets).
                mp_context=multiprocessing.get_context("spawn"),
                initializer=pdf.start_worker,
                initargs=(memory_mb,),
                max_tasks_per_child=TASKS_PER_PROCESS,
            )
        return pool


def _discard(memory_mb: int, pool: ProcessPoolExecutor) -> None:
    """Kill ``pool``'s processes (one may be stuck in a PDF) and forget it: the next PDF starts
    a fresh pool."""
    with _POOLS_LOCK:
        if _POOLS.get(memory_mb) is pool:
            del _POOLS[memory_mb]
    # The executor cannot stop a running task: its processes are killed (a private attribute).
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        with contextlib.suppress(Exception):
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def shutdown_pools(*, wait: bool = False) -> None:
    """Stop every verifying process: killed, or with ``wait`` let finish what they verify and
    exit (the benchmark, to count their memory). An idle pool needs neither: its processes exit
    with the gateway's."""
    with _POOLS_LOCK:
        pools = list(_POOLS.items())
        if wait:
            _POOLS.clear()
    for memory_mb, pool in pools:
        if wait:
            pool.shutdown(wait=True)
        else:
            _discard(memory_mb, pool)


async def _run_in_pool(
    path: Path,
    documents: DocumentSignatureSettings,
    *,
    anchors: list[Path],
    crls: list[Path],
) -> pdf.PdfCheck:
    pool = _pool(documents.memory_mb)
    try:
        future = pool.submit(
            pdf.verify_request, str(path), [str(p) for p in anchors], [str(p) for p in crls]
        )
    except (BrokenProcessPool, RuntimeError):  # broken or discarded since it was taken
        _discard(documents.memory_mb, pool)
        return await check_alone(path, documents, anchors=anchors, crls=crls)
    try:
        data = await asyncio.wait_for(
            asyncio.wrap_future(future), timeout=documents.timeout_seconds
        )
    except TimeoutError:
        _discard(documents.memory_mb, pool)  # kills the process still in this PDF
        return _timed_out(documents)
    except BrokenProcessPool:
        # A process of the pool died: this PDF's (over the memory limit, or it could not even
        # start), or another's killed beside it. Verified again alone, the verdict is its own.
        _discard(documents.memory_mb, pool)
        return await check_alone(path, documents, anchors=anchors, crls=crls)
    except MemoryError:  # raised outside the PDF's own check (its result, pickled)
        _discard(documents.memory_mb, pool)
        return _over_memory(documents, "MemoryError")
    return pdf.PdfCheck.from_json(data)


def _timed_out(documents: DocumentSignatureSettings) -> pdf.PdfCheck:
    return pdf.failed(
        pdf.PDF_TIMEOUT,
        f"verifying took over documents.timeout_seconds ({documents.timeout_seconds:g} s)",
    )


def _over_memory(documents: DocumentSignatureSettings, why: str) -> pdf.PdfCheck:
    return pdf.failed(
        pdf.PDF_LIMIT_EXCEEDED,
        f"the verifying process ended without a verdict ({why}; memory limit "
        f"documents.memory_mb = {documents.memory_mb})",
    )


async def check_alone(
    path: Path,
    documents: DocumentSignatureSettings,
    *,
    anchors: list[Path],
    crls: list[Path],
) -> pdf.PdfCheck:
    """The PDF at ``path`` verified in a process of its own (``python -m
    envelopes.pdf_signatures``: a Python start and pyHanko's import for this PDF alone), within
    the same bounds: a PDF whose pool process died gets its own verdict this way."""
    request = json.dumps(
        {
            "path": str(path),
            "anchors": [str(p) for p in anchors],
            "crls": [str(p) for p in crls],
            "memory_mb": documents.memory_mb,
        }
    ).encode()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "ignore",
        "-m",
        "envelopes.pdf_signatures",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(
            process.communicate(request), timeout=documents.timeout_seconds
        )
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        return _timed_out(documents)
    try:
        if process.returncode != 0:
            raise ValueError(f"exit status {process.returncode}")
        return pdf.PdfCheck.from_json(json.loads(out))
    except (ValueError, KeyError, TypeError) as exc:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        log.warning(
            "pdf_check_failed",
            extra={
                "event": "pdf_check_failed",
                "error_code": pdf.PDF_LIMIT_EXCEEDED,
                "detail": str(exc),
                "stderr": last[0][:300],
            },
        )
        return pdf.failed(
            pdf.PDF_LIMIT_EXCEEDED,
            f"the verifying process ended without a verdict ({exc}; memory limit "
            f"documents.memory_mb = {documents.memory_mb}): {last[0][:200]}",
        )


# --------------------------------------------------------------------------------- policy


def hold_reason(
    documents: DocumentSignatureSettings, sender: str, rows: Sequence[DocumentSignatureRow]
) -> str | None:
    """Why an outgoing document of ``sender`` is held under the per-unit policy, or None."""
    for row in rows:
        if row.verdict == "unsigned" and sender in documents.hold_unsigned:
            return f"DOCUMENT_UNSIGNED: {row.attachment} carries no signature"
        if row.verdict == "failing" and sender in documents.hold_failing:
            return f"DOCUMENT_SIGNATURE_FAILING: {row.attachment}: {', '.join(codes(row))}"
    return None


def codes(row: DocumentSignatureRow) -> list[str]:
    """The reason codes of a row: the PDF's own, or its signatures'."""
    if row.reason is not None:
        return [row.reason]
    return [
        str(reason["code"])
        for signature in row.signatures
        for reason in signature.get("reasons", [])
    ]


#: What a PDF signature says of who signed, and where in the file: not kept for a classified one.
_IDENTITY = ("field", "signer", "organisation", "subject")


def readable_rows(
    classification: Classification, rows: Sequence[DocumentSignatureRow]
) -> list[DocumentSignatureRow]:
    """What of the PDFs' signatures may be stored, shown and logged: of a classified document, its
    verdicts and their reason codes only — its file names and its signers are its content, kept
    out of columns and logs as its subject is (``store/visibility.readable_text``)."""
    if not classification.is_classified:
        return list(rows)
    return [
        dataclasses.replace(
            row,
            attachment=f"#{row.position}",
            detail=None,
            signatures=[
                {
                    **signature,
                    **dict.fromkeys(_IDENTITY),
                    "reasons": [{"code": r["code"], "message": None} for r in signature["reasons"]],
                }
                for signature in row.signatures
            ],
        )
        for row in rows
    ]


def warn(
    message_id: str,
    sender: str,
    classification: Classification,
    rows: Sequence[DocumentSignatureRow],
) -> None:
    for row in readable_rows(classification, rows):
        if row.verdict != "valid":
            log.warning(
                "document_signature",
                extra={
                    "event": "document_signature",
                    "message_id": message_id,
                    "sender": sender,
                    "attachment": row.attachment,
                    "verdict": row.verdict,
                    "codes": codes(row),
                },
            )


# ------------------------------------------------------------------------------- rendering


def row_json(row: DocumentSignatureRow) -> dict[str, Any]:
    return {
        "position": row.position,
        "attachment": row.attachment,
        "signed": bool(row.signatures),
        "verdict": row.verdict,
        "reason": row.reason,
        "detail": row.detail,
        "signatures": row.signatures,
        "checked_at": row.checked_at.isoformat(),
    }


async def for_message(conn: AsyncConnection, message_id: str) -> list[dict[str, Any]]:
    """The documents section of a message (API detail, webhooks)."""
    return [row_json(row) for row in await store.for_message(conn, message_id)]


async def store_rows(
    conn: AsyncConnection,
    message_id: str,
    classification: Classification,
    rows: Sequence[DocumentSignatureRow],
) -> None:
    await store.insert(conn, message_id, readable_rows(classification, rows))
