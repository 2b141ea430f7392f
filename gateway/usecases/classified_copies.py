"""Store a classified copy: a package sealed for one certificate, then stored — the one service
that submit, statuses and operations (resend, re-route) use.

A classified message's plaintext is never stored. The message keeps a copy sealed for its sender
(the only copy it keeps); each recipient is sent a copy sealed for its unit's current certificate
(:func:`gateway.usecases.packages.current_certificate`). A unit with no current certificate gets no
copy: a new message or status holds that recipient (:func:`no_certificate` says why), a resend or
re-route is refused.

Sealing is CPU work on the whole package. It runs in a thread for a large one (``run_blocking``),
and *before* the write transaction (:meth:`ClassifiedCopies.seal`), on spools, with no database
connection held: on SQLite the one pooled connection would otherwise stay taken, and the whole
gateway wait, while a large package is sealed once per recipient and once for its sender. The
transaction then reads each unit's current certificate again — it may have been renewed or revoked
meanwhile — and stores the copy sealed for that one (:meth:`ClassifiedCopies.store`): the copy
sealed ahead, or else one sealed there, still off the event loop. A submission rolls back instead
and seals what it lacks before its next attempt; a status package is small, and sealed where it is
stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Iterable, Mapping
from contextlib import ExitStack
from typing import IO, Generic, Protocol, TypeVar

from cryptography import x509
from sqlalchemy.ext.asyncio import AsyncConnection

from connectors.offload import run_blocking, stream_size
from gateway.store import blobs
from gateway.usecases.packages import seal_copy

K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)


class Plaintexts(Protocol[K_contra]):
    """Where the plaintext copies come from, by key (a group of recipients, a recipient)."""

    async def load(self, conn: AsyncConnection) -> None:
        """Fetch, with the caller's connection, what opening needs (once)."""

    def size(self) -> int | None:
        """The bytes one sealing works on, or None when unknown (a thread is used beyond a small
        package)."""

    def opened(self, stack: ExitStack) -> Callable[[K_contra], IO[bytes]]:
        """The plaintexts for one sealing run, held by ``stack`` (blocking: run off the loop)."""


class Spools(Generic[K]):
    """Plaintext copies already at hand — built, or a small status package — by key."""

    def __init__(self, copies: Mapping[K, IO[bytes]]) -> None:
        self._copies = copies

    async def load(self, conn: AsyncConnection) -> None:
        return None

    def size(self) -> int | None:
        sizes = []
        for copy in self._copies.values():
            copy.seek(0)
            sizes.append(stream_size(copy))
        return None if None in sizes else max((s or 0 for s in sizes), default=0)

    def opened(self, stack: ExitStack) -> Callable[[K], IO[bytes]]:
        return self._copies.__getitem__


class ClassifiedCopies(Generic[K]):
    """The copies of one classified package, each sealed for one certificate, on spools closed
    with ``stack``."""

    def __init__(self, plaintexts: Plaintexts[K], stack: ExitStack, *, inline_limit: int) -> None:
        self._plaintexts = plaintexts
        self._stack = stack
        self._inline_limit = inline_limit
        self._sealed: dict[tuple[K, x509.Certificate], IO[bytes]] = {}

    def __len__(self) -> int:
        """How many sealed copies it holds."""
        return len(self._sealed)

    async def load(self, conn: AsyncConnection) -> None:
        """Fetch what opening the plaintexts needs, with the caller's connection (before
        :meth:`seal`)."""
        await self._plaintexts.load(conn)

    def has(self, key: K, cert: x509.Certificate) -> bool:
        return (key, cert) in self._sealed

    async def seal(self, wanted: Iterable[tuple[K, x509.Certificate]]) -> None:
        """Seal copy ``key`` for ``cert``, for each of ``wanted`` not sealed yet: in a thread for a
        large package. Before the write transaction, with no connection held."""
        missing = [pair for pair in dict.fromkeys(wanted) if pair not in self._sealed]
        if missing:
            await run_blocking(self._plaintexts.size(), self._seal, missing)

    def _seal(self, wanted: list[tuple[K, x509.Certificate]]) -> None:
        with ExitStack() as run:
            plaintext = self._plaintexts.opened(run)
            for key, cert in wanted:
                sealed = seal_copy(plaintext(key), cert)
                self._sealed[key, cert] = self._stack.enter_context(sealed)

    async def store(
        self, conn: AsyncConnection, key: K, cert: x509.Certificate, *, now: dt.datetime
    ) -> str:
        """Store copy ``key`` sealed for ``cert`` in the caller's transaction; its SHA-256. Sealed
        now (off the loop for a large package) if it was not sealed ahead: ``cert`` became the
        unit's current certificate after the copies were sealed."""
        if (key, cert) not in self._sealed:
            await self.load(conn)
            await self.seal([(key, cert)])
        copy = self._sealed[key, cert]
        copy.seek(0)
        stored = await blobs.put_stream(conn, copy, inline_limit=self._inline_limit, now=now)
        return stored.sha256


def no_certificate(unit: str) -> str:
    """Why a recipient is held: its unit has no current certificate to seal its copy for."""
    return f"no current certificate registered for {unit} to seal for"
