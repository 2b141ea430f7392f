"""Hand-off with the local document-management system through folders, crash-safe.

Layout under ``root``::

    outbox/                the local system drops documents to send here
        NAME.tmp/          being written by the local system: never read
        NAME.ready/        complete (renamed from NAME.tmp/): metadata.json + attachment files
        NAME.edxml.tmp     being written
        NAME.edxml         a complete package, ready to send: signed by the sending unit, or
                           signed by docgw when taken if the folder says so
                           (``sign_ready_packages``)
        taken/             items the gateway accepted: NAME.ready/ or NAME.edxml, and
                           NAME.taken.json with the message id
        rejected/          items the gateway refused: the item and NAME.error.json
    inbox/                 the gateway writes what it received here
        NAME.json          the metadata, complete before the package appears
        NAME.files/        files handed over beside the package (an attachment the sender
                           zipped, unpacked), complete before the package appears
        NAME.edxml         the package: its appearance means everything of NAME is complete
        *.tmp              being written: never read

The one rule on both sides: **the rename is the commit**. A writer writes under a ``.tmp`` name,
fsyncs, renames (atomic within one file system), and fsyncs the directory so the rename survives a
power cut. A reader looks only at final names, so it never sees half a file, whatever was killed
when. Leftover ``.tmp`` entries are garbage: :meth:`DropFolder.cleanup_stale_tmp` removes them.

Inbox writes lock their ``.tmp`` file (``flock``) for their whole life, so two gateway processes
handing over the same name cannot interleave, and cleanup never deletes a file being written. The
kernel drops the lock when a writer dies, however it dies.

Symbolic links and special files in the outbox are refused: an item must not be able to make the
gateway send a file from elsewhere on the host (a key, another agency's document).

Errors::

    ConnectorError
    └── DropFolderError          DROP_FOLDER_ERROR
        ├── DropNameInvalid      DROP_NAME_INVALID      a name that is not a plain file name
        ├── DropFolderBusy       DROP_FOLDER_BUSY       another writer holds this name: retry
        ├── DropItemGone         DROP_ITEM_GONE         the item was moved away meanwhile
        └── DropPackageMismatch  DROP_PACKAGE_MISMATCH  the bytes written are not the expected ones

File-system failures (disk full, permissions) surface as ``OSError``; the connector translates them
to :class:`~connectors.base.PeerUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import AsyncIterable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, cast

from connectors.base import (
    ClassifiedRefused,
    ConnectorError,
    Delivery,
    PeerUnavailable,
    Receipt,
    require_sealed,
)

CHUNK: Final = 1 << 20
READY_SUFFIX: Final = ".ready"
PACKAGE_SUFFIX: Final = ".edxml"
#: ``inbox/NAME.files/``: files handed over beside NAME's package.
FILES_SUFFIX: Final = ".files"
TMP_SUFFIX: Final = ".tmp"
METADATA_FILE: Final = "metadata.json"
#: A metadata file is a small JSON object; anything bigger is a mistake, not a document.
MAX_METADATA_BYTES: Final = 1 << 20
#: Names the gateway writes: a plain file name, no separators, no leading dot.
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]")

PackageSource = bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes] | AsyncIterable[bytes]


class DropFolderError(ConnectorError):
    code = "DROP_FOLDER_ERROR"


class DropFolderMissing(DropFolderError):
    code = "DROP_FOLDER_MISSING"


class DropNameInvalid(DropFolderError):
    code = "DROP_NAME_INVALID"


class DropFolderBusy(DropFolderError):
    code = "DROP_FOLDER_BUSY"


class DropItemGone(DropFolderError):
    code = "DROP_ITEM_GONE"


class DropPackageMismatch(DropFolderError):
    code = "DROP_PACKAGE_MISMATCH"


@dataclass(frozen=True, kw_only=True)
class OutboxItem:
    """A complete item of the outbox: a document folder or a ready package."""

    #: NAME, without ``.ready`` / ``.edxml``.
    name: str
    #: Where the item is now (``outbox/NAME.ready`` or ``outbox/NAME.edxml``).
    path: Path
    #: The bytes of ``metadata.json`` (document folders); None for a package.
    metadata: bytes | None = None
    #: The package file (ready packages); None for a document folder.
    package_path: Path | None = None
    #: The attachment files of a document folder, sorted by name. Read them before ``mark_taken``
    #: moves them, and open them with ``O_NOFOLLOW``: they were regular files when scanned.
    attachments: tuple[Path, ...] = ()
    #: SHA-256 over the metadata and each file's name, size and mtime: stable across scans.
    fingerprint: str

    @property
    def is_package(self) -> bool:
        return self.package_path is not None

    @property
    def idempotency_key(self) -> str:
        """For submit: a crash between submitting and :meth:`DropFolder.mark_taken` makes the next
        scan submit the same item again, and this key makes that a no-op. A name the local system
        reuses later for another document gets another key."""
        return f"drop-folder:{self.name}:{self.fingerprint[:32]}"


@dataclass(frozen=True, kw_only=True)
class InboxFile:
    """An inbox hand-off. ``created`` is False when NAME was already there (nothing written)."""

    name: str
    package_path: Path
    metadata_path: Path
    size: int
    #: Of the bytes written; None when nothing was written.
    sha256: str | None
    created: bool


@dataclass(frozen=True, kw_only=True)
class DropFolder:
    root: Path
    #: Mode of the files written to the inbox (the local system's account must be able to read).
    file_mode: int = 0o640
    max_metadata_bytes: int = MAX_METADATA_BYTES
    #: Ready packages without a signature are signed by docgw when taken ("signed on hand-over",
    #: ``channels.NAME.sign_ready_packages``); without it they are refused (SIGNATURE_MISSING).
    sign_ready_packages: bool = False

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def taken(self) -> Path:
        return self.outbox / "taken"

    @property
    def rejected(self) -> Path:
        return self.outbox / "rejected"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    # ----------------------------------------------------------------------------------- outbox

    async def scan_outbox(self) -> list[OutboxItem]:
        """The complete items of the outbox, by name. Anything still ``.tmp`` is ignored. An item
        that is complete but can never be sent (no metadata.json, a link, a subfolder) is moved to
        ``rejected/`` at once, so the local system learns about it and it is not rescanned."""
        return await asyncio.to_thread(self._scan_outbox)

    async def mark_taken(self, item: OutboxItem, message_id: str) -> Path:
        """Move ``item`` to ``outbox/taken/`` and record ``message_id`` beside it; returns where
        the item went. Call it once the submission is durable (a crash before leaves the item in
        the outbox, and its idempotency key makes the resubmission harmless)."""
        record = {"message_id": message_id, "idempotency_key": item.idempotency_key}
        return await asyncio.to_thread(self._move, item, self.taken, "taken", record)

    async def mark_rejected(self, item: OutboxItem, error_code: str, message: str) -> Path:
        """Move ``item`` to ``outbox/rejected/`` with ``NAME.error.json`` saying why."""
        record = {"error_code": error_code, "message": message}
        return await asyncio.to_thread(self._move, item, self.rejected, "error", record)

    # ------------------------------------------------------------------------------------ inbox

    async def write_inbox(
        self,
        name: str,
        data: PackageSource,
        meta: dict[str, Any],
        *,
        expected_sha256: str | None = None,
    ) -> InboxFile:
        """Hand a package to the local system: ``inbox/NAME.json`` then ``inbox/NAME.edxml``.

        ``data`` is bytes, a binary stream (read in chunks, not closed), an iterable or an async
        iterable of chunks: a large package never sits in memory. If ``NAME.edxml`` exists nothing
        is written (idempotent by name) and ``data`` is not read. With ``expected_sha256`` the
        bytes are checked before they become visible. If anything fails, nothing becomes visible
        and the ``.tmp`` file is removed (after a crash it stays, for ``cleanup_stale_tmp``).
        """
        _check_name(name)
        meta_bytes = _json_bytes(meta)
        if isinstance(data, AsyncIterable):
            return await self._write_inbox_async(name, data, meta_bytes, expected_sha256)
        return await asyncio.to_thread(
            self._write_inbox_sync, name, _chunks(data), meta_bytes, expected_sha256
        )

    async def write_inbox_files(
        self, name: str, files: Sequence[tuple[str, IO[bytes]]]
    ) -> Path | None:
        """Hand files over beside a package, in ``inbox/NAME.files/`` (e.g. an attachment the
        sender zipped, unpacked): call it before :meth:`write_inbox`, so that the package's
        appearance still means everything of NAME is complete. The folder is written as
        ``.tmp`` and renamed whole; nothing is written when ``NAME.edxml`` or the folder is
        already there (the same files: they derive from the same package). None if no files."""
        _check_name(name)
        for file_name, _ in files:
            _check_name(file_name)
        if not files:
            return None
        return await asyncio.to_thread(self._write_files_sync, name, files)

    async def cleanup_stale_tmp(self, older_than: float | dt.timedelta) -> list[Path]:
        """Remove ``.tmp`` leftovers not modified for ``older_than`` (seconds or a timedelta):
        files of killed inbox writers, and folders the local system abandoned in the outbox. An
        inbox ``.tmp`` still locked by a live writer is kept, whatever its age. The gateway's
        scheduler runs it hourly for every drop-folder channel, for leftovers a day old."""
        seconds = older_than.total_seconds() if isinstance(older_than, dt.timedelta) else older_than
        return await asyncio.to_thread(self._cleanup, time.time() - seconds)

    # ------------------------------------------------------------------------ outbox, blocking

    def _scan_outbox(self) -> list[OutboxItem]:
        if not self.root.is_dir():
            # Unmounted, moved or deleted: a failure to see, not an empty outbox.
            raise DropFolderMissing(f"the drop folder {self.root} is not a directory (any more)")
        if not self.outbox.is_dir():
            return []
        items = []
        for entry in sorted(os.scandir(self.outbox), key=lambda e: e.name):
            try:
                item = self._read_entry(entry)
            except FileNotFoundError:
                continue  # taken or refused by another scanner while we looked
            if item is not None:
                items.append(item)
        return items

    def _read_entry(self, entry: os.DirEntry[str]) -> OutboxItem | None:
        if entry.name.startswith(".") or entry.name.endswith(TMP_SUFFIX):
            return None
        path = Path(entry.path)
        if entry.name.endswith(READY_SUFFIX) and len(entry.name) > len(READY_SUFFIX):
            name = entry.name[: -len(READY_SUFFIX)]
            if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
                self._refuse(path, name, "DROP_ITEM_NOT_A_FOLDER", "not a real folder")
                return None
            return self._read_folder(path, name)
        if entry.name.endswith(PACKAGE_SUFFIX) and len(entry.name) > len(PACKAGE_SUFFIX):
            name = entry.name[: -len(PACKAGE_SUFFIX)]
            if not entry.is_file(follow_symlinks=False):
                self._refuse(path, name, "DROP_ITEM_NOT_A_FILE", "not a regular file")
                return None
            info = entry.stat(follow_symlinks=False)
            return OutboxItem(
                name=name,
                path=path,
                package_path=path,
                fingerprint=_fingerprint(b"package", [(entry.name, info)]),
            )
        return None  # taken/, rejected/ and anything else are not items

    def _read_folder(self, path: Path, name: str) -> OutboxItem | None:
        files: list[tuple[str, os.stat_result]] = []
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            if not entry.is_file(follow_symlinks=False):
                self._refuse(
                    path, name, "DROP_ITEM_NOT_A_FILE", f"{entry.name} is not a regular file"
                )
                return None
            files.append((entry.name, entry.stat(follow_symlinks=False)))
        metadata_stat = dict(files).get(METADATA_FILE)
        if metadata_stat is None:
            self._refuse(path, name, "DROP_METADATA_MISSING", f"no {METADATA_FILE}")
            return None
        if metadata_stat.st_size > self.max_metadata_bytes:
            self._refuse(
                path,
                name,
                "DROP_METADATA_TOO_LARGE",
                f"{METADATA_FILE} has {metadata_stat.st_size} bytes (limit "
                f"{self.max_metadata_bytes})",
            )
            return None
        metadata = _read_regular(path / METADATA_FILE, self.max_metadata_bytes)
        return OutboxItem(
            name=name,
            path=path,
            metadata=metadata,
            attachments=tuple(path / n for n, _ in files if n != METADATA_FILE),
            fingerprint=_fingerprint(b"folder" + metadata, files),
        )

    def _refuse(self, path: Path, name: str, code: str, message: str) -> None:
        item = OutboxItem(name=name, path=path, fingerprint="")
        with contextlib.suppress(DropItemGone):  # another scanner refused it first
            self._move(item, self.rejected, "error", {"error_code": code, "message": message})

    def _move(
        self, item: OutboxItem, target: Path, record_kind: str, record: dict[str, Any]
    ) -> Path:
        _ensure_directory(target)
        suffix = PACKAGE_SUFFIX if item.path.name.endswith(PACKAGE_SUFFIX) else READY_SUFFIX
        stem = _free_stem(target, item.name, suffix)
        # The record first: a crash between the two steps leaves the item in the outbox, to be
        # scanned and moved again (overwriting this record), never an item without its record.
        record = {
            **record,
            "name": item.name,
            "item": item.path.name,
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        _write_small_file(target / f"{stem}.{record_kind}.json", _json_bytes(record), 0o644)
        destination = target / f"{stem}{suffix}"
        try:
            os.rename(item.path, destination)
        except FileNotFoundError as exc:
            raise DropItemGone(f"{item.path} is no longer in the outbox") from exc
        _fsync_directory(item.path.parent)
        _fsync_directory(target)
        return destination

    # ------------------------------------------------------------------------- inbox, blocking

    def _write_inbox_sync(
        self, name: str, chunks: Iterator[bytes], meta: bytes, expected_sha256: str | None
    ) -> InboxFile:
        started = self._begin_inbox(name, meta)
        if isinstance(started, InboxFile):
            return started
        try:
            for chunk in chunks:
                started.write(chunk)
            return started.commit(expected_sha256)
        except BaseException:
            started.abort()
            raise

    async def _write_inbox_async(
        self, name: str, data: AsyncIterable[bytes], meta: bytes, expected_sha256: str | None
    ) -> InboxFile:
        started = await asyncio.to_thread(self._begin_inbox, name, meta)
        if isinstance(started, InboxFile):
            return started
        try:
            async for chunk in data:
                await asyncio.to_thread(started.write, chunk)
            return await asyncio.to_thread(started.commit, expected_sha256)
        except BaseException:
            started.abort()  # quick and synchronous: it must run even when cancelled
            raise

    def _write_files_sync(self, name: str, files: Sequence[tuple[str, IO[bytes]]]) -> Path:
        _ensure_directory(self.inbox)
        folder = self.inbox / f"{name}{FILES_SUFFIX}"
        if (self.inbox / f"{name}{PACKAGE_SUFFIX}").exists() or folder.exists():
            return folder
        # A name of its own: another process handing over NAME at once cannot write into it.
        tmp = folder.with_name(f"{folder.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")
        tmp.mkdir(mode=self.file_mode | (self.file_mode & 0o444) >> 2)  # x where r: a folder
        try:
            for file_name, stream in files:
                _write_stream(tmp / file_name, stream, self.file_mode)
            _fsync_directory(tmp)
            try:
                os.rename(tmp, folder)
            except OSError:
                if not folder.is_dir():
                    raise
                shutil.rmtree(tmp)  # another writer's, of the same files, came first
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_directory(self.inbox)
        return folder

    def _begin_inbox(self, name: str, meta: bytes) -> InboxFile | _InboxWrite:
        _ensure_directory(self.inbox)
        package = self.inbox / f"{name}{PACKAGE_SUFFIX}"
        metadata = self.inbox / f"{name}.json"
        if (existing := _existing(name, package, metadata)) is not None:
            return existing
        write = _InboxWrite(package=package, metadata=metadata, mode=self.file_mode)
        try:
            # Checked again under the lock: another writer may have finished meanwhile.
            if (existing := _existing(name, package, metadata)) is not None:
                write.abort()
                return existing
            # Before the package, so that the package's appearance means both are complete.
            _write_small_file(metadata, meta, self.file_mode)
            write.wrote_metadata = True
        except BaseException:
            write.abort()
            raise
        return write

    # ------------------------------------------------------------------------ cleanup, blocking

    def _cleanup(self, cutoff: float) -> list[Path]:
        removed = []
        for directory in (self.outbox, self.taken, self.rejected, self.inbox):
            if not directory.is_dir():
                continue
            for entry in sorted(os.scandir(directory), key=lambda e: e.name):
                if entry.name.endswith(TMP_SUFFIX) and _remove_if_stale(Path(entry.path), cutoff):
                    removed.append(Path(entry.path))
        return removed


class _InboxWrite:
    """One inbox write in progress: its ``.tmp`` file, locked from creation to rename."""

    def __init__(self, *, package: Path, metadata: Path, mode: int) -> None:
        self.package = package
        self.metadata = metadata
        self.tmp = package.with_name(package.name + TMP_SUFFIX)
        self.wrote_metadata = False
        self.size = 0
        self._digest = hashlib.sha256()
        # No O_TRUNC before the lock: the file may be another live writer's.
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
        try:
            _lock_or_busy(fd, self.tmp)
            os.ftruncate(fd, 0)  # a dead writer's leftover, now ours
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            view = view[os.write(self._fd, view) :]
        self._digest.update(chunk)
        self.size += len(chunk)

    def commit(self, expected_sha256: str | None) -> InboxFile:
        digest = self._digest.hexdigest()
        if expected_sha256 is not None and digest != expected_sha256.lower():
            raise DropPackageMismatch(
                f"{self.package.name}: wrote {self.size} bytes with SHA-256 {digest}, "
                f"expected {expected_sha256}"
            )
        os.fsync(self._fd)
        os.replace(self.tmp, self.package)
        _fsync_directory(self.package.parent)
        os.close(self._fd)  # releases the lock, only now that the name is final
        self._fd = -1
        return InboxFile(
            name=self.package.name[: -len(PACKAGE_SUFFIX)],
            package_path=self.package,
            metadata_path=self.metadata,
            size=self.size,
            sha256=digest,
            created=True,
        )

    def abort(self) -> None:
        """Undo what this write made visible or left behind, while still holding the lock."""
        if self._fd < 0:
            return
        try:
            if _same_file(self._fd, self.tmp):
                self.tmp.unlink()
            if self.wrote_metadata:
                self.metadata.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = -1


def _lock_or_busy(fd: int, path: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        raise DropFolderBusy(f"{path.name} is being written by another process") from exc
    # The path may have been renamed or removed between our open and our lock: then we hold a
    # lock on a file that is no longer the .tmp, and must not write through it.
    if not _same_file(fd, path):
        raise DropFolderBusy(f"{path.name} changed hands while being locked; try again")


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


def _existing(name: str, package: Path, metadata: Path) -> InboxFile | None:
    try:
        size = os.stat(package).st_size
    except FileNotFoundError:
        return None
    return InboxFile(
        name=name,
        package_path=package,
        metadata_path=metadata,
        size=size,
        sha256=None,
        created=False,
    )


def _remove_if_stale(path: Path, cutoff: float) -> bool:
    try:
        info = os.stat(path, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            if _newest_mtime(path) > cutoff:
                return False
            # Moved out of the way before it is emptied: if the local system renames it to
            # NAME.ready at this moment, one of the two renames fails, and a folder half deleted
            # is never picked up. The new name is hidden and still ends in .tmp, so what a
            # cleanup cut short leaves is collected by the next one.
            doomed = path.with_name(f".removing-{secrets.token_hex(8)}{TMP_SUFFIX}")
            os.rename(path, doomed)
            shutil.rmtree(doomed)
            _fsync_directory(path.parent)
            return True
        if info.st_mtime > cutoff:
            return False
        if not stat.S_ISREG(info.st_mode):
            path.unlink()
            return True
        return _remove_unlocked(path)
    except FileNotFoundError:
        return False  # someone else removed or renamed it meanwhile


def _newest_mtime(directory: Path) -> float:
    # A writer appending to one big attachment changes that file's mtime, not the folder's.
    newest = os.stat(directory, follow_symlinks=False).st_mtime
    for parent, _, names in os.walk(directory):
        for name in names:
            newest = max(
                newest, os.stat(os.path.join(parent, name), follow_symlinks=False).st_mtime
            )
    return newest


def _remove_unlocked(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer: its file is not stale, however old its mtime
        # Unlinked while holding the lock, so a writer starting now finds no file or a new one.
        if not _same_file(fd, path):
            return False
        path.unlink()
        _fsync_directory(path.parent)
        return True
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------- file helpers


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.endswith(TMP_SUFFIX):
        raise DropNameInvalid(
            f"{name!r} is not a drop-folder name: 1–200 of A-Z a-z 0-9 . _ -, starting with a "
            "letter or digit, not ending in .tmp"
        )


def safe_name(value: str) -> str:
    """``value`` made into a drop-folder name (characters outside the allowed set become ``_``)."""
    name = _UNSAFE.sub("_", value)[:200]
    if not name or not name[0].isalnum():
        name = ("x" + name)[:200]
    if name.endswith(TMP_SUFFIX):
        name = name[: -len(TMP_SUFFIX)] + "_tmp"
    return name


def _chunks(data: bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        yield bytes(data)
    elif hasattr(data, "read"):
        stream = cast(IO[bytes], data)
        while chunk := stream.read(CHUNK):
            yield chunk
    else:
        yield from data


def _json_bytes(value: dict[str, Any]) -> bytes:
    text = json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)
    # A name that is not UTF-8 (a lone surrogate here) is written as its JSON escape, \udcff.
    return text.encode("utf-8", "backslashreplace") + b"\n"


def _fingerprint(seed: bytes, files: Iterable[tuple[str, os.stat_result]]) -> str:
    digest = hashlib.sha256(seed)
    for name, info in files:
        # os.fsencode: a name that is not UTF-8 is its bytes on disk, not a crash of the scan.
        digest.update(os.fsencode(f"\0{name}\0{info.st_size}\0{info.st_mtime_ns}"))
    return digest.hexdigest()


def open_item_file(path: Path) -> IO[bytes]:
    """Open a file of an outbox item for reading. ``O_NOFOLLOW``: it was a regular file when
    scanned; if it has been swapped for a link since, this fails (OSError) instead of reading
    whatever the link points at."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    return os.fdopen(fd, "rb")


def _read_regular(path: Path, limit: int) -> bytes:
    with open_item_file(path) as handle:
        return handle.read(limit + 1)[:limit]


def _write_small_file(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + TMP_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_directory(path.parent)


def _write_stream(path: Path, stream: IO[bytes], mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        stream.seek(0)
        while chunk := stream.read(CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    """Make renames and creations in ``directory`` durable (POSIX needs the directory synced)."""
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems (and platforms) refuse fsync on a directory
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def _ensure_directory(directory: Path) -> None:
    if directory.is_dir():
        return
    directory.mkdir(parents=True, exist_ok=True)
    _fsync_directory(directory.parent)


def _free_stem(target: Path, name: str, suffix: str) -> str:
    """NAME, or NAME~2, NAME~3 … when an earlier item of that name is already in ``target``."""
    stem, n = name, 1
    while os.path.lexists(target / f"{stem}{suffix}"):
        n += 1
        stem = f"{name}~{n}"
    return stem


# ----------------------------------------------------------------------------------- connector


@dataclass(kw_only=True)
class DropFolderConnector:
    """Delivers into the drop folder's inbox: the local system takes the package from there."""

    name: str
    root: Path
    is_axis: bool = False

    def __post_init__(self) -> None:
        self._folder = DropFolder(root=Path(self.root))

    async def deliver(self, delivery: Delivery) -> Receipt:
        classified = delivery.classification.is_classified
        if self.is_axis and classified:
            raise ClassifiedRefused(
                f"{self.name} is an axis channel: classified packages never go there"
            )
        if classified:
            await require_sealed(delivery)  # raises NotSealed (final) before anything is written
        name = inbox_name(delivery)
        meta = {
            "message_id": delivery.message_id,
            "document_id": delivery.document_id,
            "kind": delivery.kind,
            "sender": delivery.sender,
            "recipients": list(delivery.recipients),
            "classification": delivery.classification.value,
            "sealed": classified,
            "package_size": delivery.package_size,
            "package_sha256": delivery.package_sha256,
        }
        try:
            with delivery.open_package() as stream:
                written = await self._folder.write_inbox(
                    name, stream, meta, expected_sha256=delivery.package_sha256
                )
        except DropFolderBusy as exc:
            raise PeerUnavailable(f"{self.name}: {exc.message}") from exc
        except OSError as exc:
            raise PeerUnavailable(f"{self.name}: cannot write to {self.root}: {exc}") from exc
        return Receipt(remote_id=written.name, duplicate=not written.created)

    async def close(self) -> None:
        return None


def inbox_name(delivery: Delivery) -> str:
    """One name per (message, recipients): a resend of the same delivery lands on the same name
    (and is not written twice); the same message for other recipients gets its own hand-off."""
    recipients = hashlib.sha256(",".join(sorted(delivery.recipients)).encode()).hexdigest()[:12]
    return safe_name(f"{delivery.message_id[:180]}-{recipients}")
