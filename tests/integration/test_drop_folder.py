"""The drop folder: only complete items are picked up, hand-offs are atomic, and a writer killed
with SIGKILL in the middle of a large file leaves nothing a reader could mistake for complete.

The crash tests run the writer in a subprocess (this interpreter, so the venv's python; docgw is
imported as installed) and kill it while the file is growing.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from connectors.base import Delivery, NotSealed, PeerRefused
from connectors.drop_folder import (
    DropFolder,
    DropFolderBusy,
    DropFolderConnector,
    DropNameInvalid,
    DropPackageMismatch,
    OutboxItem,
)
from envelopes.model import Classification
from envelopes.sealing import seal
from gateway.keystore import Issued, create_ca, issue_unit_certificate

SENDER, RECIPIENT = "000.00.00.G22", "000.00.00.H41"
PACKAGE = b"<edXMLEnvelope>" + b"p" * 10_000 + b"</edXMLEnvelope>"
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@functools.cache
def recipient() -> Issued:
    return issue_unit_certificate(create_ca(), RECIPIENT)


def write_document(outbox: Path, name: str, *, suffix: str = ".ready", subject: str = "x") -> Path:
    """What the local system does: write NAME.tmp/, then rename it to NAME.ready/."""
    tmp = outbox / f"{name}.tmp"
    tmp.mkdir(parents=True)
    (tmp / "metadata.json").write_text(json.dumps({"subject": subject}), encoding="utf-8")
    (tmp / "b.pdf").write_bytes(b"%PDF-1.7 b")
    (tmp / "a.docx").write_bytes(b"PK a")
    if suffix == ".tmp":
        return tmp
    return tmp.rename(outbox / f"{name}{suffix}")


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


# ------------------------------------------------------------------------------------- outbox


def test_only_complete_items_are_picked_up(tmp_path: Path) -> None:
    folder = DropFolder(root=tmp_path)
    outbox = folder.outbox
    tmp = write_document(outbox, "doc", suffix=".tmp")
    (outbox / "pkg.edxml.tmp").write_bytes(PACKAGE[:100])
    assert run(folder.scan_outbox()) == []

    tmp.rename(outbox / "doc.ready")
    (outbox / "pkg.edxml.tmp").rename(outbox / "pkg.edxml")
    doc, pkg = run(folder.scan_outbox())

    assert (doc.name, doc.path, doc.is_package) == ("doc", outbox / "doc.ready", False)
    assert json.loads(doc.metadata or b"") == {"subject": "x"}
    assert doc.attachments == (outbox / "doc.ready" / "a.docx", outbox / "doc.ready" / "b.pdf")
    assert (pkg.name, pkg.package_path, pkg.metadata, pkg.attachments) == (
        "pkg",
        outbox / "pkg.edxml",
        None,
        (),
    )


def test_taken_items_leave_the_outbox_with_their_message_id(tmp_path: Path) -> None:
    folder = DropFolder(root=tmp_path)
    write_document(folder.outbox, "doc")
    [item] = run(folder.scan_outbox())

    moved = run(folder.mark_taken(item, "msg-1"))

    assert moved == folder.taken / "doc.ready"
    assert listing(moved) == ["a.docx", "b.pdf", "metadata.json"]
    record = json.loads((folder.taken / "doc.taken.json").read_text(encoding="utf-8"))
    assert record["message_id"] == "msg-1"
    assert record["idempotency_key"] == item.idempotency_key
    assert run(folder.scan_outbox()) == []

    # The local system reuses the name later: the earlier item is kept, and the keys differ.
    write_document(folder.outbox, "doc", subject="another document")
    [again] = run(folder.scan_outbox())
    assert again.idempotency_key != item.idempotency_key
    assert run(folder.mark_taken(again, "msg-2")) == folder.taken / "doc~2.ready"
    assert json.loads((folder.taken / "doc~2.taken.json").read_bytes())["message_id"] == "msg-2"


def test_rejected_items_get_an_error_file(tmp_path: Path) -> None:
    folder = DropFolder(root=tmp_path)
    (folder.outbox).mkdir(parents=True)
    (folder.outbox / "pkg.edxml").write_bytes(PACKAGE)
    [item] = run(folder.scan_outbox())

    moved = run(folder.mark_rejected(item, "SCHEMA_INVALID", "Subject is missing"))

    assert moved == folder.rejected / "pkg.edxml"
    assert moved.read_bytes() == PACKAGE
    error = json.loads((folder.rejected / "pkg.error.json").read_text(encoding="utf-8"))
    assert (error["error_code"], error["message"]) == ("SCHEMA_INVALID", "Subject is missing")
    assert run(folder.scan_outbox()) == []


def test_the_idempotency_key_is_stable_across_scans(tmp_path: Path) -> None:
    folder = DropFolder(root=tmp_path)
    write_document(folder.outbox, "doc")
    [first] = run(folder.scan_outbox())
    [second] = run(folder.scan_outbox())
    assert first == second
    assert first.idempotency_key.startswith("drop-folder:doc:")


@pytest.mark.parametrize("problem", ["no-metadata", "symlink", "subfolder", "huge-metadata"])
def test_complete_items_that_can_never_be_sent_are_rejected_at_once(
    tmp_path: Path, problem: str
) -> None:
    folder = DropFolder(root=tmp_path / "drop", max_metadata_bytes=1000)
    secret = tmp_path / "unit.key.pem"
    secret.write_text("-----BEGIN PRIVATE KEY-----", encoding="utf-8")
    tmp = write_document(folder.outbox, "doc", suffix=".tmp")
    if problem == "no-metadata":
        (tmp / "metadata.json").unlink()
    elif problem == "symlink":
        # An item must never make the gateway send a file from elsewhere on the host.
        (tmp / "key.pem").symlink_to(secret)
    elif problem == "subfolder":
        (tmp / "more").mkdir()
    else:
        (tmp / "metadata.json").write_bytes(b" " * 1001)
    tmp.rename(folder.outbox / "doc.ready")

    assert run(folder.scan_outbox()) == []

    assert listing(folder.outbox) == ["rejected"]
    assert "doc.ready" in listing(folder.rejected)
    error = json.loads((folder.rejected / "doc.error.json").read_bytes())
    assert error["error_code"].startswith("DROP_")


def test_a_file_name_that_is_not_utf8_is_refused_not_a_crash_of_the_scan(tmp_path: Path) -> None:
    """A Linux file name may be any bytes: one that is not UTF-8 neither stops the scan nor the
    error record (it is written as its JSON escape)."""
    folder = DropFolder(root=tmp_path / "drop")
    tmp = write_document(folder.outbox, "doc", suffix=".tmp")
    (tmp / os.fsdecode(b"thu-muc-\xff")).mkdir()
    tmp.rename(folder.outbox / "doc.ready")
    write_document(folder.outbox, "good")

    assert [item.name for item in run(folder.scan_outbox())] == ["good"]

    error = json.loads((folder.rejected / "doc.error.json").read_bytes())
    assert error["error_code"] == "DROP_ITEM_NOT_A_FILE"
    assert os.fsdecode(b"thu-muc-\xff") in error["message"]


def test_a_symlinked_package_is_rejected(tmp_path: Path) -> None:
    folder = DropFolder(root=tmp_path / "drop")
    folder.outbox.mkdir(parents=True)
    (tmp_path / "elsewhere.edxml").write_bytes(PACKAGE)
    (folder.outbox / "pkg.edxml").symlink_to(tmp_path / "elsewhere.edxml")
    assert run(folder.scan_outbox()) == []
    assert (folder.rejected / "pkg.edxml").is_symlink()


# -------------------------------------------------------------------------------------- inbox


def test_write_inbox_writes_metadata_then_package(tmp_path: Path) -> None:
    folder = DropFolder(root=tmp_path)
    written = run(
        folder.write_inbox("doc-1", PACKAGE, {"message_id": "m-1", "subject": "Công văn"})
    )

    assert written.created
    assert written.package_path.read_bytes() == PACKAGE
    assert written.sha256 == hashlib.sha256(PACKAGE).hexdigest()
    assert written.size == len(PACKAGE)
    meta = json.loads(written.metadata_path.read_text(encoding="utf-8"))
    assert meta == {"message_id": "m-1", "subject": "Công văn"}
    assert listing(folder.inbox) == ["doc-1.edxml", "doc-1.json"]


def test_write_inbox_never_shows_half_a_package(tmp_path: Path) -> None:
    folder = DropFolder(root=tmp_path)
    inbox = folder.inbox
    seen_mid_write: list[list[str]] = []

    async def chunks() -> AsyncIterator[bytes]:
        yield PACKAGE[:5000]
        # Mid-write: the metadata is complete, the package exists only under its .tmp name.
        seen_mid_write.append(listing(inbox))
        yield PACKAGE[5000:]

    written = run(folder.write_inbox("doc", chunks(), {"m": 1}))

    assert seen_mid_write == [["doc.edxml.tmp", "doc.json"]]
    assert written.package_path.read_bytes() == PACKAGE
    assert listing(inbox) == ["doc.edxml", "doc.json"]


@pytest.mark.parametrize("source", ["bytes", "stream", "iterable", "async"])
def test_write_inbox_takes_every_kind_of_source(tmp_path: Path, source: str) -> None:
    async def agen() -> AsyncIterator[bytes]:
        yield PACKAGE[:10]
        yield PACKAGE[10:]

    data: object = {
        "bytes": PACKAGE,
        "stream": io.BytesIO(PACKAGE),
        "iterable": iter([PACKAGE[:10], PACKAGE[10:]]),
        "async": agen(),
    }[source]
    written = run(DropFolder(root=tmp_path).write_inbox("doc", data, {}))  # type: ignore[arg-type]
    assert written.package_path.read_bytes() == PACKAGE


def test_write_inbox_is_idempotent_by_name(tmp_path: Path) -> None:
    folder = DropFolder(root=tmp_path)
    run(folder.write_inbox("doc", PACKAGE, {"first": True}))

    def never_read() -> Iterator[bytes]:
        raise AssertionError("the source of an existing name must not be read")
        yield b""  # pragma: no cover

    again = run(folder.write_inbox("doc", never_read(), {"first": False}))

    assert not again.created
    assert again.package_path.read_bytes() == PACKAGE
    assert json.loads(again.metadata_path.read_bytes()) == {"first": True}
    assert listing(folder.inbox) == ["doc.edxml", "doc.json"]


def test_a_failing_source_leaves_nothing_behind(tmp_path: Path) -> None:
    folder = DropFolder(root=tmp_path)

    def broken() -> Iterator[bytes]:
        yield PACKAGE[:100]
        raise OSError("the blob store went away")

    with pytest.raises(OSError, match="went away"):
        run(folder.write_inbox("doc", broken(), {}))
    assert listing(folder.inbox) == []


def test_bytes_that_do_not_match_the_expected_hash_never_appear(tmp_path: Path) -> None:
    folder = DropFolder(root=tmp_path)
    with pytest.raises(DropPackageMismatch):
        run(folder.write_inbox("doc", PACKAGE, {}, expected_sha256="0" * 64))
    assert listing(folder.inbox) == []
    ok = run(
        folder.write_inbox("doc", PACKAGE, {}, expected_sha256=hashlib.sha256(PACKAGE).hexdigest())
    )
    assert ok.created


@pytest.mark.parametrize("name", ["", "../evil", "a/b", ".hidden", "x.tmp", "tên", "a" * 201])
def test_names_must_be_plain_file_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(DropNameInvalid):
        run(DropFolder(root=tmp_path).write_inbox(name, PACKAGE, {}))
    assert not (tmp_path.parent / "evil.edxml").exists()


def test_a_name_being_written_by_another_process_is_busy_and_not_cleaned_up(
    tmp_path: Path,
) -> None:
    folder = DropFolder(root=tmp_path)
    folder.inbox.mkdir(parents=True)
    tmp = folder.inbox / "doc.edxml.tmp"
    with tmp.open("wb") as other_writer:
        fcntl.flock(other_writer, fcntl.LOCK_EX)
        with pytest.raises(DropFolderBusy):
            run(folder.write_inbox("doc", PACKAGE, {}))
        old = time.time() - 86_400
        os.utime(tmp, (old, old))
        assert run(folder.cleanup_stale_tmp(60)) == []  # old, but its writer is alive
        assert tmp.exists()
    assert run(folder.cleanup_stale_tmp(60)) == [tmp]


def test_a_dead_writers_leftover_is_taken_over(tmp_path: Path) -> None:
    folder = DropFolder(root=tmp_path)
    folder.inbox.mkdir(parents=True)
    (folder.inbox / "doc.edxml.tmp").write_bytes(b"garbage from a killed writer" * 1000)
    written = run(folder.write_inbox("doc", PACKAGE, {}))
    assert written.package_path.read_bytes() == PACKAGE
    assert listing(folder.inbox) == ["doc.edxml", "doc.json"]


# ----------------------------------------------------------------------------------- crashes

INBOX_WRITER = """
import asyncio, sys, time
from pathlib import Path
from connectors.drop_folder import DropFolder

def slow_package():
    yield b"<edXMLEnvelope>"
    for _ in range(int(sys.argv[2])):
        time.sleep(0.05)
        yield b"x" * (1 << 20)
    yield b"</edXMLEnvelope>"

folder = DropFolder(root=Path(sys.argv[1]))
asyncio.run(folder.write_inbox("big", slow_package(), {"message_id": "m-big"}))
"""

OUTBOX_WRITER = """
import os, sys, time
from pathlib import Path

item = Path(sys.argv[1]) / "outbox" / "doc.tmp"
item.mkdir(parents=True)
(item / "metadata.json").write_text('{"subject": "big"}')
with open(item / "big.pdf", "wb") as out:
    for _ in range(int(sys.argv[2])):
        out.write(b"x" * (1 << 20))
        out.flush()
        time.sleep(0.05)
os.rename(item, item.with_name("doc.ready"))
"""


def start_writer(script: str, root: Path, megabytes: int) -> subprocess.Popen[bytes]:
    # sys.executable is the venv's python; docgw is imported as installed, not from the cwd.
    return subprocess.Popen(
        [sys.executable, "-c", script, str(root), str(megabytes)],
        cwd=root.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def kill_while_growing(process: subprocess.Popen[bytes], growing: Path) -> None:
    """SIGKILL ``process`` once ``growing`` exists and has grown between two looks."""
    deadline = time.monotonic() + 30
    sizes: list[int] = []
    while time.monotonic() < deadline and process.poll() is None:
        if growing.exists() and (size := growing.stat().st_size) > 0:
            sizes.append(size)
            if len(sizes) >= 2 and sizes[-1] > sizes[0]:
                break
        time.sleep(0.05)
    else:
        _, err = process.communicate(timeout=10)
        pytest.fail(f"the writer never wrote {growing}: {err.decode(errors='replace')}")
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=10)
    assert process.returncode == -signal.SIGKILL, "the writer finished before it was killed"


@pytest.mark.slow
def test_an_inbox_writer_killed_mid_write_leaves_no_package(tmp_path: Path) -> None:
    root = tmp_path / "drop"
    folder = DropFolder(root=root)
    writer = start_writer(INBOX_WRITER, root, 50)
    kill_while_growing(writer, folder.inbox / "big.edxml.tmp")

    # A reader sees no package: the metadata alone is not a hand-off.
    assert list(folder.inbox.glob("*.edxml")) == []
    assert listing(folder.inbox) == ["big.edxml.tmp", "big.json"]
    assert 0 < (folder.inbox / "big.edxml.tmp").stat().st_size < 50 << 20

    assert run(folder.cleanup_stale_tmp(3600)) == []  # too recent to be called stale
    assert run(folder.cleanup_stale_tmp(0)) == [folder.inbox / "big.edxml.tmp"]
    assert listing(folder.inbox) == ["big.json"]

    # The hand-off is simply done again (the metadata is rewritten first).
    written = run(folder.write_inbox("big", PACKAGE, {"message_id": "m-big"}))
    assert written.created and written.package_path.read_bytes() == PACKAGE


@pytest.mark.slow
def test_an_outbox_writer_killed_mid_write_is_never_picked_up(tmp_path: Path) -> None:
    root = tmp_path / "drop"
    folder = DropFolder(root=root)
    writer = start_writer(OUTBOX_WRITER, root, 50)
    kill_while_growing(writer, folder.outbox / "doc.tmp" / "big.pdf")

    assert run(folder.scan_outbox()) == []
    assert listing(folder.outbox) == ["doc.tmp"]

    assert run(folder.cleanup_stale_tmp(3600)) == []
    assert run(folder.cleanup_stale_tmp(0)) == [folder.outbox / "doc.tmp"]
    assert listing(folder.outbox) == []
    assert run(folder.scan_outbox()) == []


@pytest.mark.slow
def test_the_same_outbox_writer_left_alone_is_picked_up(tmp_path: Path) -> None:
    """The control for the test above: the script does produce an item when not killed."""
    root = tmp_path / "drop"
    writer = start_writer(OUTBOX_WRITER, root, 2)
    _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err.decode(errors="replace")
    [item] = run(DropFolder(root=root).scan_outbox())
    assert item.attachments == (root / "outbox" / "doc.ready" / "big.pdf",)
    assert item.attachments[0].stat().st_size == 2 << 20


# -------------------------------------------------------------------------------- connector


def delivery_of(
    data: bytes,
    *,
    classification: Classification = Classification.THUONG,
    recipients: tuple[str, ...] = (RECIPIENT,),
) -> Delivery:
    return Delivery(
        message_id="01J0MESSAGE",
        document_id=f"{SENDER},2024/03/15,7816/VPCP-TTĐT",
        kind="document",
        sender=SENDER,
        recipients=recipients,
        classification=classification,
        open_package=lambda: io.BytesIO(data),
        package_size=len(data),
        package_sha256=hashlib.sha256(data).hexdigest(),
        attempt=1,
    )


def test_the_connector_hands_packages_to_the_inbox_once(tmp_path: Path) -> None:
    connector = DropFolderConnector(name="dms", root=tmp_path)
    first = run(connector.deliver(delivery_of(PACKAGE)))
    again = run(connector.deliver(delivery_of(PACKAGE)))
    other = run(connector.deliver(delivery_of(PACKAGE, recipients=("000.00.00.H14",))))

    assert (first.duplicate, again.duplicate, other.duplicate) == (False, True, False)
    assert first.remote_id == again.remote_id != other.remote_id
    inbox = tmp_path / "inbox"
    packages = sorted(inbox.glob("*.edxml"))
    assert [p.read_bytes() for p in packages] == [PACKAGE, PACKAGE]
    meta = json.loads((inbox / f"{first.remote_id}.json").read_bytes())
    assert meta["message_id"] == "01J0MESSAGE"
    assert meta["recipients"] == [RECIPIENT]
    assert meta["sealed"] is False


def test_the_connector_refuses_classified_packages_that_are_not_sealed(tmp_path: Path) -> None:
    connector = DropFolderConnector(name="dms", root=tmp_path)
    with pytest.raises(NotSealed) as raised:
        run(connector.deliver(delivery_of(PACKAGE, classification=Classification.TOI_MAT)))
    assert isinstance(raised.value, PeerRefused)
    assert not (tmp_path / "inbox").exists() or listing(tmp_path / "inbox") == []

    sealed = seal(PACKAGE, recipient().certificate)
    receipt = run(connector.deliver(delivery_of(sealed, classification=Classification.TOI_MAT)))
    package = tmp_path / "inbox" / f"{receipt.remote_id}.edxml"
    assert package.read_bytes() == sealed
    assert json.loads(package.with_suffix(".json").read_bytes())["sealed"] is True


def test_outbox_items_are_values(tmp_path: Path) -> None:
    item = OutboxItem(name="x", path=tmp_path, fingerprint="f" * 64)
    with pytest.raises(AttributeError):
        item.name = "y"  # type: ignore[misc]
