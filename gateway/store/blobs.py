"""Content-addressed package blobs in the database, written and read as streams.

A blob is named by the SHA-256 of its bytes. Small blobs live inline in ``blobs.data``; larger ones
are cut into 1 MiB rows of ``blob_chunks`` written while hashing, so a 100 MB package is never held
whole in memory, and the blob commits (or not) in the caller's transaction with the message that
uses it. Storing a blob that exists already costs nothing more than the hashing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import IO, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.database import insert_or_ignore
from gateway.store.tables import blob_chunks, blobs

CHUNK = 1 << 20


@dataclass(frozen=True, kw_only=True)
class BlobRef:
    sha256: str
    size: int


async def put_stream(
    connection: AsyncConnection, stream: IO[bytes], *, inline_limit: int, now: dt.datetime
) -> BlobRef:
    hasher = hashlib.sha256()
    first = stream.read(inline_limit + 1)
    if len(first) <= inline_limit:
        hasher.update(first)
        ref = BlobRef(sha256=hasher.hexdigest(), size=len(first))
        # One statement: the same bytes stored before are simply kept (content addressing).
        await insert_or_ignore(connection, blobs, blobs.c.sha256).execute(
            connection, {"sha256": ref.sha256, "size": ref.size, "data": first, "created_at": now}
        )
        return ref
    chunk_key = str(uuid.uuid4())
    size, seq, pending = 0, 0, first
    while pending:
        for start in range(0, len(pending), CHUNK):
            piece = pending[start : start + CHUNK]
            hasher.update(piece)
            size += len(piece)
            await connection.execute(
                blob_chunks.insert().values(chunk_key=chunk_key, seq=seq, data=piece)
            )
            seq += 1
            # The embedded SQLite engine runs statements on the loop's thread, and awaiting one
            # does not yield: let the loop run between chunks, or a 100 MB blob stalls it.
            await asyncio.sleep(0)
        pending = stream.read(CHUNK)
    ref = BlobRef(sha256=hasher.hexdigest(), size=size)
    if await exists(connection, ref.sha256):
        await connection.execute(blob_chunks.delete().where(blob_chunks.c.chunk_key == chunk_key))
    else:
        await connection.execute(
            blobs.insert().values(sha256=ref.sha256, size=size, chunk_key=chunk_key, created_at=now)
        )
    return ref


async def put_bytes(
    connection: AsyncConnection, data: bytes, *, inline_limit: int, now: dt.datetime
) -> BlobRef:
    return await put_stream(connection, io.BytesIO(data), inline_limit=inline_limit, now=now)


async def exists(connection: AsyncConnection, sha256: str) -> bool:
    found = await connection.scalar(sa.select(blobs.c.sha256).where(blobs.c.sha256 == sha256))
    return found is not None


async def read_chunks(connection: AsyncConnection, sha256: str) -> AsyncIterator[bytes]:
    row = (
        await connection.execute(
            sa.select(blobs.c.data, blobs.c.chunk_key).where(blobs.c.sha256 == sha256)
        )
    ).one_or_none()
    if row is None:
        raise KeyError(sha256)
    if row.data is not None:
        yield bytes(row.data)
        return
    seq = 0
    while True:
        data = await connection.scalar(
            sa.select(blob_chunks.c.data).where(
                blob_chunks.c.chunk_key == row.chunk_key, blob_chunks.c.seq == seq
            )
        )
        if data is None:
            return
        yield bytes(data)
        seq += 1


async def read_first_chunk(connection: AsyncConnection, sha256: str) -> bytes:
    """The blob's first chunk (all of it when stored inline): for a header at its start, without
    reading the rest. KeyError when there is no such blob, as :func:`read_chunks`."""
    # read_chunks is an async generator (typed as an iterator): closed at once, not drained.
    reader = cast(AsyncGenerator[bytes, None], read_chunks(connection, sha256))
    async with aclosing(reader) as chunks:
        return await anext(chunks, b"")


async def read_bytes(connection: AsyncConnection, sha256: str) -> bytes:
    return b"".join([chunk async for chunk in read_chunks(connection, sha256)])


async def size_of(connection: AsyncConnection, sha256: str) -> int:
    """The blob's size in bytes; KeyError when there is no such blob, as :func:`read_chunks`."""
    size = await connection.scalar(sa.select(blobs.c.size).where(blobs.c.sha256 == sha256))
    if size is None:
        raise KeyError(sha256)
    return int(size)


async def read_chunk_at(connection: AsyncConnection, sha256: str, seq: int) -> bytes | None:
    """Chunk ``seq`` of the blob (an inline blob is one chunk), None past its end: for a reader
    that takes a connection per chunk — a download to a slow client must not hold one (SQLite's
    engine has a single connection). KeyError when there is no such blob."""
    row = (
        await connection.execute(
            sa.select(blobs.c.data, blobs.c.chunk_key).where(blobs.c.sha256 == sha256)
        )
    ).one_or_none()
    if row is None:
        raise KeyError(sha256)
    if row.data is not None:
        return bytes(row.data) if seq == 0 else None
    data = await connection.scalar(
        sa.select(blob_chunks.c.data).where(
            blob_chunks.c.chunk_key == row.chunk_key, blob_chunks.c.seq == seq
        )
    )
    return None if data is None else bytes(data)
