"""Downloads for the local system: a message's package as stored, and one attachment decoded from
it, both as streams of chunks so that memory does not grow with the file.

Who may see the message at all is the API's rule (the handler checks it before calling here). A
classified message's stored copy is sealed (the database never holds its plaintext). Its content
goes only to a member token of the message's own unit (its system is the reader the content is
meant for; staff see the transport, not the content), and in the form the drop folder hands it
over (:func:`~gateway.usecases.packages.hands_over_opened`): opened on a ``profile = "secure"``
gateway that holds the key it is sealed for, sealed as stored on a standard gateway — where an
attachment, which needs the plaintext, is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import IO, cast

from connectors.offload import run_blocking, stream_size
from envelopes import sealing
from envelopes.errors import SealError
from envelopes.model import AttachmentInfo, Classification
from envelopes.reading import PackageKind, read_package
from gateway.store import blobs
from gateway.store.records import MessageRecord
from gateway.usecases.errors import ClassifiedReaderRefused, NotFound, PackageNotOpenable
from gateway.usecases.packages import (
    hands_over_opened,
    load_to_spool,
    open_sealed_for_us,
    spool,
)
from gateway.usecases.ports import StoreAndKeys
from gateway.usecases.tokens import Principal, Role

#: Bytes handed to the response per write.
CHUNK = 1 << 16


@dataclass(frozen=True, kw_only=True)
class Download:
    """What to send: ``chunks`` yields the bytes (``size`` of them) and releases what it holds
    when it ends or is closed."""

    chunks: AsyncIterator[bytes]
    size: int
    filename: str
    media_type: str
    #: A classified package handed over as stored (sealed for its unit's certificate).
    sealed: bool = False


async def package(gateway: StoreAndKeys, message: MessageRecord, *, reader: Principal) -> Download:
    """The package as received or sent; a classified one as the module docstring says."""
    classified = Classification(message.classification).is_classified
    if classified:
        _check_reader(message, reader)
    if classified and hands_over_opened(gateway):
        plain = await opened(gateway, message)
        return Download(
            chunks=_spool_chunks(plain),
            size=stream_size(plain) or 0,
            filename=f"{message.id}.xml",
            media_type="application/xml",
        )
    async with gateway.reader.connect() as conn:
        size = await blobs.size_of(conn, message.package_sha256)
    return Download(
        chunks=_blob_chunks(gateway, message.package_sha256),
        size=size,
        filename=f"{message.id}.sealed" if classified else f"{message.id}.xml",
        media_type="application/octet-stream" if classified else "application/xml",
        sealed=classified,
    )


async def attachment(
    gateway: StoreAndKeys, message: MessageRecord, number: int, *, reader: Principal
) -> Download:
    """Attachment ``number`` (1 = the first in the package), decoded by the streaming reader into
    a spool; named and typed as the signed manifest says."""
    if message.kind != PackageKind.DOCUMENT.value:
        raise NotFound(f"message {message.id} is a status: it has no attachments", element="n")
    if Classification(message.classification).is_classified:
        _check_reader(message, reader)
        if not hands_over_opened(gateway):
            raise PackageNotOpenable(
                f"message {message.id} is {message.classification}: this gateway (profile "
                "standard) hands over only its sealed package; open it where the unit's key is",
                element="id",
            )
        plain = await opened(gateway, message)
    else:
        async with gateway.reader.connect() as conn:
            plain = await load_to_spool(conn, message.package_sha256)
    try:
        content, info = await run_blocking(stream_size(plain), _decode, plain, number)
    finally:
        plain.close()
    if content is None or info is None:
        raise NotFound(f"message {message.id} has no attachment {number}", element="n")
    return Download(
        chunks=_spool_chunks(content),
        size=info.size,
        filename=info.name,
        media_type=info.content_type,
    )


def _decode(plain: IO[bytes], number: int) -> tuple[IO[bytes] | None, AttachmentInfo | None]:
    """Attachment ``number``'s bytes (a spool) and its manifest entry; the others are decoded
    into nothing (their digests are still computed, which costs little beside the parse)."""
    seen = 0

    def sink() -> IO[bytes]:
        nonlocal seen
        seen += 1
        return spool() if seen == number else cast(IO[bytes], _Discard())

    parsed = read_package(plain, sink_factory=sink)
    if number < 1 or number > len(parsed.attachments):
        for streamed in parsed.attachments:
            if streamed.content is not None:
                streamed.content.close()
        return None, None
    chosen = parsed.attachments[number - 1]
    for other in parsed.attachments:
        if other is not chosen and other.content is not None:
            other.content.close()
    signed = {a.content_id: a for a in parsed.document().attachments}
    info = signed.get(chosen.content_id) or AttachmentInfo(
        content_id=chosen.content_id,
        name=chosen.name or f"attachment-{number}",
        content_type=chosen.content_type or "application/octet-stream",
        size=chosen.digest.size,
        sha256=chosen.digest.sha256_hex,
    )
    return chosen.content, info


class _Discard:
    """A sink that keeps nothing (the reader writes, rewinds and closes its sinks)."""

    def write(self, data: bytes) -> int:
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def close(self) -> None:
        return None


def _check_reader(message: MessageRecord, reader: Principal) -> None:
    if reader.role is not Role.MEMBER:
        raise ClassifiedReaderRefused(
            f"message {message.id} is {message.classification}: its content is served only to a "
            "member token of its own unit",
            element="id",
        )


async def opened(gateway: StoreAndKeys, message: MessageRecord) -> IO[bytes]:
    """The plaintext (a spool) of a classified message's sealed copy."""
    async with gateway.reader.connect() as conn:
        sealed = await load_to_spool(conn, message.package_sha256)
    try:
        head = sealed.read(sealing.SNIFF_LENGTH)
        sealed.seek(0)
        if not sealing.is_sealed(head):
            raise PackageNotOpenable(
                f"message {message.id} is {message.classification} but its stored copy is not "
                "sealed",
                element="id",
            )
        return await run_blocking(stream_size(sealed), _open, gateway, sealed, message.id)
    finally:
        sealed.close()


def _open(gateway: StoreAndKeys, sealed: IO[bytes], message_id: str) -> IO[bytes]:
    try:
        return open_sealed_for_us(gateway, sealed)
    except SealError as exc:
        raise PackageNotOpenable(
            f"message {message_id}'s stored copy cannot be opened here: {exc.message}",
            element="id",
        ) from exc


async def _blob_chunks(gateway: StoreAndKeys, sha256: str) -> AsyncIterator[bytes]:
    """The blob's bytes, a connection taken per stored chunk and given back before the chunk is
    sent: a slow client holds no connection (SQLite's engine has only one)."""
    seq = 0
    while True:
        async with gateway.reader.connect() as conn:
            chunk = await blobs.read_chunk_at(conn, sha256, seq)
        if chunk is None:
            return
        for piece in _pieces(chunk):
            yield piece
        seq += 1


async def _spool_chunks(source: IO[bytes]) -> AsyncIterator[bytes]:
    with contextlib.closing(source):
        source.seek(0)
        while piece := source.read(CHUNK):
            yield piece


def _pieces(chunk: bytes) -> Iterator[bytes]:
    view = memoryview(chunk)
    for start in range(0, len(chunk), CHUNK):
        yield bytes(view[start : start + CHUNK])
