"""``docgw import``: an old system's export becomes history — shuffled, with duplicates, with
statuses before their documents, against what docgw already holds — and never traffic."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from import_support import history, resigned
from integration_support import RECIPIENT, SENDER, write_config

from gateway.bootstrap import Gateway
from gateway.store.records import UnitRecord
from gateway.store.tables import messages, recipients, status_events
from gateway.usecases import importing, intake, registry

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "real"
COUNT = 4


def shuffled_folder(folder: Path, files: dict[str, bytes], seed: int) -> None:
    """Files under random names, so the folder's order is not the export's order."""
    rng = random.Random(seed)
    folder.mkdir()
    names = list(files)
    rng.shuffle(names)
    for index, name in enumerate(names):
        (folder / f"{rng.randrange(10**6):06d}-{index}-{name}").write_bytes(files[name])


async def rows(gateway: Gateway, query: Any) -> list[Any]:
    async with gateway.engine.connect() as conn:
        return list((await conn.execute(query)).all())


def test_a_shuffled_folder_with_duplicates_becomes_history_once(
    make_gateway: Callable[..., Any], tmp_path: Path, keys_dir: Path
) -> None:
    asyncio.run(_shuffled_folder_with_duplicates(make_gateway, tmp_path, keys_dir))


async def _shuffled_folder_with_duplicates(
    make_gateway: Callable[..., Any], tmp_path: Path, keys_dir: Path
) -> None:
    files = history(keys_dir, COUNT)
    async with make_gateway() as gateway:
        # docgw already received document 0 from H41 live: the export's copy is a duplicate.
        live = files[f"doc-{RECIPIENT}-0.edxml"]
        await intake.receive_package(gateway, io.BytesIO(live), via="axis")
        files["copy-of-doc-0.edxml"] = files[f"doc-{SENDER}-0.edxml"]  # same bytes again
        files["resigned-doc-1.edxml"] = resigned(keys_dir, 1)  # same document, other bytes
        files["broken.edxml"] = b"<edXML><not closed"
        shuffled_folder(tmp_path / "export", files, seed=7)

        report = await importing.import_source(gateway, tmp_path / "export")

        by_name = {f.name.split("-", 2)[2]: f for f in report.files}
        assert by_name["broken.edxml"].outcome == "refused"
        assert (by_name["broken.edxml"].reason or "").startswith("XML_MALFORMED")
        assert by_name[f"doc-{RECIPIENT}-0.edxml"].outcome == "skipped"
        assert "IMPORT_DUPLICATE" in (by_name[f"doc-{RECIPIENT}-0.edxml"].reason or "")
        assert by_name["resigned-doc-1.edxml"].outcome == "skipped" or (
            by_name[f"doc-{SENDER}-1.edxml"].outcome == "skipped"
        )
        copies = [by_name["copy-of-doc-0.edxml"], by_name[f"doc-{SENDER}-0.edxml"]]
        assert sorted(f.outcome for f in copies) == ["imported", "skipped"]
        # 2×COUNT documents (one of them held already) and 4×COUNT statuses.
        assert report.summary() == {"imported": 6 * COUNT - 1, "skipped": 3, "refused": 1}
        imported = [f for f in report.files if f.outcome == "imported"]
        assert all(f.verified for f in imported)  # every sender's certificate is registered

        documents = await rows(
            gateway,
            sa.select(messages.c.direction, messages.c.sender, messages.c.document_id).where(
                messages.c.kind == "document"
            ),
        )
        assert len(documents) == 2 * COUNT
        assert len(set(documents)) == 2 * COUNT
        assert {d.direction for d in documents if d.sender == SENDER} == {"out"}
        assert {d.direction for d in documents if d.sender == RECIPIENT} == {"in"}
        # History, not traffic: nothing queued or due (the live copy's 01 answer aside).
        states = await rows(
            gateway,
            sa.select(recipients.c.state, messages.c.client)
            .join(messages, messages.c.id == recipients.c.message_id)
            .where(messages.c.client == "import"),
        )
        assert states and {s.state for s in states} == {"sent"}
        outgoing_statuses = await rows(
            gateway,
            sa.select(messages.c.id).where(
                messages.c.kind == "status", messages.c.direction == "out",
                messages.c.client != "import",
            ),
        )  # fmt: skip
        assert len(outgoing_statuses) == 1  # the live receipt's 01, not the import's
        unhanded = await rows(
            gateway,
            sa.select(messages.c.id).where(
                messages.c.direction == "in", messages.c.handed_off_at.is_(None),
                messages.c.client == "import",
            ),
        )  # fmt: skip
        assert unhanded == []
        # Every status found its document, whatever came first, and moved its reporter's status.
        pending = await rows(
            gateway, sa.select(status_events.c.id).where(status_events.c.message_id.is_(None))
        )
        assert pending == []
        business = await rows(
            gateway,
            sa.select(messages.c.sender, recipients.c.business_status)
            .join(recipients, recipients.c.message_id == messages.c.id)
            .where(messages.c.kind == "document"),
        )
        assert {b.business_status for b in business if b.sender == SENDER} == {"03"}
        assert {b.business_status for b in business if b.sender == RECIPIENT} == {"06"}

        again = await importing.import_source(gateway, tmp_path / "export")
        assert again.summary() == {"imported": 0, "skipped": len(files), "refused": 0}
        assert {f.reason.split(":")[0] for f in again.files if f.reason} == {
            "IMPORT_ALREADY_PROCESSED"
        }
        count = await rows(gateway, sa.select(sa.func.count()).select_from(messages))
        assert count[0][0] == 2 * COUNT + 4 * COUNT + 1


def test_the_real_samples_import_as_unverified_history(
    make_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    if not SAMPLES.is_dir():
        pytest.skip(f"the real samples are not here ({SAMPLES})")
    asyncio.run(_real_samples(make_gateway))


async def _real_samples(make_gateway: Callable[..., Any]) -> None:
    async with make_gateway() as gateway:
        # The commune's document is addressed to 28.22.H17: a local unit of this gateway.
        await registry.register_unit(
            gateway,
            UnitRecord(code="28.22.H17", name="Đơn vị nhận", is_local=True),
            certificate_pem=None,
            actor="test",
        )
        report = await importing.import_source(gateway, SAMPLES)
        notices = await rows(
            gateway, sa.select(messages.c.notices).where(messages.c.client == "import")
        )
        pending = await rows(
            gateway, sa.select(status_events.c.id).where(status_events.c.message_id.is_(None))
        )
        business = await rows(
            gateway,
            sa.select(recipients.c.unit_code, recipients.c.business_status)
            .join(messages, messages.c.id == recipients.c.message_id)
            .where(messages.c.kind == "document", messages.c.direction == "out"),
        )
    assert len(notices) == 6
    assert all(importing.UNVERIFIED in n.notices for n in notices)
    assert pending == []  # every status found its document, the sender's own 13 included
    # 01, 02 and 03 from H41 found the sent update: 02 (rejected) ranks last.
    assert dict(business)[RECIPIENT] == "02"
    outcomes = {f.name: f for f in report.files if f.name.endswith(".edxml")}
    refused = {n for n, f in outcomes.items() if f.outcome == "refused"}
    # Both ends of the axis download are vxp.saas.03, no unit of this gateway.
    assert refused == {"axis_download_874e0f18.edxml"}
    assert (outcomes["axis_download_874e0f18.edxml"].reason or "").startswith("IMPORT_NOT_OURS")
    imported = {n: f for n, f in outcomes.items() if f.outcome == "imported"}
    assert len(imported) == 6
    assert not any(f.verified for f in imported.values())  # placeholder signatures
    assert imported["edoc_update.edxml"].direction == "out"
    assert imported["edoc_new.edxml"].direction == "in"
    assert imported["status_cancellation_13.edxml"].direction == "out"


DOCGW = Path(sys.executable).parent / "docgw"


@pytest.mark.slow
def test_an_import_killed_midway_resumes_without_duplicating(
    tmp_path: Path, keys_dir: Path
) -> None:
    """A real ``docgw import`` of a shuffled folder with duplicates is killed with SIGKILL while it
    works; run again, it imports the rest and nothing twice."""
    count = 60  # 360 files, and two duplicates
    files = history(keys_dir, count)
    files["copy-of-doc-0.edxml"] = files[f"doc-{SENDER}-0.edxml"]
    files["resigned-doc-1.edxml"] = resigned(keys_dir, 1)
    shuffled_folder(tmp_path / "export", files, seed=3)
    database = tmp_path / "docgw.db"
    config = write_config(
        tmp_path / "docgw.toml",
        database_url=f"sqlite+aiosqlite:///{database}",
        keys_dir=keys_dir,
        local_units=(SENDER,),
    )
    for code in (SENDER, RECIPIENT):
        subprocess.run(
            [str(DOCGW), "--config", str(config), "units", "add", code, "--name", f"Đơn vị {code}",
             "--cert", str(keys_dir / f"{code}.cert.pem")],
            check=True, capture_output=True,
        )  # fmt: skip
    command = [str(DOCGW), "--config", str(config), "import", str(tmp_path / "export")]
    with (tmp_path / "first.log").open("wb") as log:
        first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 120
    done = 0
    while done < 40 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
        done = _count(database, "SELECT count(*) FROM import_files")
    first.kill()  # SIGKILL: no cleanup of any kind
    first.wait(10)
    killed_at = _count(database, "SELECT count(*) FROM import_files")
    assert 40 <= killed_at < len(files), "the kill did not land midway"
    # Each outcome was recorded with what it imported, in one transaction: neither without the
    # other, whenever the kill came.
    done = "SELECT count(*) FROM import_files WHERE outcome = 'imported'"
    assert _count(database, done) == _count(database, "SELECT count(*) FROM messages")

    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in second.stderr
    summary = second.stdout.splitlines()[-1]
    numbers = dict(part.split() for part in summary.removeprefix("summary: ").split(", "))
    imported, skipped = int(numbers["imported"]), int(numbers["skipped"])
    assert numbers["refused"] == "0" and imported + skipped == len(files), summary
    assert skipped >= killed_at, summary  # everything the first run did, and the duplicates
    # One row per distinct content: the byte-identical copy shares its original's.
    assert _count(database, "SELECT count(*) FROM import_files") == len(set(files.values()))
    unique = len(files) - 2
    assert _count(database, "SELECT count(*) FROM messages") == unique
    distinct = "SELECT count(DISTINCT direction || dedup_key) FROM messages"
    assert _count(database, distinct) == unique
    pending = "SELECT count(*) FROM status_events WHERE message_id IS NULL"
    assert _count(database, pending) == 0
    due = "SELECT count(*) FROM recipients WHERE state != 'sent' OR next_attempt_at IS NOT NULL"
    assert _count(database, due) == 0


def _count(database: Path, sql: str) -> int:
    if not database.exists():
        return 0
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as conn:
        try:
            return int(conn.execute(sql).fetchone()[0])
        except sqlite3.OperationalError:  # the table is not created yet
            return 0


@pytest.mark.slow
def test_the_command_imports_a_zip_with_an_old_unit_named_local(
    tmp_path: Path, keys_dir: Path
) -> None:
    if not SAMPLES.is_dir():
        pytest.skip(f"the real samples are not here ({SAMPLES})")
    export = tmp_path / "export.zip"
    with zipfile.ZipFile(export, "w") as archive:
        for path in sorted(SAMPLES.glob("*.edxml")):
            archive.write(path, f"old-system/{path.name}")
    config = write_config(
        tmp_path / "docgw.toml",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/docgw.db",
        keys_dir=keys_dir,
        local_units=(SENDER,),
    )
    report = tmp_path / "report.json"
    command = [str(DOCGW), "--config", str(config), "import", str(export),
               "--local-unit", "28.22.H17", "--report", str(report)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "summary: imported 6, skipped 0, refused 1"
    body = json.loads(report.read_text(encoding="utf-8"))
    new = next(f for f in body["files"] if f["name"] == "old-system/edoc_new.edxml")
    assert (new["outcome"], new["direction"], new["verified"]) == ("imported", "in", False)
    missing = subprocess.run(
        [str(DOCGW), "--config", str(config), "import", str(tmp_path / "nowhere.zip")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: IMPORT_SOURCE_UNREADABLE"), missing.stderr


def test_a_file_over_the_upload_limit_is_refused_unread(
    make_gateway: Callable[..., Any], tmp_path: Path, keys_dir: Path
) -> None:
    files = history(keys_dir, 1)
    shuffled_folder(tmp_path / "export", files, seed=1)
    limit = min(len(d) for d in files.values())  # the smallest files fit, no other
    fit = sum(1 for d in files.values() if len(d) <= limit)
    assert 0 < fit < len(files)

    async def scenario() -> None:
        async with make_gateway(extra=f"[api]\nmax_upload_bytes = {limit}\n") as gateway:
            report = await importing.import_source(gateway, tmp_path / "export")
            stored = await rows(gateway, sa.select(messages.c.id))
        assert report.summary() == {"imported": fit, "skipped": 0, "refused": len(files) - fit}
        refused = [f for f in report.files if f.outcome == "refused"]
        assert all((f.reason or "").startswith("IMPORT_TOO_LARGE") for f in refused)
        assert len(stored) == fit

    asyncio.run(scenario())


def test_a_package_whose_signature_fails_is_history_never_verified(
    make_gateway: Callable[..., Any], keys_dir: Path
) -> None:
    """The sender's certificate is registered, but the bytes were changed after signing."""
    data = history(keys_dir, 1)[f"doc-{RECIPIENT}-0.edxml"]
    changed = data.replace("Văn bản cũ số".encode(), "Văn bản giả số".encode(), 1)
    assert changed != data

    async def scenario() -> None:
        async with make_gateway() as gateway:
            outcome = await importing.import_file(gateway, "changed.edxml", changed)
            stored = await rows(gateway, sa.select(messages.c.notices, messages.c.signer_subject))
        assert (outcome.outcome, outcome.verified) == ("imported", False)
        assert (outcome.reason or "").startswith("IMPORT_UNVERIFIED")
        assert "SIGNED_HEADER_CHANGED" in (outcome.reason or "")
        assert stored[0].signer_subject is None
        assert importing.UNVERIFIED in stored[0].notices

    asyncio.run(scenario())
